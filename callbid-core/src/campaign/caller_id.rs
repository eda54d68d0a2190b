//! Choosing a local caller ID for an outbound call.
//!
//! People answer local numbers more often, so a campaign presents a number from the
//! callee's region. [`CallerIdPool::pick`] looks, in order, for a number with the callee's
//! area code, then its state, then its region (for NANP: the same IANA time zone), or, in
//! India, its telecom circle (which the provider's number-metadata API gives: Exotel's
//! `/Numbers/{number}` answers `TelecomCircle`); then, if allowed, any number.
//!
//! Within a level it rotates by least recent use, skips numbers that reached their daily
//! limit (counted per day in the pool's zone), and skips numbers whose learned answer rate
//! fell well below the best of the level (a number flagged as spam by carriers stops
//! being answered). The answer rate is smoothed towards a prior, as the scoring engine's
//! duration factor is, so a new number is not judged on two calls. Deterministic: ties
//! break by the number's E.164 text.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;
use crate::geo::{area_code_info, UsState};
use crate::phone::PhoneNumber;

/// Where a number (caller ID or callee) is.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NumberRegion {
    /// NANP area code.
    pub area_code: Option<u16>,
    /// US state.
    pub state: Option<UsState>,
    /// NANP region: the area code's IANA zone.
    pub zone: Option<Tz>,
    /// Indian telecom circle (e.g. `"Karnataka"`), from the provider's number metadata.
    pub circle: Option<String>,
}

impl NumberRegion {
    /// From a NANP number's area code (state and zone from the shipped table).
    pub fn of_nanp(number: &PhoneNumber) -> NumberRegion {
        let area_code = number.area_code();
        let info = area_code.and_then(area_code_info);
        NumberRegion {
            area_code,
            state: info.map(|i| i.state),
            zone: info.map(|i| i.time_zone),
            circle: None,
        }
    }

    /// An Indian number in a telecom circle.
    pub fn circle(circle: impl Into<String>) -> NumberRegion {
        NumberRegion {
            circle: Some(circle.into()),
            ..NumberRegion::default()
        }
    }
}

/// How local the chosen caller ID is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchLevel {
    /// Same area code.
    AreaCode,
    /// Same state.
    State,
    /// Same region (NANP zone).
    Region,
    /// Same telecom circle (India).
    Circle,
    /// No local number: any number of the pool.
    Any,
}

/// A caller ID the campaign may present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallerIdNumber {
    /// The number.
    pub number: PhoneNumber,
    /// Where it is.
    pub region: NumberRegion,
    /// Calls per day at most.
    pub daily_limit: u32,
    /// Last time it was used.
    pub last_used: Option<DateTime<Utc>>,
    /// The day (pool zone) `used_today` counts.
    pub day: Option<NaiveDate>,
    /// Calls placed with it on `day`.
    pub used_today: u32,
    /// Calls placed with it that ended (answered or not).
    pub attempts: u64,
    /// Of those, answered by a person.
    pub answered: u64,
}

/// The result of [`CallerIdPool::pick`].
#[derive(Debug, Clone, PartialEq)]
pub struct CallerIdPick {
    /// The number to present.
    pub number: PhoneNumber,
    /// How local it is.
    pub level: MatchLevel,
}

/// Tuning of [`CallerIdPool`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallerIdConfig {
    /// The zone whose calendar days count daily limits (default UTC).
    pub zone: Tz,
    /// Whether to fall back to any number when no local one is free (default true).
    pub allow_any: bool,
    /// Prior answer rate (default 0.3) and its weight in calls (default 20).
    pub prior_rate: Decimal,
    /// Weight of the prior, in calls.
    pub prior_weight: Decimal,
    /// Skip a number whose smoothed answer rate is below this share of the level's best
    /// (default 0.5), once it has `min_attempts` calls.
    pub min_rate_ratio: Decimal,
    /// Calls before a number can be skipped for its answer rate (default 50).
    pub min_attempts: u64,
}

impl Default for CallerIdConfig {
    fn default() -> Self {
        CallerIdConfig {
            zone: chrono_tz::UTC,
            allow_any: true,
            prior_rate: Decimal::new(3, 1),
            prior_weight: Decimal::from(20),
            min_rate_ratio: Decimal::new(5, 1),
            min_attempts: 50,
        }
    }
}

