//! Calling windows: when a callee may be called, in the callee's own local time.
//!
//! The window is checked at the moment a call is **launched**, never when it is queued: a
//! call queued at 20:59 that would start at 21:00 is refused. Rules (see
//! `../shared/docs/DOMAIN.md`, "Outbound campaigns"):
//! - US default: 08:00–21:00 in the called person's local time (TCPA,
//!   47 CFR 64.1200(c)(1));
//! - per-state overrides, stricter than the federal rule. The shipped defaults are
//!   [`CallingRules::us_default`]'s list (Florida, Oklahoma, Maryland and Washington
//!   08:00–20:00; Texas 09:00–21:00 Monday–Saturday and 12:00–21:00 on Sunday). They are a
//!   starting point to review with counsel, and every one is configurable;
//! - India: 09:00–21:00 IST (TRAI's commercial-communication hours);
//! - the zone comes from the number: a NANP area code gives its zones
//!   ([`crate::geo::area_code_zones`]); an area code that spans two zones must be open in
//!   **every** zone (the stricter one decides); `+91` is `Asia/Kolkata`. A number whose
//!   zone is unknown is not called ([`WindowVerdict::Unknown`]).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::geo::{area_code_info, area_code_zones, UsState};
use crate::phone::PhoneNumber;

/// A daily local-time range `[start, end)`, e.g. 08:00–21:00. `start < end` (calling
/// windows never cross midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalWindow {
    /// First allowed local time.
    pub start: NaiveTime,
    /// First local time no longer allowed.
    pub end: NaiveTime,
}

impl LocalWindow {
    /// `[start_hour:00, end_hour:00)`. Errors (field `window`) unless `start < end ≤ 24`.
    pub fn hours(start_hour: u32, end_hour: u32) -> Result<Self, ValidationError> {
        let value = format!("{start_hour:02}:00-{end_hour:02}:00");
        if start_hour >= end_hour || end_hour > 24 {
            return Err(ValidationError::new(
                "window",
                value,
                "needs start < end, within one day",
            ));
        }
        let end = if end_hour == 24 {
            NaiveTime::from_hms_opt(23, 59, 59)
        } else {
            NaiveTime::from_hms_opt(end_hour, 0, 0)
        };
        match (NaiveTime::from_hms_opt(start_hour, 0, 0), end) {
            (Some(start), Some(end)) => Ok(LocalWindow { start, end }),
            _ => Err(ValidationError::new("window", value, "hour out of range")),
        }
    }

    /// Parses `"HH:MM-HH:MM"`.
    pub fn parse(input: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| ValidationError::new("window", input, why.to_string());
        let (a, b) = input
            .trim()
            .split_once('-')
            .ok_or_else(|| bad("expected HH:MM-HH:MM"))?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M").map_err(|_| bad("bad start"))?;
        let end = NaiveTime::parse_from_str(b.trim(), "%H:%M").map_err(|_| bad("bad end"))?;
        if start >= end {
            return Err(bad(
                "start must be before end (windows do not cross midnight)",
            ));
        }
        Ok(LocalWindow { start, end })
    }

    fn contains(&self, t: NaiveTime) -> bool {
        t >= self.start && t < self.end
    }
}

impl fmt::Display for LocalWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            self.start.format("%H:%M"),
            self.end.format("%H:%M")
        )
    }
}

/// A window per weekday (`None`: no calls that day). Index 0 is Monday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyWindow(pub [Option<LocalWindow>; 7]);

impl WeeklyWindow {
    /// The same window every day.
    pub fn every_day(w: LocalWindow) -> Self {
        WeeklyWindow([Some(w); 7])
    }

    /// The window on `day`.
    pub fn on(&self, day: Weekday) -> Option<LocalWindow> {
        self.0[day.num_days_from_monday() as usize]
    }
}

