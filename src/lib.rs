//! # callbid
//!
//! A pay-per-call routing SDK. This umbrella crate re-exports the member crates
//! behind features so an application can depend on one crate:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `core` (default) | [`core`] | `callbid-core`: domain types, `Buyer`, rules, scoring, the auction |
//!
//! ```
//! use callbid::core::Zip;
//! let zip: Zip = "78701-1234".parse().unwrap();
//! assert_eq!(zip.as_str(), "78701");
//! ```
#![deny(missing_docs)]

/// Domain types, the `Buyer` and `RoutingRule` traits, scoring and the auction.
#[cfg(feature = "core")]
pub use callbid_core as core;

/// Buyer networks over HTTP: Service Direct, config-driven ping-post, `buyers.toml`.
#[cfg(feature = "buyers")]
pub use callbid_buyers as buyers;

/// TwiML, verified webhooks, the Twilio REST client and the call simulator.
#[cfg(feature = "twilio")]
pub use callbid_twilio as twilio;

/// SQLite and PostgreSQL state stores, the call log, reports and exports.
#[cfg(feature = "store")]
pub use callbid_store as store;

/// Exotel: outbound calls (`Calls/connect`), number metadata, call details, and an
/// `OutboundProvider` for campaigns.
#[cfg(feature = "exotel")]
pub use callbid_exotel as exotel;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