/// The caller IDs of a campaign (or an account).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallerIdPool {
    numbers: BTreeMap<String, CallerIdNumber>,
    config: CallerIdConfig,
}

impl CallerIdPool {
    /// An empty pool.
    pub fn new(config: CallerIdConfig) -> Self {
        CallerIdPool {
            numbers: BTreeMap::new(),
            config,
        }
    }

    /// Adds a number with its region and daily limit. Errors (field `daily_limit`) on 0.
    pub fn add(
        &mut self,
        number: PhoneNumber,
        region: NumberRegion,
        daily_limit: u32,
    ) -> Result<(), ValidationError> {
        if daily_limit == 0 {
            return Err(ValidationError::new(
                "daily_limit",
                "0",
                "must be at least 1",
            ));
        }
        self.numbers.insert(
            number.as_str().to_string(),
            CallerIdNumber {
                number,
                region,
                daily_limit,
                last_used: None,
                day: None,
                used_today: 0,
                attempts: 0,
                answered: 0,
            },
        );
        Ok(())
    }

    /// The numbers, by E.164 text.
    pub fn numbers(&self) -> impl Iterator<Item = &CallerIdNumber> {
        self.numbers.values()
    }

    /// The smoothed answer rate of a number: `(answered + prior × w) / (attempts + w)`.
    pub fn answer_rate(&self, n: &CallerIdNumber) -> Decimal {
        let w = self.config.prior_weight;
        let num = Decimal::from(n.answered) + self.config.prior_rate * w;
        let den = Decimal::from(n.attempts) + w;
        if den.is_zero() {
            self.config.prior_rate
        } else {
            (num / den).round_dp(6)
        }
    }

    /// Picks the caller ID for a callee in `callee` at `now`, and counts the use. `None`
    /// when every candidate reached its daily limit (or no local one exists and
    /// `allow_any` is off).
    pub fn pick(&mut self, callee: &NumberRegion, now: DateTime<Utc>) -> Option<CallerIdPick> {
        let today = now.with_timezone(&self.config.zone).date_naive();
        let levels = [
            MatchLevel::AreaCode,
            MatchLevel::State,
            MatchLevel::Region,
            MatchLevel::Circle,
            MatchLevel::Any,
        ];
        for level in levels {
            if level == MatchLevel::Any && !self.config.allow_any {
                break;
            }
            if let Some(key) = self.best_at(level, callee, today) {
                let n = self.numbers.get_mut(&key)?;
                if n.day != Some(today) {
                    n.day = Some(today);
                    n.used_today = 0;
                }
                n.used_today += 1;
                n.last_used = Some(now);
                return Some(CallerIdPick {
                    number: n.number.clone(),
                    level,
                });
            }
        }
        None
    }

    /// Records how a call placed with `number` ended (a person answered or not).
    pub fn record_result(&mut self, number: &PhoneNumber, answered_by_person: bool) {
        if let Some(n) = self.numbers.get_mut(number.as_str()) {
            n.attempts += 1;
            if answered_by_person {
                n.answered += 1;
            }
        }
    }

    fn best_at(
        &self,
        level: MatchLevel,
        callee: &NumberRegion,
        today: NaiveDate,
    ) -> Option<String> {
        let candidates: Vec<&CallerIdNumber> = self
            .numbers
            .values()
            .filter(|n| matches(level, &n.region, callee))
            .filter(|n| n.day != Some(today) || n.used_today < n.daily_limit)
            .collect();
        let best_rate = candidates.iter().map(|n| self.answer_rate(n)).max()?;
        let floor = best_rate * self.config.min_rate_ratio;
        candidates
            .into_iter()
            .filter(|n| n.attempts < self.config.min_attempts || self.answer_rate(n) >= floor)
            .min_by(|a, b| {
                a.last_used
                    .cmp(&b.last_used)
                    .then_with(|| a.number.as_str().cmp(b.number.as_str()))
            })
            .map(|n| n.number.as_str().to_string())
    }
}

