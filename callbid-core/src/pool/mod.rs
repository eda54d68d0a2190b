//! Call tracking with number pools (seed 003): leasing tracking numbers to visitor
//! sessions and listings, locking called numbers, attributing inbound calls, sizing and
//! replenishing the pool.
//!
//! Layers: the model ([`NumberPool`], [`PoolNumber`], [`Lease`], [`Attribution`]), the
//! [`NumberPoolStore`] trait with an in-memory implementation ([`MemoryNumberPoolStore`])
//! and the [`conformance`] suite `callbid-store`'s SQLite and PostgreSQL stores also run,
//! the [`provision`] planner (watermarks, idle release, an async `replenish` step behind
//! the [`provision::NumberProvisioner`] trait), [`sizing`] (the seed's rule and Nimbata's
//! formula) and a seeded traffic simulation ([`sim`]).
//!
//! A server's `POST /pool/{pool}/lease` is one [`NumberPoolStore::lease`] call (a
//! heartbeat is [`NumberPoolStore::renew`]); the inbound `/voice` attribution step is one
//! [`NumberPoolStore::record_call`] with Twilio's `CallSid`, `To`, `From`.
//!
//! Semantics every store follows (the conformance suite checks them):
//! - a lease is live while `created_at <= now < expires_at`; expiry is evaluated against
//!   the `now` each call passes, never by a background job;
//! - at most one live *exclusive* lease per number, across every handle on one store;
//! - asking again for the same key (visitor × listing, or listing) returns the live lease,
//!   renewed; after a call the key's lock makes the same number come back;
//! - a free number is chosen by the end of its last lease, oldest first, then by number;
//! - `renew` is idempotent and never shortens a lease; an ended lease is not revived;
//! - `record_call` is idempotent per `call_sid`.

mod memory;
mod model;

pub mod conformance;
pub mod provision;
pub mod sim;
pub mod sizing;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StateError;
use crate::phone::PhoneNumber;

pub use memory::MemoryNumberPoolStore;
pub(crate) use model::chrono_dur;
pub use model::{
    peak_concurrency, Attribution, Capabilities, ExhaustionPolicy, Grant, InboundCall, Lease,
    LeaseContext, LeaseId, LeaseOutcome, LeaseRequest, ListingId, LockKey, NumberPool,
    NumberPoolBuilder, NumberState, NumberStatus, PoolHealth, PoolId, PoolMode, PoolNumber,
    RenewOutcome, Utm, Via, VisitorId, MAX_CONTEXT_TAGS, MAX_CONTEXT_TEXT,
};

/// Storage of number pools: leases, renewals, call locks, attribution and health.
///
/// Every method takes the current instant (`now`, or the call's `at`) explicitly, so
/// expiry needs no background job and tests can move time. Errors are
/// [`StateError::Unavailable`] (retry may help), [`StateError::Corrupt`] or
/// [`StateError::Invalid`] (a context over the size limits, naming the field).
#[async_trait]
pub trait NumberPoolStore: Send + Sync + fmt::Debug {
    /// Creates the pool or replaces its settings, and adds its numbers (numbers already
    /// present are kept as they are; none are removed: see [`Self::retire_number`]).
    async fn put_pool(&self, pool: &NumberPool, now: DateTime<Utc>) -> Result<(), StateError>;
    /// The pool's settings and current numbers (sorted by number), if it exists.
    async fn pool(&self, pool: &PoolId) -> Result<Option<NumberPool>, StateError>;
    /// Adds numbers to an existing pool; returns how many were new. An unknown pool is
    /// `StateError::Invalid` (field `pool`).
    async fn add_numbers(
        &self,
        pool: &PoolId,
        numbers: &[PoolNumber],
        now: DateTime<Utc>,
    ) -> Result<u64, StateError>;
    /// Removes a number from the pool if it is free at `now` (no live exclusive lease, no
    /// live lock of any kind); returns whether it was removed. Later calls to it are
    /// `UnknownNumber`.
    async fn retire_number(
        &self,
        pool: &PoolId,
        number: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError>;
    /// Every number of the pool with its state at `now`, sorted by number.
    async fn numbers(
        &self,
        pool: &PoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NumberStatus>, StateError>;
    /// Leases a number for `request.visitor` on `request.listing` (see the module docs
    /// for the order: existing lease, lock, free number, exhaustion policy). Atomic.
    async fn lease(&self, request: &LeaseRequest) -> Result<LeaseOutcome, StateError>;
    /// Heartbeat: extends a live lease to `now + lease_length` (never shortens it).
    async fn renew(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<RenewOutcome, StateError>;
    /// Ends a live lease at `now` (the page was closed); returns whether it was live.
    async fn release(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError>;
    /// What a call would resolve to, without recording it: the overflow number; else a
    /// lock on (number, caller) or on the number live at `at` (or the live lease of the
    /// same key, which carries the fresher context); else the live lease on the number at
    /// `at` (exclusive first); else the number's last lease (`ExpiredLease`).
    async fn attribute(&self, call: &InboundCall) -> Result<Attribution, StateError>;
    /// Resolves the call as [`Self::attribute`] does and records it: an attributed call
    /// locks the number (or the number × caller) to its lease until `at + lock_period`.
    /// Idempotent per `call_sid`: a retried webhook gets the first answer.
    async fn record_call(&self, call: &InboundCall) -> Result<Attribution, StateError>;
    /// Housekeeping: deletes leases that ended and locks and call records older than
    /// `before` (keep at least the lock period). Returns the leases deleted.
    async fn purge(&self, pool: &PoolId, before: DateTime<Utc>) -> Result<u64, StateError>;
    /// Health over the window `[since, now]`; a free number is idle when its last
    /// activity is older than `now - idle_after`.
    async fn health(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        idle_after: Duration,
    ) -> Result<PoolHealth, StateError>;
    /// Leases created in `[since, until)`, oldest first (ties by id): the views of the
    /// per-listing report. Leases [`Self::purge`] deleted are gone.
    async fn leases_created(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StateError>;
    /// Calls recorded in `[since, until)` with what they resolved to, oldest first (ties
    /// by `CallSid`).
    async fn calls_recorded(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RecordedCall>, StateError>;
}

/// A call [`NumberPoolStore::record_call`] recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordedCall {
    /// The call's `CallSid`.
    pub call_sid: String,
    /// When it arrived.
    pub at: DateTime<Utc>,
    /// What it resolved to.
    pub attribution: Attribution,
}

impl RecordedCall {
    /// A recorded call.
    pub fn new(call_sid: impl Into<String>, at: DateTime<Utc>, attribution: Attribution) -> Self {
        RecordedCall {
            call_sid: call_sid.into(),
            at,
            attribution,
        }
    }
}
