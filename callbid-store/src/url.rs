//! Which database to open, from a URL or a path.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Result, StoreError};

/// Where a [`crate::Store`] lives.
///
/// ```
/// use callbid_store::StoreUrl;
/// assert_eq!(StoreUrl::parse("sqlite::memory:").unwrap(), StoreUrl::SqliteMemory);
/// assert_eq!(StoreUrl::parse("calls.db").unwrap(), StoreUrl::SqliteFile("calls.db".into()));
/// assert_eq!(StoreUrl::parse("sqlite:///var/lib/callbid.db").unwrap(),
///            StoreUrl::SqliteFile("/var/lib/callbid.db".into()));
/// let pg = StoreUrl::parse("postgres://app:secret@127.0.0.1/callbid").unwrap();
/// assert_eq!(pg.to_string(), "postgres://app:***@127.0.0.1/callbid"); // never the password
/// assert!(StoreUrl::parse("mysql://x").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// A SQLite database file (created if missing).
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database.
    SqliteMemory,
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`).
    Postgres(String),
}

impl StoreUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH`, `sqlite::memory:`, `:memory:`,
    /// `postgres://…`, `postgresql://…`, or a plain file path. For SQLite, the query
    /// parameter `mode=rwc` is accepted (files are always created); others are refused.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason: &str| StoreError::InvalidUrl {
            url: redact(input),
            reason: reason.to_string(),
        };
        let t = input.trim();
        if t.is_empty() {
            return Err(bad(
                "empty; expected a path, sqlite://PATH, sqlite::memory: or postgres://…",
            ));
        }
        let lower = t.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(t.to_string()));
        }
        if let Some(rest) = lower.strip_prefix("sqlite:").map(|_| &t["sqlite:".len()..]) {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if let Some(q) = query {
                for kv in q.split('&').filter(|s| !s.is_empty()) {
                    if kv != "mode=rwc" {
                        return Err(bad(&format!(
                            "unsupported sqlite parameter {kv:?} (only mode=rwc is accepted)"
                        )));
                    }
                }
            }
            return match path {
                ":memory:" | ":memory" | "memory" => Ok(StoreUrl::SqliteMemory),
                "" => Err(bad("sqlite URL without a path")),
                p => Ok(StoreUrl::SqliteFile(PathBuf::from(p))),
            };
        }
        if t == ":memory:" {
            return Ok(StoreUrl::SqliteMemory);
        }
        if let Some((scheme, _)) = t.split_once("://") {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?} (expected sqlite or postgres)"
            )));
        }
        Ok(StoreUrl::SqliteFile(PathBuf::from(t)))
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::SqliteFile(p) => write!(f, "sqlite://{}", p.display()),
            StoreUrl::SqliteMemory => f.write_str("sqlite::memory:"),
            StoreUrl::Postgres(u) => f.write_str(&redact(u)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let url = &redact_query_password(url);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match auth.rsplit_once('@') {
        Some((cred, host)) => match cred.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// Replaces the value of a `password=` query parameter.
fn redact_query_password(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let parts: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{base}?{}", parts.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(StoreUrl::parse(":memory:").unwrap(), StoreUrl::SqliteMemory);
        assert_eq!(
            StoreUrl::parse("sqlite://:memory:").unwrap(),
            StoreUrl::SqliteMemory
        );
        assert_eq!(
            StoreUrl::parse("sqlite://data/calls.db?mode=rwc").unwrap(),
            StoreUrl::SqliteFile("data/calls.db".into())
        );
        assert_eq!(
            StoreUrl::parse("sqlite:calls.db").unwrap(),
            StoreUrl::SqliteFile("calls.db".into())
        );
        assert_eq!(
            StoreUrl::parse("/tmp/x.db").unwrap(),
            StoreUrl::SqliteFile("/tmp/x.db".into())
        );
        assert!(matches!(
            StoreUrl::parse("postgresql://u@h/db").unwrap(),
            StoreUrl::Postgres(_)
        ));
    }

    #[test]
    fn errors_name_the_url_without_password() {
        for (bad, why) in [
            ("", "empty"),
            ("sqlite://", "without a path"),
            ("sqlite://x.db?cache=shared", "cache=shared"),
            ("mysql://root:hunter2@h/db", "mysql"),
        ] {
            let e = StoreUrl::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact("postgres://u:p@h:5432/db?x=1"),
            "postgres://u:***@h:5432/db?x=1"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact("postgres://h/db?user=u&password=p&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
    }
}
