//! Errors of the Exotel client.

use std::time::Duration;

/// What went wrong talking to Exotel. Every variant names the operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExotelError {
    /// A setting or request field is invalid (nothing was sent).
    #[error("invalid {field} {value:?}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// HTTP 429: Exotel's rate limit (200 requests/min on voice APIs).
    #[error("exotel {operation}: rate limited (retry after {retry_after:?})")]
    RateLimited {
        /// What was asked.
        operation: &'static str,
        /// `Retry-After` (seconds or an HTTP date), when given.
        retry_after: Option<Duration>,
        /// The body.
        body: String,
    },
    /// Exotel answered an error status; `message` is its `RestException.Message` when
    /// the body has one.
    #[error("exotel {operation}: HTTP {status}: {message}")]
    Api {
        /// What was asked.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// Exotel's message, or the body.
        message: String,
        /// The raw body.
        body: String,
    },
    /// The request did not complete (connect, timeout, TLS); a POST may have arrived.
    #[error("exotel {operation}: transport error: {source}")]
    Transport {
        /// What was asked.
        operation: &'static str,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer that does not parse; the body is kept.
    #[error("exotel {operation}: cannot parse the answer ({reason}): {body}")]
    Decode {
        /// What was asked.
        operation: &'static str,
        /// What failed.
        reason: String,
        /// The raw body (first 2,000 characters).
        body: String,
    },
}

impl ExotelError {
    pub(crate) fn invalid(field: &'static str, value: impl Into<String>, reason: &str) -> Self {
        ExotelError::Invalid {
            field,
            value: value.into(),
            reason: reason.to_string(),
        }
    }
}
