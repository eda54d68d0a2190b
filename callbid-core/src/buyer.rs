//! The `Buyer` trait: who we ask for a price, and what they answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::call::CallContext;
use crate::ids::BuyerId;
use crate::money::{Currency, Money};
use crate::phone::Destination;

/// The instant by which a buyer must have answered; HTTP buyers bound their request
/// timeouts by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(pub tokio::time::Instant);

impl Deadline {
    /// A deadline `after` from now.
    pub fn after(after: Duration) -> Self {
        Deadline(tokio::time::Instant::now() + after)
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.0
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        tokio::time::Instant::now() >= self.0
    }
}

/// An offer to buy the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Bid {
    /// Who bids.
    pub buyer: BuyerId,
    /// What they pay for a billable call.
    pub price: Money,
    /// Where to send the call, when the ping already says (Ringba-style); otherwise the
    /// accept step yields it.
    pub destination: Option<Destination>,
    /// The buyer's id for this bid (Service Direct `request_id`, Ringba `bidId`).
    pub bid_id: Option<String>,
    /// When the offer lapses.
    pub expires_at: Option<DateTime<Utc>>,
    /// Minimum call duration for the call to be billable.
    pub min_duration: Option<Duration>,
    /// Opaque data the buyer's adapter keeps with its own bid, for its accept or loss
    /// report step (e.g. values from the ping reply that the post request must echo).
    ///
    /// Only the adapter that made the bid reads it; the auction and rules never look
    /// inside. It is behind an `Arc`, so cloning a bid stays cheap. It is process-local:
    /// not serialized (a deserialized bid has `None`), so adapters must treat a missing
    /// value as "this bid did not come from my ping" rather than assume it is there.
    #[serde(skip)]
    pub adapter_data: Option<Arc<serde_json::Value>>,
}

impl Bid {
    /// A bid of `price` by `buyer`, with nothing else known yet.
    pub fn new(buyer: BuyerId, price: Money) -> Self {
        Bid {
            buyer,
            price,
            destination: None,
            bid_id: None,
            expires_at: None,
            min_duration: None,
            adapter_data: None,
        }
    }

    /// Sets the destination.
    pub fn with_destination(mut self, d: Destination) -> Self {
        self.destination = Some(d);
        self
    }

    /// Sets the buyer's bid id.
    pub fn with_bid_id(mut self, id: impl Into<String>) -> Self {
        self.bid_id = Some(id.into());
        self
    }

    /// Sets the expiry.
    pub fn with_expiry(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// Sets the minimum billable duration.
    pub fn with_min_duration(mut self, d: Duration) -> Self {
        self.min_duration = Some(d);
        self
    }

    /// Attaches the adapter's opaque data (see [`Bid::adapter_data`]).
    pub fn with_adapter_data(mut self, data: impl Into<Arc<serde_json::Value>>) -> Self {
        self.adapter_data = Some(data.into());
        self
    }
}

/// A buyer's answer to a ping. "No bid" is a normal answer, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PingReply {
    /// The buyer offers a price.
    Bid(Bid),
    /// The buyer declines.
    NoBid {
        /// Why, as the buyer said it (or `"no buyer"`).
        reason: String,
    },
}

/// Which step of the buyer protocol failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuyerStep {
    /// Asking for a price.
    Ping,
    /// Confirming the sale and getting the destination.
    Accept,
    /// Telling a loser what the call sold for.
    ReportLoss,
}

impl fmt::Display for BuyerStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BuyerStep::Ping => "ping",
            BuyerStep::Accept => "accept",
            BuyerStep::ReportLoss => "report_loss",
        })
    }
}

/// What kind of failure, which says whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuyerErrorKind {
    /// No answer in time.
    Timeout,
    /// Connection refused / reset / TLS / DNS: the request may not have arrived.
    Transport,
    /// An answer we could not use (bad status, malformed body, wrong types, too large).
    BadResponse,
    /// The buyer refused the request as invalid (e.g. HTTP 400 with a message).
    Rejected,
    /// The buyer's code panicked.
    Panicked,
    /// The buyer is misconfigured (bad URL, missing credential).
    Config,
    /// Refused locally before sending (rate limit, fault injection, capability).
    Refused,
    /// The buyer is rate limiting us: it answered HTTP 429 Too Many Requests (RFC 6585
    /// §4), and no request goes to it until `until` (its `Retry-After`, RFC 9110
    /// §10.2.3, as delta-seconds or an HTTP-date; the sender's documented default
    /// backoff when the header is absent or unreadable).
    ///
    /// Two cases, told apart by `skipped` (and by [`as_str`](BuyerErrorKind::as_str)):
    /// - `skipped: false` (`rate_limited`): this request was answered 429. It reached
    ///   the buyer ([`Delivery::MaybeDelivered`]), so it is never resent blindly.
    /// - `skipped: true` (`rate_limit_skipped`): callbid did not send this request
    ///   because the buyer's pause had not lapsed ([`Delivery::NotSent`]).
    ///
    /// Not [retryable](BuyerErrorKind::is_retryable): a retry before `until` is refused
    /// the same way.
    RateLimited {
        /// Until when no request is sent to this buyer (UTC).
        until: DateTime<Utc>,
        /// Whether the request was skipped (not sent) because of an earlier 429.
        skipped: bool,
    },
}

