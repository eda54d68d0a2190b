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
    /// An offer of the call to an agent pool was decided (seed 001).
    AgentOffer {
        /// The pool.
        pool: String,
        /// `accepted`, `fallback` (nobody took it) or `caller_gone`.
        outcome: String,
        /// The winner, when accepted.
        agent: Option<String>,
        /// Legs rung over every round.
        legs: u32,
        /// Rounds (tiers) rung.
        rounds: u32,
        /// Offer-to-accept latency of the winner, in milliseconds.
        latency_ms: Option<u64>,
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
    /// The call was resolved against a number pool (call tracking): the lease it belongs
    /// to, or why there is none.
    Attributed {
        /// The pool the dialed number belongs to.
        pool: String,
        /// `attributed`, `overflow`, `expired_lease` or `unknown_number`.
        attribution: String,
        /// What the lease carried: `listing`, `visitor`, `lease`, `publisher`, `source`,
        /// `utm_source`, `utm_medium`, `utm_campaign`, `utm_term`, `utm_content`,
        /// `search_term`, `landing_page`, `referrer`, `via`, and `tag.<key>` for free tags.
        attributes: std::collections::BTreeMap<String, String>,
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
    /// An auction's full inputs and decision, for "why this buyer won" and replay
    /// (see [`crate::auction::explain`]). Logged with the auction's other events.
    AuctionExplained {
        /// The explanation.
        explanation: Box<crate::auction::AuctionExplanation>,
    },
    /// The winning buyer's conversion postback (`POST /api/conversions`).
    Conversion {
        /// The buyer that posted it (the call's winner).
        buyer: BuyerId,
        /// Whether the call converted (a sale).
        converted: bool,
        /// The sale's value, when given.
        value: Option<Money>,
    },
    /// A final fragment of the call's transcript (Twilio real-time transcription) and
    /// what the phrase rules made of it.
    Transcript {
        /// Twilio's `TranscriptionSid`.
        transcription: String,
        /// Twilio's `SequenceId` of the fragment (its place in the transcript).
        sequence: u64,
        /// Which side spoke (`Track`: `inbound_track` is the caller).
        track: Option<String>,
        /// The fragment's text.
        text: String,
        /// `converted` or `junk` when a rule matched (`quality` module), else none.
        class: Option<String>,
        /// The phrase that matched.
        phrase: Option<String>,
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
            CallEventKind::AgentOffer { .. } => "agent_offer",
            CallEventKind::Attributed { .. } => "attributed",
            CallEventKind::AuctionExplained { .. } => "auction_explained",
            CallEventKind::Conversion { .. } => "conversion",
            CallEventKind::Transcript { .. } => "transcript",
        }
    }
}

/// One event of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The call.
    pub call_id: CallId,
    /// When it happened.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
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

/// The summary of a call that reports filter on, folded from its events.
///
/// # The fold does not depend on arrival order
///
/// Providers deliver callbacks late, out of order and more than once, so the record is
/// a function of the *set* of a call's events (distinct by idempotency key), never of
/// the order they were appended in: [`CallRecord::apply`] is commutative and
/// associative, and the log drops a second event with a key the call already has.
/// Each field follows one rule:
///
/// - counts (`events`, `pinged`, `bids`) are sums over the distinct events;
///   `received_at` is the earliest `at`; `duration_secs` is the longest reported talk
///   time;
/// - every other field (caller, ZIP, buyer, price, destination, billing, recording, …)
///   is taken from the *latest* event that sets it, ordered by `(at, idempotency_key)`
///   (a total order: keys are unique per call). The record keeps that stamp per field;
/// - the status is ranked by evidence ([`CallRecord::status`] below), not set by the
///   last event.
///
/// Status, from the strongest evidence down:
///
/// 1. **completed**: the call was forwarded and some `Completed` reported a talk time
///    (a talk time beats a provisional `Missed` such as "call ended before the bridge
///    reported back", whichever arrives first);
/// 2. **fallback**: a `Fallback` is later (by `(at, key)`) than every `Forwarded`
///    (fallback events are the router's own decisions, so their `at` order is real);
/// 3. **missed**: forwarded, and a `Missed` is later than the last `Forwarded` (a new
///    leg that is still ringing is `forwarded` again);
/// 4. **forwarded**: some `Forwarded`;
/// 5. **rejected**: some `Rejected`;
/// 6. **missed**: a `Missed` without any forward (the caller left during the IVR);
/// 7. **incoming**.
///
/// `fallback` names the latest fallback only while it is later than every forward (as
/// before: a forward clears it). `billable`/`revenue`/`payout` come from the latest
/// `Billing` and stay whatever the status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallRecord {
    /// The call.
    pub call_id: CallId,
    /// When its first event happened.
    #[serde(serialize_with = "crate::rfc3339::serialize")]
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
    /// Which event set each field, so a late event cannot overwrite a newer one.
    #[serde(default)]
    stamps: Stamps,
}

