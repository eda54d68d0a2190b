//! The crate's error type, and its mapping to core's [`StateError`] at the trait boundary.

use callbid_core::{StateError, ValidationError};

/// A failure of a store operation. Every variant says which operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A store URL or path could not be understood.
    #[error("invalid store url {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given (passwords are not echoed: see [`crate::StoreUrl`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A caller-supplied value (a filter, a cursor, a timestamp) was rejected.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// SQLite failed.
    #[error("sqlite error during {operation}: {source}")]
    Sqlite {
        /// What the store was doing (`append`, `reserve`, `open`, …).
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A SQLite database file could not be opened, configured or migrated.
    #[error("cannot open sqlite database {}: {source}", path.display())]
    Open {
        /// The file path as given.
        path: std::path::PathBuf,
        /// What failed.
        #[source]
        source: Box<StoreError>,
    },
    /// PostgreSQL failed.
    #[cfg(feature = "postgres")]
    #[error("postgres error during {operation}: {message}")]
    Postgres {
        /// What the store was doing.
        operation: &'static str,
        /// The driver's or the pool's error, as text (with the server's SQLSTATE when known).
        message: String,
    },
    /// The stored data is not what this version expects (bad JSON, unknown status, …).
    #[error("corrupt data during {operation}: {message}")]
    Corrupt {
        /// What the store was doing.
        operation: &'static str,
        /// What was found.
        message: String,
    },
    /// A blocking database task panicked or was cancelled.
    #[error("background task failed during {operation}: {message}")]
    Task {
        /// What the store was doing.
        operation: &'static str,
        /// The join error.
        message: String,
    },
    /// Writing an export failed.
    #[error("export failed while writing {format}: {message}")]
    Export {
        /// `csv` or `xlsx`.
        format: &'static str,
        /// The writer's error.
        message: String,
    },
    /// The requested backend was not compiled in (e.g. `postgres://` without the
    /// `postgres` feature).
    #[error("backend {backend} is not available: {reason}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// Why.
        reason: &'static str,
    },
}

impl StoreError {
    pub(crate) fn sqlite(operation: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { operation, source }
    }

    pub(crate) fn corrupt(operation: &'static str, message: impl ToString) -> StoreError {
        StoreError::Corrupt {
            operation,
            message: message.to_string(),
        }
    }

    /// The backend name, for [`StateError`].
    fn store_name(&self) -> &'static str {
        match self {
            StoreError::Sqlite { .. } | StoreError::Open { .. } => "sqlite",
            #[cfg(feature = "postgres")]
            StoreError::Postgres { .. } => "postgres",
            _ => "callbid-store",
        }
    }

    /// Converts to core's error, naming the operation the trait was asked for.
    pub(crate) fn into_state(self, operation: &'static str) -> StateError {
        let store = self.store_name();
        match self {
            StoreError::Invalid(v) => StateError::Invalid(v),
            StoreError::Corrupt { message, .. } => StateError::Corrupt { store, message },
            other => StateError::Unavailable {
                store,
                operation,
                message: other.to_string(),
            },
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_state_error_with_operation() {
        let e = StoreError::Sqlite {
            operation: "append",
            source: rusqlite::Error::InvalidQuery,
        };
        let s = e.into_state("append");
        let text = s.to_string();
        assert!(text.contains("sqlite") && text.contains("append"), "{text}");

        let v = ValidationError::new("zip", "1", "bad");
        assert!(matches!(
            StoreError::Invalid(v).into_state("x"),
            StateError::Invalid(_)
        ));
        assert!(matches!(
            StoreError::corrupt("events", "bad json").into_state("events"),
            StateError::Corrupt { .. }
        ));
    }
}
