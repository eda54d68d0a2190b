//! # callbid-buyers
//!
//! Buyer networks over HTTP for callbid: the [Service Direct](service_direct) partner
//! API, a [config-driven ping-post buyer](ping_post) with presets for Ringba RTB,
//! Retreaver RTB, TrackDrive ping/post and CallGrid, [`buyers.toml` loading](config) into
//! ready-to-run [`BuyerEntry`](callbid_core::BuyerEntry)s, and [wrappers](layers) (rate
//! limit, retry, fault injection) that work around any [`Buyer`](callbid_core::Buyer).
//!
//! Adapters do no I/O (as in prebid-server): they describe requests and parse answers;
//! one [`HttpExecutor`] sends everything, so timeouts bounded by the auction deadline,
//! the 64 KiB body cap, the no-redirect policy, debug capture with secrets redacted and
//! the tracing span per ping behave the same for every buyer.
//!
//! ```
//! use std::sync::Arc;
//! use callbid_buyers::config::BuyersLoader;
//! use callbid_core::state::{MemoryCapStore, MemorySeenCallers};
//!
//! let toml = r#"
//!     [defaults]
//!     time_zone = "America/Chicago"
//!     timeout_ms = 1500
//!
//!     [[buyer]]
//!     id = "service-direct"
//!     adapter = "service_direct"
//!     services = ["plumbing", "roofing"]
//!     floor = "15.00"
//!     caps = { daily = 40, concurrency = 3 }
//!     hours = { weekdays = ["08:00-20:00"], saturday = ["09:00-14:00"] }
//!     service_direct = { api_key_env = "SD_API_KEY" }
//!
//!     [[buyer]]
//!     id = "ringba-hvac"
//!     adapter = "ping_post"
//!     priority = 2
//!     geo = { allow_states = ["TX", "OK"] }
//!     ping_post = { preset = "ringba", params = { rtb_id = "abc123" } }
//! "#;
//! let entries = BuyersLoader::new(Arc::new(MemoryCapStore::new()), Arc::new(MemorySeenCallers::new()))
//!     .with_env([("SD_API_KEY", "sk-test")])
//!     .load_str(toml)
//!     .unwrap();
//! assert_eq!(entries.len(), 2);
//! assert_eq!(entries[0].buyer.id().as_str(), "service-direct");
//! assert!(entries[0].buyer.capabilities().has_accept);
//! assert_eq!(entries[0].rules.len(), 4); // hours, services, floor, caps
//! assert_eq!(entries[1].profile.priority, 2);
//! ```
//!
//! ## Why these dependencies
//! - `reqwest` (rustls, no OpenSSL): a pooled async HTTP client whose redirect policy,
//!   connect timeout and streamed bodies we control; rustls keeps builds free of system
//!   libraries.
//! - `serde_json` with `raw_value`: prices are read from the raw number token of the
//!   answer, so they never pass through `f64` (the `arbitrary_precision` feature would
//!   do the same but changes `serde_json` behaviour for the whole workspace).
//! - `rust_decimal` (through callbid-core's `Money`): exact money.
//! - `toml`, `serde`, `serde_path_to_error`: `buyers.toml` and the presets, with errors
//!   that name the exact field.
//! - `url`, `percent-encoding`: building URLs and escaping placeholder values correctly.
//! - `tokio`, `futures`, `async-trait`: the async `Buyer` trait and deadlines.
//! - `tracing`: one span per buyer exchange.
//! - `flate2` (gzip, deflate) and `brotli-decompressor` (br, the decoder half of the
//!   `brotli` crate): streamed decoders we can stop at the body cap. reqwest's own
//!   `gzip`/`brotli` features would decode too, but they remove `Content-Encoding`
//!   before we see the response, so a decoding error could not name the coding, and
//!   unknown codings would reach the adapters undecoded.
//! - `httpdate`: the HTTP-date form of `Retry-After` (RFC 9110 §5.6.7).
//! - `rand`, `rand_chacha`: seeded, reproducible fault injection.
//! - `thiserror`, `bytes`, `chrono`, `chrono-tz`: errors, bodies, expiry times and
//!   buyers' time zones.
#![deny(missing_docs)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod adapter;
pub mod config;
pub mod encoding;
pub mod http;
pub mod json;
pub mod layers;
pub mod ping_post;
pub mod secret;
pub mod service_direct;

pub use adapter::{AdapterError, HttpAdapter, HttpBuyer};
pub use config::{BuyersLoader, ConfigError};
pub use http::{ExecutorConfig, HttpExecutor, HttpRequest, HttpResponse};
pub use ping_post::PingPost;
pub use secret::Secret;
pub use service_direct::ServiceDirect;
