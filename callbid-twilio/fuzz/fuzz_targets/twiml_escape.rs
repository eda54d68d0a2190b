//! TwiML text and attribute escaping: unescaping (quick-xml) gives back the
//! input, no raw markup survives, and a rendered document parses back to the
//! same text and attribute.
#![no_main]

use callbid_twilio::twiml::{escape_attr, escape_text, parse::parse, Say, VoiceResponse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (text, attr) = input;
    let t = escape_text(text);
    assert!(!t.contains('<') && !t.contains('>'));
    assert_eq!(quick_xml::escape::unescape(&t).expect("unescape text"), text);
    let a = escape_attr(attr);
    assert!(!a.contains(['"', '<', '>', '\n', '\r', '\t']));
    assert_eq!(quick_xml::escape::unescape(&a).expect("unescape attr"), attr);

    // XML 1.0 cannot carry other control characters (twilio-python emits them
    // raw too), so only round-trip documents XML can represent.
    let xml_ok = |s: &str| s.chars().all(|c| matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'));
    if xml_ok(text) && xml_ok(attr) {
        let xml = VoiceResponse::new().say(Say::new(text).voice(attr)).to_xml();
        let root = parse(&xml).expect("rendered TwiML parses");
        assert_eq!(root.children[0].text, text);
        assert_eq!(root.children[0].attr("voice"), Some(attr));
    }
});
