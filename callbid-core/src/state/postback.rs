//! Publisher postbacks: a durable outbox of "this call became billable" notifications.
//!
//! When a call settles as billable, its publisher (the lease's `publisher` attribute of
//! a number-pool call, else the call's source) is told through an HTTP request
//! (`callbid-server`'s `postback` module renders, signs and sends it). This module is
//! the part without I/O: the delivery model, the retry schedule ([`Backoff`]) and the
//! state trait ([`PostbackOutbox`]) every backend implements.
//!
//! A delivery is identified by (call, publisher): [`enqueue_postback`] is idempotent on
//! it, so a billing event logged twice or replayed enqueues nothing new. A sender:
//! 1. [`claim_postbacks`] takes due pending deliveries under a lease, atomically: of
//!    several instances sharing one store, exactly one holds a delivery at a time;
//! 2. sends one attempt per claimed delivery;
//! 3. [`record_postback_attempt`] stores its result (delivered, retry at a time, or
//!    given up) and drops the lease; only the holder may record, so a sender whose lease
//!    was taken over writes nothing.
//!
//! A delivered or abandoned delivery is never claimed again. A holder that dies leaves a
//! lease that ends by itself; the next claim after it takes the delivery over. (The lease
//! must outlast one attempt: a sender that is still sending when its lease ends may race
//! a taker, which is why every request carries a stable `Idempotency-Key`.)
//!
//! [`enqueue_postback`]: PostbackOutbox::enqueue_postback
//! [`claim_postbacks`]: PostbackOutbox::claim_postbacks
//! [`record_postback_attempt`]: PostbackOutbox::record_postback_attempt

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{StateError, ValidationError};
use crate::ids::CallId;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryState {
    /// Not yet acknowledged; due at [`PostbackDelivery::next_attempt_at`].
    Pending,
    /// A 2xx was recorded; never sent again.
    Delivered,
    /// Given up (attempts exhausted, or the call is not billable); never sent again.
    Abandoned,
}

impl DeliveryState {
    /// `pending`, `delivered` or `abandoned` (the stored form).
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Abandoned => "abandoned",
        }
    }

    /// Parses [`DeliveryState::as_str`]'s form.
    ///
    /// # Errors
    /// [`ValidationError`] on any other text.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "pending" => Ok(DeliveryState::Pending),
            "delivered" => Ok(DeliveryState::Delivered),
            "abandoned" => Ok(DeliveryState::Abandoned),
            other => Err(ValidationError::new(
                "delivery_state",
                other,
                "expected pending, delivered or abandoned",
            )),
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One postback: a call's notification to one publisher, and what its attempts did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostbackDelivery {
    /// The call.
    pub call: CallId,
    /// The publisher (a key of the postback configuration).
    pub publisher: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Attempts made (requests sent or tried).
    pub attempts: u32,
    /// When the next attempt is due (`None` once delivered or abandoned).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt, when a response came.
    pub last_status: Option<u16>,
    /// Why the last attempt failed (timeout, connection error, non-2xx), if it did.
    pub last_error: Option<String>,
    /// The URL of the last attempt (secret-free: the signing secret travels in no URL,
    /// and user info is removed before it is stored).
    pub url: Option<String>,
    /// When a 2xx was recorded.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Who holds the delivery's lease, while one is held.
    pub holder: Option<String>,
    /// When that lease ends.
    pub lease_until: Option<DateTime<Utc>>,
}

impl PostbackDelivery {
    /// A fresh pending delivery due at `due`.
    pub fn new(
        call: CallId,
        publisher: impl Into<String>,
        now: DateTime<Utc>,
        due: DateTime<Utc>,
    ) -> Self {
        PostbackDelivery {
            call,
            publisher: publisher.into(),
            state: DeliveryState::Pending,
            created_at: now,
            attempts: 0,
            next_attempt_at: Some(due),
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            url: None,
            delivered_at: None,
            holder: None,
            lease_until: None,
        }
    }

    /// The delivery's stable idempotency key, `callbid-postback:{call}:{publisher}`:
    /// the same on every attempt, from every instance.
    pub fn idempotency_key(&self) -> String {
        idempotency_key(&self.call, &self.publisher)
    }

    /// Whether a claim at `now` may take it: pending, due, and no live lease.
    pub fn claimable(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending
            && self.next_attempt_at.is_some_and(|t| t <= now)
            && self.lease_until.is_none_or(|t| t <= now)
    }

