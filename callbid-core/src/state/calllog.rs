//! The call log: a call's ordered events, and the call record derived from them.

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::StateError;
use crate::ids::{BuyerId, CallId, CampaignId, ServiceType, SourceId};
use crate::money::Money;
use crate::phone::{Destination, PhoneNumber};
use crate::zip::Zip;

/// What happened to a call. Stored as JSON (`{"type": "incoming", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallEventKind {
    /// The call arrived.
    Incoming {
        /// Caller id.
        caller: Option<PhoneNumber>,
        /// Tracking number dialed.
        dialed: Option<PhoneNumber>,
        /// Campaign.
        campaign: Option<CampaignId>,
        /// Traffic source.
        source: Option<SourceId>,
    },
    /// The caller answered an IVR prompt (or an agent typed it).
    IvrInput {
        /// Which step (`zip`, `service`).
        step: String,
        /// What was entered.
        value: String,
    },
    /// An auction began.
    AuctionStarted {
        /// The ZIP auctioned.
        zip: Zip,
        /// The service auctioned.
        service: ServiceType,
        /// Buyers pinged.
        eligible: u32,
        /// Buyers excluded by rules.
        excluded: u32,
    },
    /// One buyer's answer.
    PingResult {
        /// The buyer.
        buyer: BuyerId,
        /// How long it took, in milliseconds.
        latency_ms: u64,
        /// The price, when it bid.
        price: Option<Money>,
        /// Why not, when it did not (no-bid reason or error kind).
        reason: Option<String>,
    },
    /// The auction picked a winner.
    Winner {
        /// The buyer.
        buyer: BuyerId,
        /// Its bid.
        price: Money,
        /// Its score.
        score: Decimal,
    },
    /// The winner confirmed and gave a destination.
    Accepted {
        /// The buyer.
        buyer: BuyerId,
        /// Where to send the call.
        destination: Destination,
    },
    /// An accept failed (the auction moves on to the next bid).
    AcceptFailed {
        /// The buyer.
        buyer: BuyerId,
        /// Why.
        reason: String,
    },
    /// The call was sent to the buyer's destination (`<Dial>` issued).
    Forwarded {
        /// The buyer.
        buyer: BuyerId,
        /// The destination dialed.
        destination: Destination,
    },
    /// The buyer's side answered.
    Connected {
        /// The buyer.
        buyer: Option<BuyerId>,
    },
    /// The forwarded call ended.
    Completed {
        /// Talk time with the buyer, in seconds.
        duration_secs: u64,
    },
    /// The forwarded call was not answered (busy, no-answer, failed, canceled).
    Missed {
        /// Twilio's `DialCallStatus` or another reason.
        reason: String,
    },
    /// The call was refused (blocked caller, invalid input, no eligible buyer).
    Rejected {
        /// Why.
        reason: String,
    },
    /// The call went to the fallback chain.
    Fallback {
        /// Which fallback (`voicemail`, `in_house`, `message`).
        kind: String,
        /// Why.
        reason: String,
    },
    /// A recording is available.
    Recording {
        /// Where.
        url: String,
    },
    /// Settlement of a finished call.
    Billing {
        /// Whether the buyer pays.
        billable: bool,
        /// What the buyer pays.
        revenue: Money,
        /// What the publisher gets.
        payout: Money,
    },
}

impl CallEventKind {
    /// The event's type name as stored (`incoming`, `ping_result`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            CallEventKind::Incoming { .. } => "incoming",
            CallEventKind::IvrInput { .. } => "ivr_input",
            CallEventKind::AuctionStarted { .. } => "auction_started",
            CallEventKind::PingResult { .. } => "ping_result",
            CallEventKind::Winner { .. } => "winner",
            CallEventKind::Accepted { .. } => "accepted",
            CallEventKind::AcceptFailed { .. } => "accept_failed",
            CallEventKind::Forwarded { .. } => "forwarded",
            CallEventKind::Connected { .. } => "connected",
            CallEventKind::Completed { .. } => "completed",
            CallEventKind::Missed { .. } => "missed",
            CallEventKind::Rejected { .. } => "rejected",
            CallEventKind::Fallback { .. } => "fallback",
            CallEventKind::Recording { .. } => "recording",
            CallEventKind::Billing { .. } => "billing",
        }
    }
}

