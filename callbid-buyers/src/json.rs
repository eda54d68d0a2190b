//! Reading buyers' JSON answers exactly: JSON-pointer lookups over the raw text, so a
//! price is parsed from its own digits (never through `f64`), and strict parsers for
//! prices, durations and timestamps that name the field and the value they reject.

use std::cell::Cell;
use std::time::Duration;

use callbid_core::{Currency, Money};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

/// The largest price accepted from a buyer (in the bid's currency): anything above is
/// treated as a pricing bug, not a bid.
pub const MAX_PRICE: Decimal = Decimal::from_parts(100_000, 0, 0, false, 0);

/// A JSON value found at a pointer, with numbers kept as their exact source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written (`30`, `12.50`, `1e3`).
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An object (its raw text).
    Object(String),
    /// An array (its raw text).
    Array(String),
}

impl Leaf {
    /// How the value reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Leaf::Null => "null".into(),
            Leaf::Bool(b) => b.to_string(),
            Leaf::Number(n) => n.clone(),
            Leaf::String(s) => format!("{s:?}"),
            Leaf::Object(t) | Leaf::Array(t) => excerpt(t, 80),
        }
    }

    /// The value as text for templates and ids: strings as they are, numbers and booleans
    /// as written; `None` for null, objects and arrays.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Leaf::String(s) => Some(s.clone()),
            Leaf::Number(n) => Some(n.clone()),
            Leaf::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// A parsed JSON document. The body is parsed once into a tree that keeps every number
/// as its own source token, so no digit is lost to `f64` and a pointer lookup is a walk
/// over the tree, never another parse.
#[derive(Debug)]
pub struct Doc {
    root: Node,
}

#[cfg(test)]
thread_local! {
    /// How many documents this thread parsed (tests check lookups never parse).
    static PARSES: Cell<usize> = const { Cell::new(0) };
}

/// A JSON value with numbers kept as written; objects keep document order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl Doc {
    /// Parses and syntax-checks a whole body.
    pub fn parse(body: &[u8]) -> Result<Doc, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
        let tokens = number_tokens(text);
        let next = Cell::new(0);
        #[cfg(test)]
        PARSES.with(|p| p.set(p.get() + 1));
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = NodeSeed {
            text,
            tokens: &tokens,
            next: &next,
        };
        let root = seed
            .deserialize(&mut de)
            .and_then(|n| de.end().map(|()| n))
            .map_err(|e| format!("malformed JSON: {e}"))?;
        Ok(Doc { root })
    }

    /// The value at an RFC 6901 pointer (`""` is the whole document), or `None` when the
    /// path does not exist. A key given twice in an object reads as its last value.
    pub fn pointer(&self, pointer: &str) -> Result<Option<Leaf>, String> {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("JSON pointer {pointer:?} must start with '/'"));
        }
        let mut cur = &self.root;
        if !pointer.is_empty() {
            for raw in pointer[1..].split('/') {
                let token = raw.replace("~1", "/").replace("~0", "~");
                let next = match cur {
                    Node::Object(fields) => fields.iter().rev().find(|(k, _)| *k == token),
                    Node::Array(items) => {
                        let index = (!token.is_empty()
                            && token.bytes().all(|b| b.is_ascii_digit())
                            && (token == "0" || !token.starts_with('0')))
                        .then(|| token.parse::<usize>().ok())
                        .flatten();
                        match index.and_then(|i| items.get(i)) {
                            Some(n) => {
                                cur = n;
                                continue;
                            }
                            None => return Ok(None),
                        }
                    }
                    _ => None,
                };
                match next {
                    Some((_, n)) => cur = n,
                    None => return Ok(None),
                }
            }
        }
        Ok(Some(match cur {
            Node::Null => Leaf::Null,
            Node::Bool(b) => Leaf::Bool(*b),
            Node::Number(n) => Leaf::Number(n.clone()),
            Node::String(s) => Leaf::String(s.clone()),
            Node::Object(_) => Leaf::Object(excerpt(&compact(cur, 201), 200)),
            Node::Array(_) => Leaf::Array(excerpt(&compact(cur, 201), 200)),
        }))
    }
}

