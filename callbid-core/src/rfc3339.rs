//! RFC 3339 text for `DateTime<Utc>`, byte for byte what chrono's `Serialize` writes
//! (`to_rfc3339_opts(SecondsFormat::AutoSi, true)`: no fraction, or 3, 6 or 9 digits,
//! whichever is exact, and `Z`), without going through `core::fmt`. The call log
//! serializes several instants per event and per summary record, and chrono's
//! `Display`-based path was about a tenth of the server's instructions per call.
//! Years outside 0–9999 and leap seconds are left to chrono. Reading is chrono's own
//! (`Deserialize` is untouched), so stored text is unchanged either way.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

/// `#[serde(serialize_with = "crate::rfc3339::serialize")]` for a `DateTime<Utc>`.
pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    Rfc3339(t).serialize(s)
}

/// A `DateTime<Utc>` serialized the fast way (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rfc3339<'a>(pub(crate) &'a DateTime<Utc>);

impl Serialize for Rfc3339<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; LONGEST];
        match format(self.0, &mut buf) {
            Some(text) => s.serialize_str(text),
            None => self.0.serialize(s),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const LONGEST: usize = 30;

/// The text, or `None` where chrono's own formatting applies (a year outside
/// 0–9999, a leap second).
fn format<'a>(t: &DateTime<Utc>, buf: &'a mut [u8; LONGEST]) -> Option<&'a str> {
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    let nano = t.nanosecond();
    if nano >= 1_000_000_000 {
        return None;
    }
    put(buf, 0, year / 100);
    put(buf, 2, year % 100);
    buf[4] = b'-';
    put(buf, 5, t.month());
    buf[7] = b'-';
    put(buf, 8, t.day());
    buf[10] = b'T';
    put(buf, 11, t.hour());
    buf[13] = b':';
    put(buf, 14, t.minute());
    buf[16] = b':';
    put(buf, 17, t.second());
    let mut len = 19;
    let (digits, mut frac) = match nano {
        0 => (0, 0),
        n if n % 1_000_000 == 0 => (3, n / 1_000_000),
        n if n % 1_000 == 0 => (6, n / 1_000),
        n => (9, n),
    };
    if digits > 0 {
        buf[19] = b'.';
        for slot in buf[20..20 + digits].iter_mut().rev() {
            *slot = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        len = 20 + digits;
    }
    buf[len] = b'Z';
    std::str::from_utf8(&buf[..=len]).ok()
}

/// Two decimal digits of `v` (below 100) at `at`.
fn put(buf: &mut [u8], at: usize, v: u32) {
    buf[at] = b'0' + (v / 10 % 10) as u8;
    buf[at + 1] = b'0' + (v % 10) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn both(t: DateTime<Utc>) -> (String, String) {
        let fast = serde_json::to_string(&Rfc3339(&t)).expect("fast");
        let chrono = serde_json::to_string(&t).expect("chrono");
        (fast, chrono)
    }

    #[test]
    fn each_fraction_width_and_the_edges_match_chrono() {
        let base = Utc
            .with_ymd_and_hms(2026, 12, 7, 23, 5, 9)
            .single()
            .expect("t");
        for nanos in [0, 1, 9, 1_000, 120_000, 1_000_000, 5_000_000, 999_999_999] {
            let (fast, chrono) = both(base + chrono::Duration::nanoseconds(nanos));
            assert_eq!(fast, chrono);
        }
        for t in [
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::<Utc>::UNIX_EPOCH,
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0)
                .single()
                .expect("year 0"),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .single()
                .expect("9999"),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0)
                .single()
                .expect("10000"),
        ] {
            let (fast, chrono) = both(t);
            assert_eq!(fast, chrono);
        }
    }

    #[test]
    fn a_leap_second_is_chronos_text() {
        let t = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("leap")
            .and_utc();
        let (fast, chrono) = both(t);
        assert_eq!(fast, chrono);
    }

    proptest! {
        /// Any instant chrono can hold (leap seconds included) serializes to the same
        /// text both ways, and reads back as the same instant.
        #[test]
        fn matches_chrono_everywhere(
            secs in DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            nanos in 0u32..2_000_000_000,
            width in 0usize..4,
        ) {
            // Favour round fractions too: all of 0, 3, 6 and 9 digits.
            let nanos = match width {
                0 => nanos - nanos % 1_000_000_000,
                1 => nanos - nanos % 1_000_000,
                2 => nanos - nanos % 1_000,
                _ => nanos,
            };
            let Some(t) = DateTime::<Utc>::from_timestamp(secs, nanos) else {
                return Ok(());
            };
            let (fast, chrono) = both(t);
            prop_assert_eq!(&fast, &chrono);
            let back: DateTime<Utc> = serde_json::from_str(&fast).expect("parse");
            prop_assert_eq!(back, t);
        }
    }
}
