//! The ping-post auction.
//!
//! [`Auction::run`] applies the rules (excluded buyers are not pinged), pings every
//! eligible buyer concurrently under one deadline, validates and scores the bids, orders
//! them by the [`Strategy`], reserves caps and accepts with the best, cascading to the
//! next on failure while the deadline allows, and tells the losers what the call sold
//! for. A buyer that hangs, errors or panics never holds the auction past its deadline.
//!
//! **The deadline budget.** Pings get [`AuctionBuilder::ping_timeout`] (70% of the
//! deadline by default; the phase ends early once every buyer answered). Accepts then
//! share what is left, as Prebid Server budgets `tmax`: the accept window ends
//! [`AuctionBuilder::accept_margin`] before the deadline, and while other candidates wait
//! behind it an attempt (its cap and duplicate-caller reservations included) may use at
//! most [`AuctionBuilder::accept_share`] of the window left (one half by default); the
//! last candidate may use all of it. So a buyer that bids and then hangs on accept costs
//! the auction at most half of the accept window, and the next bid is still accepted.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use async_trait::async_trait;
//! use callbid_core::*;
//! use callbid_core::auction::Auction;
//!
//! #[derive(Debug)]
//! struct Fixed(BuyerId, i64);
//! #[async_trait]
//! impl Buyer for Fixed {
//!     fn id(&self) -> &BuyerId { &self.0 }
//!     async fn ping(&self, _: &CallContext, _: Deadline) -> Result<PingReply, BuyerError> {
//!         let dest = Destination::parse("+15125550199").unwrap();
//!         Ok(PingReply::Bid(Bid::new(self.0.clone(), Money::usd(self.1.into())).with_destination(dest)))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let auction = Auction::builder()
//!     .buyer(BuyerEntry::new(Arc::new(Fixed(BuyerId::new("a").unwrap(), 30))))
//!     .buyer(BuyerEntry::new(Arc::new(Fixed(BuyerId::new("b").unwrap(), 45))))
//!     .deadline(Duration::from_secs(2))
//!     .build()
//!     .unwrap();
//! let call = CallContext::new(CallId::new("CA1").unwrap(), "78701".parse().unwrap(),
//!     ServiceType::new("plumbing").unwrap(), chrono::Utc::now());
//! let outcome = auction.run(&call).await;
//! assert_eq!(outcome.winner().unwrap().buyer.as_str(), "b");
//! # });
//! ```

mod events;
pub mod explain;
mod order;
mod outcome;
mod ping;
pub mod replay;
mod run;

use std::collections::HashSet;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use tokio::sync::broadcast;

use crate::buyer::{Bid, BuyerErrorKind, Deadline};
use crate::call::CallContext;
use crate::entry::BuyerEntry;
use crate::error::ValidationError;
use crate::money::{Currency, Money};
use crate::phone::Destination;
use crate::reuse::{recycle, Reuse};
use crate::rules::{Hold, Reservation, RoutingRule, Verdict};
use crate::scoring::{ScoreBreakdown, Scorer, ScoringEngine};

pub use events::{AuctionEvent, AuctionEventKind};
pub use explain::{AuctionExplanation, BuyerInput, EXPLANATION_VERSION};
pub use outcome::{
    AcceptRecord, AuctionOutcome, AuctionResult, BuyerRecord, BuyerReply, Decision, Eligibility,
    NoBuyerReason, Timings, Winner,
};
pub use replay::{replay, verify, Replay, ReplayCheck, ReplayError, ReplayedBuyer, WhatIf};

/// How the winner is chosen among valid bids. Every strategy first orders candidates by
/// buyer id, so arrival order never matters; remaining ties break by price (higher
/// first), then priority (lower first), then buyer id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Strategy {
    /// Highest score (price weighed by geography, time and duration history).
    HighestScore,
    /// Highest price; score breaks ties.
    HighestBid,
    /// Lowest priority number first; within a priority, weighted random by weight,
    /// drawn from ChaCha8 seeded with `seed` mixed with the call id (reproducible).
    PriorityWeighted {
        /// The seed.
        seed: u64,
    },
    /// The first acceptable answer wins at once; the other pings are cancelled.
    FirstAccept,
}