impl BuyerErrorKind {
    /// Whether a retry could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, BuyerErrorKind::Transport | BuyerErrorKind::Timeout)
    }

    /// A short stable name (`timeout`, `transport`, …) for logs and reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            BuyerErrorKind::Timeout => "timeout",
            BuyerErrorKind::Transport => "transport",
            BuyerErrorKind::BadResponse => "bad_response",
            BuyerErrorKind::Rejected => "rejected",
            BuyerErrorKind::Panicked => "panicked",
            BuyerErrorKind::Config => "config",
            BuyerErrorKind::Refused => "refused",
            BuyerErrorKind::RateLimited { skipped: false, .. } => "rate_limited",
            BuyerErrorKind::RateLimited { skipped: true, .. } => "rate_limit_skipped",
        }
    }
}

impl fmt::Display for BuyerErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a failed request may have reached the buyer, which decides whether sending
/// it again is safe (a second ping may be billed or counted against us; a second accept
/// may sell the call twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Delivery {
    /// The request certainly did not reach the buyer: it was refused locally, or the
    /// connection was never established. Sending it again cannot make the buyer see it
    /// twice.
    NotSent,
    /// The request may have reached the buyer: it was (or may have been) written and the
    /// answer timed out, broke off or could not be used, or nobody knows.
    #[default]
    MaybeDelivered,
}

impl Delivery {
    /// What [`BuyerError::new`] assumes for `kind` when the caller does not say:
    /// [`Transport`](BuyerErrorKind::Transport) (a connection-level failure) and
    /// [`Refused`](BuyerErrorKind::Refused) (refused locally before sending) did not
    /// reach the buyer, nor did a [`RateLimited`](BuyerErrorKind::RateLimited) request
    /// that was `skipped`; every other kind may have.
    pub fn assumed_for(kind: BuyerErrorKind) -> Delivery {
        match kind {
            BuyerErrorKind::Transport
            | BuyerErrorKind::Refused
            | BuyerErrorKind::RateLimited { skipped: true, .. } => Delivery::NotSent,
            _ => Delivery::MaybeDelivered,
        }
    }
}

/// A buyer failed: which buyer, at which step, what kind, and the detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("buyer {buyer} {step} failed ({kind}): {message}")]
#[non_exhaustive]
pub struct BuyerError {
    /// The buyer.
    pub buyer: BuyerId,
    /// The step.
    pub step: BuyerStep,
    /// The kind of failure.
    pub kind: BuyerErrorKind,
    /// Human-readable detail (the buyer's own message where it gave one).
    pub message: String,
    /// The raw response body, when it could not be parsed (truncated by the adapter).
    pub raw_body: Option<String>,
    /// Whether the request may have reached the buyer (see
    /// [`BuyerError::may_have_reached_buyer`]). Records without it read as
    /// [`Delivery::MaybeDelivered`].
    #[serde(default)]
    pub delivery: Delivery,
}

impl BuyerError {
    /// A new error. Its [`delivery`](BuyerError::delivery) is what
    /// [`Delivery::assumed_for`] `kind` says; set it with [`BuyerError::with_delivery`]
    /// when the failing code knows better (an HTTP client knows whether it connected).
    pub fn new(
        buyer: BuyerId,
        step: BuyerStep,
        kind: BuyerErrorKind,
        message: impl Into<String>,
    ) -> Self {
        BuyerError {
            buyer,
            step,
            kind,
            message: message.into(),
            raw_body: None,
            delivery: Delivery::assumed_for(kind),
        }
    }

    /// Says whether the request may have reached the buyer.
    pub fn with_delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Whether the request may have reached the buyer. When `true`, sending it again
    /// is not safe: the buyer may see it twice.
    pub fn may_have_reached_buyer(&self) -> bool {
        self.delivery != Delivery::NotSent
    }

