//! Agent pools (seed 001): offer a call to several agents at once and award it to the
//! first one who explicitly accepts.
//!
//! Layers: the model ([`Agent`], [`Presence`], [`AgentPool`], the [`Offer`] state machine),
//! the [`AgentStore`] trait every store offers, the shared engine behind it (written once
//! over [`AgentDocs`], the versioned-document storage a backend provides), the in-memory
//! backend ([`MemoryAgentStore`]), the [`conformance`] suite `callbid-store`'s SQLite and
//! PostgreSQL backends also run, [`AgentPoolBuyer`] (the pool as an auction [`crate::Buyer`])
//! and [`metrics`].
//!
//! How an offer runs:
//! 1. [`AgentStore::start_offer`] claims up to `max_legs` available agents of the lowest
//!    tier that has any who handle the call (service, area, language, hours), each by a
//!    compare-and-set of the agent's presence to `offered` until the round's end, then
//!    stores the offer. A tier with nobody available is skipped; no tier at all means
//!    [`OfferState::Fallback`]. Asking again for the same offer id returns the stored one.
//! 2. [`AgentStore::accept`] is one compare-and-set on the offer's version: of any number
//!    of agents accepting at once, on any number of instances, exactly one wins and the
//!    others are told [`AcceptOutcome::Taken`]. Answering a phone accepts nothing; only an
//!    explicit accept (a whisper's `1`, a click) does.
//! 3. [`AgentStore::tick`] (or a decline of the round's last leg) ends a round whose TTL
//!    passed: its legs are missed and the next tier is claimed, or the fallback taken.
//! 4. [`AgentStore::caller_hung_up`] cancels every ringing leg.
//!
//! After each change the agents whose legs ended are set back to `available` (the winner
//! to `on_call`), each only if their presence still names this offer, so the step is
//! idempotent and never touches an agent since claimed by another call. If an instance
//! dies between the two steps, the presence's own `until` frees the agent: `offered` is
//! only in effect until the round's TTL ([`Presence::at`]).

mod engine;
mod memory;
mod model;

pub mod buyer;
pub mod conformance;
pub mod metrics;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StateError;
use crate::ids::CallId;

pub use buyer::AgentPoolBuyer;
pub use memory::MemoryAgentStore;
pub use metrics::{AgentMetrics, AgentStats};
pub use model::{
    AcceptOutcome, Agent, AgentHours, AgentId, AgentPool, AgentPoolId, AgentRecord, ClientIdentity,
    Language, Leg, LegOutcome, Needs, Next, Offer, OfferId, OfferState, Presence, Reach, Tally,
    MAX_DIAL_LEGS, MAX_ROUND_AGENTS, MAX_TIER,
};

/// A stored document with the version its compare-and-set is made against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    /// Starts at 1; every successful compare-and-set adds 1.
    pub version: i64,
    /// The document.
    pub value: T,
}

/// What a backend stores: pools, agents and offers as versioned documents with an
/// atomic compare-and-set each. The logic of [`AgentStore`] is written once on top of it
/// (every `AgentDocs` is an `AgentStore`), so all backends behave the same.
#[async_trait]
pub trait AgentDocs: Send + Sync + fmt::Debug {
    /// Creates or replaces a pool's settings.
    async fn put_pool_doc(&self, pool: &AgentPool) -> Result<(), StateError>;
    /// A pool's settings.
    async fn pool_doc(&self, pool: &AgentPoolId) -> Result<Option<AgentPool>, StateError>;
    /// Inserts an agent at version 1; `false` if the agent exists.
    async fn insert_agent(
        &self,
        pool: &AgentPoolId,
        record: &AgentRecord,
    ) -> Result<bool, StateError>;
    /// One agent.
    async fn agent_doc(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
    ) -> Result<Option<Versioned<AgentRecord>>, StateError>;
    /// Every agent of the pool, by id.
    async fn agent_docs(
        &self,
        pool: &AgentPoolId,
    ) -> Result<Vec<Versioned<AgentRecord>>, StateError>;
    /// Replaces the agent if its version is still `version`.
    async fn cas_agent(
        &self,
        pool: &AgentPoolId,
        version: i64,
        record: &AgentRecord,
    ) -> Result<bool, StateError>;
    /// Deletes the agent if its version is still `version`.
    async fn delete_agent(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        version: i64,
    ) -> Result<bool, StateError>;
    /// Inserts an offer at version 1; `false` if the id exists in the pool.
    async fn insert_offer(&self, offer: &Offer) -> Result<bool, StateError>;
    /// One offer.
    async fn offer_doc(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
    ) -> Result<Option<Versioned<Offer>>, StateError>;
    /// Replaces the offer if its version is still `version`.
    async fn cas_offer(&self, version: i64, offer: &Offer) -> Result<bool, StateError>;
    /// Offers created at or after `since` (only undecided ones when `live_only`), by
    /// creation time then id.
    async fn offer_docs(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
        live_only: bool,
    ) -> Result<Vec<Offer>, StateError>;
}

