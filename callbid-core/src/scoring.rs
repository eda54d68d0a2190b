//! The deterministic, explainable scoring engine.
//!
//! ```text
//! score = price × geo × time × duration × quality × explore
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
//! * **quality** (optional, off by default: `use_quality`; factor 1 when off): the
//!   smoothed probability that a call from this area at this hour-of-week *converts*,
//!   from [`QualityHistory`] (fed by the buyer's conversion postbacks and by transcript
//!   phrase rules, one outcome per call, a postback overriding a transcript; see
//!   [`crate::state::quality`]). It is smoothed exactly like duration, level by level,
//!   towards `quality_prior` (default 0.5) with the same strength `k`:
//!   `q_all = (c_all + k·quality_prior)/(n_all + k)`, then state × hour, then area code ×
//!   hour, where `n` counts calls with a known outcome and `c` the converted ones. A
//!   buyer without outcomes scores exactly `quality_prior`, like every other new buyer.
//!   The breakdown shows the counts behind it and which signal they came from
//!   (`quality 0.62 (postback 14, transcript 3)`: the buyer's overall outcomes by signal).
//! * **explore** (optional, off by default: `exploration` = 0; factor 1 when off): a
//!   deterministic optimism bonus for buyers the engine knows little about,
//!   `explore = 1 + c·k/(n + k)` where `c` is `exploration`, `k` is `prior_strength` and
//!   `n` the buyer's overall duration-history count (every connected call it took). It is
//!   bounded (`1 ≤ explore ≤ 1 + c`), is exactly `1 + c` for a new buyer, and shrinks
//!   towards 1 as calls accumulate, so a buyer that never got a call is not locked out
//!   by one that did (the duration factor alone only exploits what it knows). With
//!   `c = (1 − prior)/prior` (1 for the default prior 0.5) a new buyer's
//!   `duration × explore` is exactly 1, the best a proven buyer can reach: optimism in
//!   the face of uncertainty; `tests/exploration_sim.rs` uses `c` = 2, enough for a
//!   buyer whose first few calls went badly to recover. No randomness: the same history
//!   gives the same bonus.
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
use crate::reuse::{recycle, Reuse};
use crate::state::{
    hour_of_week, AreaKey, DurationHistory, HistoryKey, HistoryKeyRef, HistoryStats,
    MemoryDurationHistory, MemoryQualityHistory, QualityHistory, QualityStats,
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
    /// Whether to use the quality history (default false: the quality factor is 1).
    #[serde(default)]
    pub use_quality: bool,
    /// Prior probability that a call converts (default 0.5).
    #[serde(default = "half")]
    pub quality_prior: Decimal,
    /// The exploration bonus's size `c` (default 0: off; 1 suits the default prior).
    #[serde(default)]
    pub exploration: Decimal,
}

fn half() -> Decimal {
    Decimal::new(5, 1)
}

fn one() -> Decimal {
    Decimal::ONE
}

fn is_one(d: &Decimal) -> bool {
    *d == Decimal::ONE
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
            use_quality: false,
            quality_prior: half(),
            exploration: Decimal::ZERO,
        }
    }
}

