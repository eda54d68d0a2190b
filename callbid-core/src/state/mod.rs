//! Stateful checks as async traits, with in-memory implementations.
//!
//! `callbid-store` implements the same traits on SQLite and PostgreSQL; one conformance
//! suite ([`conformance`]) runs against every implementation.

pub mod calllog;
pub mod conformance;
mod memory;
pub mod postback;
pub mod quality;
pub mod routing;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::call::CallContext;
use crate::error::StateError;
use crate::geo::UsState;
use crate::ids::BuyerId;
use crate::phone::PhoneNumber;

pub use calllog::{AppendOutcome, CallEvent, CallEventKind, CallLog, CallRecord, CallStatus};
pub use memory::{MemoryCallLog, MemoryCapStore, MemoryDurationHistory, MemorySeenCallers};
pub use postback::{
    AttemptOutcome, Backoff, DeliveryState, MemoryPostbackOutbox, PostbackAttempt,
    PostbackDelivery, PostbackOutbox,
};
pub use quality::{
    MemoryQualityHistory, QualityHistory, QualityObservation, QualityRecorded, QualitySignal,
    QualityStats,
};
pub use routing::{MemoryRoutingStore, RouteClaim, RouteDecision, RoutingStore};

/// Identifies one cap reservation (unique per winner and call).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReservationId(pub String);

impl fmt::Display for ReservationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One counter a reservation adds to, and the limit it must stay within.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterIncrement {
    /// The counter, e.g. `buyer-a|daily|2026-11-21` (the window is part of the key).
    pub key: String,
    /// How much to add (1 for counts, the price for spend).
    pub amount: Decimal,
    /// The counter must stay `<=` this after the increment.
    pub limit: Decimal,
}

/// A request to reserve several counters at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRequest {
    /// The reservation's id; reserving the same id twice counts once.
    pub id: ReservationId,
    /// Counters to add to, all or none.
    pub increments: Vec<CounterIncrement>,
    /// After this instant the reservation no longer counts (used for concurrency caps,
    /// so a lost "call ended" cannot block a buyer forever). `None`: counts until released.
    pub expires_at: Option<DateTime<Utc>>,
    /// The current instant (for expiry).
    pub now: DateTime<Utc>,
    /// When the caller stops waiting (the auction's deadline). A store that must wait
    /// for another writer (SQLite's file lock, PostgreSQL's advisory locks) gives up at
    /// this instant with [`StateError::Unavailable`] instead of waiting longer. `None`:
    /// the store's own timeout. Not serialized (a monotonic instant means nothing in
    /// another process).
    #[serde(skip)]
    pub deadline: Option<std::time::Instant>,
}

/// The result of [`CapStore::reserve`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ReserveOutcome {
    /// All counters were incremented.
    Reserved,
    /// Nothing was incremented: this counter would exceed its limit.
    Exceeded {
        /// The counter.
        key: String,
        /// Its usage before the request.
        used: Decimal,
        /// Its limit.
        limit: Decimal,
    },
}

/// Counters for caps. A counter's usage is the sum of the amounts of its reservations
/// that are neither released nor expired.
///
/// `reserve` is atomic: across every handle on the same backing store (several processes
/// sharing one database), no counter ever exceeds its limit.
#[async_trait]
pub trait CapStore: Send + Sync + fmt::Debug {
    /// Current usage of a counter.
    async fn usage(&self, key: &str, now: DateTime<Utc>) -> Result<Decimal, StateError>;
    /// Adds every increment or none. Idempotent per reservation id.
    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, StateError>;
    /// Releases a reservation (a failed accept, or a live call that ended).
    /// Returns whether it was held. Idempotent.
    async fn release(&self, id: &ReservationId) -> Result<bool, StateError>;
}

