//! Reading TwiML back into a generic element tree (quick-xml underneath).
//!
//! The tree keeps every element and attribute, known or not, so a consumer (the
//! call simulator, tests) can interpret TwiML produced by any library.

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

/// Deepest element nesting accepted. Real TwiML nests four levels or so; the
/// limit keeps a hostile document from building a tree whose recursive drop,
/// clone or comparison would overflow the stack.
pub const MAX_DEPTH: usize = 128;

/// Why a TwiML document could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwimlParseError {
    /// The document is not well-formed XML.
    #[error("malformed TwiML at byte {position}: {message}")]
    Xml {
        /// Byte offset where the reader stopped.
        position: u64,
        /// What the XML reader reported.
        message: String,
    },
    /// The root element is not `<Response>`.
    #[error("TwiML root element is `<{found}>`, expected `<Response>`")]
    NotResponse {
        /// The root element's name.
        found: String,
    },
    /// The document has no root element.
    #[error("TwiML document has no root element")]
    Empty,
    /// Elements nested deeper than [`MAX_DEPTH`].
    #[error("TwiML nests elements deeper than {limit} levels at byte {position}")]
    TooDeep {
        /// The limit ([`MAX_DEPTH`]).
        limit: usize,
        /// Byte offset where the limit was passed.
        position: u64,
    },
    /// Content after the root element.
    #[error("TwiML has content after the closing </Response> at byte {position}")]
    TrailingContent {
        /// Byte offset of the extra content.
        position: u64,
    },
}

/// One TwiML element with its attributes, text and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Element {
    /// Element name, e.g. `Gather`.
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attributes: Vec<(String, String)>,
    /// Concatenated text content, unescaped (whitespace-only text between child
    /// elements is dropped).
    pub text: String,
    /// Child elements in order.
    pub children: Vec<Element>,
}

impl Element {
    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The text content with surrounding whitespace removed.
    pub fn trimmed_text(&self) -> &str {
        self.text.trim()
    }
}

fn xml_err(reader: &Reader<&[u8]>, e: impl std::fmt::Display) -> TwimlParseError {
    TwimlParseError::Xml {
        position: reader.buffer_position(),
        message: e.to_string(),
    }
}

fn too_deep(reader: &Reader<&[u8]>) -> TwimlParseError {
    TwimlParseError::TooDeep {
        limit: MAX_DEPTH,
        position: reader.buffer_position(),
    }
}

fn start_element(reader: &Reader<&[u8]>, e: &BytesStart<'_>) -> Result<Element, TwimlParseError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| xml_err(reader, err))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let value = a
            .unescape_value()
            .map_err(|err| xml_err(reader, err))?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        attributes,
        ..Default::default()
    })
}

/// Parses a TwiML document into its root element, which must be `<Response>`.
///
/// ```
/// let root = callbid_twilio::twiml::parse::parse(
///     r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">Hi &amp; bye</Say><Hangup /></Response>"#,
/// ).unwrap();
/// assert_eq!(root.children[0].attr("voice"), Some("alice"));
/// assert_eq!(root.children[0].text, "Hi & bye");
/// assert_eq!(root.children[1].name, "Hangup");
/// ```
pub fn parse(xml: &str) -> Result<Element, TwimlParseError> {
    let root = parse_any(xml)?;
    if root.name != "Response" {
        return Err(TwimlParseError::NotResponse { found: root.name });
    }
    Ok(root)
}

