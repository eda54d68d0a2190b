//! What an auction produced: the winner or why there was none, a record per buyer, timings.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::buyer::{Bid, BuyerErrorKind};
use crate::ids::{BuyerId, CallId};
use crate::phone::Destination;
use crate::rules::Hold;
use crate::scoring::ScoreBreakdown;

/// Why a buyer was or was not pinged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Eligibility {
    /// Pinged.
    Eligible,
    /// Not pinged: this rule excluded it.
    Excluded {
        /// The rule's name.
        rule: String,
        /// The rule's reason.
        reason: String,
    },
}

/// What a buyer answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BuyerReply {
    /// Not pinged (excluded).
    NotPinged,
    /// A bid that passed validation.
    Bid {
        /// The bid.
        bid: Bid,
    },
    /// A bid refused by validation (price, currency, floor, expiry, destination, a rule).
    InvalidBid {
        /// The bid.
        bid: Bid,
        /// Why it was refused.
        reason: String,
    },
    /// Declined.
    NoBid {
        /// The buyer's reason.
        reason: String,
    },
    /// Failed with an error (the buyer's or a panic).
    Failed {
        /// The kind of failure.
        kind: BuyerErrorKind,
        /// Detail.
        message: String,
    },
    /// No answer by its deadline.
    TimedOut,
    /// Still pending when another buyer won under `FirstAccept`; its ping was dropped.
    Cancelled,
}

/// What happened when the auction tried to sell to this buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "accept", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AcceptRecord {
    /// Accepted: the call goes there.
    Accepted {
        /// The destination.
        destination: Destination,
    },
    /// A rule refused at reservation time (e.g. a cap filled up meanwhile).
    Refused {
        /// Why.
        reason: String,
    },
    /// The accept step failed.
    Failed {
        /// The kind of failure.
        kind: BuyerErrorKind,
        /// Detail.
        message: String,
    },
}

/// Everything the auction knows about one buyer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BuyerRecord {
    /// The buyer.
    pub buyer: BuyerId,
    /// Pinged or excluded.
    pub eligibility: Eligibility,
    /// Ping latency, when pinged and answered (or timed out): from the start of the
    /// ping phase, when every ping goes out, to the auction receiving the answer.
    #[serde(with = "opt_millis")]
    pub latency: Option<Duration>,
    /// When it answered, as a place among the answers (0 = the first to answer); `None`
    /// when it was not pinged or never answered. [`Strategy::FirstAccept`](super::Strategy::FirstAccept)
    /// tries bids in this order, so an explanation logs it for replay.
    #[serde(default)]
    pub arrival: Option<u32>,
    /// The answer.
    pub reply: BuyerReply,
    /// The score, for valid bids.
    pub score: Option<ScoreBreakdown>,
    /// The accept attempt, when there was one.
    pub accept: Option<AcceptRecord>,
}

/// The winner of an auction.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Winner {
    /// Who.
    pub buyer: BuyerId,
    /// The winning bid.
    pub bid: Bid,
    /// Its score.
    pub score: ScoreBreakdown,
    /// Where to send the call.
    pub destination: Destination,
    /// Reservations held for this win (cap counts; live-call slots to release when the
    /// call ends — see [`Hold::live`]).
    #[serde(skip)]
    pub holds: Vec<Hold>,
}

/// Why nobody bought the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoBuyerReason {
    /// Every buyer was excluded by rules (or there are no buyers).
    NoEligibleBuyers,
    /// Every eligible buyer declined, failed or timed out.
    NoBids,
    /// There were bids, but none passed validation.
    NoValidBids,
    /// Every valid bid's accept failed or was refused.
    AllAcceptsFailed,
    /// The deadline passed before an accept succeeded.
    DeadlineExceeded,
}

impl fmt::Display for NoBuyerReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NoBuyerReason::NoEligibleBuyers => "no eligible buyers",
            NoBuyerReason::NoBids => "no bids",
            NoBuyerReason::NoValidBids => "no valid bids",
            NoBuyerReason::AllAcceptsFailed => "every accept failed",
            NoBuyerReason::DeadlineExceeded => "deadline exceeded before an accept succeeded",
        })
    }
}

/// The result of an auction.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuctionResult {
    /// Sold.
    Won(Box<Winner>),
    /// Not sold.
    NoBuyer {
        /// Why.
        reason: NoBuyerReason,
    },
}

/// How long each phase took.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Timings {
    /// When the auction started (from its clock).
    pub started_at: DateTime<Utc>,
    /// Rule checks.
    #[serde(with = "millis")]
    pub eligibility: Duration,
    /// Pinging, until the last answer or the ping deadline.
    #[serde(with = "millis")]
    pub ping: Duration,
    /// Validating, scoring and ordering.
    #[serde(with = "millis")]
    pub select: Duration,
    /// Reservations and accept attempts.
    #[serde(with = "millis")]
    pub accept: Duration,
    /// The whole auction.
    #[serde(with = "millis")]
    pub total: Duration,
}

/// The full outcome of [`super::Auction::run`].
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuctionOutcome {
    /// The call.
    pub call_id: CallId,
    /// Winner or reason.
    pub result: AuctionResult,
    /// One record per buyer, in the order the auction was built with.
    pub buyers: Vec<BuyerRecord>,
    /// Phase timings.
    pub timings: Timings,
}

impl AuctionOutcome {
    /// The winner, if any.
    pub fn winner(&self) -> Option<&Winner> {
        match &self.result {
            AuctionResult::Won(w) => Some(w),
            AuctionResult::NoBuyer { .. } => None,
        }
    }

    /// Why there was no buyer, if there was none.
    pub fn no_buyer_reason(&self) -> Option<NoBuyerReason> {
        match &self.result {
            AuctionResult::Won(_) => None,
            AuctionResult::NoBuyer { reason } => Some(*reason),
        }
    }

    /// The record of one buyer.
    pub fn record(&self, buyer: &BuyerId) -> Option<&BuyerRecord> {
        self.buyers.iter().find(|r| &r.buyer == buyer)
    }

    /// The decision without wall-clock facts (latencies, timings): equal for equal
    /// inputs, which is what determinism promises.
    pub fn decision(&self) -> Decision {
        Decision {
            winner: self.winner().map(|w| {
                (
                    w.buyer.clone(),
                    w.bid.clone(),
                    w.score.clone(),
                    w.destination.clone(),
                )
            }),
            no_buyer: self.no_buyer_reason(),
            buyers: self
                .buyers
                .iter()
                .map(|r| {
                    (
                        r.buyer.clone(),
                        r.eligibility.clone(),
                        r.reply.clone(),
                        r.score.clone(),
                        r.accept.clone(),
                    )
                })
                .collect(),
        }
    }
}

/// The comparable part of an outcome (see [`AuctionOutcome::decision`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::type_complexity)]
pub struct Decision {
    /// Winner: buyer, bid, score, destination.
    pub winner: Option<(BuyerId, Bid, ScoreBreakdown, Destination)>,
    /// No-buyer reason.
    pub no_buyer: Option<NoBuyerReason>,
    /// Per buyer: id, eligibility, reply, score, accept.
    pub buyers: Vec<(
        BuyerId,
        Eligibility,
        BuyerReply,
        Option<ScoreBreakdown>,
        Option<AcceptRecord>,
    )>,
}

mod millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(d)?;
        Ok(Duration::from_secs_f64((ms / 1000.0).max(0.0)))
    }
}

mod opt_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_secs_f64() * 1000.0)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = Option::<f64>::deserialize(d)?;
        Ok(ms.map(|ms| Duration::from_secs_f64((ms / 1000.0).max(0.0))))
    }
}
