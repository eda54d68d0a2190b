//! Postback URL templates: a URL with `{token}` placeholders, checked when the
//! configuration is loaded and rendered per call with percent-encoded values.
//!
//! Tokens follow the pay-per-call platforms' publisher pixels (Retreaver's replacement
//! tokens `[call_uuid]`, `[caller_number]`, `[publisher_id]`, `[caller_zip]`, see
//! <https://help.retreaver.com/hc/en-us/articles/360000579423> and
//! <https://help.retreaver.com/hc/en-us/articles/360051363431>; Ringba's pixels use the
//! same idea with its own tag names), written in braces:
//!
//! | token (aliases) | value |
//! |---|---|
//! | `call_id` (`call_uuid`) | the call's id (Twilio's `CallSid`) |
//! | `publisher` (`publisher_id`) | the publisher the postback is for |
//! | `source` | the call's traffic source |
//! | `campaign` | the call's campaign |
//! | `payout` | the publisher's payout, a decimal with 2 places (`17.50`) |
//! | `currency` | the payout's ISO 4217 code (`USD`) |
//! | `duration` | talk time with the buyer, whole seconds |
//! | `caller` (`caller_number`) | the caller's number, E.164 (`+15125550100`) |
//! | `dialed` | the tracking number dialed, E.164 |
//! | `zip` (`caller_zip`) | the caller's ZIP |
//! | `service` | the service sold |
//! | `received_at` | when the call arrived, RFC 3339 UTC |
//!
//! Every value is percent-encoded as a URI component (RFC 3986: everything but
//! `A-Z a-z 0-9 - . _ ~`), so a `+` or `&` in a value cannot change the URL's structure.
//! A value the call lacks renders as the empty string. An unknown token, an unclosed
//! `{` or a stray `}` is a [`TemplateError`] at load, naming the token.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 3986 unreserved characters stay; everything else is encoded.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A value a template can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Token {
    /// `call_id`.
    CallId,
    /// `publisher`.
    Publisher,
    /// `source`.
    Source,
    /// `campaign`.
    Campaign,
    /// `payout`.
    Payout,
    /// `currency`.
    Currency,
    /// `duration`.
    Duration,
    /// `caller`.
    Caller,
    /// `dialed`.
    Dialed,
    /// `zip`.
    Zip,
    /// `service`.
    Service,
    /// `received_at`.
    ReceivedAt,
}

/// Every token name and alias, and what it stands for.
pub const TOKENS: &[(&str, Token)] = &[
    ("call_id", Token::CallId),
    ("call_uuid", Token::CallId),
    ("publisher", Token::Publisher),
    ("publisher_id", Token::Publisher),
    ("source", Token::Source),
    ("campaign", Token::Campaign),
    ("payout", Token::Payout),
    ("currency", Token::Currency),
    ("duration", Token::Duration),
    ("caller", Token::Caller),
    ("caller_number", Token::Caller),
    ("dialed", Token::Dialed),
    ("zip", Token::Zip),
    ("caller_zip", Token::Zip),
    ("service", Token::Service),
    ("received_at", Token::ReceivedAt),
];

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// `{name}` is not one of [`TOKENS`].
    #[error("unknown token {{{token}}} in postback URL {template:?} (known: {known})")]
    UnknownToken {
        /// The token's name.
        token: String,
        /// The template.
        template: String,
        /// The known names, comma-separated.
        known: String,
    },
    /// A `{` without its `}`, or a `}` without its `{`.
    #[error("unbalanced brace at byte {at} of postback URL {template:?}")]
    Unbalanced {
        /// Byte offset.
        at: usize,
        /// The template.
        template: String,
    },
    /// Rendered, it is not an absolute `http://` or `https://` URL.
    #[error("postback URL {template:?} is not an absolute http(s) URL: {reason}")]
    NotHttp {
        /// The template.
        template: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Token),
}

/// A parsed URL template (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq)]
pub struct UrlTemplate {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Debug for UrlTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UrlTemplate").field(&self.source).finish()
    }
}