/// A request to take a caller's duplicate-caller window at one buyer, for one call
/// ([`SeenCallers::claim`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenClaim {
    /// The buyer.
    pub buyer: BuyerId,
    /// The caller.
    pub caller: PhoneNumber,
    /// Who takes the window (unique per call and buyer); claiming again with the same
    /// holder is a no-op that succeeds.
    pub holder: ReservationId,
    /// The window's start: a caller sent to the buyer after this instant is refused
    /// (`now - window`).
    pub since: DateTime<Utc>,
    /// The current instant.
    pub now: DateTime<Utc>,
    /// An unconfirmed claim stops counting after this instant (a process that died
    /// between reserve and accept cannot block the caller forever).
    pub expires_at: DateTime<Utc>,
}

/// The result of [`SeenCallers::claim`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClaimOutcome {
    /// The window is taken for the holder.
    Claimed,
    /// The caller was sent to the buyer at `at`, inside the window.
    Seen {
        /// When.
        at: DateTime<Utc>,
    },
    /// Another call holds an unconfirmed claim on the same caller and buyer.
    Held {
        /// That claim's holder.
        holder: ReservationId,
    },
}

/// Which callers each buyer has already received, for duplicate-caller windows.
///
/// The window is taken with [`claim`](SeenCallers::claim) in the reserve phase: it is
/// atomic across every handle on the same backing store (several processes sharing one
/// database), so of two calls from one caller routed at once, at most one gets the
/// buyer. The claim is then confirmed (it becomes the lasting "seen" record) or
/// released (the accept failed).
#[async_trait]
pub trait SeenCallers: Send + Sync + fmt::Debug {
    /// When `caller` was last sent to `buyer`, if ever (confirmed sends only).
    async fn last_seen(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
    ) -> Result<Option<DateTime<Utc>>, StateError>;
    /// Notes that `caller` was sent to `buyer` at `at` (keeps the latest instant).
    async fn record(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        at: DateTime<Utc>,
    ) -> Result<(), StateError>;
    /// Takes the window atomically: refused when the caller was sent to the buyer after
    /// `claim.since`, or another holder has an unexpired claim; otherwise the claim is
    /// stored (replacing an expired one). Idempotent per holder.
    async fn claim(&self, claim: &SeenClaim) -> Result<ClaimOutcome, StateError>;
    /// Makes the holder's claim the lasting record: `caller` was sent to `buyer` at `at`
    /// (as [`record`](SeenCallers::record)), and the claim is removed.
    async fn confirm_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
        at: DateTime<Utc>,
    ) -> Result<(), StateError>;
    /// Gives the holder's claim back (the accept failed). Returns whether it was held.
    /// Idempotent.
    async fn release_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
    ) -> Result<bool, StateError>;
}

/// The geography a duration statistic is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "level", content = "value", rename_all = "snake_case")]
pub enum AreaKey {
    /// Every call of the buyer.
    Any,
    /// Calls from a state.
    State(UsState),
    /// Calls from an area code.
    AreaCode(u16),
}

impl fmt::Display for AreaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AreaKey::Any => f.write_str("any"),
            AreaKey::State(s) => write!(f, "state:{s}"),
            AreaKey::AreaCode(a) => write!(f, "ac:{a}"),
        }
    }
}

/// A bucket of duration history: buyer × area × optional hour-of-week (in the buyer's zone).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HistoryKey {
    /// The buyer.
    pub buyer: BuyerId,
    /// The area.
    pub area: AreaKey,
    /// Hour of the week, 0 = Monday 00:00–00:59 … 167 = Sunday 23:00–23:59; `None` = all hours.
    pub hour_of_week: Option<u8>,
}

/// A [`HistoryKey`] that borrows its buyer id: what a scorer asks a history for, so
/// that building a batch of keys clones no id ([`DurationHistory::stats_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HistoryKeyRef<'a> {
    /// The buyer.
    pub buyer: &'a BuyerId,
    /// The area.
    pub area: AreaKey,
    /// Hour of the week (as [`HistoryKey::hour_of_week`]); `None` = all hours.
    pub hour_of_week: Option<u8>,
}

