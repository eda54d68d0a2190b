//! callbid-twilio (work in progress).
#![deny(missing_docs)]

pub mod twiml;
