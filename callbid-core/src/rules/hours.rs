//! Hours of operation per weekday, in the buyer's IANA time zone.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, NaiveTime, Utc};
use chrono_tz::Tz;

use super::{RoutingRule, Verdict};
use crate::buyer::BuyerProfile;
use crate::call::CallContext;
use crate::error::{StateError, ValidationError};

/// Local opening hours: `start`–`end`. When `end` is earlier than `start` the range runs
/// overnight into the next day (`22:00-02:00`); when they are equal it is the whole day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Opening time (inclusive).
    pub start: NaiveTime,
    /// Closing time (exclusive).
    pub end: NaiveTime,
}

impl TimeRange {
    /// A range from `start` to `end`.
    pub fn new(start: NaiveTime, end: NaiveTime) -> Self {
        TimeRange { start, end }
    }

    /// Parses `HH:MM-HH:MM` (`24:00` allowed as an end meaning midnight).
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let (a, b) = input
            .trim()
            .split_once('-')
            .ok_or_else(|| ValidationError::new("hours", input, "expected HH:MM-HH:MM"))?;
        let t = |s: &str| -> Result<NaiveTime, ValidationError> {
            let s = s.trim();
            if s == "24:00" {
                return Ok(NaiveTime::MIN);
            }
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| {
                ValidationError::new("hours", input, format!("{s:?} is not a HH:MM time"))
            })
        };
        Ok(TimeRange::new(t(a)?, t(b)?))
    }

    fn overnight(&self) -> bool {
        self.end < self.start
    }
}

impl FromStr for TimeRange {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TimeRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// The ranges of one weekday (empty: closed that day).
pub type DayHours = Vec<TimeRange>;

/// Open only during the listed local hours of each weekday.
///
/// ```
/// use callbid_core::rules::{HoursRule, TimeRange};
/// let weekdays = HoursRule::new(None)
///     .with_weekdays(vec![TimeRange::parse("08:00-18:00").unwrap()])
///     .with_day(chrono::Weekday::Sat, vec![TimeRange::parse("22:00-02:00").unwrap()]);
/// ```
#[derive(Debug, Clone)]
pub struct HoursRule {
    tz: Option<Tz>,
    days: [DayHours; 7],
}

impl HoursRule {
    /// Closed every day until hours are added. `tz: None` uses the buyer's profile zone.
    pub fn new(tz: Option<Tz>) -> Self {
        HoursRule {
            tz,
            days: Default::default(),
        }
    }

    /// Sets one weekday's ranges.
    pub fn with_day(mut self, day: chrono::Weekday, ranges: DayHours) -> Self {
        self.days[day.num_days_from_monday() as usize] = ranges;
        self
    }

    /// Sets Monday to Friday.
    pub fn with_weekdays(mut self, ranges: DayHours) -> Self {
        for d in 0..5 {
            self.days[d] = ranges.clone();
        }
        self
    }

    /// Whether `at` falls in open hours, evaluated in `tz`.
    pub fn is_open(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz);
        let today = local.weekday().num_days_from_monday() as usize;
        let yesterday = (today + 6) % 7;
        let t = local.time();
        let open_today = self.days[today].iter().any(|r| {
            if r.start == r.end {
                true
            } else if r.overnight() {
                t >= r.start
            } else {
                r.start <= t && t < r.end
            }
        });
        open_today
            || self.days[yesterday]
                .iter()
                .any(|r| r.overnight() && t < r.end)
    }
}

#[async_trait]
impl RoutingRule for HoursRule {
    fn name(&self) -> &str {
        "hours"
    }

