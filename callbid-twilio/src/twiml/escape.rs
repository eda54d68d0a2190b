//! XML escaping exactly as Twilio's helper libraries produce it.
//!
//! twilio-python serialises with `xml.etree.ElementTree`, which escapes text nodes
//! as `&` `<` `>` only, and attribute values additionally as `"` → `&quot;`,
//! CR → `&#13;`, LF → `&#10;`, TAB → `&#09;`. Text escaping is quick-xml's
//! `partial_escape` (the same three characters); quick-xml has no escaper with
//! the numeric references above, so attribute values use the small escaper here
//! (property-tested and fuzzed against quick-xml's unescaper).

use std::borrow::Cow;

/// Escapes a text node: `&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`.
pub fn escape_text(text: &str) -> Cow<'_, str> {
    quick_xml::escape::partial_escape(text)
}

/// Escapes an attribute value as ElementTree does: the text escapes plus
/// `"` → `&quot;`, `\r` → `&#13;`, `\n` → `&#10;`, `\t` → `&#09;`.
pub fn escape_attr(value: &str) -> Cow<'_, str> {
    let needs = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\r' | '\n' | '\t');
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
