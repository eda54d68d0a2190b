//! Publisher postbacks (issue 12, item 5): when a call becomes billable, its publisher is
//! told through a configured URL template, as Ringba's and Retreaver's publisher pixels
//! do. Requests are signed ([`sign`]), retried with backoff, and idempotent; the
//! delivery state is stored in the store's postback outbox and shown in the dashboard's
//! call detail (`GET /api/calls/{call_id}/postbacks`).
//!
//! The pieces:
//! - [`PostbackConfig`] (from a `postbacks.toml`, format in [`file`](mod@file)): one
//!   [`Endpoint`] (URL [`template`] + signing secret) per publisher or source id, the
//!   retry schedule, the per-attempt timeout.
//! - [`PostbackLog`]: a [`CallLog`] decorator. Before a `billing` event with
//!   `billable = true` is appended, it enqueues the call's delivery in the outbox
//!   ([`PostbackOutbox::enqueue_postback`], idempotent per call × publisher), so the
//!   postback is durable from the moment the billing is: a process that dies after the
//!   billing was logged has already stored the delivery. A billing logged twice, or
//!   replayed, enqueues nothing new. The publisher is the call's number-pool
//!   attribution's `publisher` attribute when it has an endpoint, else the call's
//!   `source` (from its `incoming` event).
//! - [`worker::PostbackWorker`]: claims due deliveries under a lease (so instances
//!   sharing a store never send one at the same time), sends one signed `GET` per
//!   delivery, concurrently and each under the per-attempt timeout (a stalled receiver
//!   holds up nobody else), and records the result: a 2xx is final; anything else
//!   (timeout, connection error, non-2xx, 3xx since redirects are not followed) is
//!   retried on [`Backoff`]'s schedule until the attempts run out. Values are read from
//!   the call's record at send time, and a call whose record is not billable is not
//!   notified (not yet billed: retried; billed as not billable: abandoned).
//!
//! Delivery is at least once towards the receiver in one corner only: a sender whose
//! lease ends while its request is still in flight (the lease is twice the timeout plus
//! 5 s, so only a sender paused that long). Receivers deduplicate on the
//! `Idempotency-Key` header, which is the same on every attempt.

pub mod file;
pub mod sign;
pub mod template;
pub mod worker;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::state::{
    AppendOutcome, Backoff, CallEvent, CallEventKind, CallLog, CallRecord, PostbackDelivery,
    PostbackOutbox,
};
use callbid_core::{CallId, StateError};
use chrono::Utc;

pub use file::PostbackConfigError;
pub use sign::{verify, VerifyError};
pub use template::{TemplateError, Token, UrlTemplate};

/// A signing secret (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// A secret of these bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes (the HMAC key).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where and how one publisher is notified.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// The URL template.
    pub url: UrlTemplate,
    /// The HMAC-SHA256 key of its signatures.
    pub secret: Secret,
}

impl Endpoint {
    /// An endpoint.
    pub fn new(url: UrlTemplate, secret: Secret) -> Self {
        Endpoint { url, secret }
    }
}

/// The postback configuration (see the [module docs](self)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostbackConfig {
    /// Endpoints by publisher or source id.
    pub endpoints: BTreeMap<String, Endpoint>,
    /// The retry schedule.
    pub backoff: Backoff,
    /// The longest one attempt may take (connect, send, response headers).
    pub timeout: Duration,
    /// How long after the billing the first attempt is due (the billing event is
    /// appended just after the delivery is enqueued).
    pub delay: Duration,
    /// How often the worker looks for due deliveries when it found none.
    pub poll: Duration,
    /// Deliveries claimed (and sent concurrently) at most per round.
    pub batch: u32,
}

impl PostbackConfig {
    /// A configuration with these endpoints and the defaults: [`Backoff::default`], a
    /// 10 s timeout, a 1 s delay, a 1 s poll and batches of 32.
    pub fn new(endpoints: BTreeMap<String, Endpoint>) -> Self {
        PostbackConfig {
            endpoints,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(10),
            delay: Duration::from_secs(1),
            poll: Duration::from_secs(1),
            batch: 32,
        }
    }