/// One event of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The call.
    pub call_id: CallId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Deduplicates retries: appending an event whose key the call already has is a
    /// no-op (Twilio retries callbacks; use e.g. `status:completed`).
    pub idempotency_key: String,
    /// What happened.
    pub kind: CallEventKind,
}

impl CallEvent {
    /// An event with an explicit idempotency key.
    pub fn new(
        call_id: CallId,
        at: DateTime<Utc>,
        idempotency_key: impl Into<String>,
        kind: CallEventKind,
    ) -> Self {
        CallEvent {
            call_id,
            at,
            idempotency_key: idempotency_key.into(),
            kind,
        }
    }
}

/// A call's status, derived from its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallStatus {
    /// Received, not yet routed.
    Incoming,
    /// Sent to a buyer (accepted).
    Forwarded,
    /// Forwarded but the buyer's side did not answer.
    Missed,
    /// Refused.
    Rejected,
    /// Went to the fallback chain.
    Fallback,
    /// Forwarded, connected and ended.
    Completed,
}

impl CallStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            CallStatus::Incoming => "incoming",
            CallStatus::Forwarded => "forwarded",
            CallStatus::Missed => "missed",
            CallStatus::Rejected => "rejected",
            CallStatus::Fallback => "fallback",
            CallStatus::Completed => "completed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<CallStatus> {
        Some(match s {
            "incoming" => CallStatus::Incoming,
            "forwarded" => CallStatus::Forwarded,
            "missed" => CallStatus::Missed,
            "rejected" => CallStatus::Rejected,
            "fallback" => CallStatus::Fallback,
            "completed" => CallStatus::Completed,
            _ => return None,
        })
    }

    /// Every status.
    pub const ALL: [CallStatus; 6] = [
        CallStatus::Incoming,
        CallStatus::Forwarded,
        CallStatus::Missed,
        CallStatus::Rejected,
        CallStatus::Fallback,
        CallStatus::Completed,
    ];
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The summary of a call that reports filter on, folded from its events in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallRecord {
    /// The call.
    pub call_id: CallId,
    /// When its first event happened.
    pub received_at: DateTime<Utc>,
    /// Caller id.
    pub caller: Option<PhoneNumber>,
    /// Tracking number.
    pub dialed: Option<PhoneNumber>,
    /// Campaign.
    pub campaign: Option<CampaignId>,
    /// Source.
    pub source: Option<SourceId>,
    /// ZIP (from the auction, or IVR input).
    pub zip: Option<Zip>,
    /// Service (from the auction, or IVR input).
    pub service: Option<ServiceType>,
    /// Derived status.
    pub status: CallStatus,
    /// The winning buyer.
    pub buyer: Option<BuyerId>,
    /// The winning price.
    pub price: Option<Money>,
    /// Where it was sent.
    pub destination: Option<Destination>,
    /// Talk time with the buyer.
    pub duration_secs: Option<u64>,
    /// Billable?
    pub billable: Option<bool>,
    /// Buyer revenue.
    pub revenue: Option<Money>,
    /// Publisher payout.
    pub payout: Option<Money>,
    /// Which fallback, when it fell back.
    pub fallback: Option<String>,
    /// Recording URL.
    pub recording_url: Option<String>,
    /// Buyers pinged.
    pub pinged: u32,
    /// Bids received.
    pub bids: u32,
    /// Number of events.
    pub events: u32,
}

impl CallRecord {
    /// An empty record for a call whose first event is at `at`.
    pub fn new(call_id: CallId, at: DateTime<Utc>) -> Self {
        CallRecord {
            call_id,
            received_at: at,
            caller: None,
            dialed: None,
            campaign: None,
            source: None,
            zip: None,
            service: None,
            status: CallStatus::Incoming,
            buyer: None,
            price: None,
            destination: None,
            duration_secs: None,
            billable: None,
            revenue: None,
            payout: None,
            fallback: None,
            recording_url: None,
            pinged: 0,
            bids: 0,
            events: 0,
        }
    }

