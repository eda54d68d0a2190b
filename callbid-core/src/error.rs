//! Errors of input validation and of the state stores.

/// Input that failed validation at the edge: names the field, the offending value and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} {value:?}: {reason}")]
#[non_exhaustive]
pub struct ValidationError {
    /// The field that was being parsed, e.g. `"zip"` or `"caller"`.
    pub field: &'static str,
    /// The value as received (truncated to 200 characters).
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ValidationError {
    /// A new error for `field` holding `value`, with a reason.
    pub fn new(field: &'static str, value: impl AsRef<str>, reason: impl Into<String>) -> Self {
        let value: String = value.as_ref().chars().take(200).collect();
        Self {
            field,
            value,
            reason: reason.into(),
        }
    }
}

/// A failure of a state store (caps, duplicate callers, duration history, call log).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The backing store could not be reached or failed mid-operation; retrying may help.
    #[error("state store {store} unavailable during {operation}: {message}")]
    Unavailable {
        /// Which store (e.g. `"sqlite"`).
        store: &'static str,
        /// What it was doing (e.g. `"reserve"`).
        operation: &'static str,
        /// The underlying error, as text.
        message: String,
    },
    /// The stored data is not what this version expects.
    #[error("state store {store} holds corrupt data: {message}")]
    Corrupt {
        /// Which store.
        store: &'static str,
        /// What was found.
        message: String,
    },
    /// The request itself is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
}