    /// Applies an attempt's result (what every backend stores): one more attempt, the
    /// last status, error and URL, the new state, and no lease.
    pub fn apply(&mut self, attempt: &PostbackAttempt) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_attempt_at = Some(attempt.at);
        self.last_status = attempt.status;
        self.last_error = attempt.error.clone();
        self.url = Some(attempt.url.clone());
        self.holder = None;
        self.lease_until = None;
        match attempt.outcome {
            AttemptOutcome::Delivered => {
                self.state = DeliveryState::Delivered;
                self.delivered_at = Some(attempt.at);
                self.next_attempt_at = None;
            }
            AttemptOutcome::RetryAt(t) => self.next_attempt_at = Some(t),
            AttemptOutcome::GiveUp => {
                self.state = DeliveryState::Abandoned;
                self.next_attempt_at = None;
            }
        }
    }
}

/// The stable idempotency key of the delivery of `call` to `publisher`.
pub fn idempotency_key(call: &CallId, publisher: &str) -> String {
    format!("callbid-postback:{call}:{publisher}")
}

/// What an attempt decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// A 2xx: done.
    Delivered,
    /// Failed; try again at this instant.
    RetryAt(DateTime<Utc>),
    /// Failed for good (attempts exhausted, or nothing to send).
    GiveUp,
}

/// One attempt's result, as [`PostbackOutbox::record_postback_attempt`] stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PostbackAttempt {
    /// When it was made.
    pub at: DateTime<Utc>,
    /// The URL requested (secret-free).
    pub url: String,
    /// The HTTP status, when a response came.
    pub status: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// What happens next.
    pub outcome: AttemptOutcome,
}

impl PostbackAttempt {
    /// An attempt at `at` to `url` that ended in `outcome`.
    pub fn new(at: DateTime<Utc>, url: impl Into<String>, outcome: AttemptOutcome) -> Self {
        PostbackAttempt {
            at,
            url: url.into(),
            status: None,
            error: None,
            outcome,
        }
    }

    /// With the response's HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// With the reason it failed.
    pub fn with_error(mut self, error: impl Into<String>) -> Self {
        self.error = Some(error.into());
        self
    }
}

/// The retry schedule: exponential backoff with a cap and a maximum number of attempts,
/// without jitter (deterministic: the delay after the `n`-th failed attempt is
/// `min(first · 2^(n−1), cap)`; deliveries spread by their calls' own timing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub first: Duration,
    /// The longest delay.
    pub cap: Duration,
    /// Attempts in all (at least 1); after the last one fails the delivery is abandoned.
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// 10 s, doubling, capped at 1 h, 10 attempts (the last ~2 h 20 min after the first).
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(10),
            cap: Duration::from_secs(3600),
            max_attempts: 10,
        }
    }
}

impl Backoff {
    /// A schedule; `first` is raised to 1 ms, `cap` to `first` and `max_attempts` to 1.
    pub fn new(first: Duration, cap: Duration, max_attempts: u32) -> Self {
        let first = first.max(Duration::from_millis(1));
        Backoff {
            first,
            cap: cap.max(first),
            max_attempts: max_attempts.max(1),
        }
    }

    /// The delay before the next attempt after `attempts` attempts failed, or `None` when
    /// none is left.
    pub fn delay_after(&self, attempts: u32) -> Option<Duration> {
        if attempts == 0 || attempts >= self.max_attempts {
            return if attempts == 0 {
                Some(Duration::ZERO)
            } else {
                None
            };
        }
        let factor = 1u32.checked_shl(attempts - 1).unwrap_or(u32::MAX);
        Some(self.first.saturating_mul(factor).min(self.cap))
    }

    /// The outcome of a failed attempt, the `attempts`-th, made at `at`.
    pub fn after_failure(&self, attempts: u32, at: DateTime<Utc>) -> AttemptOutcome {
        match self.delay_after(attempts) {
            Some(d) => {
                let d = chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
                AttemptOutcome::RetryAt(at.checked_add_signed(d).unwrap_or(at))
            }
            None => AttemptOutcome::GiveUp,
        }
    }
}

/// The postback outbox (see the [module docs](self)).
#[async_trait]
pub trait PostbackOutbox: Send + Sync + fmt::Debug {
    /// Enqueues `delivery` (a [`PostbackDelivery::new`]) unless one exists for its call
    /// and publisher. Returns whether it was new; an existing delivery is left as it is
    /// (whatever its state).
    async fn enqueue_postback(&self, delivery: &PostbackDelivery) -> Result<bool, StateError>;