/// An agent's change of presence asked by the agent (or the call's end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresenceChange {
    /// Offline → available.
    LogIn,
    /// Anything but `on_call` → offline (a ringing leg is declined).
    LogOut,
    /// `on_call` → `wrap_up` for the pool's wrap-up time (→ available when it is zero).
    EndCall,
}

/// An agent and their presence at the time asked.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentStatus {
    /// The profile.
    pub agent: Agent,
    /// Presence in effect.
    pub presence: Presence,
    /// Time tallies up to then.
    pub tally: Tally,
}

/// A request to offer a call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfferRequest {
    /// The offer's id (the caller's `CallSid`, so a retried webhook finds it).
    pub id: OfferId,
    /// The pool.
    pub pool: AgentPoolId,
    /// The call.
    pub call: CallId,
    /// What the call needs.
    pub needs: Needs,
    /// Now.
    pub at: DateTime<Utc>,
    /// Stored as [`Offer::context`].
    pub context: String,
}

impl OfferRequest {
    /// A request.
    pub fn new(
        id: OfferId,
        pool: AgentPoolId,
        call: CallId,
        needs: Needs,
        at: DateTime<Utc>,
    ) -> Self {
        OfferRequest {
            id,
            pool,
            call,
            needs,
            at,
            context: String::new(),
        }
    }

    /// With the embedder's note stored as [`Offer::context`].
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }
}

/// Agent pools, presence and offers. Every method takes the current instant, so TTLs and
/// wrap-up timers need no background job. Unknown pools, agents or offers are
/// [`StateError::Invalid`] naming the field (`pool`, `agent`, `offer`).
#[async_trait]
pub trait AgentStore: Send + Sync + fmt::Debug {
    /// Creates or replaces a pool's settings.
    async fn put_pool(&self, pool: &AgentPool) -> Result<(), StateError>;
    /// A pool's settings.
    async fn pool(&self, pool: &AgentPoolId) -> Result<Option<AgentPool>, StateError>;
    /// Adds an agent (offline) or replaces their profile (presence kept).
    async fn put_agent(
        &self,
        pool: &AgentPoolId,
        agent: &Agent,
        at: DateTime<Utc>,
    ) -> Result<(), StateError>;
    /// Removes an agent who is not on a call or being offered one; `false` if unknown.
    async fn remove_agent(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        at: DateTime<Utc>,
    ) -> Result<bool, StateError>;
    /// Every agent with their presence at `now`, by id.
    async fn agents(
        &self,
        pool: &AgentPoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<AgentStatus>, StateError>;
    /// Changes an agent's presence; returns the presence now in effect.
    async fn set_presence(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        change: PresenceChange,
        at: DateTime<Utc>,
    ) -> Result<Presence, StateError>;
    /// How many agents are available at `now` for a call with these needs.
    async fn available(
        &self,
        pool: &AgentPoolId,
        needs: &Needs,
        now: DateTime<Utc>,
    ) -> Result<usize, StateError>;
    /// Offers a call (see the module docs); idempotent per offer id.
    async fn start_offer(&self, request: &OfferRequest) -> Result<Offer, StateError>;
    /// One offer, as stored.
    async fn offer(&self, pool: &AgentPoolId, offer: &OfferId)
        -> Result<Option<Offer>, StateError>;
    /// An explicit accept by `agent` at `at`: exactly one agent ever wins an offer.
    async fn accept(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        agent: &AgentId,
        at: DateTime<Utc>,
    ) -> Result<AcceptOutcome, StateError>;
    /// `agent` declines; when it was the round's last ringing leg the next tier is offered.
    async fn decline(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        agent: &AgentId,
        at: DateTime<Utc>,
    ) -> Result<Offer, StateError>;
    /// The caller hung up: every ringing leg is cancelled, the agents freed. Idempotent.
    async fn caller_hung_up(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        at: DateTime<Utc>,
    ) -> Result<Offer, StateError>;
    /// Ends the round if its TTL passed (next tier, or fallback); idempotent.
    async fn tick(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
        now: DateTime<Utc>,
    ) -> Result<Offer, StateError>;
    /// Undecided offers created at or after `since`.
    async fn live_offers(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
    ) -> Result<Vec<Offer>, StateError>;
    /// Metrics over offers created in `[since, now]` and the agents' tallies at `now`.
    async fn metrics(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<AgentMetrics, StateError>;
}