fn token(name: &str, template: &str) -> Result<Token, TemplateError> {
    let name = name.trim();
    TOKENS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .ok_or_else(|| TemplateError::UnknownToken {
            token: name.to_owned(),
            template: template.to_owned(),
            known: TOKENS
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

impl UrlTemplate {
    /// Parses `template` and checks that it renders to an absolute http(s) URL.
    ///
    /// # Errors
    /// [`TemplateError`] naming the unknown token, the unbalanced brace or the bad URL.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        let mut offset = 0;
        while let Some(i) = rest.find(['{', '}']) {
            let unbalanced = |at| TemplateError::Unbalanced {
                at,
                template: template.to_owned(),
            };
            if rest.as_bytes()[i] == b'}' {
                return Err(unbalanced(offset + i));
            }
            let close = rest[i + 1..]
                .find(['{', '}'])
                .filter(|&j| rest.as_bytes()[i + 1 + j] == b'}')
                .ok_or_else(|| unbalanced(offset + i))?;
            if i > 0 {
                parts.push(Part::Text(rest[..i].to_owned()));
            }
            parts.push(Part::Value(token(&rest[i + 1..i + 1 + close], template)?));
            offset += i + close + 2;
            rest = &rest[i + close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        let t = UrlTemplate {
            source: template.to_owned(),
            parts,
        };
        t.check_url()?;
        Ok(t)
    }

    fn check_url(&self) -> Result<(), TemplateError> {
        let sample = self.render(&|_| Some("x".to_owned()));
        let bad = |reason: String| TemplateError::NotHttp {
            template: self.source.clone(),
            reason,
        };
        let url = reqwest::Url::parse(&sample).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(bad(format!("scheme {:?} or no host", url.scheme())));
        }
        Ok(())
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The tokens the template uses, in order.
    pub fn tokens(&self) -> impl Iterator<Item = Token> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(t) => Some(*t),
            Part::Text(_) => None,
        })
    }

    /// Renders with `value(token)`, percent-encoded; `None` renders as empty.
    pub fn render(&self, value: &dyn Fn(Token) -> Option<String>) -> String {
        let mut out = String::with_capacity(self.source.len() + 32);
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Value(t) => {
                    if let Some(v) = value(*t) {
                        out.extend(utf8_percent_encode(&v, COMPONENT));
                    }
                }
            }
        }
        out
    }
}

/// `url` without user info (`https://user:pass@host/…` → `https://host/…`), for showing
/// and storing; unparsable text is returned as is.
pub fn redact_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(t: Token) -> Option<String> {
        match t {
            Token::CallId => Some("CA123".into()),
            Token::Payout => Some("17.50".into()),
            Token::Duration => Some("95".into()),
            Token::Source => Some("google ads&x=1".into()),
            Token::Caller => Some("+15125550100".into()),
            Token::ReceivedAt => Some("2026-12-07T16:00:00Z".into()),
            _ => None,
        }
    }

    #[test]
    fn renders_tokens_percent_encoded() {
        let t = UrlTemplate::parse(
            "https://pub.example/pb?click={call_id}&payout={payout}&dur={duration}&src={source}",
        )
        .unwrap();
        assert_eq!(
            t.render(&values),
            "https://pub.example/pb?click=CA123&payout=17.50&dur=95&src=google%20ads%26x%3D1"
        );
        let t =
            UrlTemplate::parse("https://p.example/{ caller_number }?t={received_at}&c={campaign}")
                .unwrap();
        assert_eq!(
            t.render(&values),
            "https://p.example/%2B15125550100?t=2026-12-07T16%3A00%3A00Z&c="
        );
        assert_eq!(
            t.tokens().collect::<Vec<_>>(),
            vec![Token::Caller, Token::ReceivedAt, Token::Campaign]
        );
    }

    #[test]
    fn aliases_name_the_same_values() {
        let t = UrlTemplate::parse("https://p.example/?a={call_uuid}&b={call_id}").unwrap();
        assert_eq!(t.render(&values), "https://p.example/?a=CA123&b=CA123");
    }

    #[test]
    fn an_unknown_token_is_named() {
        let e = UrlTemplate::parse("https://p.example/?a={call_id}&r={revenue}").unwrap_err();
        assert!(matches!(&e, TemplateError::UnknownToken { token, .. } if token == "revenue"));
        assert!(e.to_string().contains("{revenue}"), "{e}");
        assert!(
            e.to_string().contains("call_id"),
            "lists the known tokens: {e}"
        );
    }

    #[test]
    fn unbalanced_braces_and_bad_urls_are_refused() {
        for (t, at) in [
            ("https://p.example/?a={call_id", 21),
            ("https://p.example/}", 18),
        ] {
            assert_eq!(
                UrlTemplate::parse(t).unwrap_err(),
                TemplateError::Unbalanced {
                    at,
                    template: t.into()
                }
            );
        }
        assert!(matches!(
            UrlTemplate::parse("https://p.example/?a={call_{id}}"),
            Err(TemplateError::Unbalanced { .. })
        ));
        for t in [
            "ftp://p.example/{call_id}",
            "/relative?c={call_id}",
            "{call_id}",
        ] {
            assert!(
                matches!(UrlTemplate::parse(t), Err(TemplateError::NotHttp { .. })),
                "{t}"
            );
        }
    }

    #[test]
    fn user_info_is_redacted() {
        assert_eq!(
            redact_userinfo("https://u:secret@p.example/x?a=1"),
            "https://p.example/x?a=1"
        );
        assert_eq!(
            redact_userinfo("https://p.example/x"),
            "https://p.example/x"
        );
    }
}
