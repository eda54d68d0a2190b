//! callbid-twilio (work in progress).
#![deny(missing_docs)]

pub mod signature;
pub mod twiml;
pub mod webhook;
pub mod rest;