/// The byte ranges of the number tokens of `text`, in document order. Only meant for
/// text that parses as JSON (the parser checks it alongside): strings are skipped with
/// their escapes, and outside strings a number is the only token that starts with `-`
/// or a digit.
fn number_tokens(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-')
                {
                    i += 1;
                }
                out.push((start, i));
            }
            _ => i += 1,
        }
    }
    out
}

/// Builds a [`Node`] while `serde_json` parses; the n-th number the parser reports is
/// the n-th number token of the text.
#[derive(Clone, Copy)]
struct NodeSeed<'a> {
    text: &'a str,
    tokens: &'a [(usize, usize)],
    next: &'a Cell<usize>,
}

impl NodeSeed<'_> {
    fn number<E: serde::de::Error>(self, value: f64) -> Result<Node, E> {
        let i = self.next.get();
        self.next.set(i + 1);
        let token = self
            .tokens
            .get(i)
            .and_then(|&(a, b)| self.text.get(a..b))
            .ok_or_else(|| E::custom("number token not found"))?;
        // A tripwire, not a parse: the token must be the number the parser read (within
        // the parser's rounding), or the scan and the parse disagree.
        let t: f64 = token
            .parse()
            .map_err(|_| E::custom(format!("number token {token:?} unreadable")))?;
        if (t - value).abs() > 1e-9 * t.abs().max(value.abs()).max(f64::MIN_POSITIVE) {
            return Err(E::custom(format!(
                "number token {token:?} does not match the parsed value {value}"
            )));
        }
        Ok(Node::Number(token.to_string()))
    }
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_> {
    type Value = Node;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
        self.number(v as f64)
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Node, E> {
        self.number(v as f64)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Node, E> {
        self.number(v)
    }

    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(n) = seq.next_element_seed(self)? {
            items.push(n);
        }
        Ok(Node::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut fields = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            fields.push((k, v));
        }
        Ok(Node::Object(fields))
    }
}

/// Compact JSON text of `node`, stopping once it is longer than `limit` bytes (for
/// error messages).
fn compact(node: &Node, limit: usize) -> String {
    fn go(n: &Node, out: &mut String, limit: usize) {
        if out.len() > limit {
            return;
        }
        match n {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Number(t) => out.push_str(t),
            Node::String(s) => out.push_str(&serde_json::Value::from(s.as_str()).to_string()),
            Node::Array(items) => {
                out.push('[');
                for (i, x) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go(x, out, limit);
                    if out.len() > limit {
                        return;
                    }
                }
                out.push(']');
            }
            Node::Object(fields) => {
                out.push('{');
                for (i, (k, x)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::from(k.as_str()).to_string());
                    out.push(':');
                    go(x, out, limit);
                    if out.len() > limit {
                        return;
                    }
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    go(node, &mut out, limit);
    out
}

/// Parses a decimal amount from a JSON number token or a numeric string. Rejects
/// exponents, NaN, infinities, hex, thousands separators and anything `Decimal` cannot
/// hold exactly.
pub fn parse_decimal(field: &str, value: &Leaf) -> Result<Decimal, String> {
    let text = match value {
        Leaf::Number(n) => n.as_str(),
        Leaf::String(s) => s.trim(),
        other => {
            return Err(format!(
                "{field}: expected a number, got {}",
                other.describe()
            ))
        }
    };
    let ok_chars = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
    if !ok_chars {
        return Err(format!(
            "{field}: {} is not a plain decimal number (no exponents, NaN or infinities)",
            value.describe()
        ));
    }
    Decimal::from_str_exact(text)
        .map_err(|e| format!("{field}: {} is not an exact decimal: {e}", value.describe()))
}

/// Parses a bid price: a positive, plain decimal no larger than [`MAX_PRICE`].
pub fn parse_price(field: &str, value: &Leaf, currency: Currency) -> Result<Money, String> {
    let d = parse_decimal(field, value)?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("{field}: {} is negative", value.describe()));
    }
    if d.is_zero() {
        return Err(format!(
            "{field}: {} is not a positive price",
            value.describe()
        ));
    }
    if d > MAX_PRICE {
        return Err(format!(
            "{field}: {} is implausibly large (limit {MAX_PRICE})",
            value.describe()
        ));
    }
    Ok(Money::new(d.normalize(), currency))
}

