//! The deterministic, explainable scoring engine.
//!
//! ```text
//! score = price × geo × time × duration
//! ```
//!
//! * **geo**: an operator weight for where the call comes from: the buyer's own weight
//!   for the caller's area code, else for the call's state, else the global area-code
//!   weight, else the global state weight, else 1.
//! * **time**: the weight of the local hour of the call in the buyer's zone (default 1).
//! * **duration**: the smoothed probability that a call from this area at this
//!   hour-of-week reaches the buyer's minimum billable duration, from
//!   [`DurationHistory`]. Each level shrinks towards the level above it with strength
//!   `k` (`prior_strength`):
//!   `p_all = (b_all + k·prior)/(n_all + k)`, `p_state = (b_sh + k·p_all)/(n_sh + k)`,
//!   `p = (b_ah + k·p_state)/(n_ah + k)` where `sh` is state × hour-of-week and `ah`
//!   area code × hour-of-week. A new buyer scores `prior`, the same as every other
//!   new buyer: a fair chance until evidence accumulates.
//!
//! All arithmetic is `Decimal` (no floats), each factor is rounded to 10 places and the
//! score to 6, so the same inputs give the same scores bit for bit on every platform.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Timelike;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::buyer::{Bid, BuyerProfile};
use crate::call::CallContext;
use crate::error::{StateError, ValidationError};
use crate::geo::UsState;
use crate::ids::BuyerId;
use crate::money::Money;
use crate::state::{
    hour_of_week, AreaKey, DurationHistory, HistoryKey, HistoryStats, MemoryDurationHistory,
};

/// Where a geography weight applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "level", content = "value", rename_all = "snake_case")]
pub enum GeoKey {
    /// A state.
    State(UsState),
    /// A caller area code.
    AreaCode(u16),
}

/// Where a geography factor came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "source", content = "key", rename_all = "snake_case")]
pub enum GeoBasis {
    /// No weight applies: factor 1.
    Default,
    /// The buyer's own weight for this key.
    Buyer(GeoKey),
    /// The global weight for this key.
    Global(GeoKey),
}

impl fmt::Display for GeoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeoKey::State(s) => write!(f, "state:{s}"),
            GeoKey::AreaCode(a) => write!(f, "ac:{a}"),
        }
    }
}

impl fmt::Display for GeoBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeoBasis::Default => f.write_str("default"),
            GeoBasis::Buyer(k) => write!(f, "buyer:{k}"),
            GeoBasis::Global(k) => write!(f, "global:{k}"),
        }
    }
}

/// Tunables of the scoring engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScoringConfig {
    /// Prior probability that a call reaches the minimum duration (default 0.5).
    pub prior: Decimal,
    /// How many calls of evidence the prior is worth at each level (default 10).
    pub prior_strength: Decimal,
    /// Global geography weights.
    pub geo_weights: BTreeMap<GeoKey, Decimal>,
    /// Per-buyer geography weights (take precedence over the global ones).
    pub buyer_geo_weights: BTreeMap<BuyerId, BTreeMap<GeoKey, Decimal>>,
    /// Weight by local hour (0–23) in the buyer's zone; missing hours weigh 1.
    pub hour_weights: BTreeMap<u8, Decimal>,
    /// Whether to use duration history at all (false: the duration factor is 1).
    pub use_duration_history: bool,
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            prior: Decimal::new(5, 1),
            prior_strength: Decimal::from(10),
            geo_weights: BTreeMap::new(),
            buyer_geo_weights: BTreeMap::new(),
            hour_weights: BTreeMap::new(),
            use_duration_history: true,
        }
    }
}

impl ScoringConfig {
    /// Checks ranges: prior in [0, 1], strength > 0, weights ≥ 0, hours < 24.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.prior < Decimal::ZERO || self.prior > Decimal::ONE {
            return Err(ValidationError::new(
                "prior",
                self.prior.to_string(),
                "must be between 0 and 1",
            ));
        }
        if self.prior_strength <= Decimal::ZERO {
            return Err(ValidationError::new(
                "prior_strength",
                self.prior_strength.to_string(),
                "must be positive",
            ));
        }
        let all_geo = self
            .geo_weights
            .values()
            .chain(self.buyer_geo_weights.values().flat_map(|m| m.values()));
        if let Some(w) = all_geo
            .chain(self.hour_weights.values())
            .find(|w| **w < Decimal::ZERO)
        {
            return Err(ValidationError::new(
                "weight",
                w.to_string(),
                "weights cannot be negative",
            ));
        }
        if let Some(h) = self.hour_weights.keys().find(|h| **h > 23) {
            return Err(ValidationError::new(
                "hour_weights",
                h.to_string(),
                "hours are 0 to 23",
            ));
        }
        Ok(())
    }
}

