//! Routing decisions, persisted before they are answered.
//!
//! Twilio retries a webhook that timed out or failed to connect, and the retry may reach
//! another instance or a restarted one. A step that routes the call (runs an auction,
//! picks a fallback) must then answer the retry with the *same* TwiML, without running
//! again: a second auction would ping the buyers again, dial a different buyer, hold a
//! second cap slot and mix both auctions' events in the call log.
//!
//! A [`RoutingStore`] makes that hold across instances:
//! 1. [`claim_route`](RoutingStore::claim_route) takes the step for one holder (one
//!    request) until a lease ends. Exactly one of any number of concurrent claims wins;
//!    the others are told [`RouteClaim::Busy`] (wait for the decision) or, once it is
//!    made, [`RouteClaim::Decided`] with its TwiML.
//! 2. The holder routes, then [`decide_route`](RoutingStore::decide_route) stores the
//!    TwiML *before* answering it. The first decision stands: a holder whose lease ran
//!    out and was taken over learns [`RouteDecision::Earlier`] and answers that instead
//!    (and gives back what it held).
//! 3. A holder that failed [`release_route`](RoutingStore::release_route)s the step, so
//!    a retry may route it at once instead of waiting out the lease.
//!
//! A lease that ends without a decision (the instance died) lets the next claim take the
//! step over ([`RouteClaim::Claimed`] with `took_over: true`); the taker should look in
//! the call log for what the dead holder already did before routing again.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::StateError;
use crate::ids::CallId;

/// What a claim on a call's routing step got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteClaim {
    /// The step is this holder's to route until its lease ends.
    Claimed {
        /// Another holder's lease had ended without a decision.
        took_over: bool,
    },
    /// The step was routed: answer this TwiML.
    Decided(String),
    /// Another holder is routing the step until `until`.
    Busy {
        /// That holder.
        holder: String,
        /// When its lease ends.
        until: DateTime<Utc>,
    },
}

/// What storing a decision did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouteDecision {
    /// This holder's TwiML is the decision.
    Mine,
    /// The step had already been decided (by a holder that took over, or before): this
    /// is the TwiML in force.
    Earlier(String),
}

/// Persisted routing decisions (see the [module docs](self)). Keys are a call and a
/// step name (e.g. `"service:1"`); holders are opaque strings unique per request.
#[async_trait]
pub trait RoutingStore: Send + Sync + std::fmt::Debug {
    /// Claims `step` of `call` for `holder` until `lease_until`, atomically. A holder
    /// claiming again extends its own lease.
    async fn claim_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<RouteClaim, StateError>;

    /// Stores `twiml` as the decision of `step`, unless one is stored already.
    async fn decide_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        twiml: &str,
        now: DateTime<Utc>,
    ) -> Result<RouteDecision, StateError>;

    /// Gives an undecided claim back (its holder failed). Returns whether `holder` held
    /// it. Idempotent; never touches a decided step.
    async fn release_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
    ) -> Result<bool, StateError>;

    /// The decision of `step`, if made.
    async fn route_decision(&self, call: &CallId, step: &str)
        -> Result<Option<String>, StateError>;

    /// Deletes steps claimed or decided before `before` (retries stop within minutes;
    /// keep a day). Returns how many.
    async fn prune_routes(&self, before: DateTime<Utc>) -> Result<u64, StateError>;
}

#[derive(Debug, Clone)]
struct Row {
    holder: String,
    lease_until: DateTime<Utc>,
    twiml: Option<String>,
    at: DateTime<Utc>,
}

/// In-memory [`RoutingStore`] (one process).
#[derive(Debug, Default)]
pub struct MemoryRoutingStore {
    rows: Mutex<Rows>,
}

type Rows = HashMap<(String, String), Row>;

impl MemoryRoutingStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> Result<std::sync::MutexGuard<'_, Rows>, StateError> {
        self.rows.lock().map_err(|_| StateError::Unavailable {
            store: "memory",
            operation: "routing",
            message: "lock poisoned".into(),
        })
    }
}

