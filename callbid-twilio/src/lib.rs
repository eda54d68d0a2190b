//! callbid-twilio (work in progress).
#![deny(missing_docs)]

pub mod rest;
pub mod signature;
pub mod twiml;
pub mod webhook;
