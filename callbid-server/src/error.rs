//! The one error type of callbid's JSON routes (dashboard, agent desk API, campaigns,
//! pools): [`ApiError`] answers a status and a JSON body `{"error": …}` that names the
//! field and the value when the input was wrong.
//!
//! TwiML routes never answer JSON: their handlers return [`crate::ivr::IvrError`],
//! which the IVR's guard turns into fallback TwiML (the caller never hears dead air),
//! and an `ApiError` reaching a TwiML route is turned into fallback TwiML the same way
//! (its response carries the same failure tag).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use callbid_core::{StateError, ValidationError};
use callbid_store::StoreError;
use serde_json::json;

/// A JSON route's failure.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// Invalid input: `400 {"error", "field", "value"}`.
    Invalid(ValidationError),
    /// No such thing: `404`.
    NotFound(String),
    /// The request conflicts with the current state (a duplicate id, a wrong
    /// lifecycle step): `409`.
    Conflict(String),
    /// The store or a task failed: `500` (logged).
    Internal(String),
    /// Any other status with a body of its own (e.g. `422` with a list of row errors).
    Status(StatusCode, serde_json::Value),
}

impl ApiError {
    /// `400` naming `field` and `value`, and why the value is wrong.
    pub fn bad(field: &str, value: &str, why: &str) -> Self {
        ApiError::Status(
            StatusCode::BAD_REQUEST,
            json!({"error": format!("{field} {value:?}: {why}"), "field": field, "value": value}),
        )
    }

    /// The status this error answers.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Status(s, _) => *s,
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        ApiError::Invalid(e)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(v) => ApiError::Invalid(v),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> Self {
        match e {
            StateError::Invalid(v) => ApiError::Invalid(v),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Invalid(v) => write!(f, "{v}"),
            ApiError::NotFound(m) | ApiError::Conflict(m) | ApiError::Internal(m) => f.write_str(m),
            ApiError::Status(s, body) => match body.get("error").and_then(|e| e.as_str()) {
                Some(m) => write!(f, "{s}: {m}"),
                None => write!(f, "{s}"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let reason = self.to_string();
        let body = match self {
            ApiError::Invalid(v) => {
                json!({"error": v.to_string(), "field": v.field, "value": v.value})
            }
            ApiError::NotFound(what) | ApiError::Conflict(what) => json!({ "error": what }),
            ApiError::Internal(message) => {
                eprintln!("ERROR api: {message}");
                json!({ "error": message })
            }
            ApiError::Status(_, body) => body,
        };
        let mut res = (status, Json(body)).into_response();
        crate::ivr::tag_failure(&mut res, reason);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        let v = ValidationError::new("zip", "7870", "not 5 digits");
        let r = ApiError::from(v).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ApiError::Conflict("dup".into()).status(),
            StatusCode::CONFLICT
        );
        let bad = ApiError::bad("id", "x y", "spaces");
        assert_eq!(bad.to_string(), "400 Bad Request: id \"x y\": spaces");
    }
}
