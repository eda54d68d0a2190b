//! Reading buyers' JSON answers exactly: JSON-pointer lookups over the raw text, so a
//! price is parsed from its own digits (never through `f64`), and strict parsers for
//! prices, durations and timestamps that name the field and the value they reject.

use std::collections::BTreeMap;
use std::time::Duration;

use callbid_core::{Currency, Money};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::value::RawValue;

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

/// A parsed JSON document. The structure is parsed once; a number that is not a plain
/// integer is read back from its own token in the source text, so no digit is lost to
/// `f64`.
#[derive(Debug)]
pub struct Doc {
    text: String,
    value: serde_json::Value,
}

impl Doc {
    /// Parses and syntax-checks a whole body.
    pub fn parse(body: &[u8]) -> Result<Doc, String> {
        let text = std::str::from_utf8(body).map_err(|e| format!("body is not UTF-8: {e}"))?;
        let value = serde_json::from_str(text).map_err(|e| format!("malformed JSON: {e}"))?;
        Ok(Doc {
            text: text.to_string(),
            value,
        })
    }

    /// The value at an RFC 6901 pointer (`""` is the whole document), or `None` when the
    /// path does not exist.
    pub fn pointer(&self, pointer: &str) -> Result<Option<Leaf>, String> {
        if !pointer.is_empty() && !pointer.starts_with('/') {
            return Err(format!("JSON pointer {pointer:?} must start with '/'"));
        }
        let Some(v) = self.value.pointer(pointer) else {
            return Ok(None);
        };
        use serde_json::Value;
        Ok(Some(match v {
            Value::Null => Leaf::Null,
            Value::Bool(b) => Leaf::Bool(*b),
            Value::String(s) => Leaf::String(s.clone()),
            Value::Number(n) if n.is_u64() || n.is_i64() => Leaf::Number(n.to_string()),
            Value::Number(_) => Leaf::Number(self.raw_token(pointer)?),
            Value::Object(_) => Leaf::Object(excerpt(&v.to_string(), 200)),
            Value::Array(_) => Leaf::Array(excerpt(&v.to_string(), 200)),
        }))
    }

    /// The source text of the value at `pointer` (walks the raw text; used for numbers
    /// that are not plain integers).
    fn raw_token(&self, pointer: &str) -> Result<String, String> {
        let mut cur: &RawValue =
            serde_json::from_str(&self.text).map_err(|e| format!("malformed JSON: {e}"))?;
        if !pointer.is_empty() {
            for token in pointer[1..].split('/') {
                let token = token.replace("~1", "/").replace("~0", "~");
                let text = cur.get().trim_start();
                let next = if text.starts_with('{') {
                    let map: BTreeMap<String, &RawValue> =
                        serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
                    map.get(&token).copied()
                } else if text.starts_with('[') {
                    let items: Vec<&RawValue> =
                        serde_json::from_str(cur.get()).map_err(|e| e.to_string())?;
                    token
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| items.get(i).copied())
                } else {
                    None
                };
                cur = next.ok_or_else(|| format!("{pointer}: not found in the source text"))?;
            }
        }
        Ok(cur.get().trim().to_string())
    }
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
