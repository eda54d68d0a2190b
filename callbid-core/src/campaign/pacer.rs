//! Pacing: how many calls to launch now.
//!
//! [`Pacer::decide`] takes the campaign's situation (free agents, calls ringing, contacts
//! due) and answers how many calls to start, as the minimum of:
//! 1. **agents**: progressive mode launches one call per free agent not already covered
//!    by a ringing call; predictive mode launches `free ÷ p̂ − ringing`, where `p̂` is the
//!    measured live-answer (completion) rate, smoothed towards a prior, and capped at
//!    `max_lines_per_agent`;
//! 2. **the abandon ceiling**: a call answered by a person with no agent within
//!    [`ABANDON_AFTER`] (2 s) is abandoned (it hears the recorded message and counts).
//!    With `A` live answers and `a` abandons in the trailing 30 days, `f` free agents and
//!    `r` calls ringing, launching `n` more calls can at worst (every one answered live)
//!    add `r + n − f` abandons and `r + n` answers. So `n ≤ (t·A − a + f) ÷ (1 − t) − r`
//!    keeps the trailing rate at or below `t` (the target, 3% by default, the FTC
//!    Telemarketing Sales Rule's safe harbor, minus a safety margin) **whatever the
//!    answers turn out to be**;
//! 3. **completion pacing**: the campaign's calls-per-minute ceiling, lowered by a factor
//!    while the completion rate is below a threshold (the seed's example: 60 calls/min,
//!    45 below 70% completion);
//! 4. **the provider's rate limit**, a sliding [`RateWindow`] (Exotel: 200 requests/min; Twilio:
//!    calls per second per account, 1 by default);
//! 5. the contacts due now (the caller checks each one's calling window and suppression at
//!    launch).
//!
//! Everything runs on the clock it is given, so the campaign simulator replays it in
//! virtual time.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// A live answer with no agent on the line within this long is abandoned (the TSR's
/// two-second rule).
pub const ABANDON_AFTER: StdDuration = StdDuration::from_secs(2);

/// The abandon ledger's window: 30 days.
pub const ABANDON_WINDOW_DAYS: i64 = 30;

/// The provider's rate limit as a sliding window on a caller-supplied clock: at most
/// `rate` requests in any window of length `period` (half-open). Stricter than a token
/// bucket of the same rate, which lets up to `2 × rate − 1` through in one window after an
/// idle spell; bursts of up to `rate` at once are still allowed.
///
/// Written here rather than taken from a crate (`governor`) because pacing runs on
/// virtual time in the simulator and on the store's clock in the server: the clock must
/// be a parameter of every call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    rate: u32,
    period_ms: i64,
    sent: VecDeque<DateTime<Utc>>,
}

impl RateWindow {
    /// `rate` per `period`. Errors (field `rate_limit`) on a zero rate or period.
    pub fn new(rate: u32, period: StdDuration) -> Result<Self, ValidationError> {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX);
        if rate == 0 || period_ms == 0 {
            return Err(ValidationError::new(
                "rate_limit",
                format!("{rate}/{period:?}"),
                "rate and period must be positive",
            ));
        }
        Ok(RateWindow {
            rate,
            period_ms,
            sent: VecDeque::new(),
        })
    }

    /// Exotel's voice API limit: 200 requests per minute (then HTTP 429).
    pub fn exotel() -> Self {
        RateWindow {
            rate: 200,
            period_ms: 60_000,
            sent: VecDeque::new(),
        }
    }

    /// Twilio's outbound calls per second (`cps`; 1 by default per account).
    pub fn twilio(cps: u32) -> Result<Self, ValidationError> {
        Self::new(cps, StdDuration::from_secs(1))
    }

    fn in_window(&self, now: DateTime<Utc>) -> usize {
        let from = now - Duration::milliseconds(self.period_ms);
        self.sent
            .iter()
            .filter(|t| **t > from && **t <= now)
            .count()
    }

    /// How many requests may go at `now` (without taking them), at most `cap`.
    pub fn available(&self, now: DateTime<Utc>, cap: u32) -> u32 {
        let free = (self.rate as usize).saturating_sub(self.in_window(now));
        u32::try_from(free).unwrap_or(u32::MAX).min(cap)
    }

    /// Takes one request at `now` if allowed.
    pub fn try_take(&mut self, now: DateTime<Utc>) -> bool {
        let from = now - Duration::milliseconds(self.period_ms);
        while self.sent.front().is_some_and(|t| *t <= from) {
            self.sent.pop_front();
        }
        if self.in_window(now) >= self.rate as usize {
            return false;
        }
        self.sent.push_back(now);
        true
    }
}

