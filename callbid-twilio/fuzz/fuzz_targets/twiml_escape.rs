//! TwiML text and attribute escaping: unescaping (quick-xml) gives back the
//! input, no raw markup survives, and a rendered document parses back to the
//! same text and attribute.
#![no_main]

use callbid_twilio::twiml::{escape_attr, escape_text, parse::parse, Say, VoiceResponse};
use libfuzzer_sys::fuzz_target;

/// Characters XML 1.0 can carry; the escapers drop every other one.
fn xml_char_ok(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

fuzz_target!(|input: (&str, &str)| {
    let (text, attr) = input;
    // What survives escaping: the input without the characters XML cannot carry.
    let text_kept: String = text.chars().filter(|c| xml_char_ok(*c)).collect();
    let attr_kept: String = attr.chars().filter(|c| xml_char_ok(*c)).collect();

    let t = escape_text(text);
    assert!(!t.contains('<') && !t.contains('>'));
    assert!(t.chars().all(xml_char_ok));
    assert_eq!(quick_xml::escape::unescape(&t).expect("unescape text"), text_kept);
    let a = escape_attr(attr);
    assert!(!a.contains(['"', '<', '>', '\n', '\r', '\t']));
    assert!(a.chars().all(xml_char_ok));
    assert_eq!(quick_xml::escape::unescape(&a).expect("unescape attr"), attr_kept);

    // Any input renders to a document that parses back to what survived escaping.
    let xml = VoiceResponse::new().say(Say::new(text).voice(attr)).to_xml();
    let root = parse(&xml).expect("rendered TwiML parses");
    assert_eq!(root.children[0].text, text_kept);
    assert_eq!(root.children[0].attr("voice"), Some(attr_kept.as_str()));
});
