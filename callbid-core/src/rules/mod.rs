//! Routing rules: which buyers may be pinged for a call, which bids are acceptable, and
//! what a win reserves.
//!
//! A rule runs in up to four phases:
//! 1. [`RoutingRule::check`] before pinging: a denied buyer is not asked at all, and the
//!    auction records which rule excluded it;
//! 2. [`RoutingRule::check_bid`] on each bid (floors and ceilings);
//! 3. [`RoutingRule::reserve`] for the chosen winner, before its accept step: caps take
//!    their counts atomically here and may still refuse (another auction took the last
//!    slot); holds are released if the accept fails;
//! 4. [`RoutingRule::confirm`] once the winner accepted (duplicate-caller windows note
//!    the caller here).

mod caps;
mod duplicate;
mod geo;
mod hours;
mod simple;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::buyer::{Bid, BuyerProfile};
use crate::call::CallContext;
use crate::error::StateError;
use crate::state::{CapStore, ReservationId};

pub use caps::{Cap, CapLimit, CapRule, CapWindow};
pub use duplicate::DuplicateCallerRule;
pub use geo::{GeoMode, GeoRule};
pub use hours::{DayHours, HoursRule, TimeRange};
pub use simple::{BidBoundsRule, ServiceRule};

/// A rule's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The buyer (or bid) may go on.
    Allow,
    /// Excluded, with the reason shown in the auction outcome.
    Deny(String),
}

impl Verdict {
    /// Whether this is `Allow`.
    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow)
    }
}

/// A reservation a rule holds for the winner (a cap slot). Released if the accept fails;
/// for concurrency caps, release it when the call ends.
#[derive(Debug, Clone)]
pub struct Hold {
    /// The rule that holds it.
    pub rule: String,
    /// The reservation in the store.
    pub reservation: ReservationId,
    /// A live-call slot (concurrency cap): release it when the call ends. Other holds
    /// stay consumed once the accept succeeded.
    pub live: bool,
    store: Arc<dyn CapStore>,
}

impl Hold {
    /// A hold on `reservation` in `store`.
    pub fn new(
        rule: impl Into<String>,
        reservation: ReservationId,
        store: Arc<dyn CapStore>,
    ) -> Self {
        Hold {
            rule: rule.into(),
            reservation,
            live: false,
            store,
        }
    }

    /// Marks the hold as a live-call slot.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// Gives the reservation back. Returns whether it was still held.
    pub async fn release(&self) -> Result<bool, StateError> {
        self.store.release(&self.reservation).await
    }
}

/// The result of [`RoutingRule::reserve`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Reservation {
    /// The rule has nothing to reserve.
    NotNeeded,
    /// Reserved; keep the holds.
    Held(Vec<Hold>),
    /// Refused (e.g. the cap filled up since the check).
    Refused(String),
}

/// A routing rule. See the module docs for the phases.
#[async_trait]
pub trait RoutingRule: Send + Sync + fmt::Debug {
    /// A short name for outcomes and logs (`geo`, `hours`, `daily_cap`, …).
    fn name(&self) -> &str;

    /// May `buyer` be pinged for `call` at `now`?
    async fn check(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        now: DateTime<Utc>,
    ) -> Result<Verdict, StateError>;

    /// Is this bid acceptable? Default: yes.
    fn check_bid(&self, call: &CallContext, buyer: &BuyerProfile, bid: &Bid) -> Verdict {
        let _ = (call, buyer, bid);
        Verdict::Allow
    }

    /// Reserves what a win consumes. Default: nothing.
    async fn reserve(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        bid: &Bid,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StateError> {
        let _ = (call, buyer, bid, now);
        Ok(Reservation::NotNeeded)
    }

    /// Notes a confirmed win. Default: nothing.
    async fn confirm(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        bid: &Bid,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let _ = (call, buyer, bid, now);
        Ok(())
    }
}
