//! # callbid-exotel
//!
//! Exotel for callbid's outbound campaigns (seed 004): a small REST client built like
//! `callbid-twilio`'s, and an [`OutboundProvider`](callbid_core::campaign::OutboundProvider)
//! over it.
//!
//! - [`ExotelClient::connect_to_flow`]: `POST /v1/Accounts/{sid}/Calls/connect.json` —
//!   Exotel dials `From` (the customer) first, then runs the call flow at `Url`;
//!   `TimeLimit` at most 14,400 s.
//! - [`ExotelClient::call_details`]: `GET /v1/Accounts/{sid}/Calls/{CallSid}.json?details=true`
//!   (`ConversationDuration`, `Leg1Status`, `Leg2Status`, `Legs[].Leg.OnCallDuration`;
//!   `Duration` and `Price` fill in minutes after the call).
//! - [`ExotelClient::number_metadata`]: `GET /v1/Accounts/{sid}/Numbers/{number}.json`
//!   (`Circle`, `CircleName`, `Type`, `Operator`, `DND`), for caller ID by telecom circle.
//! - [`webhook::StatusCallback`]: the status callback's form (`CallSid`, `Status`,
//!   `DateUpdated`, `RecordingUrl`, …), answered 200 within 15 s; Exotel retries it at
//!   most twice, so campaigns reconcile with the call details.
//!
//! Shapes and limits come from Exotel's API documentation and the seed's examples
//! (`../shared/seeds/004_*.txt`): HTTP Basic auth with the API key and token, regional
//! hosts (`api.exotel.com` Singapore, `api.in.exotel.com` Mumbai), 200 requests/min on the
//! voice APIs, then `429` with `Retry-After`. Errors keep the body (`RestException`).
//!
//! ```
//! use callbid_exotel::{ExotelClient, ConnectToFlow, Region};
//! use callbid_core::PhoneNumber;
//!
//! let client = ExotelClient::builder("exotel_sid", "key", "token")
//!     .region(Region::Mumbai)
//!     .build()
//!     .unwrap();
//! let request = ConnectToFlow::new(
//!     PhoneNumber::parse("+919812345678").unwrap(),
//!     PhoneNumber::parse("+918039591234").unwrap(),
//!     "http://my.exotel.com/exotel_sid/exoml/start_voice/926",
//! )
//! .status_callback("https://calls.example.com/campaigns/exotel/status")
//! .time_limit(600)
//! .unwrap();
//! assert_eq!(request.form()[0], ("From".to_string(), "+919812345678".to_string()));
//! # let _ = client;
//! ```
//!
//! ## Why these dependencies
//! - `reqwest` (rustls): the same HTTP client and TLS as the rest of callbid.
//! - `serde`/`serde_json`: Exotel's JSON answers; `form_urlencoded`: its form bodies.
//! - `httpdate`: `Retry-After` as an HTTP date; `chrono-tz`: Exotel's local timestamps.
//! - `rust_decimal`: prices as exact decimals; `thiserror`: the error enum.
#![deny(missing_docs)]

mod client;
mod error;
mod provider;
mod types;
pub mod webhook;

pub use client::{ExotelClient, ExotelClientBuilder, Region};
pub use error::ExotelError;
pub use provider::ExotelProvider;
pub use types::{CallDetails, ConnectToFlow, ExotelCall, Leg, NumberMetadata, MAX_TIME_LIMIT};