/// Parses any single-rooted XML document into an element tree (at most
/// [`MAX_DEPTH`] levels deep).
pub fn parse_any(xml: &str) -> Result<Element, TwimlParseError> {
    let mut reader = Reader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader.read_event().map_err(|e| xml_err(&reader, e))?;
        match event {
            Event::Start(e) => {
                if root.is_some() {
                    return Err(TwimlParseError::TrailingContent {
                        position: reader.buffer_position(),
                    });
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(&reader));
                }
                stack.push(start_element(&reader, &e)?);
            }
            Event::Empty(e) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(too_deep(&reader));
                }
                let el = start_element(&reader, &e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None if root.is_none() => root = Some(el),
                    None => {
                        return Err(TwimlParseError::TrailingContent {
                            position: reader.buffer_position(),
                        })
                    }
                }
            }
            Event::End(_) => {
                let Some(mut el) = stack.pop() else {
                    return Err(xml_err(&reader, "unexpected closing tag"));
                };
                if !el.children.is_empty() && el.text.trim().is_empty() {
                    el.text.clear();
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| xml_err(&reader, e))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => {
                        return Err(xml_err(&reader, "text outside the root element"));
                    }
                }
            }
            Event::CData(c) => {
                let text = String::from_utf8_lossy(&c.into_inner()).into_owned();
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(xml_err(&reader, "document ended inside an element"));
    }
    root.ok_or(TwimlParseError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::twiml::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_wrong_root_and_garbage() {
        assert!(matches!(
            parse("<Foo/>"),
            Err(TwimlParseError::NotResponse { .. })
        ));
        assert!(matches!(parse(""), Err(TwimlParseError::Empty)));
        assert!(matches!(
            parse("<Response><Say></Response>"),
            Err(TwimlParseError::Xml { .. })
        ));
        assert!(parse("<Response/><Response/>").is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize, leaf: &str| {
            let mut xml = "<Response>".to_owned();
            xml.push_str(&"<Gather>".repeat(depth - 1));
            xml.push_str(leaf);
            xml.push_str(&"</Gather>".repeat(depth - 1));
            xml.push_str("</Response>");
            xml
        };
        // Exactly MAX_DEPTH levels parse, with an open or an empty innermost element.
        assert!(parse(&nested(MAX_DEPTH, "")).is_ok());
        assert!(parse(&nested(MAX_DEPTH - 1, "<Pause/>")).is_ok());
        for xml in [
            nested(MAX_DEPTH + 1, ""),
            nested(MAX_DEPTH, "<Pause/>"),
            // Deep enough that building and dropping the tree would overflow the stack.
            nested(1_000_000, ""),
        ] {
            let err = parse(&xml).unwrap_err();
            assert!(
                matches!(
                    err,
                    TwimlParseError::TooDeep {
                        limit: MAX_DEPTH,
                        ..
                    }
                ),
                "{err}"
            );
            assert!(err.to_string().contains("128"), "{err}");
        }
    }

    proptest! {
        #[test]
        fn rendered_text_and_attributes_parse_back(text in any::<String>(), attr in any::<String>()) {
            // XML 1.0 cannot carry most control characters; Twilio's libraries
            // emit them unescaped too, so only compare documents XML can hold.
            let ok = |s: &str| s.chars().all(|c| c == '\t' || c == '\n' || c == '\r' || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'));
            prop_assume!(ok(&text) && ok(&attr));
            let xml = VoiceResponse::new().say(Say::new(text.clone()).voice(attr.clone())).to_xml();
            let root = parse(&xml).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(root.children.len(), 1);
            let say = &root.children[0];
            prop_assert_eq!(say.attr("voice"), Some(attr.as_str()));
            prop_assert_eq!(&say.text, &text);
        }

        /// Any string offered as an escape-hatch attribute name is either
        /// refused with an error naming it, or renders a document that parses
        /// back with that attribute and value, on any element kind.
        #[test]
        fn extra_attributes_parse_back(
            name in prop_oneof![any::<String>(), "[A-Za-z_:][A-Za-z0-9_.:-]{0,10}"],
            value in any::<String>(),
            kind in 0usize..5,
        ) {
            let ok = |s: &str| s.chars().all(|c| c == '\t' || c == '\n' || c == '\r' || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}'));
            prop_assume!(ok(&value));
            let attr = match AttrName::new(name.clone()) {
                Ok(a) => a,
                Err(e) => {
                    prop_assert_eq!(&e.name, &name);
                    return Ok(());
                }
            };
            let v = value.clone();
            let doc = match kind {
                0 => VoiceResponse::new().say(Say::new("x").voice("a").attr(attr, v)),
                1 => VoiceResponse::new().verb(Hangup::new().attr(attr, v)),
                2 => VoiceResponse::new().connect(Connect::new().stream(Stream::new().url("wss://x").attr(attr, v))),
                3 => VoiceResponse::new().dial(Dial::new().client(Client::new("").identity(Identity::new("a").attr(attr, v)))),
                _ => VoiceResponse::new().say(Say::new("").break_(SsmlBreak::new().time("1s").attr(attr, v))),
            };
            let xml = doc.to_xml();
            let root = parse(&xml).map_err(|e| TestCaseError::fail(format!("{e}: {xml}")))?;
            let mut el = &root.children[0];
            while !el.children.is_empty() {
                el = &el.children[0];
            }
            prop_assert_eq!(el.attr(&name), Some(value.as_str()), "{}", xml);
            let names: Vec<&str> = el.attributes.iter().map(|(k, _)| k.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort_unstable();
            sorted.dedup();
            prop_assert_eq!(names, sorted, "attributes sorted and unique: {}", xml);
        }

        /// SSML mixed content: text pieces and elements in any order render to
        /// a document whose `<Say>` text is the pieces joined, with one child
        /// per element.
        #[test]
        fn ssml_mixed_content_parses_back(pieces in proptest::collection::vec(prop_oneof![
            "[a-z &<>\"']{1,8}".prop_map(Some),
            Just(None),
        ], 0..8)) {
            let mut say = Say::new("");
            let mut joined = String::new();
            let mut elements = 0;
            for p in &pieces {
                match p {
                    Some(text) => {
                        joined.push_str(text);
                        say = say.child(text.as_str());
                    }
                    None => {
                        elements += 1;
                        say = say.break_(SsmlBreak::new());
                    }
                }
            }
            let xml = VoiceResponse::new().say(say).to_xml();
            let root = parse(&xml).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let say = &root.children[0];
            prop_assert_eq!(say.children.len(), elements);
            if elements > 0 && joined.trim().is_empty() {
                // The parser drops whitespace-only text between children.
                prop_assert_eq!(&say.text, "");
            } else {
                prop_assert_eq!(&say.text, &joined);
            }
        }
    }
}

#[cfg(test)]
mod line_ending_tests {
    use super::*;
    use crate::twiml::{Say, VoiceResponse};

    #[test]
    fn carriage_returns_in_text_and_attributes_survive() {
        let xml = VoiceResponse::new()
            .say(Say::new("a\r\nb\rc").voice("x\r\ny"))
            .to_xml();
        let root = parse(&xml).unwrap();
        assert_eq!(root.children[0].text, "a\r\nb\rc");
        assert_eq!(root.children[0].attr("voice"), Some("x\r\ny"));
    }
}