/// The outcome of a claim on an existing row: what every backend decides the same way.
pub fn claim_on(
    holder: &str,
    now: DateTime<Utc>,
    current_holder: &str,
    current_until: DateTime<Utc>,
    twiml: Option<&str>,
) -> ClaimStep {
    if let Some(t) = twiml {
        ClaimStep::Decided(t.to_owned())
    } else if current_holder == holder {
        ClaimStep::Take { took_over: false }
    } else if current_until <= now {
        ClaimStep::Take { took_over: true }
    } else {
        ClaimStep::Busy
    }
}

/// What a backend does with an existing row on a claim ([`claim_on`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimStep {
    /// Answer the stored decision.
    Decided(String),
    /// Set the row's holder and lease to the claimant's.
    Take {
        /// The previous holder's lease had ended.
        took_over: bool,
    },
    /// Leave it: another holder's lease runs.
    Busy,
}

#[async_trait]
impl RoutingStore for MemoryRoutingStore {
    async fn claim_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<RouteClaim, StateError> {
        let mut rows = self.rows()?;
        let key = (call.as_str().to_owned(), step.to_owned());
        let Some(row) = rows.get_mut(&key) else {
            rows.insert(
                key,
                Row {
                    holder: holder.to_owned(),
                    lease_until,
                    twiml: None,
                    at: now,
                },
            );
            return Ok(RouteClaim::Claimed { took_over: false });
        };
        Ok(
            match claim_on(
                holder,
                now,
                &row.holder,
                row.lease_until,
                row.twiml.as_deref(),
            ) {
                ClaimStep::Decided(t) => RouteClaim::Decided(t),
                ClaimStep::Take { took_over } => {
                    row.holder = holder.to_owned();
                    row.lease_until = lease_until;
                    row.at = now;
                    RouteClaim::Claimed { took_over }
                }
                ClaimStep::Busy => RouteClaim::Busy {
                    holder: row.holder.clone(),
                    until: row.lease_until,
                },
            },
        )
    }

    async fn decide_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        twiml: &str,
        now: DateTime<Utc>,
    ) -> Result<RouteDecision, StateError> {
        let mut rows = self.rows()?;
        let row = rows
            .entry((call.as_str().to_owned(), step.to_owned()))
            .or_insert_with(|| Row {
                holder: holder.to_owned(),
                lease_until: now,
                twiml: None,
                at: now,
            });
        if let Some(t) = &row.twiml {
            return Ok(RouteDecision::Earlier(t.clone()));
        }
        row.twiml = Some(twiml.to_owned());
        row.holder = holder.to_owned();
        row.at = now;
        Ok(RouteDecision::Mine)
    }

    async fn release_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
    ) -> Result<bool, StateError> {
        let mut rows = self.rows()?;
        let key = (call.as_str().to_owned(), step.to_owned());
        let mine = rows
            .get(&key)
            .is_some_and(|r| r.twiml.is_none() && r.holder == holder);
        if mine {
            rows.remove(&key);
        }
        Ok(mine)
    }

    async fn route_decision(
        &self,
        call: &CallId,
        step: &str,
    ) -> Result<Option<String>, StateError> {
        let rows = self.rows()?;
        Ok(rows
            .get(&(call.as_str().to_owned(), step.to_owned()))
            .and_then(|r| r.twiml.clone()))
    }

    async fn prune_routes(&self, before: DateTime<Utc>) -> Result<u64, StateError> {
        let mut rows = self.rows()?;
        let n = rows.len();
        rows.retain(|_, r| r.at >= before);
        Ok((n - rows.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::conformance;

    #[tokio::test]
    async fn memory_passes_the_routing_suite() {
        conformance::routing_store(&MemoryRoutingStore::new(), "mem")
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_claims_race_to_one_winner() {
        let s: Arc<dyn RoutingStore> = Arc::new(MemoryRoutingStore::new());
        conformance::routing_concurrency(s.clone(), s, "mem", 20, 16)
            .await
            .unwrap();
    }
}