    /// How long a claim holds a delivery: twice the timeout plus 5 s, so a lease outlasts
    /// the attempt it covers.
    pub fn lease(&self) -> Duration {
        self.timeout.saturating_mul(2) + Duration::from_secs(5)
    }

    /// The publisher of a call whose events are `events`: the attribution's `publisher`
    /// when it has an endpoint, else the source's when it has one.
    pub fn publisher_of(&self, events: &[CallEvent]) -> Option<String> {
        let mut attributed = None;
        let mut source = None;
        for e in events {
            match &e.kind {
                CallEventKind::Attributed { attributes, .. } => {
                    if let Some(p) = attributes.get("publisher") {
                        attributed = Some(p.clone());
                    }
                }
                CallEventKind::Incoming {
                    source: Some(s), ..
                } => source = Some(s.as_str().to_owned()),
                _ => {}
            }
        }
        [attributed, source]
            .into_iter()
            .flatten()
            .find(|p| self.endpoints.contains_key(p))
    }
}

/// The value of `token` for the delivery to `publisher` of the call `record`.
pub fn value_of(record: &CallRecord, publisher: &str, token: Token) -> Option<String> {
    Some(match token {
        Token::CallId => record.call_id.as_str().to_owned(),
        Token::Publisher => publisher.to_owned(),
        Token::Source => record.source.as_ref()?.as_str().to_owned(),
        Token::Campaign => record.campaign.as_ref()?.as_str().to_owned(),
        Token::Payout => format!("{:.2}", record.payout.as_ref()?.amount.round_dp(2)),
        Token::Currency => record.payout.as_ref()?.currency.to_string(),
        Token::Duration => record.duration_secs?.to_string(),
        Token::Caller => record.caller.as_ref()?.as_str().to_owned(),
        Token::Dialed => record.dialed.as_ref()?.as_str().to_owned(),
        Token::Zip => record.zip.as_ref()?.as_str().to_owned(),
        Token::Service => record.service.as_ref()?.as_str().to_owned(),
        Token::ReceivedAt => record
            .received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// A [`CallLog`] that enqueues a call's postback before its billable `billing` event is
/// appended (see the [module docs](self)). Everything else is passed through.
#[derive(Debug, Clone)]
pub struct PostbackLog {
    inner: Arc<dyn CallLog>,
    outbox: Arc<dyn PostbackOutbox>,
    config: Arc<PostbackConfig>,
}

impl PostbackLog {
    /// `inner`, enqueueing into `outbox` for the endpoints of `config`.
    pub fn new(
        inner: Arc<dyn CallLog>,
        outbox: Arc<dyn PostbackOutbox>,
        config: Arc<PostbackConfig>,
    ) -> Self {
        PostbackLog {
            inner,
            outbox,
            config,
        }
    }

    /// Enqueues the delivery of `call`, if it has a publisher with an endpoint. Returns
    /// whether a new delivery was stored.
    pub async fn enqueue(&self, call: &CallId) -> Result<bool, StateError> {
        let events = self.inner.events(call).await?;
        let Some(publisher) = self.config.publisher_of(&events) else {
            return Ok(false);
        };
        let now = Utc::now();
        let delay = chrono::Duration::from_std(self.config.delay).unwrap_or_default();
        let d = PostbackDelivery::new(call.clone(), publisher, now, now + delay);
        self.outbox.enqueue_postback(&d).await
    }

    async fn before(&self, events: &[CallEvent]) -> Result<(), StateError> {
        for e in events {
            if matches!(e.kind, CallEventKind::Billing { billable: true, .. }) {
                self.enqueue(&e.call_id).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl CallLog for PostbackLog {
    async fn append(&self, event: &CallEvent) -> Result<AppendOutcome, StateError> {
        self.before(std::slice::from_ref(event)).await?;
        self.inner.append(event).await
    }
    async fn append_all(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>, StateError> {
        self.before(events).await?;
        self.inner.append_all(events).await
    }
    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError> {
        self.inner.events(call).await
    }
    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError> {
        self.inner.record(call).await
    }
    async fn has_key_prefix(&self, call: &CallId, prefix: &str) -> Result<bool, StateError> {
        self.inner.has_key_prefix(call, prefix).await
    }
}