impl HistoryKeyRef<'_> {
    /// The owned key.
    pub fn to_key(&self) -> HistoryKey {
        HistoryKey {
            buyer: self.buyer.clone(),
            area: self.area,
            hour_of_week: self.hour_of_week,
        }
    }
}

impl<'a> From<&'a HistoryKey> for HistoryKeyRef<'a> {
    fn from(k: &'a HistoryKey) -> Self {
        HistoryKeyRef {
            buyer: &k.buyer,
            area: k.area,
            hour_of_week: k.hour_of_week,
        }
    }
}

/// Counts in a history bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryStats {
    /// Connected calls recorded.
    pub calls: u64,
    /// Of those, how many reached the buyer's minimum billable duration.
    pub billable: u64,
}

/// Duration history: per bucket, how many calls and how many were billable.
#[async_trait]
pub trait DurationHistory: Send + Sync + fmt::Debug {
    /// Adds one call to every key (`billable` when it reached the minimum duration).
    async fn record(&self, keys: &[HistoryKey], billable: bool) -> Result<(), StateError>;
    /// Counts for each key, in order (zeros for unknown keys).
    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<HistoryStats>, StateError>;
    /// The same counts as [`DurationHistory::stats`], written into `out` (cleared first)
    /// so that a caller scoring many auctions can reuse one buffer. The default calls
    /// `stats`; an implementation may override it to skip that allocation.
    async fn stats_into(
        &self,
        keys: &[HistoryKey],
        out: &mut Vec<HistoryStats>,
    ) -> Result<(), StateError> {
        let stats = self.stats(keys).await?;
        out.clear();
        out.extend(stats);
        Ok(())
    }

    /// The same counts as [`DurationHistory::stats_into`], for borrowed keys (what the
    /// [`ScoringEngine`](crate::scoring::ScoringEngine) asks). The default makes owned
    /// keys and calls `stats_into`; an implementation may override it to look the
    /// borrowed keys up directly.
    async fn stats_of(
        &self,
        keys: &[HistoryKeyRef<'_>],
        out: &mut Vec<HistoryStats>,
    ) -> Result<(), StateError> {
        let owned: Vec<HistoryKey> = keys.iter().map(HistoryKeyRef::to_key).collect();
        self.stats_into(&owned, out).await
    }
}

/// The hour of the week of `at` in `tz` (0 = Monday 00h).
pub fn hour_of_week(at: DateTime<Utc>, tz: Tz) -> u8 {
    let local = at.with_timezone(&tz);
    // num_days_from_monday() < 7 and hour() < 24, so this fits in a u8.
    (local.weekday().num_days_from_monday() * 24 + local.hour()) as u8
}

/// The history keys a call updates and is scored by, most specific first:
/// area code × hour-of-week, state × hour-of-week, then the buyer overall
/// (area keys are left out when the call's area code or state is unknown).
pub fn history_keys(buyer: &BuyerId, call: &CallContext, tz: Tz) -> Vec<HistoryKey> {
    let how = Some(hour_of_week(call.received_at, tz));
    let mut keys = Vec::with_capacity(3);
    let ac = call.caller_area().map(|a| a.area_code);
    let st = call.state();
    let k = |area, hour_of_week| HistoryKey {
        buyer: buyer.clone(),
        area,
        hour_of_week,
    };
    if let Some(ac) = ac {
        keys.push(k(AreaKey::AreaCode(ac), how));
    }
    if let Some(st) = st {
        keys.push(k(AreaKey::State(st), how));
    }
    keys.push(k(AreaKey::Any, None));
    keys
}

/// Records a finished call in the history: billable when `duration >= min_duration`.
pub async fn record_outcome(
    history: &dyn DurationHistory,
    buyer: &BuyerId,
    tz: Tz,
    call: &CallContext,
    duration: Duration,
    min_duration: Duration,
) -> Result<bool, StateError> {
    let billable = duration >= min_duration;
    history
        .record(&history_keys(buyer, call, tz), billable)
        .await?;
    Ok(billable)
}