/// The auction's source of "now" (injectable for deterministic tests).
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// An auction configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuctionConfigError {
    /// Two entries share a buyer id.
    #[error("buyer {0} is listed twice")]
    DuplicateBuyer(String),
    /// An entry's profile id differs from its buyer's id.
    #[error("buyer {buyer}: profile id {profile} does not match")]
    ProfileMismatch {
        /// The buyer's id.
        buyer: String,
        /// The profile's id.
        profile: String,
    },
    /// A field is out of range.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}

/// Builds an [`Auction`].
#[derive(Debug)]
pub struct AuctionBuilder {
    entries: Vec<BuyerEntry>,
    rules: Vec<Arc<dyn RoutingRule>>,
    scorer: Option<Arc<dyn Scorer>>,
    strategy: Strategy,
    deadline: Duration,
    ping_timeout: Option<Duration>,
    accept_share: f64,
    accept_margin: Option<Duration>,
    currency: Currency,
    floor: Option<Money>,
    allow_sip: bool,
    report_losses: bool,
    clock: Arc<dyn Clock>,
    event_capacity: usize,
}

impl Default for AuctionBuilder {
    fn default() -> Self {
        AuctionBuilder {
            entries: Vec::new(),
            rules: Vec::new(),
            scorer: None,
            strategy: Strategy::HighestScore,
            deadline: Duration::from_millis(2500),
            ping_timeout: None,
            accept_share: 0.5,
            accept_margin: None,
            currency: Currency::USD,
            floor: None,
            allow_sip: true,
            report_losses: true,
            clock: Arc::new(SystemClock),
            event_capacity: 1024,
        }
    }
}

impl AuctionBuilder {
    /// Adds a buyer.
    pub fn buyer(mut self, entry: BuyerEntry) -> Self {
        self.entries.push(entry);
        self
    }

    /// Adds buyers.
    pub fn buyers(mut self, entries: impl IntoIterator<Item = BuyerEntry>) -> Self {
        self.entries.extend(entries);
        self
    }

    /// Adds a rule that applies to every buyer.
    pub fn rule(mut self, rule: Arc<dyn RoutingRule>) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sets the scorer (default: [`ScoringEngine::default`], in-memory history).
    pub fn scorer(mut self, scorer: Arc<dyn Scorer>) -> Self {
        self.scorer = Some(scorer);
        self
    }

    /// Sets the strategy (default [`Strategy::HighestScore`]).
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// The whole auction's deadline, pings and accepts included (default 2.5 s).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// How long pings may take (default 70% of the deadline, leaving the rest for
    /// accepts). Per-buyer timeouts are capped by it.
    pub fn ping_timeout(mut self, t: Duration) -> Self {
        self.ping_timeout = Some(t);
        self
    }

    /// The share of the time left that one accept attempt may use while other
    /// candidates wait behind it (default 0.5; the last candidate may use all of it).
    /// Must be in (0, 1]. See the budget rule on [`Auction::run`].
    pub fn accept_share(mut self, share: f64) -> Self {
        self.accept_share = share;
        self
    }

    /// Time kept back from accepts before the deadline, for releasing holds and
    /// answering (default 2% of the deadline, at most 25 ms). Must be below the
    /// deadline.
    pub fn accept_margin(mut self, margin: Duration) -> Self {
        self.accept_margin = Some(margin);
        self
    }

    /// The currency bids must be in (default USD).
    pub fn currency(mut self, c: Currency) -> Self {
        self.currency = c;
        self
    }

    /// A floor every bid must reach.
    pub fn floor(mut self, floor: Money) -> Self {
        self.floor = Some(floor);
        self
    }

    /// Whether SIP destinations are acceptable (default true).
    pub fn allow_sip(mut self, allow: bool) -> Self {
        self.allow_sip = allow;
        self
    }

