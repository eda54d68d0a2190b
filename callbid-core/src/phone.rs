//! Phone numbers (E.164), SIP URIs and call destinations.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::geo::{area_code_info, AreaCodeInfo};

/// A phone number in E.164 form: `+`, a country code not starting with 0, 8 to 15 digits in all.
///
/// ```
/// use callbid_core::PhoneNumber;
/// let n: PhoneNumber = "+1 (512) 555-0123".parse().unwrap();
/// assert_eq!(n.as_str(), "+15125550123");
/// assert_eq!(n.area_code(), Some(512));
/// assert!("555-0123".parse::<PhoneNumber>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses E.164, tolerating spaces, dots, dashes and parentheses between digits.
    /// The leading `+` is required: a bare national number is ambiguous (see [`PhoneNumber::from_nanp`]).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        Self::parse_field("phone number", input)
    }

    /// Like [`PhoneNumber::parse`], naming `field` in the error.
    pub fn parse_field(field: &'static str, input: &str) -> Result<Self, ValidationError> {
        let trimmed = input.trim();
        let Some(rest) = trimmed.strip_prefix('+') else {
            return Err(ValidationError::new(
                field,
                input,
                "E.164 numbers start with '+'",
            ));
        };
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => {
                    return Err(ValidationError::new(
                        field,
                        input,
                        format!("unexpected character {c:?}"),
                    ))
                }
            }
        }
        let n = digits.len() - 1;
        if !(8..=15).contains(&n) {
            return Err(ValidationError::new(
                field,
                input,
                format!("E.164 numbers have 8 to 15 digits, found {n}"),
            ));
        }
        if digits.as_bytes()[1] == b'0' {
            return Err(ValidationError::new(
                field,
                input,
                "country code cannot start with 0",
            ));
        }
        if let Some(national) = digits.strip_prefix("+1") {
            validate_nanp(field, input, national)?;
        }
        Ok(PhoneNumber(digits))
    }

    /// A NANP number written nationally: 10 digits (`5125550123`) or 11 with a leading `1`,
    /// punctuation allowed. This is how Service Direct returns destinations.
    pub fn from_nanp(input: &str) -> Result<Self, ValidationError> {
        Self::from_nanp_field("phone number", input)
    }

    /// Like [`PhoneNumber::from_nanp`], naming `field` in the error.
    pub fn from_nanp_field(field: &'static str, input: &str) -> Result<Self, ValidationError> {
        let t = input.trim();
        if t.starts_with('+') {
            return Self::parse_field(field, t);
        }
        let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
        if t.chars()
            .any(|c| !(c.is_ascii_digit() || " -.()".contains(c)))
        {
            return Err(ValidationError::new(
                field,
                input,
                "not a NANP phone number",
            ));
        }
        let national = match digits.len() {
            10 => digits.as_str(),
            11 if digits.starts_with('1') => &digits[1..],
            n => {
                return Err(ValidationError::new(
                    field,
                    input,
                    format!("a NANP number has 10 digits, found {n}"),
                ))
            }
        };
        Self::parse_field(field, &format!("+1{national}"))
    }

    /// The number as `+` and digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the number is in the North American Numbering Plan (+1).
    pub fn is_nanp(&self) -> bool {
        self.0.starts_with("+1")
    }

    /// The three-digit NANP area code, for +1 numbers.
    pub fn area_code(&self) -> Option<u16> {
        if !self.is_nanp() {
            return None;
        }
        self.0.get(2..5)?.parse().ok()
    }

    /// State and time zone of the area code, when it is a known US area code.
    pub fn area_info(&self) -> Option<AreaCodeInfo> {
        self.area_code().and_then(area_code_info)
    }

    /// The 10 national digits of a NANP number (`5125550123`).
    pub fn nanp_national(&self) -> Option<&str> {
        if self.is_nanp() {
            self.0.get(2..)
        } else {
            None
        }
    }
}

