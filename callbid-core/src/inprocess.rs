//! In-process buyers: a configurable [`Buyer`] for examples, tests and benches, and for
//! platforms that sell to an in-house team through the same auction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::buyer::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerStep, Capabilities, Deadline, PingReply,
};
use crate::call::CallContext;
use crate::ids::BuyerId;
use crate::money::Money;
use crate::phone::Destination;

/// How an [`InProcessBuyer`] answers a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PingBehavior {
    /// Bids this price.
    Bid(Money),
    /// Bids a price drawn deterministically from `[min, max]` (in cents) by hashing the
    /// call id with the buyer id: the same call always gets the same price.
    PriceRange {
        /// Lowest price.
        min: Money,
        /// Highest price.
        max: Money,
    },
    /// Declines.
    NoBid(String),
    /// Fails with an error of this kind.
    Error(BuyerErrorKind),
    /// Never answers.
    Hang,
    /// Panics.
    Panic,
}

/// How an [`InProcessBuyer`] answers an accept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptBehavior {
    /// Returns the destination.
    Accept,
    /// Fails with an error of this kind.
    Fail(BuyerErrorKind),
    /// Never answers.
    Hang,
    /// Returns the destination after this delay.
    Slow(Duration),
}

/// A buyer living in the process.
#[derive(Debug)]
pub struct InProcessBuyer {
    id: BuyerId,
    ping: PingBehavior,
    accept: AcceptBehavior,
    latency: Duration,
    destination: Destination,
    destination_in_bid: bool,
    min_duration: Option<Duration>,
    capabilities: Capabilities,
    pings: AtomicU64,
    losses: AtomicU64,
}

impl InProcessBuyer {
    /// A buyer bidding `price`, returning `destination` with its bid.
    pub fn new(id: BuyerId, price: Money, destination: Destination) -> Self {
        InProcessBuyer {
            id,
            ping: PingBehavior::Bid(price),
            accept: AcceptBehavior::Accept,
            latency: Duration::ZERO,
            destination,
            destination_in_bid: true,
            min_duration: None,
            capabilities: Capabilities::default().with_has_accept(true),
            pings: AtomicU64::new(0),
            losses: AtomicU64::new(0),
        }
    }

    /// Sets the ping behaviour.
    pub fn with_ping(mut self, b: PingBehavior) -> Self {
        self.ping = b;
        self
    }

    /// Sets the accept behaviour.
    pub fn with_accept(mut self, b: AcceptBehavior) -> Self {
        self.accept = b;
        self
    }

    /// Waits this long before answering a ping.
    pub fn with_latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// Whether the destination comes in the bid (true) or only from accept (false).
    pub fn with_destination_in_bid(mut self, v: bool) -> Self {
        self.destination_in_bid = v;
        self
    }

    /// Sets the minimum billable duration stated in bids.
    pub fn with_min_duration(mut self, d: Duration) -> Self {
        self.min_duration = Some(d);
        self
    }

    /// Sets the capabilities.
    pub fn with_capabilities(mut self, c: Capabilities) -> Self {
        self.capabilities = c;
        self
    }

    /// How many pings it received.
    pub fn pings(&self) -> u64 {
        self.pings.load(Ordering::Relaxed)
    }

    /// How many loss reports it received.
    pub fn losses(&self) -> u64 {
        self.losses.load(Ordering::Relaxed)
    }

    fn err(&self, step: BuyerStep, kind: BuyerErrorKind) -> BuyerError {
        BuyerError::new(
            self.id.clone(),
            step,
            kind,
            format!("in-process buyer configured to fail with {kind}"),
        )
    }
}

fn mix(a: &str, b: &str) -> u64 {
    a.bytes()
        .chain([0u8])
        .chain(b.bytes())
        .fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
            (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
        })
}

#[async_trait]
impl Buyer for InProcessBuyer {
    fn id(&self) -> &BuyerId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn ping(&self, call: &CallContext, _deadline: Deadline) -> Result<PingReply, BuyerError> {
        self.pings.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let price = match &self.ping {
            PingBehavior::Bid(p) => *p,
            PingBehavior::PriceRange { min, max } => {
                let lo = (min.amount * Decimal::from(100)).trunc();
                let hi = (max.amount * Decimal::from(100)).trunc();
                let span = (hi - lo).max(Decimal::ZERO).to_u64().unwrap_or(0) + 1;
                let cents = lo + Decimal::from(mix(call.call_id.as_str(), self.id.as_str()) % span);
                Money::new(cents / Decimal::from(100), min.currency)
            }
            PingBehavior::NoBid(r) => return Ok(PingReply::NoBid { reason: r.clone() }),
            PingBehavior::Error(k) => return Err(self.err(BuyerStep::Ping, *k)),
            PingBehavior::Hang => std::future::pending().await,
            PingBehavior::Panic => panic!("in-process buyer {} panicked on purpose", self.id),
        };
        let mut bid =
            Bid::new(self.id.clone(), price).with_bid_id(format!("{}-{}", self.id, call.call_id));
        if self.destination_in_bid {
            bid = bid.with_destination(self.destination.clone());
        }
        if let Some(d) = self.min_duration {
            bid = bid.with_min_duration(d);
        }
        Ok(PingReply::Bid(bid))
    }

    async fn accept(
        &self,
        _call: &CallContext,
        _bid: &Bid,
        _deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        match &self.accept {
            AcceptBehavior::Accept => Ok(self.destination.clone()),
            AcceptBehavior::Fail(k) => Err(self.err(BuyerStep::Accept, *k)),
            AcceptBehavior::Hang => std::future::pending().await,
            AcceptBehavior::Slow(d) => {
                tokio::time::sleep(*d).await;
                Ok(self.destination.clone())
            }
        }
    }

    async fn report_loss(
        &self,
        _call: &CallContext,
        _bid: &Bid,
        _sold: &Money,
    ) -> Result<(), BuyerError> {
        self.losses.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}