/// Where a callee is, for calling rules.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jurisdiction {
    /// A US number: its state (when known) and every zone its area code reaches.
    Us {
        /// The state of the area code.
        state: Option<UsState>,
        /// Every zone to check (at least one).
        zones: Vec<Tz>,
    },
    /// An Indian number (`+91`): Asia/Kolkata.
    India,
    /// Anything else, with no rule.
    Unknown,
}

impl Jurisdiction {
    /// From the callee's number: NANP area code → state and zones; `+91` → India.
    pub fn of(number: &PhoneNumber) -> Jurisdiction {
        if let Some(ac) = number.area_code() {
            let zones = area_code_zones(ac);
            if !zones.is_empty() {
                let state = area_code_info(ac).map(|i| i.state);
                return Jurisdiction::Us { state, zones };
            }
            return Jurisdiction::Unknown;
        }
        if number.as_str().starts_with("+91") {
            return Jurisdiction::India;
        }
        Jurisdiction::Unknown
    }
}

/// Whether a call may be launched now.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowVerdict {
    /// Open in every zone of the callee.
    Open,
    /// Closed in at least one of the callee's zones.
    Closed {
        /// The zone that refused.
        zone: Tz,
        /// The callee's local time there.
        local: String,
        /// The window that applies that day (`None`: no calls that day).
        window: Option<LocalWindow>,
        /// The earliest instant (UTC) at which every zone is open again, within 8 days.
        opens_at: Option<DateTime<Utc>>,
    },
    /// No rule and no zone is known for this number: not called.
    Unknown {
        /// Why.
        reason: String,
    },
}

impl WindowVerdict {
    /// Whether the call may start.
    pub fn is_open(&self) -> bool {
        matches!(self, WindowVerdict::Open)
    }
}

/// The calling-hours rules of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingRules {
    /// The US default (08:00–21:00 every day).
    pub us: WeeklyWindow,
    /// Stricter state rules, by state.
    pub us_states: BTreeMap<UsState, WeeklyWindow>,
    /// India's window (09:00–21:00 IST).
    pub india: WeeklyWindow,
}

impl Default for CallingRules {
    fn default() -> Self {
        Self::us_default()
    }
}

fn h(a: u32, b: u32) -> LocalWindow {
    // The arguments are constants below 24 with a < b.
    LocalWindow::hours(a, b).unwrap_or(LocalWindow {
        start: NaiveTime::MIN,
        end: NaiveTime::MIN,
    })
}

impl CallingRules {
    /// The shipped defaults: TCPA 08:00–21:00; FL, OK, MD, WA 08:00–20:00 (Florida
    /// Telephone Solicitation Act § 501.059, Oklahoma Telephone Solicitation Act 2022,
    /// Maryland Stop the Spam Calls Act 2023, RCW 80.36.390); TX 09:00–21:00 Mon–Sat and
    /// 12:00–21:00 Sun (Tex. Bus. & Com. Code § 301.051); India 09:00–21:00.
    pub fn us_default() -> Self {
        let mut us_states = BTreeMap::new();
        for st in ["FL", "OK", "MD", "WA"] {
            if let Ok(s) = UsState::parse(st) {
                us_states.insert(s, WeeklyWindow::every_day(h(8, 20)));
            }
        }
        let mut texas = WeeklyWindow::every_day(h(9, 21));
        texas.0[6] = Some(h(12, 21));
        if let Ok(tx) = UsState::parse("TX") {
            us_states.insert(tx, texas);
        }
        CallingRules {
            us: WeeklyWindow::every_day(h(8, 21)),
            us_states,
            india: WeeklyWindow::every_day(h(9, 21)),
        }
    }

    /// Overrides (or adds) a state's window.
    pub fn with_state(mut self, state: UsState, window: WeeklyWindow) -> Self {
        self.us_states.insert(state, window);
        self
    }