fn matches(level: MatchLevel, number: &NumberRegion, callee: &NumberRegion) -> bool {
    fn same<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
        matches!((a, b), (Some(x), Some(y)) if x == y)
    }
    match level {
        MatchLevel::AreaCode => same(&number.area_code, &callee.area_code),
        MatchLevel::State => same(&number.state, &callee.state),
        MatchLevel::Region => same(&number.zone, &callee.zone),
        MatchLevel::Circle => same(&number.circle, &callee.circle),
        MatchLevel::Any => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> PhoneNumber {
        PhoneNumber::parse(s).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn pool() -> CallerIdPool {
        let mut p = CallerIdPool::new(CallerIdConfig::default());
        for num in [
            "+15125550001",
            "+15125550002",
            "+12145550003",
            "+12125550004",
        ] {
            let num = n(num);
            let region = NumberRegion::of_nanp(&num);
            p.add(num, region, 2).unwrap();
        }
        p
    }

    #[test]
    fn prefers_area_code_then_state_then_region_then_any() {
        let mut p = pool();
        let now = at("2026-12-07T16:00:00Z");
        let austin = NumberRegion::of_nanp(&n("+15125559999"));
        assert_eq!(p.pick(&austin, now).unwrap().level, MatchLevel::AreaCode);
        // Houston (713, TX, Central): no 713 number, a Texas one.
        let houston = NumberRegion::of_nanp(&n("+17135559999"));
        let pick = p.pick(&houston, now).unwrap();
        assert_eq!(pick.level, MatchLevel::State);
        // Chicago (312, IL, Central): same zone as the Texas numbers.
        let chicago = NumberRegion::of_nanp(&n("+13125559999"));
        assert_eq!(p.pick(&chicago, now).unwrap().level, MatchLevel::Region);
        // Los Angeles: nothing local.
        let la = NumberRegion::of_nanp(&n("+12135559999"));
        assert_eq!(p.pick(&la, now).unwrap().level, MatchLevel::Any);
    }

    #[test]
    fn rotates_by_least_recent_use_and_honours_daily_limits() {
        let mut p = pool();
        let austin = NumberRegion::of_nanp(&n("+15125559999"));
        let t = |m: i64| at("2026-12-07T16:00:00Z") + chrono::Duration::minutes(m);
        let picks: Vec<String> = (0..4)
            .map(|i| p.pick(&austin, t(i)).unwrap().number.to_string())
            .collect();
        assert_eq!(
            picks,
            [
                "+15125550001",
                "+15125550002",
                "+15125550001",
                "+15125550002"
            ]
        );
        // Both 512 numbers reached 2 calls today: the next goes to the state level.
        assert_eq!(p.pick(&austin, t(5)).unwrap().level, MatchLevel::State);
        // The next day the limits reset.
        assert_eq!(
            p.pick(&austin, at("2026-12-08T16:00:00Z")).unwrap().level,
            MatchLevel::AreaCode
        );
    }

    #[test]
    fn a_number_nobody_answers_is_skipped_once_known() {
        let cfg = CallerIdConfig {
            min_attempts: 10,
            ..Default::default()
        };
        let mut p = CallerIdPool::new(cfg);
        let a = n("+15125550001");
        let b = n("+15125550002");
        p.add(a.clone(), NumberRegion::of_nanp(&a), 1000).unwrap();
        p.add(b.clone(), NumberRegion::of_nanp(&b), 1000).unwrap();
        for i in 0..60 {
            p.record_result(&a, i % 2 == 0); // 50%
            p.record_result(&b, false); // flagged: 0%
        }
        assert!(p.answer_rate(p.numbers().next().unwrap()) > Decimal::new(4, 1));
        let austin = NumberRegion::of_nanp(&n("+15125559999"));
        let t0 = at("2026-12-07T16:00:00Z");
        for i in 0..5 {
            let pick = p.pick(&austin, t0 + chrono::Duration::minutes(i)).unwrap();
            assert_eq!(pick.number, a, "the 0% number is skipped");
        }
    }

    #[test]
    fn india_matches_by_circle_and_limits_validate() {
        let mut p = CallerIdPool::new(CallerIdConfig {
            allow_any: false,
            ..Default::default()
        });
        p.add(n("+918012345678"), NumberRegion::circle("Karnataka"), 5)
            .unwrap();
        let pick = p
            .pick(
                &NumberRegion::circle("Karnataka"),
                at("2026-12-07T06:00:00Z"),
            )
            .unwrap();
        assert_eq!(pick.level, MatchLevel::Circle);
        assert!(p
            .pick(&NumberRegion::circle("Kerala"), at("2026-12-07T06:00:00Z"))
            .is_none());
        let e = p
            .add(n("+918012345679"), NumberRegion::default(), 0)
            .unwrap_err();
        assert_eq!(e.field, "daily_limit");
    }
}
