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
//!    (duplicate-caller windows take the caller × buyer window here, atomically, so two
//!    calls from one caller routed at once cannot both get the buyer);
//! 4. [`RoutingRule::confirm`] once the winner accepted (the window's claim becomes the
//!    lasting "seen" record).
//!
//! Anything a rule checks in phase 1 and acts on later is taken again atomically in
//! phase 3 (caps, concurrency caps, duplicate-caller windows). Rules that read no
//! shared state (bid bounds, hours, geo, service) have nothing to race on: their
//! inputs are the call, the bid and the clock.

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
use crate::ids::BuyerId;
use crate::phone::PhoneNumber;
use crate::state::{CapStore, ReservationId, SeenCallers};

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
    store: HoldStore,
}

/// Where a hold lives.
#[derive(Debug, Clone)]
enum HoldStore {
    /// A cap reservation.
    Cap(Arc<dyn CapStore>),
    /// A duplicate-caller window claim.
    Seen {
        store: Arc<dyn SeenCallers>,
        buyer: BuyerId,
        caller: PhoneNumber,
    },
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
            store: HoldStore::Cap(store),
        }
    }

    /// A hold on a duplicate-caller window claim (see [`SeenCallers::claim`]); releasing
    /// it gives the claim back.
    pub fn seen_window(
        rule: impl Into<String>,
        holder: ReservationId,
        store: Arc<dyn SeenCallers>,
        buyer: BuyerId,
        caller: PhoneNumber,
    ) -> Self {
        Hold {
            rule: rule.into(),
            reservation: holder,
            live: false,
            store: HoldStore::Seen {
                store,
                buyer,
                caller,
            },
        }
    }

    /// Marks the hold as a live-call slot.
    pub fn live(mut self) -> Self {
        self.live = true;
        self
    }

    /// Gives the reservation back. Returns whether it was still held.
    pub async fn release(&self) -> Result<bool, StateError> {
        match &self.store {
            HoldStore::Cap(store) => store.release(&self.reservation).await,
            HoldStore::Seen {
                store,
                buyer,
                caller,
            } => store.release_claim(buyer, caller, &self.reservation).await,
        }
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

    /// [`reserve`](RoutingRule::reserve) with the instant the caller stops waiting (the
    /// auction passes its deadline): a rule whose store may have to wait for another
    /// writer passes it on ([`ReservationRequest::deadline`](crate::state::ReservationRequest::deadline)).
    /// Default: `reserve`, ignoring the deadline.
    async fn reserve_by(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        bid: &Bid,
        now: DateTime<Utc>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Reservation, StateError> {
        let _ = deadline;
        self.reserve(call, buyer, bid, now).await
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