/// Live answers and abandons over the trailing 30 days, in hourly buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbandonLedger {
    hours: BTreeMap<i64, (u64, u64)>,
}

impl AbandonLedger {
    /// Records a call answered by a person; `abandoned` when no agent took it in time.
    pub fn record(&mut self, at: DateTime<Utc>, abandoned: bool) {
        let e = self
            .hours
            .entry(at.timestamp().div_euclid(3600))
            .or_insert((0, 0));
        e.0 += 1;
        if abandoned {
            e.1 += 1;
        }
    }

    /// `(live answers, abandons)` in the 30 days before `now`.
    pub fn counts(&self, now: DateTime<Utc>) -> (u64, u64) {
        let hi = now.timestamp().div_euclid(3600);
        let lo = hi - ABANDON_WINDOW_DAYS * 24;
        self.hours
            .range(lo + 1..=hi)
            .fold((0, 0), |(a, b), (_, (x, y))| (a + x, b + y))
    }

    /// The abandon rate over the trailing 30 days (0 with no answers).
    pub fn rate(&self, now: DateTime<Utc>) -> Decimal {
        let (answered, abandoned) = self.counts(now);
        if answered == 0 {
            Decimal::ZERO
        } else {
            Decimal::from(abandoned) / Decimal::from(answered)
        }
    }

    /// Drops buckets older than the window.
    pub fn prune(&mut self, now: DateTime<Utc>) {
        let lo = now.timestamp().div_euclid(3600) - ABANDON_WINDOW_DAYS * 24;
        self.hours = self.hours.split_off(&(lo + 1));
    }
}

/// Progressive (one call per free agent) or predictive (over-dial by the answer rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacingMode {
    /// One call per free agent.
    Progressive,
    /// Free agents ÷ the live-answer rate, under the abandon ceiling.
    Predictive,
}

/// The seed's completion-based pacing: below `below` completion, the calls-per-minute
/// ceiling is multiplied by `factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionThrottle {
    /// Completion rate threshold (0.70).
    pub below: Decimal,
    /// Multiplier on the ceiling under it (0.75: 60 → 45 calls/min).
    pub factor: Decimal,
}

/// A pacer's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacerConfig {
    /// Progressive or predictive.
    pub mode: PacingMode,
    /// The highest abandon rate allowed over 30 days (0.03).
    pub abandon_target: Decimal,
    /// Subtracted from the target when pacing (0.005), for answers still unreported.
    pub abandon_margin: Decimal,
    /// Calls per minute at most (`None`: no campaign ceiling).
    pub max_calls_per_minute: Option<u32>,
    /// Completion pacing on that ceiling.
    pub completion_throttle: Option<CompletionThrottle>,
    /// At most this many lines per free agent in predictive mode (3).
    pub max_lines_per_agent: Decimal,
    /// Prior live-answer rate (0.3) and its weight in calls (30).
    pub prior_answer_rate: Decimal,
    /// Weight of the prior.
    pub prior_weight: Decimal,
    /// The completion rate is measured over the last this many ended calls (200).
    pub completion_sample: usize,
}

impl Default for PacerConfig {
    fn default() -> Self {
        PacerConfig {
            mode: PacingMode::Predictive,
            abandon_target: Decimal::new(3, 2),
            abandon_margin: Decimal::new(5, 3),
            max_calls_per_minute: None,
            completion_throttle: Some(CompletionThrottle {
                below: Decimal::new(70, 2),
                factor: Decimal::new(75, 2),
            }),
            max_lines_per_agent: Decimal::from(3),
            prior_answer_rate: Decimal::new(3, 1),
            prior_weight: Decimal::from(30),
            completion_sample: 200,
        }
    }
}