    /// Whether losers that want it are told the sold price (default true).
    pub fn report_losses(mut self, report: bool) -> Self {
        self.report_losses = report;
        self
    }

    /// Sets the clock (default the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Capacity of the event channel (slow subscribers miss events beyond it).
    pub fn event_capacity(mut self, n: usize) -> Self {
        self.event_capacity = n.max(1);
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Auction, AuctionConfigError> {
        let mut seen = HashSet::new();
        for e in &self.entries {
            if !seen.insert(e.buyer.id().clone()) {
                return Err(AuctionConfigError::DuplicateBuyer(e.buyer.id().to_string()));
            }
            if &e.profile.id != e.buyer.id() {
                return Err(AuctionConfigError::ProfileMismatch {
                    buyer: e.buyer.id().to_string(),
                    profile: e.profile.id.to_string(),
                });
            }
        }
        if self.deadline.is_zero() {
            return Err(ValidationError::new("deadline", "0", "must be positive").into());
        }
        let ping_timeout = self.ping_timeout.unwrap_or(self.deadline.mul_f64(0.7));
        if ping_timeout > self.deadline || ping_timeout.is_zero() {
            return Err(ValidationError::new(
                "ping_timeout",
                format!("{ping_timeout:?}"),
                format!(
                    "must be positive and within the deadline {:?}",
                    self.deadline
                ),
            )
            .into());
        }
        if !(self.accept_share > 0.0 && self.accept_share <= 1.0) {
            return Err(ValidationError::new(
                "accept_share",
                self.accept_share.to_string(),
                "must be greater than 0 and at most 1",
            )
            .into());
        }
        let accept_margin = self
            .accept_margin
            .unwrap_or_else(|| self.deadline.mul_f64(0.02).min(Duration::from_millis(25)));
        if accept_margin >= self.deadline {
            return Err(ValidationError::new(
                "accept_margin",
                format!("{accept_margin:?}"),
                format!("must be below the deadline {:?}", self.deadline),
            )
            .into());
        }
        if let Some(f) = &self.floor {
            if f.currency != self.currency {
                return Err(ValidationError::new(
                    "floor",
                    f.to_string(),
                    format!("not in the auction currency {}", self.currency),
                )
                .into());
            }
        }
        let has_rules = !self.rules.is_empty() || self.entries.iter().any(|e| !e.rules.is_empty());
        let (events, _) = broadcast::channel(self.event_capacity);
        Ok(Auction {
            inner: Arc::new(Inner {
                id_rank: order::id_ranks(&self.entries),
                scratch: Reuse::default(),
                entries: self.entries,
                rules: self.rules,
                scorer: self
                    .scorer
                    .unwrap_or_else(|| Arc::new(ScoringEngine::default())),
                strategy: self.strategy,
                deadline: self.deadline,
                ping_timeout,
                accept_share: self.accept_share,
                accept_margin,
                currency: self.currency,
                floor: self.floor,
                allow_sip: self.allow_sip,
                report_losses: self.report_losses,
                clock: self.clock,
                has_rules,
                events,
                has_subscribers: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }
}

#[derive(Debug)]
struct Inner {
    entries: Vec<BuyerEntry>,
    /// Each entry's place in buyer-id order (ids are unique): ties break on it.
    id_rank: Vec<usize>,
    /// Working vectors of finished runs, reused by the next ones.
    scratch: Reuse<Scratch>,
    rules: Vec<Arc<dyn RoutingRule>>,
    scorer: Arc<dyn Scorer>,
    strategy: Strategy,
    deadline: Duration,
    ping_timeout: Duration,
    accept_share: f64,
    accept_margin: Duration,
    currency: Currency,
    floor: Option<Money>,
    allow_sip: bool,
    report_losses: bool,
    clock: Arc<dyn Clock>,
    has_rules: bool,
    events: broadcast::Sender<AuctionEvent>,
    has_subscribers: std::sync::atomic::AtomicBool,
}

/// A configured auction: cheap to clone, safe to run concurrently for many calls.
#[derive(Debug, Clone)]
pub struct Auction {
    inner: Arc<Inner>,
}

/// A valid bid waiting for selection (the bid itself stays in its buyer's record).
#[derive(Clone, Copy)]
struct Candidate {
    idx: usize,
    price: rust_decimal::Decimal,
    score: rust_decimal::Decimal,
    /// The strategy's two decimal keys as integers at a common scale (see
    /// [`order`]), set just before sorting.
    key: (u128, u128),
}

impl Candidate {
    fn new(idx: usize, price: rust_decimal::Decimal) -> Self {
        Candidate {
            idx,
            price,
            score: rust_decimal::Decimal::ZERO,
            key: (0, 0),
        }
    }
}

/// One run's working vectors, kept between runs (emptied) so that a run allocates
/// only what its outcome keeps.
#[derive(Default)]
struct Scratch {
    cands: Vec<Candidate>,
    /// The `(profile, bid)` pairs handed to the scorer, stored without their borrows
    /// (see [`recycle`]).
    pairs: Vec<(usize, usize)>,
    /// The records' score slots the scorer writes into, stored the same way.
    slots: Vec<usize>,
}

impl Scratch {
    fn clear(&mut self) {
        self.cands.clear();
        self.pairs.clear();
        self.slots.clear();
    }
}

/// The auction's own checks of a bid, before the rules' `check_bid`: what validation
/// and its replay share.
#[derive(Debug, Clone, Copy)]
pub(super) struct BidChecks<'a> {
    pub(super) currency: Currency,
    pub(super) floor: Option<&'a Money>,
    pub(super) allow_sip: bool,
}

impl BidChecks<'_> {
    /// Buyer id, currency, a positive price, the floor, expiry at `now`, and a
    /// destination (or an accept step) that is allowed.
    pub(super) fn check(
        &self,
        from: &crate::ids::BuyerId,
        has_accept: bool,
        bid: &Bid,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        if &bid.buyer != from {
            return Err(format!(
                "bid names buyer {} but came from {from}",
                bid.buyer
            ));
        }
        if bid.price.currency != self.currency {
            return Err(format!(
                "currency {} is not the auction's {}",
                bid.price.currency, self.currency
            ));
        }
        if !bid.price.is_positive() {
            return Err(format!("price {} is not positive", bid.price));
        }
        if let Some(f) = self.floor {
            if bid.price.amount < f.amount {
                return Err(format!("price {} below the floor {f}", bid.price));
            }
        }
        if let Some(exp) = bid.expires_at {
            if exp <= now {
                return Err(format!(
                    "bid expired at {}",
                    exp.format("%Y-%m-%dT%H:%M:%SZ")
                ));
            }
        }
        match &bid.destination {
            None if !has_accept => Err("no destination and the buyer has no accept step".into()),
            Some(Destination::Sip(_)) if !self.allow_sip => {
                Err("SIP destinations are not allowed".into())
            }
            _ => Ok(()),
        }
    }
}

fn bid_of(records: &[BuyerRecord], idx: usize) -> Option<&Bid> {
    match &records[idx].reply {
        BuyerReply::Bid { bid } => Some(bid),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

impl Auction {
    /// Starts building an auction.
    pub fn builder() -> AuctionBuilder {
        AuctionBuilder::default()
    }

    /// Subscribes to live events of every auction this instance runs.
    pub fn subscribe(&self) -> broadcast::Receiver<AuctionEvent> {
        let rx = self.inner.events.subscribe();
        self.inner
            .has_subscribers
            .store(true, std::sync::atomic::Ordering::Relaxed);
        rx
    }

    /// The buyers, in order.
    pub fn entries(&self) -> &[BuyerEntry] {
        &self.inner.entries
    }

    fn emit(&self, call: &CallContext, kind: impl FnOnce() -> AuctionEventKind) {
        // `receiver_count` takes a lock; a cheap relaxed flag is refreshed once per run.
        if self
            .inner
            .has_subscribers
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // A send error only means every receiver went away meanwhile.
            let _ = self.inner.events.send(AuctionEvent {
                call_id: call.call_id.clone(),
                kind: kind(),
            });
        }
    }

    /// Whether the buyer can take this call at all (before any rule).
    fn capable(entry: &BuyerEntry, call: &CallContext) -> Eligibility {
        if call.caller.is_none() && entry.buyer.capabilities().needs_caller_id {
            return Eligibility::Excluded {
                rule: "capabilities".into(),
                reason: "buyer needs caller id and the call has none".into(),
            };
        }
        Eligibility::Eligible
    }

    async fn eligibility(
        &self,
        entry: &BuyerEntry,
        call: &CallContext,
        now: DateTime<Utc>,
    ) -> Eligibility {
        let capable = Self::capable(entry, call);
        if capable != Eligibility::Eligible {
            return capable;
        }
        for rule in self.inner.rules.iter().chain(entry.rules.iter()) {
            match rule.check(call, &entry.profile, now).await {
                Ok(Verdict::Allow) => {}
                Ok(Verdict::Deny(reason)) => {
                    return Eligibility::Excluded {
                        rule: rule.name().to_string(),
                        reason,
                    }
                }
                Err(e) => {
                    return Eligibility::Excluded {
                        rule: rule.name().to_string(),
                        reason: format!("rule failed, buyer skipped: {e}"),
                    }
                }
            }
        }
        Eligibility::Eligible
    }

    fn validate(
        &self,
        entry: &BuyerEntry,
        call: &CallContext,
        bid: &Bid,
        now: DateTime<Utc>,
    ) -> Result<(), String> {
        let inner = &self.inner;
        let checks = BidChecks {
            currency: inner.currency,
            floor: inner.floor.as_ref(),
            allow_sip: inner.allow_sip,
        };
        let has_accept = entry.buyer.capabilities().has_accept;
        checks.check(entry.buyer.id(), has_accept, bid, now)?;
        for rule in inner.rules.iter().chain(entry.rules.iter()) {
            if let Verdict::Deny(reason) = rule.check_bid(call, &entry.profile, bid) {
                return Err(format!("{}: {reason}", rule.name()));
            }
        }
        Ok(())
    }

    async fn try_win(
        &self,
        call: &CallContext,
        idx: usize,
        bid: &Bid,
        deadline: Deadline,
        now: DateTime<Utc>,
    ) -> Result<(Destination, Vec<Hold>), AcceptRecord> {
        let entry = &self.inner.entries[idx];
        // Bids were validated on arrival; one may lapse while earlier candidates were tried.
        if let Some(exp) = bid.expires_at {
            if exp <= self.inner.clock.now() {
                return Err(AcceptRecord::Refused {
                    reason: format!(
                        "bid expired at {} before it could be accepted",
                        exp.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                });
            }
        }
        let rules: Vec<&Arc<dyn RoutingRule>> =
            self.inner.rules.iter().chain(entry.rules.iter()).collect();
        let mut holds: Vec<Hold> = Vec::new();
        let release = |holds: Vec<Hold>| async move {
            for h in holds {
                if let Err(e) = h.release().await {
                    tracing::warn!(reservation = %h.reservation, error = %e, "could not release a cap reservation");
                }
            }
        };
        for rule in &rules {
            match rule
                .reserve_by(call, &entry.profile, bid, now, Some(deadline.0.into_std()))
                .await
            {
                Ok(Reservation::NotNeeded) => {}
                Ok(Reservation::Held(h)) => holds.extend(h),
                Ok(Reservation::Refused(reason)) => {
                    release(holds).await;
                    return Err(AcceptRecord::Refused {
                        reason: format!("{}: {reason}", rule.name()),
                    });
                }
                Err(e) => {
                    release(holds).await;
                    return Err(AcceptRecord::Refused {
                        reason: format!("{}: reservation failed: {e}", rule.name()),
                    });
                }
            }
        }
        let accepted = AssertUnwindSafe(tokio::time::timeout_at(
            deadline.0,
            entry.buyer.accept(call, bid, deadline),
        ))
        .catch_unwind()
        .await;
        let dest = match accepted {
            Ok(Ok(Ok(d))) => match (&d, self.inner.allow_sip) {
                (Destination::Sip(_), false) => Err(AcceptRecord::Failed {
                    kind: BuyerErrorKind::BadResponse,
                    message: format!("accept returned SIP destination {d}, which is not allowed"),
                }),
                _ => Ok(d),
            },
            Ok(Ok(Err(e))) => Err(AcceptRecord::Failed {
                kind: e.kind,
                message: e.message,
            }),
            Ok(Err(_)) => Err(AcceptRecord::Failed {
                kind: BuyerErrorKind::Timeout,
                message: "accept did not answer before the deadline".into(),
            }),
            Err(p) => Err(AcceptRecord::Failed {
                kind: BuyerErrorKind::Panicked,
                message: panic_message(p.as_ref()),
            }),
        };
        match dest {
            Ok(d) => {
                for rule in &rules {
                    if let Err(e) = rule.confirm(call, &entry.profile, bid, now).await {
                        tracing::warn!(rule = rule.name(), error = %e, "confirming a win failed");
                    }
                }
                Ok((d, holds))
            }
            Err(rec) => {
                release(holds).await;
                Err(rec)
            }
        }
    }

    fn emit_accept_failed(
        &self,
        call: &CallContext,
        buyer: &crate::ids::BuyerId,
        ar: &AcceptRecord,
    ) {
        self.emit(call, || AuctionEventKind::AcceptFailed {
            buyer: buyer.clone(),
            reason: match ar {
                AcceptRecord::Refused { reason } => reason.clone(),
                AcceptRecord::Failed { kind, message } => format!("{kind}: {message}"),
                AcceptRecord::Accepted { .. } => String::new(),
            },
        });
    }

    /// Tells every other valid bidder that wants it what the call sold for, in the
    /// background (the caller is not kept waiting; failures are logged).
    fn report_losses(&self, call: &CallContext, records: &[BuyerRecord], winning: &Bid) {
        for (entry, rec) in self.inner.entries.iter().zip(records) {
            let BuyerReply::Bid { bid } = &rec.reply else {
                continue;
            };
            if bid.buyer == winning.buyer || !entry.buyer.capabilities().reports_loss {
                continue;
            }
            let buyer = entry.buyer.clone();
            let call = call.clone();
            let bid = bid.clone();
            let sold = winning.price;
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let r = AssertUnwindSafe(tokio::time::timeout(
                        Duration::from_secs(10),
                        buyer.report_loss(&call, &bid, &sold),
                    ))
                    .catch_unwind()
                    .await;
                    match r {
                        Ok(Ok(Ok(()))) => {}
                        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "report_loss failed"),
                        Ok(Err(_)) => tracing::warn!(buyer = %bid.buyer, "report_loss timed out"),
                        Err(_) => tracing::warn!(buyer = %bid.buyer, "report_loss panicked"),
                    }
                });
            }
        }
    }
}

fn unscored(bid: &Bid) -> ScoreBreakdown {
    // Used only if the scorer failed: the price alone, every factor 1.
    ScoreBreakdown {
        price: bid.price,
        geo_factor: rust_decimal::Decimal::ONE,
        geo_basis: crate::scoring::GeoBasis::Default,
        time_factor: rust_decimal::Decimal::ONE,
        local_hour: 0,
        duration_factor: rust_decimal::Decimal::ONE,
        duration_evidence: crate::scoring::DurationEvidence {
            overall: Default::default(),
            state_hour: None,
            area_code_hour: None,
            hour_of_week: 0,
        },
        quality_factor: rust_decimal::Decimal::ONE,
        quality_evidence: None,
        explore_factor: rust_decimal::Decimal::ONE,
        explore_observations: None,
        score: bid.price.amount,
    }
}

#[cfg(test)]
mod tests;
