//! # callbid
//!
//! A pay-per-call routing SDK. This umbrella crate re-exports the member crates
//! behind features so an application can depend on one crate:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `core` (default) | [`core`] | `callbid-core`: domain types, `Buyer`, rules, scoring, the auction |
//! | `buyers` (default) | [`buyers`] | `callbid-buyers`: Service Direct, config-driven ping-post, `buyers.toml` |
//! | `twilio` (default) | [`twilio`] | `callbid-twilio`: TwiML, webhooks, signatures, REST client |
//! | `twilio-axum` | [`twilio`]`::extract` | the `TwilioWebhook<T>` axum extractor |
//! | `twilio-sim` | [`twilio`]`::sim` | the offline call simulator |
//! | `store` (default) | [`store`] | `callbid-store`: SQLite state stores, call log, reports, CSV / XLSX export |
//! | `postgres` | [`store`] | the PostgreSQL backend of `callbid-store` (and of the server) |
//! | `server` | `server` | `callbid-server`: the IVR, agent desk, dashboard and operator-access axum routers, the `callbid` binary |
//! | `exotel` | `exotel` | `callbid-exotel`: Exotel outbound calls, number metadata, call details (campaign provider) |
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

/// The servers as a library: axum routers to mount (IVR, agent desk, dashboard, auth).
#[cfg(feature = "server")]
pub use callbid_server as server;

/// The README's examples, compiled as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
