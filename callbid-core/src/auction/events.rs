//! Live auction events, for dashboards (bids appear as they arrive).

use serde::{Deserialize, Serialize};

use crate::ids::{BuyerId, CallId};
use crate::money::Money;
use crate::phone::Destination;
use rust_decimal::Decimal;

/// One event of a running auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuctionEvent {
    /// The call being auctioned.
    pub call_id: CallId,
    /// What happened.
    pub kind: AuctionEventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuctionEventKind {
    /// Rules ran; pings are going out.
    Started {
        /// Buyers being pinged.
        eligible: Vec<BuyerId>,
        /// Buyers excluded, with the rule and reason.
        excluded: Vec<(BuyerId, String)>,
    },
    /// A buyer bid (valid or not).
    BidReceived {
        /// Who.
        buyer: BuyerId,
        /// The price.
        price: Money,
        /// Ping latency in ms.
        latency_ms: u64,
        /// `None` when valid, else why it was refused.
        invalid: Option<String>,
    },
    /// A buyer declined.
    NoBid {
        /// Who.
        buyer: BuyerId,
        /// Why.
        reason: String,
        /// Ping latency in ms.
        latency_ms: u64,
    },
    /// A buyer failed, timed out or panicked.
    BuyerFailed {
        /// Who.
        buyer: BuyerId,
        /// Failure kind (`timeout`, `transport`, `panicked`, …).
        kind: String,
        /// Detail.
        message: String,
    },
    /// An accept failed or was refused; the auction moves on.
    AcceptFailed {
        /// Who.
        buyer: BuyerId,
        /// Why.
        reason: String,
    },
    /// Sold.
    Won {
        /// Who.
        buyer: BuyerId,
        /// For how much.
        price: Money,
        /// Its score.
        score: Decimal,
        /// Where the call goes.
        destination: Destination,
    },
    /// Not sold.
    NoBuyer {
        /// Why.
        reason: String,
    },
}