impl ScoringConfig {
    /// Checks ranges: priors in [0, 1], strength > 0, exploration in [0, 100],
    /// weights ≥ 0, hours < 24.
    pub fn validate(&self) -> Result<(), ValidationError> {
        for (field, p) in [("prior", self.prior), ("quality_prior", self.quality_prior)] {
            if p < Decimal::ZERO || p > Decimal::ONE {
                return Err(ValidationError::new(
                    field,
                    p.to_string(),
                    "must be between 0 and 1",
                ));
            }
        }
        if self.exploration < Decimal::ZERO || self.exploration > Decimal::ONE_HUNDRED {
            return Err(ValidationError::new(
                "exploration",
                self.exploration.to_string(),
                "must be between 0 and 100",
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

/// Which quality history a quality factor rests on (same buckets as
/// [`DurationEvidence`], same hour-of-week).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QualityEvidence {
    /// The buyer's outcomes overall (its `postback` / `transcript` counts are the
    /// breakdown's "which signal").
    pub overall: QualityStats,
    /// Outcomes of calls from the call's state in this hour-of-week (when known).
    pub state_hour: Option<QualityStats>,
    /// Outcomes of calls from the caller's area code in this hour-of-week (when known).
    pub area_code_hour: Option<QualityStats>,
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
    /// The quality factor (smoothed conversion probability; 1 when quality is off).
    /// Left out of the JSON when 1, so breakdowns logged before it parse and those
    /// scored without it serialize as before.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub quality_factor: Decimal,
    /// The quality history behind it (none when quality is off). Boxed: quality is
    /// off by default, and a breakdown without it stays small (it is kept in every
    /// scored buyer's record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_evidence: Option<Box<QualityEvidence>>,
    /// The exploration bonus (1 when exploration is off).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub explore_factor: Decimal,
    /// The observation count `n` the bonus was computed from (none when off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore_observations: Option<u64>,
    /// `price × geo × time × duration × quality × explore`, rounded to 6 places
    /// (trailing zeros dropped).
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
        )?;
        if let Some(q) = &self.quality_evidence {
            write!(
                f,
                " × quality {} (postback {}, transcript {})",
                self.quality_factor, q.overall.postback, q.overall.transcript
            )?;
        }
        if let Some(n) = self.explore_observations {
            write!(f, " × explore {} (n {n})", self.explore_factor)?;
        }
        Ok(())
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

    /// The same breakdowns as [`Scorer::score`], each written straight into its slot
    /// (`slots[i]` gets the breakdown of `bids[i]`), so that a caller keeping them in
    /// records (the [`Auction`](crate::auction::Auction)) moves none. On an error no
    /// slot is written. The default calls `score`.
    async fn score_in_place(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
        slots: &mut [&mut Option<ScoreBreakdown>],
    ) -> Result<(), StateError> {
        let scores = self.score(call, bids).await?;
        if scores.len() != slots.len() || bids.len() != slots.len() {
            return Err(StateError::Corrupt {
                store: "scorer",
                message: format!(
                    "{} scores for {} bids into {} slots",
                    scores.len(),
                    bids.len(),
                    slots.len()
                ),
            });
        }
        for (slot, s) in slots.iter_mut().zip(scores) {
            **slot = Some(s);
        }
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
    quality: Arc<dyn QualityHistory>,
    config: ScoringConfig,
    buffers: Reuse<Buffers>,
}

impl Default for ScoringEngine {
    fn default() -> Self {
        ScoringEngine {
            history: Arc::new(MemoryDurationHistory::new()),
            quality: Arc::new(MemoryQualityHistory::new()),
            config: ScoringConfig::default(),
            buffers: Reuse::default(),
        }
    }
}

/// One scoring batch's working vectors, kept between batches (emptied).
#[derive(Default)]
struct Buffers {
    /// The history keys of every bid: overall, then state × hour and area code × hour
    /// when the call's state and area code are known. Kept without their borrows of
    /// the buyer ids (see [`recycle`]): a batch uses it as `Vec<HistoryKeyRef>`.
    keys: Vec<KeySlot>,
    /// Their counts, in the same order.
    stats: Vec<HistoryStats>,
    /// Their quality counts, in the same order (when quality is on).
    quality: Vec<QualityStats>,
    /// Per bid: (hour of week, local hour) in the buyer's zone.
    hours: Vec<(u8, u8)>,
    /// Per time zone seen in this batch: (zone, hour of week, local hour).
    zones: Vec<(chrono_tz::Tz, u8, u8)>,
}

/// [`HistoryKeyRef`] without its lifetime (same size and alignment), so that the
/// batch's key vector can be kept between batches.
type KeySlot = (usize, AreaKey, Option<u8>);

// `recycle` keeps the allocation only when the layouts agree.
const _: () = assert!(
    std::mem::size_of::<KeySlot>() == std::mem::size_of::<HistoryKeyRef<'static>>()
        && std::mem::align_of::<KeySlot>() == std::mem::align_of::<HistoryKeyRef<'static>>()
);

impl Buffers {
    fn clear(&mut self) {
        self.keys.clear();
        self.stats.clear();
        self.quality.clear();
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
            quality: Arc::new(MemoryQualityHistory::new()),
            config,
            buffers: Reuse::default(),
        })
    }

    /// The same engine reading quality counts from `quality` (used when
    /// `use_quality` is on; the default is an empty in-memory history).
    pub fn with_quality_history(mut self, quality: Arc<dyn QualityHistory>) -> Self {
        self.quality = quality;
        self
    }

    /// The quality history the engine reads.
    pub fn quality_history(&self) -> &Arc<dyn QualityHistory> {
        &self.quality
    }

    /// Whether duration counts are fetched: for the duration factor or the bonus's `n`.
    fn wants_duration(&self) -> bool {
        let c = self.config.exploration;
        self.config.use_duration_history || !(c.is_zero() || c.is_sign_negative())
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
    /// `logged` (its duration and quality counts, and the exploration's `n`, which is the
    /// duration evidence's overall count), reading no store: what
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
        if !self.wants_duration() {
            ev = DurationEvidence {
                overall: HistoryStats::default(),
                state_hour: None,
                area_code_hour: None,
                hour_of_week: how,
            };
        }
        // Quality turned on for a what-if over a breakdown logged without it: no outcomes.
        let q = self.config.use_quality.then(|| {
            logged
                .quality_evidence
                .as_deref()
                .copied()
                .unwrap_or_default()
        });
        self.combine(&facts, local_hour, profile, bid, ev, q)
    }

    /// The smoothed conversion probability, level by level (module docs).
    fn quality_factor(&self, q: &QualityEvidence) -> Decimal {
        let k = self.config.prior_strength;
        let as_history = |s: QualityStats| HistoryStats {
            calls: s.calls,
            billable: s.converted,
        };
        let mut p = smooth(as_history(q.overall), k, self.config.quality_prior);
        for s in [q.state_hour, q.area_code_hour].into_iter().flatten() {
            p = smooth(as_history(s), k, p);
        }
        p
    }

    /// The exploration bonus `1 + c·k/(n + k)` (module docs), or none when off.
    fn explore_factor(&self, n: u64) -> Option<Decimal> {
        let c = self.config.exploration;
        // Two bit tests rather than a decimal comparison with zero (this runs per bid).
        if c.is_zero() || c.is_sign_negative() {
            return None;
        }
        let k = self.config.prior_strength;
        // n + k > 0 (k > 0 validated); c ≤ 100 keeps the product far from overflow.
        let bonus = (c * k).checked_div(Decimal::from(n) + k)?;
        Some((Decimal::ONE + bonus).round_dp(FACTOR_DP))
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
        q: Option<QualityEvidence>,
    ) -> ScoreBreakdown {
        let f = self.factors(facts, local_hour, profile, bid, &ev, q.as_ref());
        f.breakdown(bid, local_hour, ev, q)
    }

    /// One bid's factors and score (see [`ScoringEngine::combine`]).
    fn factors(
        &self,
        facts: &CallFacts,
        local_hour: u8,
        profile: &BuyerProfile,
        bid: &Bid,
        ev: &DurationEvidence,
        q: Option<&QualityEvidence>,
    ) -> Factors {
        let (geo_factor, geo_basis) = self.geo(&profile.id, facts);
        let time_weight = match self.config.hour_weights.is_empty() {
            true => None,
            false => self.config.hour_weights.get(&local_hour).copied(),
        };
        let duration = self
            .config
            .use_duration_history
            .then(|| self.duration_factor(ev));
        // Factors that are the default 1 (no weight configured, history off) are skipped
        // without comparing decimals: multiplying by 1 is exact, so skipping changes nothing.
        let quality = q.map(|q| self.quality_factor(q));
        let explore = self.explore_factor(ev.overall.calls);
        let geo = (!matches!(geo_basis, GeoBasis::Default)).then_some(geo_factor);
        let score = score_of(
            bid.price.amount,
            [geo, time_weight, duration, quality, explore],
        );
        Factors {
            geo_factor,
            geo_basis,
            time_factor: time_weight.unwrap_or(Decimal::ONE),
            duration_factor: duration.unwrap_or(Decimal::ONE),
            quality,
            explore,
            score,
        }
    }
}

/// One bid's factors and score, before they go into its [`ScoreBreakdown`].
struct Factors {
    geo_factor: Decimal,
    geo_basis: GeoBasis,
    time_factor: Decimal,
    duration_factor: Decimal,
    quality: Option<Decimal>,
    explore: Option<Decimal>,
    score: Decimal,
}

impl Factors {
    /// The breakdown of `bid` with these factors. Always inlined, so that a breakdown
    /// assigned to its place (a record's slot) is built there rather than moved there.
    #[inline(always)]
    fn breakdown(
        self,
        bid: &Bid,
        local_hour: u8,
        ev: DurationEvidence,
        q: Option<QualityEvidence>,
    ) -> ScoreBreakdown {
        ScoreBreakdown {
            price: bid.price,
            geo_factor: self.geo_factor,
            geo_basis: self.geo_basis,
            time_factor: self.time_factor,
            local_hour,
            duration_factor: self.duration_factor,
            duration_evidence: ev,
            quality_factor: self.quality.unwrap_or(Decimal::ONE),
            quality_evidence: q.map(Box::new),
            explore_factor: self.explore.unwrap_or(Decimal::ONE),
            explore_observations: self.explore.map(|_| ev.overall.calls),
            score: self.score,
        }
    }
}

/// A score as shown: rounded to [`SCORE_DP`] places, trailing zeros dropped.
fn round_score(v: Decimal) -> Decimal {
    v.round_dp(SCORE_DP).normalize()
}

/// `price × factors` (the factors present), as shown ([`round_score`]); `Decimal::MAX`
/// when the product overflows.
fn score_of(price: Decimal, factors: [Option<Decimal>; 5]) -> Decimal {
    exact_score(price, &factors).unwrap_or_else(|| {
        factors
            .into_iter()
            .flatten()
            .try_fold(price, |v, f| v.checked_mul(f))
            .map(round_score)
            .unwrap_or(Decimal::MAX)
    })
}

/// [`score_of`] in integers, for the common case where it is exact: non-negative
/// values whose every partial product fits 64 bits (decimal multiplication is then
/// exact, so it gives the same mantissa and scale) and a final scale of at most
/// [`SCORE_DP`] (rounding then changes nothing; no partial scale can exceed it). The trailing
/// zeros are dropped as `normalize` drops them. `None` when the case does not apply.
fn exact_score(price: Decimal, factors: &[Option<Decimal>]) -> Option<Decimal> {
    // Mantissas below 2^64 (a 64-bit product is below a decimal's 2^96 limit).
    let small = |d: &Decimal| {
        (!d.is_sign_negative() && d.mantissa() >> 64 == 0).then(|| d.mantissa() as u64)
    };
    let (mut m, mut scale) = (small(&price)?, price.scale());
    for f in factors.iter().flatten() {
        m = m.checked_mul(small(f)?)?;
        scale += f.scale();
    }
    if scale > SCORE_DP {
        return None;
    }
    let (m, scale) = strip_zeros(m, scale);
    // `m` is below 2^64 and `scale` at most 6: the parts of a valid decimal.
    Some(Decimal::from_parts(
        m as u32,
        (m >> 32) as u32,
        0,
        false,
        scale,
    ))
}

/// `m × 10^-scale` without its trailing zeros (zero becomes `0` at scale 0).
fn strip_zeros(mut m: u64, mut scale: u32) -> (u64, u32) {
    if m == 0 {
        return (0, 0);
    }
    while scale > 0 && m.is_multiple_of(10) {
        m /= 10;
        scale -= 1;
    }
    (m, scale)
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
    fn push_keys<'a>(&self, buyer: &'a BuyerId, how: u8, keys: &mut Vec<HistoryKeyRef<'a>>) {
        let key = |area, hour_of_week| HistoryKeyRef {
            buyer,
            area,
            hour_of_week,
        };
        let all = key(AreaKey::Any, None);
        let hourly = |area| key(area, Some(how));
        // One copy of the bid's keys rather than a push (and a capacity check) per key.
        match (self.state, self.area_code) {
            (Some(s), Some(a)) => keys.extend_from_slice(&[
                all,
                hourly(AreaKey::State(s)),
                hourly(AreaKey::AreaCode(a)),
            ]),
            (Some(s), None) => keys.extend_from_slice(&[all, hourly(AreaKey::State(s))]),
            (None, Some(a)) => keys.extend_from_slice(&[all, hourly(AreaKey::AreaCode(a))]),
            (None, None) => keys.push(all),
        }
    }

    /// Reads one bid's quality counts back, in the order [`CallFacts::push_keys`] wrote
    /// the keys.
    fn quality_evidence(&self, stats: &mut impl Iterator<Item = QualityStats>) -> QualityEvidence {
        QualityEvidence {
            overall: stats.next().unwrap_or_default(),
            state_hour: self.state.and_then(|_| stats.next()),
            area_code_hour: self.area_code.and_then(|_| stats.next()),
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
    /// One batch's first half: each bid's hours and history counts, into `buf`.
    async fn prepare(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
        buf: &mut Buffers,
    ) -> Result<CallFacts, StateError> {
        let facts = CallFacts::new(call);
        let (duration_on, quality_on) = (self.wants_duration(), self.config.use_quality);
        let use_history = duration_on || quality_on;
        let mut keys: Vec<HistoryKeyRef<'_>> = recycle(std::mem::take(&mut buf.keys));
        buf.hours.reserve(bids.len());
        if use_history {
            keys.reserve(bids.len() * 3);
        }
        for (profile, _) in bids {
            let hours = CallFacts::hours(call, profile.time_zone, &mut buf.zones);
            buf.hours.push(hours);
            if use_history {
                facts.push_keys(&profile.id, hours.0, &mut keys);
            }
        }
        let fetched = self.fetch_stats(&keys, buf, duration_on, quality_on).await;
        buf.keys = recycle(keys);
        fetched.map(|()| facts)
    }

    /// One batch's second half: each bid's breakdown, built straight into its slot.
    fn each_breakdown(
        &self,
        facts: &CallFacts,
        bids: &[(&BuyerProfile, &Bid)],
        buf: &Buffers,
        slots: &mut [&mut Option<ScoreBreakdown>],
    ) {
        let mut stats = buf.stats.iter().copied();
        let mut quality = buf.quality.iter().copied();
        let quality_on = self.config.use_quality;
        let each = bids.iter().zip(&buf.hours).zip(slots.iter_mut());
        for (((profile, bid), &(how, local_hour)), slot) in each {
            // Without history there are no counts: the evidence is empty.
            let ev = facts.evidence(&mut stats, how);
            let q = quality_on.then(|| facts.quality_evidence(&mut quality));
            let f = self.factors(facts, local_hour, profile, bid, &ev, q.as_ref());
            **slot = Some(f.breakdown(bid, local_hour, ev, q));
        }
    }
}

impl ScoringEngine {
    /// The duration and quality counts of `keys`, into `buf.stats` and `buf.quality`.
    async fn fetch_stats(
        &self,
        keys: &[HistoryKeyRef<'_>],
        buf: &mut Buffers,
        duration_on: bool,
        quality_on: bool,
    ) -> Result<(), StateError> {
        if duration_on && !keys.is_empty() {
            self.history.stats_of(keys, &mut buf.stats).await?;
            check_answers("duration history", keys.len(), buf.stats.len())?;
        }
        if quality_on && !keys.is_empty() {
            let owned: Vec<HistoryKey> = keys.iter().map(HistoryKeyRef::to_key).collect();
            buf.quality = self.quality.stats(&owned).await?;
            check_answers("quality history", keys.len(), buf.quality.len())?;
        }
        Ok(())
    }
}

/// A history must answer one count per key asked for.
fn check_answers(store: &'static str, asked: usize, got: usize) -> Result<(), StateError> {
    if asked == got {
        return Ok(());
    }
    Err(StateError::Corrupt {
        store,
        message: format!("asked for {asked} keys, got {got} answers"),
    })
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
        let mut kept: Vec<Option<ScoreBreakdown>> = bids.iter().map(|_| None).collect();
        let mut slots: Vec<&mut Option<ScoreBreakdown>> = kept.iter_mut().collect();
        self.score_in_place(call, bids, &mut slots).await?;
        out.clear();
        out.extend(kept.into_iter().flatten());
        Ok(())
    }

    async fn score_in_place(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
        slots: &mut [&mut Option<ScoreBreakdown>],
    ) -> Result<(), StateError> {
        if slots.len() != bids.len() {
            return Err(slot_mismatch(bids.len(), slots.len()));
        }
        // One future level over `prepare` (each level adds to the boxed future).
        let mut buf = self.buffers.take();
        let prepared = self.prepare(call, bids, &mut buf).await;
        if let Ok(facts) = &prepared {
            self.each_breakdown(facts, bids, &buf, slots);
        }
        buf.clear();
        self.buffers.give(buf);
        prepared.map(|_| ())
    }
}

/// The error for a batch whose bids and slots differ in number.
fn slot_mismatch(bids: usize, slots: usize) -> StateError {
    StateError::Corrupt {
        store: "scorer",
        message: format!("{bids} bids but {slots} slots to score into"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CallId, ServiceType};
    use crate::state::{history_keys, QualityObservation};
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

    fn quality_config() -> ScoringConfig {
        ScoringConfig {
            use_quality: true,
            exploration: Decimal::ONE,
            ..Default::default()
        }
    }

    /// An engine with quality and exploration on over fresh histories, and the histories.
    fn quality_engine() -> (
        ScoringEngine,
        Arc<MemoryDurationHistory>,
        Arc<MemoryQualityHistory>,
    ) {
        let h = Arc::new(MemoryDurationHistory::new());
        let q = Arc::new(MemoryQualityHistory::new());
        let e = ScoringEngine::new(h.clone(), quality_config())
            .unwrap()
            .with_quality_history(q.clone());
        (e, h, q)
    }

    async fn outcomes(
        q: &MemoryQualityHistory,
        p: &BuyerProfile,
        c: &CallContext,
        obs: &[QualityObservation],
    ) {
        for (i, o) in obs.iter().enumerate() {
            let id = CallId::new(format!("{}-{i}", p.id)).unwrap();
            q.record(&id, &history_keys(&p.id, c, p.time_zone), *o)
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn rescore_with_quality_and_exploration_is_the_same_breakdown() {
        let (mut e, h, q) = quality_engine();
        e.config.hour_weights.insert(9, dec!(1.25));
        let p = profile("a");
        let c = call();
        for billable in [true, true, false] {
            h.record(&history_keys(&p.id, &c, p.time_zone), billable)
                .await
                .unwrap();
        }
        let obs = [
            QualityObservation::postback(true),
            QualityObservation::postback(false),
            QualityObservation::transcript(true),
        ];
        outcomes(&q, &p, &c, &obs).await;
        let bid = Bid::new(p.id.clone(), Money::usd(dec!(33.30)));
        let s = e.score(&c, &[(&p, &bid)]).await.unwrap().remove(0);
        assert_eq!(s.explore_observations, Some(3));
        assert_eq!(s.quality_evidence.as_ref().unwrap().overall.postback, 2);
        let blank =
            ScoringEngine::new(Arc::new(MemoryDurationHistory::new()), e.config().clone()).unwrap();
        let again = blank.rescore(&c, &p, &bid, &s);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), json);
        // The logged JSON parses back to the same breakdown.
        assert_eq!(serde_json::from_str::<ScoreBreakdown>(&json).unwrap(), s);
        // What-if without quality and exploration: both factors 1, left out of the JSON.
        let off = ScoringEngine::default().rescore(&c, &p, &bid, &s);
        assert_eq!(
            (off.quality_factor, off.explore_factor),
            (Decimal::ONE, Decimal::ONE)
        );
        let off_json = serde_json::to_string(&off).unwrap();
        assert!(
            !off_json.contains("quality") && !off_json.contains("explore"),
            "{off_json}"
        );
    }

    #[tokio::test]
    async fn older_breakdowns_without_quality_still_parse() {
        let e = ScoringEngine::default();
        let p = profile("a");
        let bid = Bid::new(p.id.clone(), Money::usd(dec!(40)));
        let s = e.score(&call(), &[(&p, &bid)]).await.unwrap().remove(0);
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("quality"),
            "quality off serializes as before: {json}"
        );
        let back: ScoreBreakdown = serde_json::from_str(&json).unwrap();
        assert_eq!(
            (back.quality_factor, back.explore_factor),
            (Decimal::ONE, Decimal::ONE)
        );
        assert_eq!(back, s);
    }

    #[tokio::test]
    async fn quality_line_says_which_signal() {
        let (e, _, q) = quality_engine();
        let p = profile("a");
        let c = call();
        let mut obs = vec![QualityObservation::postback(true); 14];
        obs.extend([QualityObservation::transcript(false); 3]);
        outcomes(&q, &p, &c, &obs).await;
        let bid = Bid::new(p.id.clone(), Money::usd(dec!(40)));
        let s = e.score(&c, &[(&p, &bid)]).await.unwrap().remove(0);
        let line = s.to_string();
        assert!(
            line.contains(&format!(
                "× quality {} (postback 14, transcript 3)",
                s.quality_factor
            )),
            "{line}"
        );
        assert!(line.ends_with("× explore 2 (n 0)"), "{line}");
        assert!(s.quality_factor > dec!(0.5));
    }

    #[tokio::test]
    async fn a_new_buyer_scores_the_quality_prior_and_the_full_bonus() {
        let (e, _, _) = quality_engine();
        let p = profile("new");
        let bid = Bid::new(p.id.clone(), Money::usd(dec!(40)));
        let s = e.score(&call(), &[(&p, &bid)]).await.unwrap().remove(0);
        assert_eq!(s.quality_factor, dec!(0.5));
        assert_eq!(s.explore_factor, dec!(2));
        // 40 × duration 0.5 × quality 0.5 × explore 2.
        assert_eq!(s.score, dec!(20));
        assert_eq!(
            s.quality_evidence,
            Some(Box::new(QualityEvidence {
                overall: QualityStats::default(),
                state_hour: Some(QualityStats::default()),
                area_code_hour: Some(QualityStats::default()),
            }))
        );
    }

    #[test]
    fn exploration_is_bounded_and_shrinks() {
        let e =
            ScoringEngine::new(Arc::new(MemoryDurationHistory::new()), quality_config()).unwrap();
        assert_eq!(e.explore_factor(0), Some(dec!(2)));
        // 1 + 10/(10 + 10).
        assert_eq!(e.explore_factor(10), Some(dec!(1.5)));
        let mut last = dec!(2);
        for n in [1, 5, 50, 500, 5000, u32::MAX as u64] {
            let f = e.explore_factor(n).unwrap();
            assert!(f < last && f >= Decimal::ONE, "n {n}: {f}");
            last = f;
        }
        assert_eq!(ScoringEngine::default().explore_factor(0), None);
    }

    #[test]
    fn quality_config_validation() {
        let c = ScoringConfig {
            quality_prior: dec!(-0.1),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "quality_prior");
        let c = ScoringConfig {
            exploration: dec!(-1),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().field, "exploration");
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn stats() -> impl Strategy<Value = QualityStats> {
            (0u64..500, 0u64..500).prop_map(|(a, b)| QualityStats {
                calls: a.max(b),
                converted: a.min(b),
                postback: a.max(b),
                transcript: 0,
            })
        }

        fn evidence(overall: QualityStats) -> QualityEvidence {
            QualityEvidence {
                overall,
                state_hour: None,
                area_code_hour: None,
            }
        }

        fn engine() -> ScoringEngine {
            ScoringEngine::new(Arc::new(MemoryDurationHistory::new()), quality_config()).unwrap()
        }

        proptest! {
            #[test]
            fn quality_is_deterministic_and_a_probability(o in stats(), s in stats(), a in stats()) {
                let e = engine();
                let q = QualityEvidence { overall: o, state_hour: Some(s), area_code_hour: Some(a) };
                let f = e.quality_factor(&q);
                prop_assert_eq!(f, engine().quality_factor(&q));
                prop_assert!(f >= Decimal::ZERO && f <= Decimal::ONE);
            }

            /// More evidence at the same rate moves the factor further from the prior,
            /// monotonically, towards the observed rate.
            #[test]
            fn more_evidence_moves_further_from_the_prior(conv in 0u64..=10, scale in 1u64..20) {
                let e = engine();
                let at = |m: u64| e.quality_factor(&evidence(QualityStats {
                    calls: 10 * m, converted: conv * m, postback: 10 * m, transcript: 0,
                }));
                let prior = dec!(0.5);
                let (small, big) = (at(scale), at(scale + 1));
                prop_assert!((big - prior).abs() >= (small - prior).abs(), "{} then {}", small, big);
                let rate = Decimal::from(conv) / dec!(10);
                prop_assert!((big - rate).abs() <= (small - rate).abs());
            }

            /// One more converted outcome never lowers the factor; one more non-converted
            /// one never raises it.
            #[test]
            fn monotone_in_outcomes(o in stats()) {
                let e = engine();
                let base = e.quality_factor(&evidence(o));
                let mut up = o;
                up.apply(&QualityObservation::postback(true), 1);
                let mut down = o;
                down.apply(&QualityObservation::postback(false), 1);
                prop_assert!(e.quality_factor(&evidence(up)) >= base);
                prop_assert!(e.quality_factor(&evidence(down)) <= base);
            }

            /// The integer shortcut gives the decimal product's score bit for bit
            /// whenever it applies (and applies to everyday prices and factors).
            #[test]
            fn exact_score_is_the_decimal_score(
                price in (0i64..10_000_000, 0u32..=4),
                factors in proptest::collection::vec(proptest::option::of((-3i64..20_000_000_000, 0u32..=12)), 5),
            ) {
                let d = |(m, s): (i64, u32)| Decimal::new(m, s);
                let price = d(price);
                let fs: Vec<Option<Decimal>> = factors.into_iter().map(|f| f.map(d)).collect();
                let reference = fs
                    .iter()
                    .flatten()
                    .try_fold(price, |v, f| v.checked_mul(*f))
                    .map(round_score)
                    .unwrap_or(Decimal::MAX);
                let arr = [fs[0], fs[1], fs[2], fs[3], fs[4]];
                prop_assert_eq!(score_of(price, arr).serialize(), reference.serialize());
                if let Some(fast) = exact_score(price, &arr) {
                    prop_assert_eq!(fast.serialize(), reference.serialize());
                }
            }

            /// Every buyer without outcomes scores exactly the prior, whatever its id.
            #[test]
            fn new_buyers_score_exactly_the_prior(id in "[a-z]{1,12}", prior in 0u32..=100) {
                let cfg = ScoringConfig {
                    use_quality: true,
                    quality_prior: Decimal::new(prior.into(), 2),
                    ..Default::default()
                };
                let e = ScoringEngine::new(Arc::new(MemoryDurationHistory::new()), cfg).unwrap();
                let p = profile(&id);
                let bid = Bid::new(p.id.clone(), Money::usd(dec!(10)));
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                let s = rt.block_on(e.score(&call(), &[(&p, &bid)])).unwrap().remove(0);
                prop_assert_eq!(s.quality_factor, Decimal::new(prior.into(), 2));
            }
        }
    }

    #[test]
    fn everyday_scores_take_the_integer_shortcut() {
        let half = Some(dec!(0.5));
        let fast = exact_score(dec!(12.30), &[None, None, half, None, None]);
        assert_eq!(fast.map(|d| d.serialize()), Some(dec!(6.15).serialize()));
        assert_eq!(exact_score(dec!(0), &[half]), Some(Decimal::ZERO));
        // Seven places need rounding: the decimal path does it.
        assert_eq!(exact_score(dec!(1.23), &[Some(dec!(0.00001))]), None);
        assert_eq!(
            score_of(dec!(1.23), [Some(dec!(0.00001)), None, None, None, None]),
            dec!(0.000012)
        );
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