    /// Whether sending the request again is safe and could help: the failure is a
    /// connection failure or a timeout ([`BuyerErrorKind::is_retryable`]) and the
    /// request did not reach the buyer.
    pub fn is_safe_to_retry(&self) -> bool {
        self.kind.is_retryable() && !self.may_have_reached_buyer()
    }

    /// Attaches the raw body of an unparseable response.
    pub fn with_raw_body(mut self, body: impl Into<String>) -> Self {
        self.raw_body = Some(body.into());
        self
    }
}

/// What a buyer can do and needs; the auction and rules consult it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Capabilities {
    /// The buyer must see the caller's number (calls without caller id are not sent).
    pub needs_caller_id: bool,
    /// The buyer may return SIP destinations.
    pub accepts_sip: bool,
    /// The buyer has a post/accept step that yields the destination; when false, a bid
    /// must carry its destination.
    pub has_accept: bool,
    /// The buyer wants to hear what the call sold for when it loses.
    pub reports_loss: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            needs_caller_id: false,
            accepts_sip: true,
            has_accept: false,
            reports_loss: false,
        }
    }
}

impl Capabilities {
    /// Sets `needs_caller_id`.
    pub fn with_needs_caller_id(mut self, v: bool) -> Self {
        self.needs_caller_id = v;
        self
    }
    /// Sets `accepts_sip`.
    pub fn with_accepts_sip(mut self, v: bool) -> Self {
        self.accepts_sip = v;
        self
    }
    /// Sets `has_accept`.
    pub fn with_has_accept(mut self, v: bool) -> Self {
        self.has_accept = v;
        self
    }
    /// Sets `reports_loss`.
    pub fn with_reports_loss(mut self, v: bool) -> Self {
        self.reports_loss = v;
        self
    }
}

/// Someone who may buy the call: a network endpoint or an in-process buyer.
///
/// Implementations answer `ping` quickly (the caller is listening), never block the
/// thread, and return errors rather than panicking; the auction still survives a panic.
#[async_trait]
pub trait Buyer: Send + Sync + fmt::Debug {
    /// The buyer's id.
    fn id(&self) -> &BuyerId;

    /// What this buyer can do and needs.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Asks for a price for `call`, answering before `deadline`.
    async fn ping(&self, call: &CallContext, deadline: Deadline) -> Result<PingReply, BuyerError>;

    /// Confirms the sale of `call` at `bid` and returns where to send it. The default
    /// returns the destination the bid carries.
    async fn accept(
        &self,
        call: &CallContext,
        bid: &Bid,
        deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        let _ = (call, deadline);
        bid.destination.clone().ok_or_else(|| {
            BuyerError::new(
                self.id().clone(),
                BuyerStep::Accept,
                BuyerErrorKind::BadResponse,
                "bid has no destination and the buyer has no accept step",
            )
        })
    }

    /// Tells the buyer the call went to someone else for `sold`. Default: nothing.
    async fn report_loss(
        &self,
        call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<(), BuyerError> {
        let _ = (call, bid, sold);
        Ok(())
    }
}

/// Per-buyer settings the auction, rules and scoring use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BuyerProfile {
    /// The buyer.
    pub id: BuyerId,
    /// The buyer's IANA time zone: hours and cap windows are in it.
    pub time_zone: Tz,
    /// Priority for priority-then-weight routing: lower numbers are tried first.
    pub priority: u32,
    /// Weight within a priority (relative share of calls).
    pub weight: u32,
    /// The currency the buyer bids in.
    pub currency: Currency,
    /// Minimum billable duration when a bid does not state one.
    pub default_min_duration: Duration,
}

impl BuyerProfile {
    /// A profile with defaults: `America/New_York`, priority 1, weight 1, USD, 60 s minimum.
    pub fn new(id: BuyerId) -> Self {
        BuyerProfile {
            id,
            time_zone: chrono_tz::America::New_York,
            priority: 1,
            weight: 1,
            currency: Currency::USD,
            default_min_duration: Duration::from_secs(60),
        }
    }

    /// Sets the time zone.
    pub fn with_time_zone(mut self, tz: Tz) -> Self {
        self.time_zone = tz;
        self
    }

    /// Sets priority and weight.
    pub fn with_priority(mut self, priority: u32, weight: u32) -> Self {
        self.priority = priority;
        self.weight = weight;
        self
    }