    /// May `number` be called at `at`? Checked in every zone of the callee.
    pub fn check(&self, number: &PhoneNumber, at: DateTime<Utc>) -> WindowVerdict {
        match Jurisdiction::of(number) {
            Jurisdiction::Us { state, zones } => {
                let weekly = state
                    .and_then(|s| self.us_states.get(&s))
                    .unwrap_or(&self.us);
                check_zones(weekly, &zones, at)
            }
            Jurisdiction::India => check_zones(&self.india, &[chrono_tz::Asia::Kolkata], at),
            Jurisdiction::Unknown => WindowVerdict::Unknown {
                reason: format!("no calling rule or time zone known for {number}"),
            },
        }
    }
}

fn open_in(weekly: &WeeklyWindow, zone: Tz, at: DateTime<Utc>) -> Result<(), Option<LocalWindow>> {
    let local = at.with_timezone(&zone);
    let window = weekly.on(local.weekday());
    match window {
        Some(w) if w.contains(local.time()) => Ok(()),
        other => Err(other),
    }
}

fn check_zones(weekly: &WeeklyWindow, zones: &[Tz], at: DateTime<Utc>) -> WindowVerdict {
    for &zone in zones {
        if let Err(window) = open_in(weekly, zone, at) {
            return WindowVerdict::Closed {
                zone,
                local: at.with_timezone(&zone).format("%a %H:%M:%S %Z").to_string(),
                window,
                opens_at: next_open(weekly, zones, at),
            };
        }
    }
    WindowVerdict::Open
}

/// The first minute boundary after `at` at which every zone is open (searched minute by
/// minute over window starts, within 8 days).
fn next_open(weekly: &WeeklyWindow, zones: &[Tz], at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // Candidate instants: each zone's window starts over the next 8 local days.
    let mut candidates: Vec<DateTime<Utc>> = Vec::new();
    for &zone in zones {
        let local_day = at.with_timezone(&zone).date_naive();
        for d in 0..9 {
            let day = local_day + Duration::days(d);
            if let Some(w) = weekly.on(day.weekday()) {
                if let Some(t) = zone.from_local_datetime(&day.and_time(w.start)).earliest() {
                    candidates.push(t.with_timezone(&Utc));
                }
            }
        }
    }
    candidates.sort();
    candidates
        .into_iter()
        .filter(|c| *c > at)
        .find(|c| zones.iter().all(|&z| open_in(weekly, z, *c).is_ok()))
}

