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
use crate::reuse::Reuse;
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

impl std::str::FromStr for GeoKey {
    type Err = ValidationError;

    /// Parses what [`GeoKey`]'s `Display` writes: `state:TX` or `ac:512`.
    fn from_str(s: &str) -> Result<Self, ValidationError> {
        let bad = |reason: &str| ValidationError::new("geo_key", s, reason);
        match s.split_once(':') {
            Some(("state", st)) => Ok(GeoKey::State(UsState::parse(st)?)),
            Some(("ac", ac)) => ac
                .parse::<u16>()
                .ok()
                .filter(|a| (200..=999).contains(a))
                .map(GeoKey::AreaCode)
                .ok_or_else(|| bad("an area code is three digits, 200 to 999")),
            _ => Err(bad("expected state:XX or ac:NNN")),
        }
    }
}

/// Serde for a map keyed by [`GeoKey`], as a JSON-friendly map keyed by its display form.
mod geo_map {
    use std::collections::BTreeMap;

    use rust_decimal::Decimal;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    use super::GeoKey;

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<GeoKey, Decimal>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<String, &Decimal> = m.iter().map(|(k, v)| (k.to_string(), v)).collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<GeoKey, Decimal>, D::Error> {
        let named = BTreeMap::<String, Decimal>::deserialize(d)?;
        named
            .into_iter()
            .map(|(k, v)| {
                k.parse::<GeoKey>()
                    .map(|k| (k, v))
                    .map_err(D::Error::custom)
            })
            .collect()
    }
}

/// Serde for the per-buyer geography weights (see [`geo_map`]).
mod buyer_geo_map {
    use std::collections::BTreeMap;

    use rust_decimal::Decimal;
    use serde::{de::Error, Deserialize, Deserializer, Serialize, Serializer};

    use super::GeoKey;
    use crate::ids::BuyerId;

    type Map = BTreeMap<BuyerId, BTreeMap<GeoKey, Decimal>>;