/// Which history a duration factor rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DurationEvidence {
    /// The buyer's calls overall.
    pub overall: HistoryStats,
    /// Calls from the call's state in this hour-of-week (when the state is known).
    pub state_hour: Option<HistoryStats>,
    /// Calls from the caller's area code in this hour-of-week (when known).
    pub area_code_hour: Option<HistoryStats>,
    /// The hour-of-week bucket in the buyer's zone (0 = Monday 00h).
    pub hour_of_week: u8,
}

/// A score and how it was reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScoreBreakdown {
    /// The bid's price.
    pub price: Money,
    /// The geography factor.
    pub geo_factor: Decimal,
    /// Where the geography factor came from (displays as `buyer:state:TX`,
    /// `global:ac:512`, `default`).
    pub geo_basis: GeoBasis,
    /// The time-of-day factor.
    pub time_factor: Decimal,
    /// The local hour (buyer's zone) the time factor is for.
    pub local_hour: u8,
    /// The duration factor (smoothed probability of a billable call).
    pub duration_factor: Decimal,
    /// The history behind it.
    pub duration_evidence: DurationEvidence,
    /// `price × geo × time × duration`, rounded to 6 places (trailing zeros dropped).
    pub score: Decimal,
}

impl fmt::Display for ScoreBreakdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} × geo {} ({}) × time {} (h{:02}) × duration {}",
            self.score,
            self.price,
            self.geo_factor,
            self.geo_basis,
            self.time_factor,
            self.local_hour,
            self.duration_factor
        )
    }
}

/// Scores bids. Implementations must be deterministic: the same inputs and state give
/// the same breakdowns.
#[async_trait]
pub trait Scorer: Send + Sync + fmt::Debug {
    /// Scores each `(profile, bid)` pair for `call`, in order.
    async fn score(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
    ) -> Result<Vec<ScoreBreakdown>, StateError>;
}

/// The built-in [`Scorer`] (see the module docs for the formula).
#[derive(Debug, Clone)]
pub struct ScoringEngine {
    history: Arc<dyn DurationHistory>,
    config: ScoringConfig,
}

impl Default for ScoringEngine {
    fn default() -> Self {
        ScoringEngine {
            history: Arc::new(MemoryDurationHistory::new()),
            config: ScoringConfig::default(),
        }
    }
}

const FACTOR_DP: u32 = 10;
const SCORE_DP: u32 = 6;

fn smooth(stats: HistoryStats, k: Decimal, prior: Decimal) -> Decimal {
    if stats.calls == 0 {
        // (0 + k·prior) / (0 + k) is exactly `prior`: skip the division.
        return prior;
    }
    let n = Decimal::from(stats.calls);
    let b = Decimal::from(stats.billable);
    // n + k > 0 because k > 0 (validated), and both are far from overflow.
    ((b + k * prior) / (n + k)).round_dp(FACTOR_DP)
}

impl ScoringEngine {
    /// An engine over `history` with `config` (validated).
    pub fn new(
        history: Arc<dyn DurationHistory>,
        config: ScoringConfig,
    ) -> Result<Self, ValidationError> {
        config.validate()?;
        Ok(ScoringEngine { history, config })
    }

    /// The configuration.
    pub fn config(&self) -> &ScoringConfig {
        &self.config
    }

    /// The history the engine reads.
    pub fn history(&self) -> &Arc<dyn DurationHistory> {
        &self.history
    }

    fn geo(&self, buyer: &BuyerId, facts: &CallFacts) -> (Decimal, GeoBasis) {
        let ac = facts.area_code.map(GeoKey::AreaCode);
        let st = facts.state.map(GeoKey::State);
        if let Some(m) = self.config.buyer_geo_weights.get(buyer) {
            for k in [ac, st].into_iter().flatten() {
                if let Some(w) = m.get(&k) {
                    return (*w, GeoBasis::Buyer(k));
                }
            }
        }
        for k in [ac, st].into_iter().flatten() {
            if let Some(w) = self.config.geo_weights.get(&k) {
                return (*w, GeoBasis::Global(k));
            }
        }
        (Decimal::ONE, GeoBasis::Default)
    }