impl PacerConfig {
    /// Checks the settings; errors name the field.
    pub fn validate(&self) -> Result<(), ValidationError> {
        let unit = |field: &'static str, v: Decimal| {
            if v < Decimal::ZERO || v >= Decimal::ONE {
                Err(ValidationError::new(
                    field,
                    v.to_string(),
                    "must be in [0, 1)",
                ))
            } else {
                Ok(())
            }
        };
        unit("abandon_target", self.abandon_target)?;
        unit("abandon_margin", self.abandon_margin)?;
        if self.max_lines_per_agent < Decimal::ONE {
            return Err(ValidationError::new(
                "max_lines_per_agent",
                self.max_lines_per_agent.to_string(),
                "must be at least 1",
            ));
        }
        if self.prior_answer_rate <= Decimal::ZERO || self.prior_answer_rate > Decimal::ONE {
            return Err(ValidationError::new(
                "prior_answer_rate",
                self.prior_answer_rate.to_string(),
                "must be in (0, 1]",
            ));
        }
        Ok(())
    }
}

/// What the pacer sees when it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerInput {
    /// Now.
    pub now: DateTime<Utc>,
    /// Agents idle and ready now.
    pub free_agents: u32,
    /// Calls launched and not yet answered or ended.
    pub ringing: u32,
    /// Contacts that may be called now.
    pub due: u32,
}

/// The pacer's answer, with each limit for the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacingDecision {
    /// Calls to launch now.
    pub launch: u32,
    /// What the agents allow.
    pub by_agents: u32,
    /// What the abandon ceiling allows.
    pub by_abandon: u32,
    /// What the calls-per-minute ceiling allows.
    pub by_pace: u32,
    /// What the provider's bucket allows.
    pub by_provider: u32,
    /// The smoothed live-answer rate used.
    pub answer_rate: Decimal,
    /// The completion rate over the recent sample.
    pub completion_rate: Decimal,
    /// The trailing 30-day abandon rate.
    pub abandon_rate: Decimal,
}

/// A campaign's pacer. See the module docs.
#[derive(Debug, Clone)]
pub struct Pacer {
    config: PacerConfig,
    ledger: AbandonLedger,
    provider: RateWindow,
    recent: VecDeque<bool>,
    launches: VecDeque<DateTime<Utc>>,
}