/// An event's place in the canonical order: `(at, idempotency_key)`.
type Stamp = (DateTime<Utc>, String);

/// A stamp as derived `Serialize` writes it, with the instant the fast way.
fn ser_stamp<S: serde::Serializer>(v: &Option<Stamp>, s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    v.as_ref()
        .map(|(at, key)| (crate::rfc3339::Rfc3339(at), key))
        .serialize(s)
}

/// The fallback's stamp and kind, as derived `Serialize` writes them.
fn ser_fallback<S: serde::Serializer>(
    v: &Option<(Stamp, String)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    v.as_ref()
        .map(|((at, key), kind)| ((crate::rfc3339::Rfc3339(at), key), kind))
        .serialize(s)
}

/// The stamp of the event that set each last-writer-wins field, plus the evidence the
/// status is ranked by. Stored with the record (`calls.record` JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stamps {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    caller: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    dialed: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    campaign: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    source: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    zip: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    service: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    buyer: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    price: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    destination: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    billing: Option<Stamp>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    recording: Option<Stamp>,
    /// The latest `Forwarded`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    forwarded: Option<Stamp>,
    /// The latest `Missed`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_stamp"
    )]
    missed: Option<Stamp>,
    /// The latest `Fallback`, and its kind.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_fallback"
    )]
    fallback: Option<(Stamp, String)>,
    /// Some `Rejected` was logged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rejected: bool,
}

/// Sets `slot` to `value` when `stamp` is later than the stamp of its current value.
fn lww<T>(slot: &mut Option<T>, held: &mut Option<Stamp>, stamp: &Stamp, value: T) {
    if held.as_ref().is_none_or(|h| stamp > h) {
        *slot = Some(value);
        *held = Some(stamp.clone());
    }
}