    pub fn serialize<S: Serializer>(m: &Map, s: S) -> Result<S::Ok, S::Error> {
        let named: BTreeMap<&str, BTreeMap<String, &Decimal>> = m
            .iter()
            .map(|(b, w)| {
                (
                    b.as_str(),
                    w.iter().map(|(k, v)| (k.to_string(), v)).collect(),
                )
            })
            .collect();
        named.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Map, D::Error> {
        let named = BTreeMap::<String, BTreeMap<String, Decimal>>::deserialize(d)?;
        let mut out = Map::new();
        for (b, w) in named {
            let buyer = BuyerId::new(&b).map_err(D::Error::custom)?;
            let weights = w
                .into_iter()
                .map(|(k, v)| {
                    k.parse::<GeoKey>()
                        .map(|k| (k, v))
                        .map_err(D::Error::custom)
                })
                .collect::<Result<_, _>>()?;
            out.insert(buyer, weights);
        }
        Ok(out)
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
    /// Global geography weights (serialized as a map keyed `state:TX` / `ac:512`).
    #[serde(with = "geo_map")]
    pub geo_weights: BTreeMap<GeoKey, Decimal>,
    /// Per-buyer geography weights (take precedence over the global ones).
    #[serde(with = "buyer_geo_map")]
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

    /// The same breakdowns as [`Scorer::score`], written into `out` (cleared first), so
    /// that a caller scoring many auctions (the [`Auction`](crate::auction::Auction))
    /// can reuse one buffer. The default calls `score`.
    async fn score_into(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
        out: &mut Vec<ScoreBreakdown>,
    ) -> Result<(), StateError> {
        let scores = self.score(call, bids).await?;
        out.clear();
        out.extend(scores);
        Ok(())
    }

    /// The built-in engine's configuration, when this scorer is (or wraps) a
    /// [`ScoringEngine`]: logged with each auction so that a replay can re-run the
    /// scoring from the evidence in the breakdowns ([`ScoringEngine::rescore`]). The
    /// default, `None`, means a replay takes the logged scores as given.
    fn scoring_config(&self) -> Option<&ScoringConfig> {
        None
    }
}

/// The built-in [`Scorer`] (see the module docs for the formula).
#[derive(Debug, Clone)]
pub struct ScoringEngine {
    history: Arc<dyn DurationHistory>,
    config: ScoringConfig,
    buffers: Reuse<Buffers>,
}

impl Default for ScoringEngine {
    fn default() -> Self {
        ScoringEngine {
            history: Arc::new(MemoryDurationHistory::new()),
            config: ScoringConfig::default(),
            buffers: Reuse::default(),
        }
    }
}

/// One scoring batch's working vectors, kept between batches (emptied).
#[derive(Default)]
struct Buffers {
    /// The history keys of every bid: overall, then state × hour and area code × hour
    /// when the call's state and area code are known.
    keys: Vec<HistoryKey>,
    /// Their counts, in the same order.
    stats: Vec<HistoryStats>,
    /// Per bid: (hour of week, local hour) in the buyer's zone.
    hours: Vec<(u8, u8)>,
    /// Per time zone seen in this batch: (zone, hour of week, local hour).
    zones: Vec<(chrono_tz::Tz, u8, u8)>,
}

impl Buffers {
    fn clear(&mut self) {
        self.keys.clear();
        self.stats.clear();
        self.hours.clear();
        self.zones.clear();
    }
}

const FACTOR_DP: u32 = 10;
const SCORE_DP: u32 = 6;

#[inline]
fn smooth(stats: HistoryStats, k: Decimal, prior: Decimal) -> Decimal {
    if stats.calls == 0 {
        // (0 + k·prior) / (0 + k) is exactly `prior`: skip the division.
        return prior;
    }
    smooth_counts(stats, k, prior)
}

#[inline(never)]
fn smooth_counts(stats: HistoryStats, k: Decimal, prior: Decimal) -> Decimal {
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
        Ok(ScoringEngine {
            history,
            config,
            buffers: Reuse::default(),
        })
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
        if self.config.geo_weights.is_empty() && self.config.buyer_geo_weights.is_empty() {
            return (Decimal::ONE, GeoBasis::Default);
        }
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

    /// Recomputes the breakdown of `bid` for `call` from the evidence recorded in
    /// `logged` (its history counts), reading no store: what
    /// an auction replay uses to re-run scoring from an auction's logged
    /// inputs. With the same configuration the result equals `logged` bit for bit; with
    /// another one it is what that configuration would have scored.
    pub fn rescore(
        &self,
        call: &CallContext,
        profile: &BuyerProfile,
        bid: &Bid,
        logged: &ScoreBreakdown,
    ) -> ScoreBreakdown {
        let facts = CallFacts::new(call);
        let mut zones = Vec::new();
        let (how, local_hour) = CallFacts::hours(call, profile.time_zone, &mut zones);
        let mut ev = logged.duration_evidence;
        ev.hour_of_week = how;
        if !self.config.use_duration_history {
            ev = DurationEvidence {
                overall: HistoryStats::default(),
                state_hour: None,
                area_code_hour: None,
                hour_of_week: how,
            };
        }
        self.combine(&facts, local_hour, profile, bid, ev)
    }

    /// The smoothed probability of a billable call, level by level (module docs).
    fn duration_factor(&self, ev: &DurationEvidence) -> Decimal {
        let k = self.config.prior_strength;
        let mut p = smooth(ev.overall, k, self.config.prior);
        if let Some(s) = ev.state_hour {
            p = smooth(s, k, p);
        }
        if let Some(a) = ev.area_code_hour {
            p = smooth(a, k, p);
        }
        p
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
        let time_weight = match self.config.hour_weights.is_empty() {
            true => None,
            false => self.config.hour_weights.get(&local_hour).copied(),
        };
        let duration = self
            .config
            .use_duration_history
            .then(|| self.duration_factor(&ev));
        // Factors that are the default 1 (no weight configured, history off) are skipped
        // without comparing decimals: multiplying by 1 is exact, so skipping changes nothing.
        let geo = (!matches!(geo_basis, GeoBasis::Default)).then_some(geo_factor);
        let score = [geo, time_weight, duration]
            .into_iter()
            .flatten()
            .try_fold(bid.price.amount, |v, f| v.checked_mul(f))
            .map(round_score)
            .unwrap_or(Decimal::MAX);
        let (time_factor, duration_factor) = (
            time_weight.unwrap_or(Decimal::ONE),
            duration.unwrap_or(Decimal::ONE),
        );
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

/// A score as shown: rounded to [`SCORE_DP`] places, trailing zeros dropped.
fn round_score(v: Decimal) -> Decimal {
    v.round_dp(SCORE_DP).normalize()
}

/// What the scorer needs of a call, computed once per call.
struct CallFacts {
    state: Option<UsState>,
    area_code: Option<u16>,
}

impl CallFacts {
    fn new(call: &CallContext) -> Self {
        CallFacts {
            state: call.state(),
            area_code: call.caller.as_ref().and_then(|c| c.area_code()),
        }
    }

    /// (hour of week, local hour) of the call in `tz`, computed once per zone.
    fn hours(
        call: &CallContext,
        tz: chrono_tz::Tz,
        zones: &mut Vec<(chrono_tz::Tz, u8, u8)>,
    ) -> (u8, u8) {
        if let Some((_, how, h)) = zones.iter().find(|(z, _, _)| *z == tz) {
            return (*how, *h);
        }
        let how = hour_of_week(call.received_at, tz);
        // hour() < 24 always fits in a u8.
        let h = call.received_at.with_timezone(&tz).hour() as u8;
        zones.push((tz, how, h));
        (how, h)
    }

    /// Appends a bid's history keys: overall, then state × hour and area code × hour
    /// when known (the order [`CallFacts::evidence`] reads them back in).
    fn push_keys(&self, buyer: &BuyerId, how: u8, keys: &mut Vec<HistoryKey>) {
        keys.push(HistoryKey {
            buyer: buyer.clone(),
            area: AreaKey::Any,
            hour_of_week: None,
        });
        let areas = [
            self.state.map(AreaKey::State),
            self.area_code.map(AreaKey::AreaCode),
        ];
        for area in areas.into_iter().flatten() {
            keys.push(HistoryKey {
                buyer: buyer.clone(),
                area,
                hour_of_week: Some(how),
            });
        }
    }

    /// Reads one bid's counts back, in the order [`CallFacts::push_keys`] wrote them.
    fn evidence(
        &self,
        stats: &mut impl Iterator<Item = HistoryStats>,
        how: u8,
    ) -> DurationEvidence {
        let overall = stats.next().unwrap_or_default();
        let state_hour = self.state.and_then(|_| stats.next());
        let area_code_hour = self.area_code.and_then(|_| stats.next());
        DurationEvidence {
            overall,
            state_hour,
            area_code_hour,
            hour_of_week: how,
        }
    }
}

impl ScoringEngine {
    /// One batch with its working vectors (see [`Scorer::score_into`]).
    async fn score_with(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
        buf: &mut Buffers,
        out: &mut Vec<ScoreBreakdown>,
    ) -> Result<(), StateError> {
        out.clear();
        let facts = CallFacts::new(call);
        let use_history = self.config.use_duration_history;
        buf.hours.reserve(bids.len());
        if use_history {
            buf.keys.reserve(bids.len() * 3);
        }
        for (profile, _) in bids {
            let hours = CallFacts::hours(call, profile.time_zone, &mut buf.zones);
            buf.hours.push(hours);
            if use_history {
                facts.push_keys(&profile.id, hours.0, &mut buf.keys);
            }
        }
        if !buf.keys.is_empty() {
            self.history.stats_into(&buf.keys, &mut buf.stats).await?;
        }
        if buf.stats.len() != buf.keys.len() {
            return Err(StateError::Corrupt {
                store: "duration history",
                message: format!(
                    "asked for {} keys, got {} answers",
                    buf.keys.len(),
                    buf.stats.len()
                ),
            });
        }
        let mut stats = buf.stats.iter().copied();
        out.reserve(bids.len());
        for ((profile, bid), &(how, local_hour)) in bids.iter().zip(&buf.hours) {
            // Without history there are no keys and no counts: the evidence is empty.
            let ev = facts.evidence(&mut stats, how);
            out.push(self.combine(&facts, local_hour, profile, bid, ev));
        }
        Ok(())
    }
}

#[async_trait]
impl Scorer for ScoringEngine {
    async fn score(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
    ) -> Result<Vec<ScoreBreakdown>, StateError> {
        let mut out = Vec::with_capacity(bids.len());
        self.score_into(call, bids, &mut out).await?;
        Ok(out)
    }

    fn scoring_config(&self) -> Option<&ScoringConfig> {
        Some(&self.config)
    }

    async fn score_into(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
        out: &mut Vec<ScoreBreakdown>,
    ) -> Result<(), StateError> {
        let mut buf = self.buffers.take();
        let scored = self.score_with(call, bids, &mut buf, out).await;
        buf.clear();
        self.buffers.give(buf);
        scored
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

    #[tokio::test]
    async fn rescore_from_the_logged_evidence_is_the_same_breakdown() {
        let h = Arc::new(MemoryDurationHistory::new());
        let mut cfg = ScoringConfig::default();
        cfg.hour_weights.insert(9, dec!(1.25));
        let e = ScoringEngine::new(h.clone(), cfg).unwrap();
        let p = profile("a");
        let c = call();
        for billable in [true, true, false] {
            h.record(&history_keys(&p.id, &c, p.time_zone), billable)
                .await
                .unwrap();
        }
        let bid = Bid::new(p.id.clone(), Money::usd(dec!(33.30)));
        let s = e.score(&c, &[(&p, &bid)]).await.unwrap().remove(0);
        // No store read: an engine over an empty history gives the same breakdown.
        let blank =
            ScoringEngine::new(Arc::new(MemoryDurationHistory::new()), e.config().clone()).unwrap();
        let again = blank.rescore(&c, &p, &bid, &s);
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&s).unwrap()
        );
        // Another configuration scores the same evidence differently.
        let other = ScoringEngine::new(
            Arc::new(MemoryDurationHistory::new()),
            ScoringConfig::default(),
        )
        .unwrap()
        .rescore(&c, &p, &bid, &s);
        assert_eq!(other.duration_factor, s.duration_factor);
        assert_eq!(other.time_factor, Decimal::ONE);
        assert!(other.score < s.score);
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
