//! Errors from the REST client: Twilio's own error body kept intact, the raw
//! body when it does not parse, and which operation failed.

/// Twilio's JSON error body (`{"code":20404,"message":…,"more_info":…,"status":404}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[non_exhaustive]
pub struct TwilioApiError {
    /// Twilio's error code (e.g. 20404, 21211); see `more_info`.
    pub code: Option<i64>,
    /// Human-readable message.
    pub message: String,
    /// Link to the error's documentation.
    pub more_info: Option<String>,
    /// HTTP status as reported in the body.
    pub status: Option<u16>,
}

/// A failed REST call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RestError {
    /// Twilio answered with an error body.
    #[error("Twilio {operation}: HTTP {status}, error {code}: {message}{more}",
        code = .error.code.map_or_else(|| "-".to_owned(), |c| c.to_string()),
        message = .error.message,
        more = .error.more_info.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Api {
        /// The client operation, e.g. `calls.create`.
        operation: &'static str,
        /// The HTTP status received.
        status: u16,
        /// Twilio's error body.
        error: TwilioApiError,
    },
    /// A non-success status whose body is not Twilio's error JSON.
    #[error("Twilio {operation}: HTTP {status}; body: {body}")]
    Http {
        /// The client operation.
        operation: &'static str,
        /// The HTTP status received.
        status: u16,
        /// The raw body, as received (lossy UTF-8).
        body: String,
    },
    /// The request could not be sent or the response not read.
    #[error("Twilio {operation}: transport error: {source}")]
    Transport {
        /// The client operation.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// A success response whose body does not match the expected type.
    #[error("Twilio {operation}: cannot decode HTTP {status} response: {source}; body: {body}")]
    Decode {
        /// The client operation.
        operation: &'static str,
        /// The HTTP status received.
        status: u16,
        /// The raw body.
        body: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// A response body went over [`ClientBuilder::max_response_bytes`](super::ClientBuilder::max_response_bytes);
    /// reading stopped there.
    #[error("Twilio {operation}: HTTP {status} response body exceeds the {limit}-byte limit (max_response_bytes)")]
    ResponseTooLarge {
        /// The client operation.
        operation: &'static str,
        /// The HTTP status received.
        status: u16,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A page's `next_page_uri` would leave the configured API base URL (another
    /// scheme, host or port, user information, or a path outside the base
    /// URL's path); it is not followed, since the request would carry the
    /// account's credentials.
    #[error("Twilio {operation}: refusing next_page_uri `{next_page_uri}`: {reason}")]
    UntrustedNextPage {
        /// The client operation.
        operation: &'static str,
        /// The value the server sent.
        next_page_uri: String,
        /// Why it was refused.
        reason: String,
    },
    /// A Twilio URI given to [`Client::resolve_uri`](super::Client::resolve_uri)
    /// (a resource's `uri`, a `subresource_uris` value) would leave the
    /// configured API base URL, for the same reasons as
    /// [`RestError::UntrustedNextPage`].
    #[error("Twilio {operation}: refusing URI `{uri}`: {reason}")]
    UntrustedUri {
        /// The client operation.
        operation: &'static str,
        /// The URI given.
        uri: String,
        /// Why it was refused.
        reason: String,
    },
    /// An argument to a client method is invalid (checked before sending).
    #[error("invalid {field} `{value}`: {reason}")]
    InvalidArgument {
        /// The parameter, as Twilio names it.
        field: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// The client configuration is invalid.
    #[error("invalid Twilio client configuration: {field} `{value}`: {reason}")]
    Config {
        /// The setting.
        field: &'static str,
        /// The value given (secrets are never shown).
        value: String,
        /// What is wrong.
        reason: String,
    },
}

impl RestError {
    /// The HTTP status, when Twilio answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            RestError::Api { status, .. }
            | RestError::Http { status, .. }
            | RestError::Decode { status, .. }
            | RestError::ResponseTooLarge { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Twilio's error code, when the body carried one.
    pub fn code(&self) -> Option<i64> {
        match self {
            RestError::Api { error, .. } => error.code,
            _ => None,
        }
    }

    /// Whether retrying later could succeed (rate limits, unavailability,
    /// transport failures). The client already retried what was safe to retry.
    pub fn is_transient(&self) -> bool {
        match self {
            RestError::Transport { .. } => true,
            _ => matches!(self.status(), Some(429) | Some(503)),
        }
    }
}

/// Builds the error for a non-success response.
pub(crate) fn from_response(operation: &'static str, status: u16, body: &[u8]) -> RestError {
    match serde_json::from_slice::<TwilioApiError>(body) {
        Ok(error) => RestError::Api {
            operation,
            status,
            error,
        },
        Err(_) => RestError::Http {
            operation,
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        },
    }
}