/// Parses a whole number of seconds (a number or numeric string, at most `max`).
pub fn parse_seconds(field: &str, value: &Leaf, max: u64) -> Result<Duration, String> {
    let d = parse_decimal(field, value)?;
    if d.is_sign_negative() && !d.is_zero() {
        return Err(format!("{field}: {} is negative", value.describe()));
    }
    if d.fract() != Decimal::ZERO {
        return Err(format!(
            "{field}: {} is not a whole number of seconds",
            value.describe()
        ));
    }
    let secs: u64 = d
        .trunc()
        .to_string()
        .parse()
        .map_err(|_| format!("{field}: {} out of range", value.describe()))?;
    if secs > max {
        return Err(format!(
            "{field}: {} exceeds {max} seconds",
            value.describe()
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Parses a timestamp: RFC 3339 text, or epoch seconds (milliseconds when the number is
/// larger than 10^11).
pub fn parse_timestamp(field: &str, value: &Leaf) -> Result<DateTime<Utc>, String> {
    match value {
        Leaf::String(s) if s.contains('-') || s.contains('T') => {
            DateTime::parse_from_rfc3339(s.trim())
                .map(|d| d.with_timezone(&Utc))
                .map_err(|e| format!("{field}: {s:?} is not an RFC 3339 timestamp: {e}"))
        }
        _ => {
            let d = parse_decimal(field, value)?;
            if d.fract() != Decimal::ZERO || d.is_sign_negative() {
                return Err(format!(
                    "{field}: {} is not a whole, non-negative epoch time",
                    value.describe()
                ));
            }
            let n: i64 = d
                .to_string()
                .parse()
                .map_err(|_| format!("{field}: {} out of range", value.describe()))?;
            let ts = if n > 100_000_000_000 {
                Utc.timestamp_millis_opt(n).single()
            } else {
                Utc.timestamp_opt(n, 0).single()
            };
            ts.ok_or_else(|| format!("{field}: {} out of range", value.describe()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    fn doc(s: &str) -> Doc {
        Doc::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn pointers_keep_number_text() {
        let d = doc(r#"{"data":{"bid":30.10,"list":[{"a/b":"x"}],"n":null}}"#);
        assert_eq!(
            d.pointer("/data/bid").unwrap(),
            Some(Leaf::Number("30.10".into()))
        );
        assert_eq!(
            d.pointer("/data/list/0/a~1b").unwrap(),
            Some(Leaf::String("x".into()))
        );
        assert_eq!(d.pointer("/data/list/1").unwrap(), None);
        assert_eq!(d.pointer("/data/list/01").unwrap(), None);
        assert_eq!(d.pointer("/data/missing").unwrap(), None);
        assert_eq!(d.pointer("/data/n").unwrap(), Some(Leaf::Null));
        assert_eq!(d.pointer("/data/bid/x").unwrap(), None);
        assert!(d.pointer("data").is_err());
        assert!(Doc::parse(b"{\"a\":").is_err());
        assert!(Doc::parse(b"\xff").is_err());
    }

    #[test]
    fn parsed_once_however_many_lookups() {
        let body = r#"{"a":{"b":[1.10,{"c":2.20,"d":[3.30]}]},"e":-4.40e0}"#;
        let before = PARSES.with(Cell::get);
        let d = doc(body);
        for _ in 0..20 {
            assert_eq!(
                d.pointer("/a/b/1/d/0").unwrap(),
                Some(Leaf::Number("3.30".into()))
            );
            assert_eq!(
                d.pointer("/a/b/1/c").unwrap(),
                Some(Leaf::Number("2.20".into()))
            );
            assert_eq!(
                d.pointer("/e").unwrap(),
                Some(Leaf::Number("-4.40e0".into()))
            );
        }
        assert_eq!(
            PARSES.with(Cell::get) - before,
            1,
            "lookups must not re-parse"
        );
    }

    #[test]
    fn number_tokens_survive_strings_escapes_and_nesting() {
        let d = doc(
            r#" { "k1\"2.5": "a \"3.5\" \\", "-1": [ -0.5 , 1E2, 99999999999999999999999.99999 ],
                 "x": {"y": 0.1, "y": 0.30}, "t": true, "n": null, "u": "\u00e9 7.7" } "#,
        );
        assert_eq!(
            d.pointer("/k1\"2.5").unwrap(),
            Some(Leaf::String("a \"3.5\" \\".into()))
        );
        assert_eq!(
            d.pointer("/-1/0").unwrap(),
            Some(Leaf::Number("-0.5".into()))
        );
        assert_eq!(
            d.pointer("/-1/1").unwrap(),
            Some(Leaf::Number("1E2".into()))
        );
        assert_eq!(
            d.pointer("/-1/2").unwrap(),
            Some(Leaf::Number("99999999999999999999999.99999".into()))
        );
        // A key given twice reads as its last value, as before.
        assert_eq!(
            d.pointer("/x/y").unwrap(),
            Some(Leaf::Number("0.30".into()))
        );
        assert_eq!(d.pointer("/u").unwrap(), Some(Leaf::String("é 7.7".into())));
        assert_eq!(d.pointer("/t").unwrap(), Some(Leaf::Bool(true)));
        assert_eq!(
            d.pointer("/x").unwrap(),
            Some(Leaf::Object(r#"{"y":0.1,"y":0.30}"#.into()))
        );
        assert!(Doc::parse(b"[1] 2").is_err(), "trailing value");
        assert!(Doc::parse(b"[01]").is_err());
    }

    #[test]
    fn prices_are_exact_and_sane() {
        let usd = Currency::USD;
        let p = |s: Leaf| parse_price("bid", &s, usd);
        assert_eq!(
            p(Leaf::Number("0.1".into())).unwrap().amount + dec!(0.2),
            dec!(0.3)
        );
        assert_eq!(
            p(Leaf::String(" 12.50 ".into())).unwrap().amount,
            dec!(12.5)
        );
        for bad in [
            "0", "0.00", "-1", "1e3", "1E2", "NaN", "inf", "", "1,5", "100001",
        ] {
            let e = p(Leaf::String(bad.into())).unwrap_err();
            assert!(e.starts_with("bid:"), "{bad}: {e}");
        }
        assert!(p(Leaf::Number("1e2".into())).unwrap_err().contains("1e2"));
        assert!(p(Leaf::Number("99999999999999999999999999999999999".into())).is_err());
        assert!(p(Leaf::Bool(true)).is_err());
        assert!(p(Leaf::Null).is_err());
    }

    #[test]
    fn seconds_and_timestamps() {
        assert_eq!(
            parse_seconds("d", &Leaf::Number("90".into()), 86400).unwrap(),
            Duration::from_secs(90)
        );
        assert!(parse_seconds("d", &Leaf::Number("1.5".into()), 86400).is_err());
        assert!(parse_seconds("d", &Leaf::Number("-1".into()), 86400).is_err());
        assert!(parse_seconds("d", &Leaf::Number("86401".into()), 86400).is_err());
        let t = parse_timestamp("t", &Leaf::String("2026-11-21T15:00:30Z".into())).unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 30).unwrap());
        assert_eq!(
            parse_timestamp("t", &Leaf::Number("1795359630".into())).unwrap(),
            Utc.timestamp_opt(1795359630, 0).unwrap()
        );
        assert_eq!(
            parse_timestamp("t", &Leaf::Number("1795359630000".into())).unwrap(),
            Utc.timestamp_opt(1795359630, 0).unwrap()
        );
        assert!(parse_timestamp("t", &Leaf::String("yesterday-ish".into())).is_err());
    }
}
