//! Any bytes as a webhook form body: parsing into every request type and
//! verifying a signature must return errors, never panic; a signature computed
//! over the parsed pairs must verify; a wire enum that parses a value writes it
//! back unchanged.
#![no_main]

use callbid_twilio::signature::{RequestValidator, WebhookVerifier};
use callbid_twilio::webhook::*;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_form::<VoiceRequest>(data);
    let _ = parse_form::<GatherRequest>(data);
    let _ = parse_form::<DialActionRequest>(data);
    let _ = parse_form::<RecordActionRequest>(data);
    let _ = parse_form::<StatusCallbackRequest>(data);
    let _ = parse_form::<RecordingStatusRequest>(data);

    let pairs = form_pairs(data);
    // Open wire enums: whatever parses writes back exactly as received.
    for (_, v) in &pairs {
        if let Ok(s) = v.parse::<CallStatus>() {
            assert_eq!(s.as_str(), v);
            assert_eq!(s.as_str().parse::<CallStatus>().ok(), Some(s));
        }
        if let Ok(d) = v.parse::<DialCallStatus>() {
            assert_eq!(d.to_string(), *v);
        }
    }
    let url = "https://ivr.example.com/voice?x=1";
    let validator = RequestValidator::new("fuzz-token");
    let sig = validator.compute_signature(url, &pairs);
    assert!(validator.validate(url, &pairs, &sig));

    let Ok(verifier) = WebhookVerifier::new("https://ivr.example.com", "fuzz-token") else {
        return;
    };
    assert!(verifier.verify("/voice?x=1", Some(&sig), None, data, true).is_ok());
    // The body also used as path, signature, settings header and JSON body.
    let text = String::from_utf8_lossy(data);
    let _ = verifier.verify(&text, Some(&text), Some(&text), data, false);
    let _ = validator.validate_body(&text, data, &text);
});