    async fn check(
        &self,
        _: &CallContext,
        buyer: &BuyerProfile,
        now: DateTime<Utc>,
    ) -> Result<Verdict, StateError> {
        let tz = self.tz.unwrap_or(buyer.time_zone);
        Ok(if self.is_open(now, tz) {
            Verdict::Allow
        } else {
            Verdict::Deny(format!(
                "closed at {} ({tz})",
                now.with_timezone(&tz).format("%a %H:%M")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Weekday};
    use chrono_tz::America::{Los_Angeles, New_York};

    fn utc(y: i32, m: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, mi, 0).unwrap()
    }

    fn nine_to_five() -> HoursRule {
        HoursRule::new(None).with_weekdays(vec![TimeRange::parse("09:00-17:00").unwrap()])
    }

    #[test]
    fn weekday_hours_in_zone() {
        let r = nine_to_five();
        // Fri 2026-11-20 14:30 UTC = 09:30 EST: open in New York, 06:30 in Los Angeles: closed.
        assert!(r.is_open(utc(2026, 11, 20, 14, 30), New_York));
        assert!(!r.is_open(utc(2026, 11, 20, 14, 30), Los_Angeles));
        // 17:00 is closing time (exclusive).
        assert!(!r.is_open(utc(2026, 11, 20, 22, 0), New_York));
        // Saturday closed.
        assert!(!r.is_open(utc(2026, 11, 21, 15, 0), New_York));
    }

    #[test]
    fn dst_transitions() {
        let r = nine_to_five();
        // DST starts Sun 2026-03-08 in the US. Mon 03-09 13:30 UTC = 09:30 EDT: open;
        // the same UTC time on Fri 03-06 is 08:30 EST: closed.
        assert!(r.is_open(utc(2026, 3, 9, 13, 30), New_York));
        assert!(!r.is_open(utc(2026, 3, 6, 13, 30), New_York));
        // DST ends Sun 2026-11-01. Fri 10-30 21:30 UTC = 17:30 EDT: closed;
        // Mon 11-02 21:30 UTC = 16:30 EST: open.
        assert!(!r.is_open(utc(2026, 10, 30, 21, 30), New_York));
        assert!(r.is_open(utc(2026, 11, 2, 21, 30), New_York));
        // A range crossing the skipped hour on the spring-forward night.
        let night = HoursRule::new(None)
            .with_day(Weekday::Sun, vec![TimeRange::parse("01:00-04:00").unwrap()]);
        // 06:30 UTC = 01:30 EST (before the jump): open; 07:30 UTC = 03:30 EDT: open; 08:30 UTC = 04:30 EDT: closed.
        assert!(night.is_open(utc(2026, 3, 8, 6, 30), New_York));
        assert!(night.is_open(utc(2026, 3, 8, 7, 30), New_York));
        assert!(!night.is_open(utc(2026, 3, 8, 8, 30), New_York));
        // The repeated hour on the fall-back night: 01:30 happens twice, open both times.
        let fall = HoursRule::new(None)
            .with_day(Weekday::Sun, vec![TimeRange::parse("01:00-02:00").unwrap()]);
        assert!(fall.is_open(utc(2026, 11, 1, 5, 30), New_York)); // 01:30 EDT
        assert!(fall.is_open(utc(2026, 11, 1, 6, 30), New_York)); // 01:30 EST
        assert!(!fall.is_open(utc(2026, 11, 1, 7, 30), New_York)); // 02:30 EST
    }

    #[test]
    fn overnight_ranges() {
        let r = HoursRule::new(Some(New_York))
            .with_day(Weekday::Fri, vec![TimeRange::parse("22:00-02:00").unwrap()]);
        // Fri 23:00 EST = Sat 04:00 UTC: open; Sat 01:30 EST: open (spill-over); Sat 02:00: closed.
        assert!(r.is_open(utc(2026, 11, 21, 4, 0), New_York));
        assert!(r.is_open(utc(2026, 11, 21, 6, 30), New_York));
        assert!(!r.is_open(utc(2026, 11, 21, 7, 0), New_York));
        // Fri 21:59 EST: closed; Thu 23:00 (no Thursday range): closed.
        assert!(!r.is_open(utc(2026, 11, 21, 2, 59), New_York));
        assert!(!r.is_open(utc(2026, 11, 20, 4, 0), New_York));
        // Whole day and 24:00.
        let all = HoursRule::new(None)
            .with_day(Weekday::Sun, vec![TimeRange::parse("00:00-24:00").unwrap()]);
        assert!(all.is_open(utc(2026, 11, 22, 12, 0), New_York));
    }

    #[test]
    fn parse_errors_name_the_field() {
        for bad in ["9-5", "09:00", "25:00-26:00", "aa:bb-cc:dd"] {
            let e = TimeRange::parse(bad).unwrap_err();
            assert_eq!(e.field, "hours");
            assert_eq!(e.value, bad);
        }
        assert_eq!(
            TimeRange::parse("22:00-02:00").unwrap().to_string(),
            "22:00-02:00"
        );
    }
}
