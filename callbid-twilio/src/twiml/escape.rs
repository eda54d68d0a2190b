//! XML escaping exactly as Twilio's helper libraries produce it.
//!
//! twilio-python serialises with `xml.etree.ElementTree`, which escapes text nodes
//! as `&` `<` `>` only, and attribute values additionally as `"` → `&quot;`,
//! CR → `&#13;`, LF → `&#10;`, TAB → `&#09;`. Text escaping is quick-xml's
//! `partial_escape` (the same three characters); quick-xml has no escaper with
//! the numeric references above, so attribute values use the small escaper here
//! (property-tested and fuzzed against quick-xml's unescaper).

use std::borrow::Cow;

/// Whether XML 1.0 allows `c` at all. Control characters other than TAB, LF and CR,
/// and U+FFFE / U+FFFF, make the document invalid (Twilio then fails the call with an
/// application error), so the escapers drop them; twilio-python would emit them raw.
fn xml_char_ok(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// Escapes a text node: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`; characters XML 1.0
/// forbids are dropped.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    if text.chars().all(xml_char_ok) {
        return quick_xml::escape::partial_escape(text);
    }
    let clean: String = text.chars().filter(|c| xml_char_ok(*c)).collect();
    Cow::Owned(quick_xml::escape::partial_escape(&clean).into_owned())
}

/// Escapes an attribute value as ElementTree does: the text escapes plus
/// `"` → `&quot;`, `\r` → `&#13;`, `\n` → `&#10;`, `\t` → `&#09;`.
pub fn escape_attr(value: &str) -> Cow<'_, str> {
    let needs =
        |c: char| matches!(c, '&' | '<' | '>' | '"' | '\r' | '\n' | '\t') || !xml_char_ok(c);
    if !value.contains(needs) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 16);
    push_escaped_attr(&mut out, value);
    Cow::Owned(out)
}

/// Appends `value` escaped as an attribute value to `out`.
pub(crate) fn push_escaped_attr(out: &mut String, value: &str) {
    let mut last = 0;
    for (i, c) in value.char_indices() {
        let rep = match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\r' => "&#13;",
            '\n' => "&#10;",
            '\t' => "&#09;",
            c if !xml_char_ok(c) => "",
            _ => continue,
        };
        out.push_str(&value[last..i]);
        out.push_str(rep);
        last = i + c.len_utf8();
    }
    out.push_str(&value[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn characters_xml_forbids_are_dropped() {
        assert_eq!(escape_text("a\u{0}b\u{1b}c\u{ffff}<"), "abc&lt;");
        assert_eq!(escape_attr("x\u{7}y\t"), "xy&#09;");
        assert_eq!(escape_text("tab\tnl\ncr\r"), "tab\tnl\ncr\r");
    }

    #[test]
    fn text_escapes_only_three_characters() {
        assert_eq!(
            escape_text(r#"a & <b> "c" 'd'"#),
            r#"a &amp; &lt;b&gt; "c" 'd'"#
        );
        assert_eq!(escape_text("\n\t"), "\n\t");
    }

    #[test]
    fn attr_escapes_quotes_and_whitespace_controls() {
        assert_eq!(
            escape_attr("a&<>\"'\n\t\r"),
            "a&amp;&lt;&gt;&quot;'&#10;&#09;&#13;"
        );
        assert!(matches!(escape_attr("plain"), Cow::Borrowed(_)));
    }

    proptest! {
        #[test]
        fn attr_escape_round_trips_through_quick_xml(s in any::<String>()) {
            let escaped = escape_attr(&s);
            prop_assert!(!escaped.contains(['"', '<', '>', '\n', '\r', '\t']));
            let back = quick_xml::escape::unescape(&escaped).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.as_ref(), s.as_str());
        }

        #[test]
        fn text_escape_round_trips_through_quick_xml(s in any::<String>()) {
            let escaped = escape_text(&s);
            prop_assert!(!escaped.contains(['<', '>']));
            let back = quick_xml::escape::unescape(&escaped).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.as_ref(), s.as_str());
        }
    }
}
