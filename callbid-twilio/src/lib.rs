//! # callbid-twilio
//!
//! Twilio for callbid: everything a pay-per-call app needs to speak to Twilio,
//! and to test that it does so correctly without a Twilio account.
//!
//! | module | what |
//! |---|---|
//! | [`twiml`] | typed TwiML builder for the voice verbs and nouns of twilio-python 9.x (list in [`twiml`]; SSML, Connect/Start/Stop streams and transcriptions, Pay, Refer; `.attr()` for unknown attributes), rendered byte for byte like twilio-python; a TwiML parser |
//! | [`webhook`] | serde types for voice webhooks (initial call, Gather, Dial and Record actions, status and recording callbacks) that keep unknown fields |
//! | [`signature`] | `X-Twilio-Signature` validation ([`signature::RequestValidator`]) and whole-request checks behind a proxy ([`signature::WebhookVerifier`]) |
//! | [`rest`] | a REST client: calls, recordings, phone numbers, Lookup v2; typed errors, retries, pagination |
//! | `extract` (feature `axum`) | an axum extractor that verifies webhooks and answers 403 |
//! | `outbound` (feature `campaign`) | `TwilioProvider`: `Calls.create` with async AMD, call fetch and status callbacks as callbid-core's `OutboundProvider` |
//! | `provision` (feature `pool`) | `TwilioProvisioner`: number-pool numbers searched by area code then state, bought with the voice URL, released when idle (callbid-core's `NumberProvisioner`) |
//! | `sim` (feature `sim`) | a call simulator that drives a webhook app over HTTP like Twilio does |
//!
//! ```
//! use callbid_twilio::signature::RequestValidator;
//! use callbid_twilio::twiml::{Dial, DialRecord, Say, Sip, VoiceResponse};
//! use callbid_twilio::webhook::{parse_form, form_pairs, GatherRequest};
//!
//! // A caller's ZIP code arrives from <Gather>; check it really came from Twilio.
//! let url = "https://ivr.example.com/ivr/zip";
//! let body = b"CallSid=CA42&AccountSid=AC7&From=%2B15125550000&Digits=78701";
//! let validator = RequestValidator::new("auth-token");
//! let signature = validator.compute_signature(url, &form_pairs(body)); // Twilio's side
//! assert!(validator.validate(url, &form_pairs(body), &signature));
//!
//! let gather: GatherRequest = parse_form(body)?;
//! assert_eq!(gather.digits.as_deref(), Some("78701"));
//!
//! // Bridge to the winning buyer.
//! let twiml = VoiceResponse::new()
//!     .say(Say::new("Connecting you now").voice("alice"))
//!     .dial(
//!         Dial::new()
//!             .caller_id("+15551234567")
//!             .timeout(20u32)
//!             .record(DialRecord::RecordFromAnswer)
//!             .sip(Sip::new("sip:buyer@example.com")),
//!     )
//!     .to_xml();
//! assert!(twiml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say voice="alice">"#));
//! # Ok::<(), callbid_twilio::webhook::WebhookError>(())
//! ```
//!
//! ## Why these dependencies
//!
//! - **hmac, sha1, sha2** (RustCrypto): the HMAC-SHA1 / HMAC-SHA256 signatures and
//!   the `bodySHA256` hash; audited, widely used, no hand-written crypto.
//! - **subtle**: constant-time signature comparison.
//! - **base64**: the signature's standard, padded base64.
//! - **hex**: the lowercase hex of `bodySHA256`.
//! - **url**: parsing and joining URLs, and the WHATWG query re-encoding that
//!   twilio-node also accepts; relative TwiML action URLs in the simulator.
//! - **form_urlencoded, serde_urlencoded**: webhook form bodies (duplicates kept for
//!   signatures; serde for the typed requests) and REST request bodies with
//!   repeated keys for arrays.
//! - **percent-encoding** (what `form_urlencoded` decodes with): a form value decoded
//!   to bytes, to refuse one that is not UTF-8 instead of decoding it lossily.
//! - **quick-xml**: TwiML text escaping (its `partial_escape` is exactly
//!   ElementTree's `&` `<` `>`) and the TwiML parser. Attribute values need
//!   ElementTree's numeric references for CR/LF/TAB, which quick-xml does not
//!   produce, so a small escaper in [`twiml::escape_attr`] does that
//!   (property-tested against quick-xml's unescaper and fuzzed).
//! - **rust_decimal** (already the workspace's money type): `<Pay chargeAmount>`
//!   is a `Decimal`, never a float, and renders with its scale (`10.00`).
//! - **serde, serde_json, thiserror**: typed requests and responses; error enums.
//! - **reqwest** (rustls): the REST client and the simulator's HTTP; no OpenSSL.
//! - **tokio, futures**: retry sleeps; pagination as a `Stream`.
//! - **rand**: jitter for retry backoff; random SIDs in the simulator.
//! - **httpdate**: `Retry-After` given as an HTTP date.
//! - **axum** (optional, feature `axum`): the webhook extractor.
//! - **callbid-core**: [`webhook::CallerId`] hands callers over as core's
//!   validated `PhoneNumber`, so the IVR puts exactly what Twilio's webhook
//!   means (a number, or no caller ID) into a `CallContext`.
//! - **async-trait, rust_decimal** (optional, feature `campaign`): the
//!   `OutboundProvider` implementation, and exact prices; async-trait (feature
//!   `pool`) for the `NumberProvisioner` implementation.
#![deny(missing_docs)]

#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "campaign")]
pub mod outbound;
#[cfg(feature = "pool")]
pub mod provision;
pub mod rest;
pub mod signature;
#[cfg(feature = "sim")]
pub mod sim;
pub mod twiml;
pub mod webhook;