    /// Scores one bid given the call's facts and the history counts already fetched.
    fn combine(
        &self,
        facts: &CallFacts,
        local_hour: u8,
        profile: &BuyerProfile,
        bid: &Bid,
        ev: DurationEvidence,
    ) -> ScoreBreakdown {
        let (geo_factor, geo_basis) = self.geo(&profile.id, facts);
        let (time_factor, time_weighted) = match self.config.hour_weights.get(&local_hour) {
            Some(w) => (*w, true),
            None => (Decimal::ONE, false),
        };
        let duration_factor = if self.config.use_duration_history {
            let k = self.config.prior_strength;
            let mut p = smooth(ev.overall, k, self.config.prior);
            if let Some(s) = ev.state_hour {
                p = smooth(s, k, p);
            }
            if let Some(a) = ev.area_code_hour {
                p = smooth(a, k, p);
            }
            p
        } else {
            Decimal::ONE
        };
        // Factors that are the default 1 (no weight configured, history off) are skipped
        // without comparing decimals: multiplying by 1 is exact, so skipping changes nothing.
        let mut score = Some(bid.price.amount);
        let applies = [
            !matches!(geo_basis, GeoBasis::Default),
            time_weighted,
            self.config.use_duration_history,
        ];
        for (f, on) in [geo_factor, time_factor, duration_factor]
            .into_iter()
            .zip(applies)
        {
            if on {
                score = score.and_then(|v| v.checked_mul(f));
            }
        }
        let score = score
            .map(|v| v.round_dp(SCORE_DP).normalize())
            .unwrap_or(Decimal::MAX);
        ScoreBreakdown {
            price: bid.price,
            geo_factor,
            geo_basis,
            time_factor,
            local_hour,
            duration_factor,
            duration_evidence: ev,
            score,
        }
    }
}

/// What the scorer needs of a call, computed once per call.
struct CallFacts {
    state: Option<UsState>,
    area_code: Option<u16>,
    /// Per time zone seen: (zone, hour of week, local hour).
    zones: Vec<(chrono_tz::Tz, u8, u8)>,
}

impl CallFacts {
    fn new(call: &CallContext) -> Self {
        CallFacts {
            state: call.state(),
            area_code: call.caller.as_ref().and_then(|c| c.area_code()),
            zones: Vec::with_capacity(2),
        }
    }

    fn hours(&mut self, call: &CallContext, tz: chrono_tz::Tz) -> (u8, u8) {
        if let Some((_, how, h)) = self.zones.iter().find(|(z, _, _)| *z == tz) {
            return (*how, *h);
        }
        let how = hour_of_week(call.received_at, tz);
        // hour() < 24 always fits in a u8.
        let h = call.received_at.with_timezone(&tz).hour() as u8;
        self.zones.push((tz, how, h));
        (how, h)
    }
}