    /// Claims up to `limit` deliveries claimable at `now`
    /// ([`PostbackDelivery::claimable`]), earliest due first, for `holder` until
    /// `lease_until`, atomically: no two holders get the same delivery while its lease
    /// runs. Returns them as claimed (holder and lease set).
    async fn claim_postbacks(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PostbackDelivery>, StateError>;

    /// Records an attempt of the delivery of `call` to `publisher` held by `holder`
    /// ([`PostbackDelivery::apply`]) and drops the lease. Returns `false`, writing
    /// nothing, when the delivery is not pending or `holder` does not hold it (its lease
    /// was taken over).
    async fn record_postback_attempt(
        &self,
        call: &CallId,
        publisher: &str,
        holder: &str,
        attempt: &PostbackAttempt,
    ) -> Result<bool, StateError>;

    /// The deliveries of `call`, by publisher.
    async fn postbacks(&self, call: &CallId) -> Result<Vec<PostbackDelivery>, StateError>;
}

/// In-memory [`PostbackOutbox`] (one process).
#[derive(Debug, Default)]
pub struct MemoryPostbackOutbox {
    rows: Mutex<Deliveries>,
}

type Deliveries = HashMap<(String, String), PostbackDelivery>;

impl MemoryPostbackOutbox {
    /// An empty outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> Result<std::sync::MutexGuard<'_, Deliveries>, StateError> {
        self.rows.lock().map_err(|_| StateError::Unavailable {
            store: "memory",
            operation: "postbacks",
            message: "lock poisoned".into(),
        })
    }
}

#[async_trait]
impl PostbackOutbox for MemoryPostbackOutbox {
    async fn enqueue_postback(&self, delivery: &PostbackDelivery) -> Result<bool, StateError> {
        let key = (
            delivery.call.as_str().to_owned(),
            delivery.publisher.clone(),
        );
        let mut rows = self.rows()?;
        if rows.contains_key(&key) {
            return Ok(false);
        }
        rows.insert(key, delivery.clone());
        Ok(true)
    }

    async fn claim_postbacks(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PostbackDelivery>, StateError> {
        let mut rows = self.rows()?;
        let mut due: Vec<&mut PostbackDelivery> =
            rows.values_mut().filter(|d| d.claimable(now)).collect();
        due.sort_by(|a, b| {
            (a.next_attempt_at, a.call.as_str(), &a.publisher).cmp(&(
                b.next_attempt_at,
                b.call.as_str(),
                &b.publisher,
            ))
        });
        let mut out = Vec::new();
        for d in due.into_iter().take(limit as usize) {
            d.holder = Some(holder.to_owned());
            d.lease_until = Some(lease_until);
            out.push(d.clone());
        }
        Ok(out)
    }

    async fn record_postback_attempt(
        &self,
        call: &CallId,
        publisher: &str,
        holder: &str,
        attempt: &PostbackAttempt,
    ) -> Result<bool, StateError> {
        let mut rows = self.rows()?;
        let Some(d) = rows.get_mut(&(call.as_str().to_owned(), publisher.to_owned())) else {
            return Ok(false);
        };
        if d.state != DeliveryState::Pending || d.holder.as_deref() != Some(holder) {
            return Ok(false);
        }
        d.apply(attempt);
        Ok(true)
    }

    async fn postbacks(&self, call: &CallId) -> Result<Vec<PostbackDelivery>, StateError> {
        let rows = self.rows()?;
        let mut out: Vec<PostbackDelivery> =
            rows.values().filter(|d| d.call == *call).cloned().collect();
        out.sort_by(|a, b| a.publisher.cmp(&b.publisher));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::state::conformance;

    #[test]
    fn backoff_doubles_up_to_the_cap_then_gives_up() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(60), 5);
        let secs: Vec<Option<u64>> = (1..=5)
            .map(|n| b.delay_after(n).map(|d| d.as_secs()))
            .collect();
        assert_eq!(secs, vec![Some(10), Some(20), Some(40), Some(60), None]);
        let at = chrono::DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(b.after_failure(5, at), AttemptOutcome::GiveUp);
        assert_eq!(
            b.after_failure(1, at),
            AttemptOutcome::RetryAt(at + chrono::Duration::seconds(10))
        );
        // Huge attempt counts saturate instead of overflowing.
        let long = Backoff::new(Duration::from_secs(1), Duration::from_secs(5), u32::MAX);
        assert_eq!(long.delay_after(200), Some(Duration::from_secs(5)));
    }

    #[test]
    fn the_idempotency_key_is_stable() {
        let call = CallId::new("CA1").unwrap();
        let d = PostbackDelivery::new(call.clone(), "pub", Utc::now(), Utc::now());
        assert_eq!(d.idempotency_key(), "callbid-postback:CA1:pub");
        assert_eq!(d.idempotency_key(), idempotency_key(&call, "pub"));
    }

    #[tokio::test]
    async fn memory_passes_the_postback_suite() {
        conformance::postback_outbox(&MemoryPostbackOutbox::new(), "mem")
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_claims_never_overlap() {
        let s: Arc<dyn PostbackOutbox> = Arc::new(MemoryPostbackOutbox::new());
        conformance::postback_concurrency(s.clone(), s, "mem", 40, 8)
            .await
            .unwrap();
    }
}
