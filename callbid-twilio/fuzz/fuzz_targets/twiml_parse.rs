//! The TwiML parser (used by the simulator on whatever an app returns) must
//! return an error, never panic, on any input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    let _ = callbid_twilio::twiml::parse::parse(s);
});