    /// Folds a list of events (in order) into a record; `None` for no events.
    pub fn from_events(events: &[CallEvent]) -> Option<CallRecord> {
        let first = events.first()?;
        let mut r = CallRecord::new(first.call_id.clone(), first.at);
        for e in events {
            r.apply(e);
        }
        Some(r)
    }

    /// Applies the next event. Status precedence: a fallback or rejection is final
    /// unless the call is later forwarded; a forwarded call becomes completed when it
    /// ends connected, or missed when the buyer's side does not answer.
    pub fn apply(&mut self, e: &CallEvent) {
        self.events += 1;
        if e.at < self.received_at {
            self.received_at = e.at;
        }
        match &e.kind {
            CallEventKind::Incoming {
                caller,
                dialed,
                campaign,
                source,
            } => {
                self.caller = caller.clone().or(self.caller.take());
                self.dialed = dialed.clone().or(self.dialed.take());
                self.campaign = campaign.clone().or(self.campaign.take());
                self.source = source.clone().or(self.source.take());
            }
            CallEventKind::IvrInput { step, value } => match step.as_str() {
                "zip" => {
                    if let Ok(z) = Zip::parse(value) {
                        self.zip = Some(z);
                    }
                }
                "service" => {
                    if let Ok(s) = ServiceType::new(value) {
                        self.service = Some(s);
                    }
                }
                _ => {}
            },
            CallEventKind::AuctionStarted {
                zip,
                service,
                eligible,
                ..
            } => {
                self.zip = Some(*zip);
                self.service = Some(service.clone());
                self.pinged += eligible;
            }
            CallEventKind::PingResult { price, .. } => {
                if price.is_some() {
                    self.bids += 1;
                }
            }
            CallEventKind::Winner { buyer, price, .. } => {
                self.buyer = Some(buyer.clone());
                self.price = Some(*price);
            }
            CallEventKind::Accepted { buyer, destination } => {
                self.buyer = Some(buyer.clone());
                self.destination = Some(destination.clone());
            }
            CallEventKind::AcceptFailed { .. } => {}
            CallEventKind::Forwarded { buyer, destination } => {
                self.buyer = Some(buyer.clone());
                self.destination = Some(destination.clone());
                self.status = CallStatus::Forwarded;
                self.fallback = None;
            }
            CallEventKind::Connected { buyer } => {
                if let Some(b) = buyer {
                    self.buyer = Some(b.clone());
                }
            }
            CallEventKind::Completed { duration_secs } => {
                self.duration_secs = Some(*duration_secs);
                if self.status == CallStatus::Forwarded {
                    self.status = CallStatus::Completed;
                }
            }
            CallEventKind::Missed { .. } => {
                if matches!(self.status, CallStatus::Forwarded | CallStatus::Incoming) {
                    self.status = CallStatus::Missed;
                }
            }
            CallEventKind::Rejected { .. } => {
                if self.status == CallStatus::Incoming {
                    self.status = CallStatus::Rejected;
                }
            }
            CallEventKind::Fallback { kind, .. } => {
                self.fallback = Some(kind.clone());
                if !matches!(self.status, CallStatus::Completed) {
                    self.status = CallStatus::Fallback;
                }
            }
            CallEventKind::Recording { url } => self.recording_url = Some(url.clone()),
            CallEventKind::Billing {
                billable,
                revenue,
                payout,
            } => {
                self.billable = Some(*billable);
                self.revenue = Some(*revenue);
                self.payout = Some(*payout);
            }
        }
    }
}

/// Whether an append recorded a new event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AppendOutcome {
    /// Stored (and durable, for durable stores).
    Recorded,
    /// The call already had an event with this idempotency key; nothing changed.
    Duplicate,
}

/// A durable log of call events. `append` returns only once the event is committed:
/// an acknowledged event is never lost.
#[async_trait]
pub trait CallLog: Send + Sync + fmt::Debug {
    /// Appends an event (idempotent by `(call_id, idempotency_key)`).
    async fn append(&self, event: &CallEvent) -> Result<AppendOutcome, StateError>;
    /// A call's events in the order they were appended.
    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError>;
    /// A call's derived record.
    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError>;
}