    /// Sets the currency.
    pub fn with_currency(mut self, c: Currency) -> Self {
        self.currency = c;
        self
    }

    /// Sets the default minimum billable duration.
    pub fn with_default_min_duration(mut self, d: Duration) -> Self {
        self.default_min_duration = d;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> BuyerId {
        BuyerId::new("b").unwrap()
    }

    #[test]
    fn delivery_defaults_by_kind_and_decides_retry_safety() {
        let e = |k| BuyerError::new(id(), BuyerStep::Ping, k, "x");
        assert!(!e(BuyerErrorKind::Transport).may_have_reached_buyer());
        assert!(!e(BuyerErrorKind::Refused).may_have_reached_buyer());
        for k in [
            BuyerErrorKind::Timeout,
            BuyerErrorKind::BadResponse,
            BuyerErrorKind::Rejected,
            BuyerErrorKind::Panicked,
            BuyerErrorKind::Config,
        ] {
            assert!(e(k).may_have_reached_buyer(), "{k}");
        }
        assert!(e(BuyerErrorKind::Transport).is_safe_to_retry());
        // A timeout after the request was written: the buyer may have it.
        assert!(!e(BuyerErrorKind::Timeout).is_safe_to_retry());
        // A timeout while connecting: it never left.
        assert!(e(BuyerErrorKind::Timeout)
            .with_delivery(Delivery::NotSent)
            .is_safe_to_retry());
        // A connection reset after the request was written.
        assert!(!e(BuyerErrorKind::Transport)
            .with_delivery(Delivery::MaybeDelivered)
            .is_safe_to_retry());
        // Refused locally: not sent, but retrying cannot help.
        assert!(!e(BuyerErrorKind::Refused).is_safe_to_retry());
    }

    #[test]
    fn rate_limited_answer_and_skip_are_distinct_and_never_retried() {
        let until = Utc::now();
        let answered = BuyerErrorKind::RateLimited {
            until,
            skipped: false,
        };
        let skipped = BuyerErrorKind::RateLimited {
            until,
            skipped: true,
        };
        assert_eq!(answered.as_str(), "rate_limited");
        assert_eq!(skipped.as_str(), "rate_limit_skipped");
        let e = |k| BuyerError::new(id(), BuyerStep::Accept, k, "x");
        assert!(e(answered).may_have_reached_buyer(), "a 429 answer arrived");
        assert!(!e(skipped).may_have_reached_buyer(), "a skip sent nothing");
        assert!(!e(answered).is_safe_to_retry());
        assert!(!e(skipped).is_safe_to_retry());
        let text = serde_json::to_string(&e(skipped)).unwrap();
        assert!(text.contains(r#""skipped":true"#), "{text}");
        assert!(text.contains(r#""delivery":"not_sent""#), "{text}");
        assert_eq!(
            serde_json::from_str::<BuyerError>(&text).unwrap(),
            e(skipped)
        );
    }

    #[test]
    fn delivery_serializes_and_defaults_when_absent() {
        let err = BuyerError::new(id(), BuyerStep::Accept, BuyerErrorKind::Timeout, "slow")
            .with_delivery(Delivery::NotSent);
        let text = serde_json::to_string(&err).unwrap();
        assert!(text.contains(r#""delivery":"not_sent""#), "{text}");
        assert_eq!(serde_json::from_str::<BuyerError>(&text).unwrap(), err);
        let old = r#"{"buyer":"b","step":"ping","kind":"transport","message":"m","raw_body":null}"#;
        let back: BuyerError = serde_json::from_str(old).unwrap();
        assert!(
            back.may_have_reached_buyer(),
            "unknown means maybe delivered"
        );
    }

    #[test]
    fn adapter_data_is_shared_on_clone_and_not_serialized() {
        let data = serde_json::json!({"token": "t-1"});
        let bid = Bid::new(id(), Money::usd(10.into())).with_adapter_data(data.clone());
        let copy = bid.clone();
        let (a, b) = (
            bid.adapter_data.as_ref().unwrap(),
            copy.adapter_data.as_ref().unwrap(),
        );
        assert!(Arc::ptr_eq(a, b), "cloning a bid must not copy the data");
        assert_eq!(**a, data);
        let text = serde_json::to_string(&bid).unwrap();
        assert!(!text.contains("t-1"), "{text}");
        let back: Bid = serde_json::from_str(&text).unwrap();
        assert_eq!(back.adapter_data, None);
        assert_eq!(
            back,
            Bid {
                adapter_data: None,
                ..bid
            }
        );
    }
}