/// Keeps the later of two stamps.
fn latest(held: &mut Option<Stamp>, stamp: &Stamp) {
    if held.as_ref().is_none_or(|h| stamp > h) {
        *held = Some(stamp.clone());
    }
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
            stamps: Stamps::default(),
        }
    }

    /// Folds a call's events into a record; `None` for no events. Events are taken as
    /// a set: a second event with an idempotency key already seen is skipped (as the
    /// log skips it), and the order of the slice does not matter.
    pub fn from_events(events: &[CallEvent]) -> Option<CallRecord> {
        let first = events.first()?;
        let mut r = CallRecord::new(first.call_id.clone(), first.at);
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        for e in events {
            if seen.insert(e.idempotency_key.as_str()) {
                r.apply(e);
            }
        }
        Some(r)
    }

    /// Folds one more event in (the log calls this once per distinct event). The result
    /// does not depend on the order events are applied in; see the type's docs for the
    /// rule per field and the status ranking.
    pub fn apply(&mut self, e: &CallEvent) {
        self.events = self.events.saturating_add(1);
        if e.at < self.received_at {
            self.received_at = e.at;
        }
        let stamp: Stamp = (e.at, e.idempotency_key.clone());
        self.apply_kind(&e.kind, &stamp);
        self.derive_status();
    }

    fn apply_kind(&mut self, kind: &CallEventKind, stamp: &Stamp) {
        let st = &mut self.stamps;
        match kind {
            CallEventKind::Incoming {
                caller,
                dialed,
                campaign,
                source,
            } => {
                if let Some(v) = caller {
                    lww(&mut self.caller, &mut st.caller, stamp, v.clone());
                }
                if let Some(v) = dialed {
                    lww(&mut self.dialed, &mut st.dialed, stamp, v.clone());
                }
                if let Some(v) = campaign {
                    lww(&mut self.campaign, &mut st.campaign, stamp, v.clone());
                }
                if let Some(v) = source {
                    lww(&mut self.source, &mut st.source, stamp, v.clone());
                }
            }
            CallEventKind::IvrInput { step, value } => match step.as_str() {
                "zip" => {
                    if let Ok(z) = Zip::parse(value) {
                        lww(&mut self.zip, &mut st.zip, stamp, z);
                    }
                }
                "service" => {
                    if let Ok(s) = ServiceType::new(value) {
                        lww(&mut self.service, &mut st.service, stamp, s);
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
                lww(&mut self.zip, &mut st.zip, stamp, *zip);
                lww(&mut self.service, &mut st.service, stamp, service.clone());
                self.pinged = self.pinged.saturating_add(*eligible);
            }
            CallEventKind::PingResult { price, .. } => {
                if price.is_some() {
                    self.bids = self.bids.saturating_add(1);
                }
            }
            CallEventKind::Winner { buyer, price, .. } => {
                lww(&mut self.buyer, &mut st.buyer, stamp, buyer.clone());
                lww(&mut self.price, &mut st.price, stamp, *price);
            }
            CallEventKind::Accepted { buyer, destination } => {
                lww(&mut self.buyer, &mut st.buyer, stamp, buyer.clone());
                let d = destination.clone();
                lww(&mut self.destination, &mut st.destination, stamp, d);
            }
            CallEventKind::AcceptFailed { .. } => {}
            CallEventKind::Forwarded { buyer, destination } => {
                lww(&mut self.buyer, &mut st.buyer, stamp, buyer.clone());
                let d = destination.clone();
                lww(&mut self.destination, &mut st.destination, stamp, d);
                latest(&mut st.forwarded, stamp);
            }
            CallEventKind::Connected { buyer } => {
                if let Some(b) = buyer {
                    lww(&mut self.buyer, &mut st.buyer, stamp, b.clone());
                }
            }
            CallEventKind::Completed { duration_secs } => {
                self.duration_secs = Some(
                    self.duration_secs
                        .map_or(*duration_secs, |d| d.max(*duration_secs)),
                );
            }
            CallEventKind::Missed { .. } => latest(&mut st.missed, stamp),
            CallEventKind::Rejected { .. } => st.rejected = true,
            // Reported by the agent metrics; the record's status follows the Dial.
            CallEventKind::AgentOffer { .. } => {}
            // Attribution facts do not change the call's status.
            CallEventKind::Attributed { .. } => {}
            // Read from the events by whoever explains or replays the auction.
            CallEventKind::AuctionExplained { .. } => {}
            // Quality evidence lives in the quality history and the events themselves.
            CallEventKind::Conversion { .. } | CallEventKind::Transcript { .. } => {}
            CallEventKind::Fallback { kind, .. } => {
                if st.fallback.as_ref().is_none_or(|(h, _)| stamp > h) {
                    st.fallback = Some((stamp.clone(), kind.clone()));
                }
            }
            CallEventKind::Recording { url } => {
                lww(
                    &mut self.recording_url,
                    &mut st.recording,
                    stamp,
                    url.clone(),
                );
            }
            CallEventKind::Billing {
                billable,
                revenue,
                payout,
            } => {
                if st.billing.as_ref().is_none_or(|h| stamp > h) {
                    st.billing = Some(stamp.clone());
                    self.billable = Some(*billable);
                    self.revenue = Some(*revenue);
                    self.payout = Some(*payout);
                }
            }
        }
    }

    /// Ranks the evidence into a status (see the type's docs) and sets `fallback`.
    fn derive_status(&mut self) {
        let st = &self.stamps;
        let forwarded = st.forwarded.as_ref();
        let after_forward = |s: &Stamp| forwarded.is_none_or(|f| s > f);
        let fallback_now = st.fallback.as_ref().filter(|(s, _)| after_forward(s));
        self.fallback = fallback_now.map(|(_, k)| k.clone());
        self.status = if forwarded.is_some() && self.duration_secs.is_some() {
            CallStatus::Completed
        } else if fallback_now.is_some() {
            CallStatus::Fallback
        } else if forwarded.is_some() {
            match &st.missed {
                Some(m) if after_forward(m) => CallStatus::Missed,
                _ => CallStatus::Forwarded,
            }
        } else if st.rejected {
            CallStatus::Rejected
        } else if st.missed.is_some() {
            CallStatus::Missed
        } else {
            CallStatus::Incoming
        };
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
    /// Appends `events` in order (each idempotent as in [`append`](Self::append)) and
    /// returns one outcome per event, in the same order. A durable store commits them
    /// together, so one request's events cost one commit instead of one each; the
    /// default appends them one by one. On an error, a prefix of `events` may be
    /// recorded: retrying the whole slice is safe, since each event is idempotent.
    async fn append_all(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>, StateError> {
        let mut out = Vec::with_capacity(events.len());
        for e in events {
            out.push(self.append(e).await?);
        }
        Ok(out)
    }
    /// A call's events in the order they were appended.
    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError>;
    /// A call's derived record.
    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError>;
    /// Whether any of the call's events has an idempotency key starting with `prefix`
    /// (e.g. `status:`, a final status callback). The default reads
    /// [`events`](Self::events); the stores answer from their key index without reading
    /// or parsing the events, so a step can ask it on every webhook.
    async fn has_key_prefix(&self, call: &CallId, prefix: &str) -> Result<bool, StateError> {
        Ok(self
            .events(call)
            .await?
            .iter()
            .any(|e| e.idempotency_key.starts_with(prefix)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::conformance::{call_sequences, SEQUENCE_STATUSES};
    use proptest::prelude::*;

    fn call() -> CallId {
        CallId::new("CA-order").unwrap()
    }

    /// The hardening issue's input, in both arrival orders.
    #[test]
    fn provisional_missed_before_the_dial_action_still_completes() {
        let at = |s: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let dest = Destination::Phone(PhoneNumber::parse("+15125550199").unwrap());
        let buyer = BuyerId::new("top").unwrap();
        let events = [
            CallEvent::new(
                call(),
                at(0),
                "forwarded",
                CallEventKind::Forwarded {
                    buyer,
                    destination: dest,
                },
            ),
            CallEvent::new(
                call(),
                at(100),
                "status:completed",
                CallEventKind::Missed {
                    reason: "call ended before the bridge reported back".into(),
                },
            ),
            CallEvent::new(
                call(),
                at(101),
                "completed",
                CallEventKind::Completed { duration_secs: 95 },
            ),
            CallEvent::new(
                call(),
                at(101),
                "billing",
                CallEventKind::Billing {
                    billable: true,
                    revenue: Money::usd(Decimal::new(40, 0)),
                    payout: Money::usd(Decimal::new(20, 0)),
                },
            ),
        ];
        let forward = CallRecord::from_events(&events).unwrap();
        assert_eq!(forward.status, CallStatus::Completed);
        assert_eq!(forward.revenue, Some(Money::usd(Decimal::new(40, 0))));
        assert_eq!(forward.duration_secs, Some(95));
        let mut reversed = events.to_vec();
        reversed.reverse();
        assert_eq!(CallRecord::from_events(&reversed).unwrap(), forward);
        // Without the Dial action's Completed, the provisional Missed stands.
        let partial = CallRecord::from_events(&events[..2]).unwrap();
        assert_eq!(partial.status, CallStatus::Missed);
    }

    #[test]
    fn every_sequence_folds_to_its_status() {
        let seqs = call_sequences(&call()).unwrap();
        assert_eq!(seqs.len(), SEQUENCE_STATUSES.len());
        for ((name, events), want) in seqs.iter().zip(SEQUENCE_STATUSES) {
            assert_eq!(
                CallRecord::from_events(events).unwrap().status,
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn the_record_round_trips_through_json_with_its_stamps() {
        for (name, events) in call_sequences(&call()).unwrap() {
            let r = CallRecord::from_events(&events).unwrap();
            let back: CallRecord =
                serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r, "{name}");
        }
    }

    proptest! {
        /// Any arrival order with any redeliveries, folded all at once or one event at
        /// a time onto a record read back from JSON (as the stores do), gives the record
        /// of the logged order.
        #[test]
        fn fold_is_independent_of_order_and_duplicates(
            which in 0usize..SEQUENCE_STATUSES.len(),
            keys in proptest::collection::vec((any::<u64>(), 1usize..=3), 0..40),
        ) {
            let (name, events) = call_sequences(&call()).unwrap().swap_remove(which);
            let canonical = CallRecord::from_events(&events).unwrap();
            let mut arrivals: Vec<(u64, CallEvent)> = Vec::new();
            for (i, e) in events.iter().enumerate() {
                let (k, copies) = keys.get(i).copied().unwrap_or((i as u64, 1));
                for c in 0..copies {
                    arrivals.push((k.wrapping_add(c as u64 * 0x9e37), e.clone()));
                }
            }
            arrivals.sort_by_key(|(k, _)| *k);
            let arrivals: Vec<CallEvent> = arrivals.into_iter().map(|(_, e)| e).collect();
            prop_assert_eq!(&CallRecord::from_events(&arrivals).unwrap(), &canonical, "{}", name);
            // Incremental, through JSON, skipping redeliveries as the log does.
            let mut seen = std::collections::HashSet::new();
            let mut rec: Option<CallRecord> = None;
            for e in &arrivals {
                if !seen.insert(e.idempotency_key.clone()) {
                    continue;
                }
                let mut r = rec
                    .map(|r| serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap())
                    .unwrap_or_else(|| CallRecord::new(e.call_id.clone(), e.at));
                r.apply(e);
                rec = Some(r);
            }
            prop_assert_eq!(rec.as_ref(), Some(&canonical), "{}", name);
        }
    }
}
