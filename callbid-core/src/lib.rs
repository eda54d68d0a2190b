//! # callbid-core
//!
//! The heart of callbid: validated domain types, the [`Buyer`] and routing-rule traits,
//! the deterministic scoring engine and the concurrent ping-post auction. No HTTP, no
//! Twilio, no database: those live in `callbid-buyers`, `callbid-twilio` and
//! `callbid-store`, which implement the traits defined here.
//!
//! ```
//! use std::sync::Arc;
//! use callbid_core::auction::{Auction, Strategy};
//! use callbid_core::inprocess::InProcessBuyer;
//! use callbid_core::*;
//! use rust_decimal::Decimal;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let buyer = |id: &str, cents: i64| {
//!     let b = InProcessBuyer::new(BuyerId::new(id).unwrap(), Money::usd(Decimal::new(cents, 2)),
//!         Destination::parse("sip:calls@buyer.example.com").unwrap());
//!     BuyerEntry::new(Arc::new(b))
//! };
//! let auction = Auction::builder()
//!     .buyers([buyer("acme", 3500), buyer("globex", 4200)])
//!     .strategy(Strategy::HighestScore)
//!     .build()
//!     .unwrap();
//! let call = CallContext::new(CallId::new("CA42").unwrap(), "78701".parse().unwrap(),
//!     ServiceType::new("plumbing").unwrap(), chrono::Utc::now())
//!     .with_caller(PhoneNumber::parse("+15125550123").unwrap());
//! let outcome = auction.run(&call).await;
//! let winner = outcome.winner().unwrap();
//! assert_eq!(winner.buyer.as_str(), "globex");
//! println!("{}", winner.score); // 21 = 42.00 USD × geo 1 (default) × time 1 (h09) × duration 0.5
//! # });
//! ```
//!
//! ## Modules
//! - [`phone`], [`zip`], [`ids`], [`money`], [`geo`], [`call`]: validated domain types;
//!   invalid input is refused with a [`ValidationError`] naming the field and the value.
//! - [`buyer`]: the [`Buyer`] trait (`ping` → bid or no bid, `accept` → destination,
//!   `report_loss`), and [`inprocess`] buyers for demos, tests and benches.
//! - [`rules`]: geo, hours (DST-correct, overnight), services, bid bounds, duplicate
//!   callers, caps (hourly/daily/monthly/total by count or spend, concurrency).
//! - [`scoring`]: `score = price × geo × time × duration`, deterministic and explained.
//! - [`auction`]: the concurrent ping-post auction with strategies and live events.
//! - [`billing`]: billable or not, revenue, payout, margin.
//! - [`campaign`]: outbound campaigns (seed 004): contacts and retries, calling windows
//!   in the callee's zone, suppression, local caller ID, predictive pacing under the
//!   30-day abandon ceiling, a campaign store trait and a seeded simulator.
//! - [`pool`]: call tracking with number pools: leases, call locks, attribution, sizing,
//!   provisioning, the `NumberPoolStore` trait with an in-memory store and its suite.
//! - [`agents`]: agent pools (seed 001): agents, presence, tiers, the per-call offer
//!   decided by one compare-and-set, the `AgentStore` trait, the pool as a `Buyer`.
//! - [`state`]: async state traits (caps, duplicate callers, duration history, call log),
//!   in-memory implementations and the conformance suite other stores run.
//!
//! ## Why these dependencies
//! - `async-trait`: object-safe async traits (`Arc<dyn Buyer>`), the design card's choice.
//! - `tokio`: timers for deadlines (`timeout_at`), `broadcast` for live events.
//! - `futures`: `FuturesUnordered` to ping concurrently and act on answers as they come,
//!   `catch_unwind` to survive a panicking buyer.
//! - `rust_decimal`: exact money and deterministic scores (no floats).
//! - `chrono` + `chrono-tz`: zone-aware time with the IANA database (DST-correct hours
//!   and cap windows) rather than hand-written offsets.
//! - `rand` + `rand_chacha`: a seeded, portable, reproducible generator for weighted
//!   routing (ChaCha8's output is specified, unlike `StdRng`'s).
//! - `serde`/`serde_json`: outcomes, events and call-log events as JSON.
//! - `thiserror`: error enums; `tracing`: warnings from background work.
#![deny(missing_docs)]

pub mod agents;
pub mod auction;
pub mod billing;
pub mod buyer;
pub mod call;
pub mod campaign;
pub mod entry;
pub mod error;
pub mod geo;
pub mod ids;
pub mod inprocess;
pub mod money;
pub mod phone;
pub mod pool;
pub mod quality;
mod reuse;
mod rfc3339;
pub mod rules;
pub mod scoring;
pub mod state;
pub mod zip;

pub use buyer::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerProfile, BuyerStep, Capabilities, Deadline,
    Delivery, PingReply,
};
pub use call::CallContext;
pub use entry::BuyerEntry;
pub use error::{StateError, ValidationError};
pub use geo::{area_code_info, zip_state, AreaCodeInfo, UsState};
pub use ids::{BuyerId, CallId, CampaignId, ServiceType, SourceId};
pub use money::{Currency, Money, MoneyError};
pub use phone::{Destination, PhoneNumber, SipUri};
pub use zip::Zip;