fn validate_nanp(field: &'static str, input: &str, national: &str) -> Result<(), ValidationError> {
    let b = national.as_bytes();
    if b.len() != 10 {
        return Err(ValidationError::new(
            field,
            input,
            format!(
                "a +1 number has 10 digits after the country code, found {}",
                b.len()
            ),
        ));
    }
    if b[0] < b'2' {
        return Err(ValidationError::new(
            field,
            input,
            "NANP area codes start with 2-9",
        ));
    }
    if b[3] < b'2' {
        return Err(ValidationError::new(
            field,
            input,
            "NANP exchange codes start with 2-9",
        ));
    }
    Ok(())
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PhoneNumber {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for PhoneNumber {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<PhoneNumber> for String {
    fn from(p: PhoneNumber) -> String {
        p.0
    }
}

/// A SIP URI (`sip:user@host[:port][;params]` or `sips:`), as TwiML `<Sip>` takes it.
///
/// ```
/// use callbid_core::SipUri;
/// let s: SipUri = "sip:buyer@pbx.example.com:5060;transport=tcp".parse().unwrap();
/// assert_eq!(s.host(), "pbx.example.com");
/// assert!("sip:@nohost".parse::<SipUri>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SipUri {
    uri: String,
    host_start: usize,
    host_end: usize,
}

impl SipUri {
    /// Parses and validates a SIP URI.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "sip uri";
        let t = input.trim();
        if t.len() > 1024 {
            return Err(ValidationError::new(
                FIELD,
                input,
                "longer than 1024 characters",
            ));
        }
        let lower = t.to_ascii_lowercase();
        let scheme_len = if lower.starts_with("sips:") {
            5
        } else if lower.starts_with("sip:") {
            4
        } else {
            return Err(ValidationError::new(
                FIELD,
                input,
                "must start with sip: or sips:",
            ));
        };
        if let Some(c) = t
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '<' || *c == '>' || *c == '"')
        {
            return Err(ValidationError::new(
                FIELD,
                input,
                format!("character {c:?} not allowed"),
            ));
        }
        let rest = &t[scheme_len..];
        let (user_len, hostpart) = match rest.rfind('@') {
            Some(at) => {
                if at == 0 {
                    return Err(ValidationError::new(
                        FIELD,
                        input,
                        "empty user part before '@'",
                    ));
                }
                (at + 1, &rest[at + 1..])
            }
            None => (0, rest),
        };
        let host_end_rel = if hostpart.starts_with('[') {
            hostpart.find(']').map(|i| i + 1).unwrap_or(hostpart.len())
        } else {
            hostpart.find([':', ';', '?']).unwrap_or(hostpart.len())
        };
        let host = &hostpart[..host_end_rel];
        if host.is_empty() {
            return Err(ValidationError::new(FIELD, input, "missing host"));
        }
        let host_ok = if host.starts_with('[') {
            host.ends_with(']')
                && host[1..host.len() - 1]
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok()
        } else {
            host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            })
        };
        if !host_ok {
            return Err(ValidationError::new(
                FIELD,
                input,
                format!("invalid host {host:?}"),
            ));
        }
        let after = &hostpart[host_end_rel..];
        if let Some(port_part) = after.strip_prefix(':') {
            let port = port_part.split([';', '?']).next().unwrap_or("");
            if port.parse::<u16>().map(|p| p == 0).unwrap_or(true) {
                return Err(ValidationError::new(
                    FIELD,
                    input,
                    format!("invalid port {port:?}"),
                ));
            }
        }
        let host_start = scheme_len + user_len;
        Ok(SipUri {
            uri: t.to_string(),
            host_start,
            host_end: host_start + host_end_rel,
        })
    }

    /// The whole URI.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// The host part (domain or IP).
    pub fn host(&self) -> &str {
        &self.uri[self.host_start..self.host_end]
    }
}

impl fmt::Debug for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SipUri({})", self.uri)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

