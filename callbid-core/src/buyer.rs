//! The `Buyer` trait: who we ask for a price, and what they answer.

use std::fmt;
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
        }
    }
}

impl fmt::Display for BuyerErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
}

impl BuyerError {
    /// A new error.
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
        }
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
