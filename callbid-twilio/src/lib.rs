//! callbid-twilio (work in progress).
#![deny(missing_docs)]

#[cfg(feature = "axum")]
pub mod extract;
pub mod rest;
pub mod signature;
#[cfg(feature = "sim")]
pub mod sim;
pub mod twiml;
pub mod webhook;
