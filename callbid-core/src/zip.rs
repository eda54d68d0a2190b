//! US ZIP codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::geo::{zip_state, UsState};

/// A US 5-digit ZIP code. ZIP+4 input (`78701-1234` or `787011234`) is accepted and
/// normalized to its five-digit part, keeping the +4 for reference.
///
/// ```
/// use callbid_core::Zip;
/// let z: Zip = "78701-1234".parse().unwrap();
/// assert_eq!(z.as_str(), "78701");
/// assert_eq!(z.plus4(), Some("1234"));
/// assert_eq!(z.state().unwrap().as_str(), "TX");
/// assert!("7870".parse::<Zip>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Zip {
    five: [u8; 5],
    plus4: Option<[u8; 4]>,
}

impl Zip {
    /// Parses a ZIP or ZIP+4.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let t = input.trim();
        let b = t.as_bytes();
        let all_digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
        let (five, plus4) = match b.len() {
            5 if all_digits(b) => (&b[..5], None),
            9 if all_digits(b) => (&b[..5], Some(&b[5..])),
            10 if all_digits(&b[..5]) && b[5] == b'-' && all_digits(&b[6..]) => {
                (&b[..5], Some(&b[6..]))
            }
            _ => {
                return Err(ValidationError::new(
                    "zip",
                    input,
                    "expected 5 digits or ZIP+4 (12345-6789)",
                ))
            }
        };
        if five == b"00000" {
            return Err(ValidationError::new(
                "zip",
                input,
                "00000 is not a ZIP code",
            ));
        }
        let mut f = [0u8; 5];
        f.copy_from_slice(five);
        let p = plus4.map(|p| {
            let mut a = [0u8; 4];
            a.copy_from_slice(p);
            a
        });
        Ok(Zip { five: f, plus4: p })
    }

    /// The five-digit ZIP.
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII digits by construction.
        std::str::from_utf8(&self.five).unwrap_or("00000")
    }

    /// The +4 extension, when one was given.
    pub fn plus4(&self) -> Option<&str> {
        self.plus4
            .as_ref()
            .and_then(|p| std::str::from_utf8(p).ok())
    }

    /// The ZIP as a number (e.g. 78701).
    pub fn as_u32(&self) -> u32 {
        self.five
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    }

    /// The state the ZIP belongs to, from the table shipped in the crate (see [`crate::geo`]).
    pub fn state(&self) -> Option<UsState> {
        zip_state(self.as_u32())
    }
}

impl fmt::Debug for Zip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Zip({})", self.as_str())
    }
}

impl fmt::Display for Zip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Zip {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Zip {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Zip> for String {
    fn from(z: Zip) -> String {
        z.as_str().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(Zip::parse("78701").unwrap().as_str(), "78701");
        assert_eq!(Zip::parse(" 787011234 ").unwrap().plus4(), Some("1234"));
        assert_eq!(
            Zip::parse("78701-1234").unwrap(),
            Zip::parse("787011234").unwrap()
        );
        assert_eq!(Zip::parse("02134").unwrap().as_u32(), 2134);
        for bad in [
            "",
            "7870",
            "787012",
            "78701-123",
            "7870a",
            "78701 1234",
            "00000",
            "７８７０１",
        ] {
            let e = Zip::parse(bad).unwrap_err();
            assert_eq!(e.field, "zip");
            assert_eq!(e.value, bad);
        }
    }

    #[test]
    fn serde_round_trip() {
        let z: Zip = serde_json::from_str("\"10001-0001\"").unwrap();
        assert_eq!(serde_json::to_string(&z).unwrap(), "\"10001\"");
        assert!(serde_json::from_str::<Zip>("\"1\"").is_err());
    }
}