fn keys_for(profile: &BuyerProfile, facts: &CallFacts, how: u8) -> [Option<HistoryKey>; 3] {
    let k = |area| HistoryKey {
        buyer: profile.id.clone(),
        area,
        hour_of_week: Some(how),
    };
    let overall = HistoryKey {
        buyer: profile.id.clone(),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    let st = facts.state.map(|s| k(AreaKey::State(s)));
    let ac = facts.area_code.map(|a| k(AreaKey::AreaCode(a)));
    [Some(overall), st, ac]
}

#[async_trait]
impl Scorer for ScoringEngine {
    async fn score(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
    ) -> Result<Vec<ScoreBreakdown>, StateError> {
        let mut facts = CallFacts::new(call);
        let mut shapes = Vec::with_capacity(bids.len());
        let mut keys = Vec::with_capacity(if self.config.use_duration_history {
            bids.len() * 3
        } else {
            0
        });
        for (profile, _) in bids {
            let (how, local_hour) = facts.hours(call, profile.time_zone);
            let mut present = [false; 3];
            if self.config.use_duration_history {
                let ks = keys_for(profile, &facts, how);
                present = [ks[0].is_some(), ks[1].is_some(), ks[2].is_some()];
                keys.extend(ks.into_iter().flatten());
            }
            shapes.push((how, local_hour, present));
        }
        let stats = if self.config.use_duration_history && !keys.is_empty() {
            self.history.stats(&keys).await?
        } else {
            vec![HistoryStats::default(); keys.len()]
        };
        if stats.len() != keys.len() {
            return Err(StateError::Corrupt {
                store: "duration history",
                message: format!("asked for {} keys, got {} answers", keys.len(), stats.len()),
            });
        }
        let mut it = stats.into_iter();
        let mut out = Vec::with_capacity(bids.len());
        for ((profile, bid), (how, local_hour, present)) in bids.iter().zip(shapes) {
            let mut next = |p: bool| if p { it.next() } else { None };
            let overall = next(present[0]).unwrap_or_default();
            let state_hour = next(present[1]);
            let area_code_hour = next(present[2]);
            let ev = DurationEvidence {
                overall,
                state_hour,
                area_code_hour,
                hour_of_week: how,
            };
            out.push(self.combine(&facts, local_hour, profile, bid, ev));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CallId, ServiceType};
    use crate::state::history_keys;
    use chrono::{TimeZone, Utc};
    use rust_decimal_macros::dec;

    fn call() -> CallContext {
        CallContext::new(
            CallId::new("CA1").unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            // Saturday 2026-11-21 15:00 UTC = 09:00 in Chicago.
            Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap(),
        )
        .with_caller("+15125550123".parse().unwrap())
    }

    fn profile(id: &str) -> BuyerProfile {
        BuyerProfile::new(BuyerId::new(id).unwrap()).with_time_zone(chrono_tz::America::Chicago)
    }

    #[tokio::test]
    async fn new_buyer_scores_the_prior() {
        let e = ScoringEngine::default();
        let p = profile("a");
        let bid = Bid::new(p.id.clone(), Money::usd(dec!(40)));
        let s = &e.score(&call(), &[(&p, &bid)]).await.unwrap()[0];
        assert_eq!(s.duration_factor, dec!(0.5));
        assert_eq!(s.score, dec!(20));
        assert_eq!(s.local_hour, 9);
        assert_eq!(s.duration_evidence.hour_of_week, 5 * 24 + 9);
        assert_eq!(s.geo_basis.to_string(), "default");
    }

    #[tokio::test]
    async fn history_moves_the_duration_factor() {
        let h = Arc::new(MemoryDurationHistory::new());
        let e = ScoringEngine::new(h.clone(), ScoringConfig::default()).unwrap();
        let good = profile("good");
        let bad = profile("bad");
        let c = call();
        for _ in 0..30 {
            h.record(&history_keys(&good.id, &c, good.time_zone), true)
                .await
                .unwrap();
            h.record(&history_keys(&bad.id, &c, bad.time_zone), false)
                .await
                .unwrap();
        }
        let b1 = Bid::new(good.id.clone(), Money::usd(dec!(30)));
        let b2 = Bid::new(bad.id.clone(), Money::usd(dec!(40)));
        let s = e.score(&c, &[(&good, &b1), (&bad, &b2)]).await.unwrap();
        assert!(s[0].duration_factor > dec!(0.9), "{}", s[0]);
        assert!(s[1].duration_factor < dec!(0.1), "{}", s[1]);
        assert!(
            s[0].score > s[1].score,
            "the cheaper buyer whose calls last wins"
        );
        assert_eq!(
            s[0].duration_evidence.area_code_hour,
            Some(HistoryStats {
                calls: 30,
                billable: 30
            })
        );
        // p_all = (30+5)/40 = 0.875; p_state = (30 + 10*0.875)/40 = 0.96875; p = (30 + 9.6875)/40.
        assert_eq!(s[0].duration_factor, dec!(0.9921875));
    }

    #[tokio::test]
    async fn geo_and_time_weights() {
        let mut cfg = ScoringConfig {
            use_duration_history: false,
            ..Default::default()
        };
        cfg.geo_weights
            .insert(GeoKey::State(UsState::parse("TX").unwrap()), dec!(1.2));
        cfg.buyer_geo_weights
            .entry(BuyerId::new("b").unwrap())
            .or_default()
            .insert(GeoKey::AreaCode(512), dec!(0.8));
        cfg.hour_weights.insert(9, dec!(1.5));
        let e = ScoringEngine::new(Arc::new(MemoryDurationHistory::new()), cfg).unwrap();
        let a = profile("a");
        let b = profile("b");
        let ba = Bid::new(a.id.clone(), Money::usd(dec!(10)));
        let bb = Bid::new(b.id.clone(), Money::usd(dec!(10)));
        let s = e.score(&call(), &[(&a, &ba), (&b, &bb)]).await.unwrap();
        assert_eq!(
            (s[0].geo_factor, s[0].geo_basis.to_string().as_str()),
            (dec!(1.2), "global:state:TX")
        );
        assert_eq!(s[0].score, dec!(18));
        assert_eq!(
            (s[1].geo_factor, s[1].geo_basis.to_string().as_str()),
            (dec!(0.8), "buyer:ac:512")
        );
        assert_eq!(s[1].score, dec!(12));
    }

    #[test]
    fn config_validation() {
        let c = ScoringConfig {
            prior: dec!(1.5),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "prior");
        let mut c = ScoringConfig::default();
        c.hour_weights.insert(24, Decimal::ONE);
        assert_eq!(c.validate().unwrap_err().field, "hour_weights");
        let c = ScoringConfig {
            prior_strength: Decimal::ZERO,
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