impl Pacer {
    /// A pacer with `config`, limited by `provider`.
    pub fn new(config: PacerConfig, provider: RateWindow) -> Result<Self, ValidationError> {
        config.validate()?;
        Ok(Pacer {
            config,
            ledger: AbandonLedger::default(),
            provider,
            recent: VecDeque::new(),
            launches: VecDeque::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &PacerConfig {
        &self.config
    }

    /// The abandon ledger.
    pub fn ledger(&self) -> &AbandonLedger {
        &self.ledger
    }

    /// Restores a ledger (after a restart, from the store).
    pub fn with_ledger(mut self, ledger: AbandonLedger) -> Self {
        self.ledger = ledger;
        self
    }

    /// How many calls to launch now. Call [`Pacer::launched`] for each call placed.
    pub fn decide(&self, input: PacerInput) -> PacingDecision {
        let answer_rate = self.answer_rate();
        let by_agents = self.by_agents(input, answer_rate);
        let by_abandon = self.by_abandon(input);
        let by_pace = self.by_pace(input.now);
        let cap = by_agents.min(by_abandon).min(by_pace).min(input.due);
        let by_provider = self.provider.available(input.now, cap);
        PacingDecision {
            launch: cap.min(by_provider),
            by_agents,
            by_abandon,
            by_pace,
            by_provider,
            answer_rate,
            completion_rate: self.completion_rate(),
            abandon_rate: self.ledger.rate(input.now),
        }
    }

    /// Notes a call placed at `at` (takes a provider token). Returns false, and places
    /// nothing, when the provider's bucket is empty.
    pub fn launched(&mut self, at: DateTime<Utc>) -> bool {
        if !self.provider.try_take(at) {
            return false;
        }
        self.launches.push_back(at);
        while self
            .launches
            .front()
            .is_some_and(|t| *t <= at - Duration::minutes(1))
        {
            self.launches.pop_front();
        }
        true
    }

    /// Notes how a call ended: `live` when a person answered, `abandoned` when no agent
    /// took the live answer in time.
    pub fn ended(&mut self, at: DateTime<Utc>, live: bool, abandoned: bool) {
        if live {
            self.ledger.record(at, abandoned);
        }
        self.recent.push_back(live);
        while self.recent.len() > self.config.completion_sample.max(1) {
            self.recent.pop_front();
        }
    }

    /// Live answers ÷ ended calls, smoothed towards the prior.
    pub fn answer_rate(&self) -> Decimal {
        let live = self.recent.iter().filter(|l| **l).count();
        let w = self.config.prior_weight;
        let num = Decimal::from(live) + self.config.prior_answer_rate * w;
        let den = Decimal::from(self.recent.len()) + w;
        if den.is_zero() {
            self.config.prior_answer_rate
        } else {
            (num / den).round_dp(6).max(Decimal::new(1, 2))
        }
    }

    /// Live answers ÷ ended calls over the sample, unsmoothed (1 with no sample).
    pub fn completion_rate(&self) -> Decimal {
        if self.recent.is_empty() {
            return Decimal::ONE;
        }
        let live = self.recent.iter().filter(|l| **l).count();
        (Decimal::from(live) / Decimal::from(self.recent.len())).round_dp(6)
    }

    fn by_agents(&self, input: PacerInput, answer_rate: Decimal) -> u32 {
        let free = Decimal::from(input.free_agents);
        let ringing = Decimal::from(input.ringing);
        let lines = match self.config.mode {
            PacingMode::Progressive => free,
            PacingMode::Predictive => {
                (free / answer_rate).min(free * self.config.max_lines_per_agent)
            }
        };
        to_count((lines - ringing).floor())
    }

    fn by_abandon(&self, input: PacerInput) -> u32 {
        let t = (self.config.abandon_target - self.config.abandon_margin).max(Decimal::ZERO);
        let (answered, abandoned) = self.ledger.counts(input.now);
        let headroom = t * Decimal::from(answered) - Decimal::from(abandoned)
            + Decimal::from(input.free_agents);
        let n = headroom / (Decimal::ONE - t) - Decimal::from(input.ringing);
        to_count(n.floor())
    }

    fn by_pace(&self, now: DateTime<Utc>) -> u32 {
        let Some(max) = self.config.max_calls_per_minute else {
            return u32::MAX;
        };
        let mut ceiling = Decimal::from(max);
        if let Some(th) = self.config.completion_throttle {
            if !self.recent.is_empty() && self.completion_rate() < th.below {
                ceiling = (ceiling * th.factor).floor();
            }
        }
        let last_minute = self
            .launches
            .iter()
            .filter(|t| **t > now - Duration::minutes(1))
            .count();
        to_count(ceiling - Decimal::from(last_minute))
    }
}

fn to_count(d: Decimal) -> u32 {
    if d <= Decimal::ZERO {
        0
    } else {
        d.to_u32().unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        "2026-12-07T15:00:00Z".parse().unwrap()
    }

    fn input(free: u32, ringing: u32) -> PacerInput {
        PacerInput {
            now: t0(),
            free_agents: free,
            ringing,
            due: 1000,
        }
    }

    fn unlimited() -> RateWindow {
        RateWindow::new(1_000_000, StdDuration::from_secs(1)).unwrap()
    }

    #[test]
    fn progressive_dials_one_per_free_agent() {
        let cfg = PacerConfig {
            mode: PacingMode::Progressive,
            ..Default::default()
        };
        let p = Pacer::new(cfg, unlimited()).unwrap();
        assert_eq!(p.decide(input(5, 0)).launch, 5);
        assert_eq!(p.decide(input(5, 3)).launch, 2);
        assert_eq!(p.decide(input(0, 0)).launch, 0);
    }

    #[test]
    fn predictive_overdials_only_within_abandon_headroom() {
        let p = Pacer::new(PacerConfig::default(), unlimited()).unwrap();
        // No history: the abandon ceiling allows barely more than one per agent.
        let d = p.decide(input(10, 0));
        assert_eq!(d.by_abandon, 10);
        assert_eq!(d.launch, 10);
        // With 2,000 live answers and 10 abandons there is headroom to over-dial.
        let mut p = p;
        for i in 0..2000 {
            p.ended(t0() - Duration::hours(1), true, i < 10);
        }
        for _ in 0..4000 {
            p.ended(t0() - Duration::hours(1), false, false);
        }
        let d = p.decide(input(10, 0));
        assert!(d.by_abandon > 10 && d.by_abandon < 70, "{d:?}");
        assert!(d.launch > 10, "{d:?}");
    }

    #[test]
    fn completion_below_seventy_percent_drops_the_pace() {
        let cfg = PacerConfig {
            max_calls_per_minute: Some(60),
            ..Default::default()
        };
        let mut p = Pacer::new(cfg, unlimited()).unwrap();
        for i in 0..100 {
            p.ended(t0(), i % 10 < 8, false); // 80%
        }
        assert_eq!(p.decide(input(1000, 0)).by_pace, 60);
        for i in 0..200 {
            p.ended(t0(), i % 10 < 6, false); // 60%
        }
        assert_eq!(p.decide(input(1000, 0)).by_pace, 45);
    }

    #[test]
    fn exotel_bucket_allows_200_per_minute() {
        let mut b = RateWindow::exotel();
        let mut sent = Vec::new();
        let mut now = t0();
        while now < t0() + Duration::minutes(5) {
            if b.try_take(now) {
                sent.push(now);
            }
            now += Duration::milliseconds(50);
        }
        for (i, s) in sent.iter().enumerate() {
            let in_window = sent[i..]
                .iter()
                .take_while(|t| **t < *s + Duration::minutes(1))
                .count();
            assert!(in_window <= 200, "{in_window} in the minute from {s}");
        }
        assert!(sent.len() >= 999, "{}", sent.len());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cfg = PacerConfig {
            abandon_target: Decimal::ONE,
            ..Default::default()
        };
        assert_eq!(
            Pacer::new(cfg, unlimited()).unwrap_err().field,
            "abandon_target"
        );
        assert_eq!(
            RateWindow::new(0, StdDuration::from_secs(1))
                .unwrap_err()
                .field,
            "rate_limit"
        );
    }

    proptest! {
        /// Whatever the answers turn out to be, following the pacer keeps the trailing
        /// abandon rate at or below the target (once 100 calls were answered).
        #[test]
        fn abandon_ceiling_holds_for_any_answer_pattern(
            answers in proptest::collection::vec(any::<bool>(), 50..400),
            agents in 1u32..20,
        ) {
            let mut p = Pacer::new(PacerConfig::default(), unlimited()).unwrap();
            let mut answered = 0u64;
            let mut abandoned = 0u64;
            let mut it = answers.iter();
            let now = t0();
            'rounds: loop {
                let d = p.decide(PacerInput { now, free_agents: agents, ringing: 0, due: 1000 });
                let mut free = agents;
                for _ in 0..d.launch.max(1) {
                    let Some(live) = it.next() else { break 'rounds };
                    let ab = *live && free == 0;
                    if *live && free > 0 { free -= 1; }
                    p.ended(now, *live, ab);
                    if *live { answered += 1; }
                    if ab { abandoned += 1; }
                }
            }
            if answered >= 100 {
                prop_assert!(Decimal::from(abandoned) <= Decimal::new(3, 2) * Decimal::from(answered),
                    "{abandoned}/{answered}");
            }
        }
    }
}