impl FromStr for SipUri {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for SipUri {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SipUri> for String {
    fn from(s: SipUri) -> String {
        s.uri
    }
}

/// Where a won call is sent: a phone number (DID) or a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Destination {
    /// Dial a phone number (`<Dial><Number>`).
    Phone(PhoneNumber),
    /// Dial a SIP URI (`<Dial><Sip>`).
    Sip(SipUri),
}

impl Destination {
    /// Parses `sip:`/`sips:` URIs as SIP, anything else as an E.164 phone number
    /// (or a 10-digit NANP number).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let t = input.trim();
        if t.to_ascii_lowercase().starts_with("sip") {
            SipUri::parse(t).map(Destination::Sip)
        } else if t.starts_with('+') {
            PhoneNumber::parse_field("destination", t).map(Destination::Phone)
        } else {
            PhoneNumber::from_nanp_field("destination", t).map(Destination::Phone)
        }
    }

    /// Whether this is a SIP destination.
    pub fn is_sip(&self) -> bool {
        matches!(self, Destination::Sip(_))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Phone(p) => p.fmt(f),
            Destination::Sip(s) => s.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_accepts_and_normalizes() {
        assert_eq!(
            PhoneNumber::parse("+15125550123").unwrap().as_str(),
            "+15125550123"
        );
        assert_eq!(
            PhoneNumber::parse(" +1 512.555.0123 ").unwrap().as_str(),
            "+15125550123"
        );
        assert_eq!(
            PhoneNumber::parse("+442071838750").unwrap().as_str(),
            "+442071838750"
        );
    }

    #[test]
    fn e164_rejects_with_field_and_value() {
        for bad in [
            "5125550123",
            "+0123456789",
            "+1512555012",
            "+1512abc0123",
            "+1",
            "",
            "+1234567890123456",
            "+11125550123",
            "+15121550123",
        ] {
            let e = PhoneNumber::parse_field("caller", bad).unwrap_err();
            assert_eq!(e.field, "caller");
            assert_eq!(e.value, bad);
            assert!(e.to_string().contains("caller"), "{e}");
        }
    }

    #[test]
    fn nanp_national_forms() {
        assert_eq!(
            PhoneNumber::from_nanp("5555555555").unwrap().as_str(),
            "+15555555555"
        );
        assert_eq!(
            PhoneNumber::from_nanp("0555555555").unwrap_err().field,
            "phone number"
        );
        assert_eq!(
            PhoneNumber::from_nanp("(512) 555-0123").unwrap().as_str(),
            "+15125550123"
        );
        assert_eq!(
            PhoneNumber::from_nanp("15125550123").unwrap().as_str(),
            "+15125550123"
        );
        assert!(PhoneNumber::from_nanp("25125550123").is_err());
        assert!(PhoneNumber::from_nanp("512555012x").is_err());
        let p = PhoneNumber::from_nanp("5125550123").unwrap();
        assert_eq!(p.nanp_national(), Some("5125550123"));
        assert_eq!(p.area_info().unwrap().state.as_str(), "TX");
    }

    #[test]
    fn sip_uris() {
        for ok in [
            "sip:buyer@example.com",
            "sips:a@b.c:5061",
            "sip:pbx.example.com",
            "sip:+15125550123@trunk.example.com;transport=udp",
            "sip:u@[2001:db8::1]:5060",
        ] {
            SipUri::parse(ok).unwrap();
        }
        for bad in [
            "tel:+1512",
            "sip:",
            "sip:@host",
            "sip:a@-bad-.com",
            "sip:a@host:0",
            "sip:a@host:99999",
            "sip:a b@host",
            "sip:a@ho st",
            "sip:a@h..c",
        ] {
            let e = SipUri::parse(bad).unwrap_err();
            assert_eq!(e.field, "sip uri", "{bad}");
        }
        assert_eq!(
            SipUri::parse("sip:x@y.example:5060;a=b").unwrap().host(),
            "y.example"
        );
    }

    #[test]
    fn destinations() {
        assert!(Destination::parse("sip:x@y.com").unwrap().is_sip());
        assert_eq!(
            Destination::parse("5125550123").unwrap(),
            Destination::Phone(PhoneNumber::parse("+15125550123").unwrap())
        );
        let json = serde_json::to_string(&Destination::parse("+15125550123").unwrap()).unwrap();
        assert_eq!(json, r#"{"kind":"phone","value":"+15125550123"}"#);
        assert!(serde_json::from_str::<Destination>(r#"{"kind":"phone","value":"12"}"#).is_err());
    }
}