/// Seconds since local midnight of `at` in `zone` (for reports).
pub fn local_seconds(at: DateTime<Utc>, zone: Tz) -> u32 {
    at.with_timezone(&zone).num_seconds_from_midnight()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    #[test]
    fn us_default_window_in_callee_zone() {
        let rules = CallingRules::us_default();
        // 512 is Austin, TX (Central): Texas rule 09:00-21:00 Mon-Sat.
        // 2026-12-07 is a Monday. 15:00 UTC = 09:00 CST.
        assert!(rules
            .check(&n("+15125550123"), utc("2026-12-07T15:00:00Z"))
            .is_open());
        assert!(!rules
            .check(&n("+15125550123"), utc("2026-12-07T14:59:59Z"))
            .is_open());
        // 20:59 CST open, 21:00 CST closed.
        assert!(rules
            .check(&n("+15125550123"), utc("2026-12-08T02:59:59Z"))
            .is_open());
        let v = rules.check(&n("+15125550123"), utc("2026-12-08T03:00:00Z"));
        match v {
            WindowVerdict::Closed { opens_at, .. } => {
                assert_eq!(opens_at, Some(utc("2026-12-08T15:00:00Z")));
            }
            other => panic!("{other:?}"),
        }
        // New York (212): federal 08:00-21:00 EST.
        assert!(rules
            .check(&n("+12125550123"), utc("2026-12-07T13:00:00Z"))
            .is_open());
        assert!(!rules
            .check(&n("+12125550123"), utc("2026-12-07T12:59:00Z"))
            .is_open());
    }

    #[test]
    fn texas_sunday_starts_at_noon() {
        let rules = CallingRules::us_default();
        // 2026-12-06 is a Sunday: 11:59 CST closed, 12:00 open.
        assert!(!rules
            .check(&n("+15125550123"), utc("2026-12-06T17:59:00Z"))
            .is_open());
        assert!(rules
            .check(&n("+15125550123"), utc("2026-12-06T18:00:00Z"))
            .is_open());
    }

    #[test]
    fn stricter_states_close_at_eight() {
        let rules = CallingRules::us_default();
        // 305 Miami (FL, Eastern): 20:00 EST = 01:00 UTC next day.
        assert!(rules
            .check(&n("+13055550123"), utc("2026-12-08T00:59:00Z"))
            .is_open());
        assert!(!rules
            .check(&n("+13055550123"), utc("2026-12-08T01:00:00Z"))
            .is_open());
    }

    #[test]
    fn split_area_code_takes_the_stricter_zone() {
        let rules = CallingRules::us_default();
        // 208 (Idaho) spans Mountain and Pacific. At 08:30 Mountain it is 07:30 Pacific:
        // closed in the Pacific part, so closed.
        let at = utc("2026-12-07T15:30:00Z"); // 08:30 MST, 07:30 PST
        match rules.check(&n("+12085550123"), at) {
            WindowVerdict::Closed { zone, opens_at, .. } => {
                assert_eq!(zone, chrono_tz::America::Los_Angeles);
                assert_eq!(opens_at, Some(utc("2026-12-07T16:00:00Z")));
            }
            other => panic!("{other:?}"),
        }
        // 21:30 Mountain is 20:30 Pacific: closed in the Mountain part.
        assert!(rules
            .check(&n("+12085550123"), utc("2026-12-08T03:30:00Z"))
            .is_open());
        assert!(!rules
            .check(&n("+12085550123"), utc("2026-12-08T04:30:00Z"))
            .is_open());
        assert!(rules
            .check(&n("+12085550123"), utc("2026-12-07T17:00:00Z"))
            .is_open());
    }

    #[test]
    fn india_nine_to_nine() {
        let rules = CallingRules::us_default();
        // 09:00 IST = 03:30 UTC.
        assert!(!rules
            .check(&n("+919812345678"), utc("2026-12-07T03:29:00Z"))
            .is_open());
        assert!(rules
            .check(&n("+919812345678"), utc("2026-12-07T03:30:00Z"))
            .is_open());
        assert!(!rules
            .check(&n("+919812345678"), utc("2026-12-07T15:30:00Z"))
            .is_open());
    }

    #[test]
    fn unknown_numbers_are_not_called() {
        let rules = CallingRules::us_default();
        // Toronto (Canada) and the UK: no rule known here.
        assert!(matches!(
            rules.check(&n("+14165550123"), utc("2026-12-07T17:00:00Z")),
            WindowVerdict::Unknown { .. }
        ));
        assert!(matches!(
            rules.check(&n("+442071234567"), utc("2026-12-07T12:00:00Z")),
            WindowVerdict::Unknown { .. }
        ));
    }

    #[test]
    fn dst_is_respected() {
        let rules = CallingRules::us_default();
        // New York in July is EDT (UTC-4): 08:00 EDT = 12:00 UTC.
        assert!(rules
            .check(&n("+12125550123"), utc("2026-07-06T12:00:00Z"))
            .is_open());
        assert!(!rules
            .check(&n("+12125550123"), utc("2026-07-06T11:59:00Z"))
            .is_open());
    }

    #[test]
    fn window_parsing_names_the_field() {
        assert_eq!(LocalWindow::parse("08:00-21:00").unwrap(), h(8, 21));
        let e = LocalWindow::parse("21:00-08:00").unwrap_err();
        assert_eq!(e.field, "window");
        assert_eq!(e.value, "21:00-08:00");
        assert!(LocalWindow::parse("8am").is_err());
        assert!(LocalWindow::hours(9, 9).is_err());
    }
}
