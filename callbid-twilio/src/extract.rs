//! axum integration (feature `axum`): an extractor that verifies
//! `X-Twilio-Signature` against a configured public base URL and answers
//! `403 Forbidden` when it does not match.
//!
//! ```
//! use axum::{routing::post, Router};
//! use callbid_twilio::extract::TwilioWebhook;
//! use callbid_twilio::signature::WebhookVerifier;
//! use callbid_twilio::twiml::{Say, VoiceResponse};
//! use callbid_twilio::webhook::VoiceRequest;
//!
//! async fn voice(TwilioWebhook(call): TwilioWebhook<VoiceRequest>) -> String {
//!     VoiceResponse::new()
//!         .say(Say::new(format!("Hello {}", call.call.from.unwrap_or_default())))
//!         .to_xml()
//! }
//!
//! let verifier = WebhookVerifier::new("https://ivr.example.com", "auth-token").unwrap();
//! let app: Router = Router::new().route("/voice", post(voice)).with_state(verifier);
//! # let _ = app;
//! ```

use crate::signature::{
    SignatureError, WebhookVerifier, SIGNATURE_HEADER, SIGNATURE_SETTINGS_HEADER,
};
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

/// Largest webhook body accepted (Twilio's are a few KiB).
pub const MAX_WEBHOOK_BODY: usize = 1 << 20;

/// A verified Twilio webhook, parsed into `T` (e.g. [`crate::webhook::VoiceRequest`]).
///
/// The router state must provide a [`WebhookVerifier`] (`FromRef`). Form POSTs
/// are verified with their parameters, JSON POSTs via `bodySHA256`, GETs by URL;
/// `T` is read from the form body, JSON body or query string respectively.
#[derive(Debug, Clone)]
pub struct TwilioWebhook<T>(pub T);

/// Why a webhook was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookRejection {
    /// Signature missing or wrong: `403 Forbidden`.
    #[error("Twilio signature check failed: {0}")]
    Forbidden(#[from] SignatureError),
    /// Body too large or unreadable: `400 Bad Request`.
    #[error("cannot read webhook body: {0}")]
    Body(String),
    /// Signed correctly but not the expected parameters: `400 Bad Request`.
    #[error("{0}")]
    Invalid(String),
}

impl IntoResponse for WebhookRejection {
    fn into_response(self) -> Response {
        let status = match &self {
            WebhookRejection::Forbidden(_) => StatusCode::FORBIDDEN,
            WebhookRejection::Body(_) | WebhookRejection::Invalid(_) => StatusCode::BAD_REQUEST,
        };
        // Do not echo signature details to the caller; they are in the error for logs.
        let body = match &self {
            WebhookRejection::Forbidden(_) => "invalid Twilio signature".to_owned(),
            other => other.to_string(),
        };
        (status, body).into_response()
    }
}

impl<S, T> FromRequest<S> for TwilioWebhook<T>
where
    S: Send + Sync,
    WebhookVerifier: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = WebhookRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = WebhookVerifier::from_ref(state);
        let (parts, body) = req.into_parts();
        let path_and_query = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let header_str = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let signature = header_str(SIGNATURE_HEADER);
        let settings = header_str(SIGNATURE_SETTINGS_HEADER);
        let is_json = header_str(header::CONTENT_TYPE.as_str()).is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        let bytes = axum::body::to_bytes(body, MAX_WEBHOOK_BODY)
            .await
            .map_err(|e| WebhookRejection::Body(e.to_string()))?;
        let form_body = parts.method != Method::GET && !is_json;
        verifier.verify(&path_and_query, signature, settings, &bytes, form_body)?;
        let value = if parts.method == Method::GET {
            crate::webhook::parse_form(parts.uri.query().unwrap_or("").as_bytes())
                .map_err(|e| WebhookRejection::Invalid(e.to_string()))?
        } else if is_json {
            serde_json::from_slice(&bytes)
                .map_err(|e| WebhookRejection::Invalid(format!("invalid JSON webhook body: {e}")))?
        } else {
            crate::webhook::parse_form(&bytes)
                .map_err(|e| WebhookRejection::Invalid(e.to_string()))?
        };
        Ok(TwilioWebhook(value))
    }
}
