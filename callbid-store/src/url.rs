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

/// The URL (or `key=value` connection string) with any password replaced by `***`.
///
/// Written to never leak, not to follow one URL grammar: people paste passwords with raw
/// `/`, `?`, `#`, `@` or `:` in them. tokio-postgres ends the credentials at the *first*
/// `@`, but a password with a raw `@` would then leak its tail through the error about
/// the host it produced, so here the credentials run to the *last* `@`: everything
/// between the first `:` after the user name and that `@` is masked. (A URL whose query
/// has an `@` in it gets more masked than needed, never less.) The `url` crate is no help
/// here: it reads `postgres://u:12/x@h` as host `u`, port `12`, and would print the
/// password `12/x` that tokio-postgres uses.
pub(crate) fn redact(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return redact_key_values(url);
    };
    let (head, rest) = url.split_at(start);
    let (rest, after) = match rest.rfind('@') {
        Some(at) => {
            let (cred, tail) = rest.split_at(at);
            let cred = match cred.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => cred.to_string(),
            };
            (tail, cred)
        }
        None => (rest, String::new()),
    };
    format!("{head}{after}{}", redact_query_password(rest))
}

/// Replaces the value of a `password=` query parameter (in what follows the host).
fn redact_query_password(rest: &str) -> String {
    let Some((base, query)) = rest.split_once('?') else {
        return rest.to_string();
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

/// Masks `password=…` in a libpq `key=value` connection string (which tokio-postgres
/// also accepts), quoted (`'…'`, with `\'` escapes) or not.
fn redact_key_values(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(i) = lower.find("password") else {
            out.push_str(rest);
            return out;
        };
        let key_start = i == 0 || rest[..i].ends_with(|c: char| c.is_whitespace());
        let after_key = rest[i + "password".len()..].trim_start();
        if !key_start || !after_key.starts_with('=') {
            let step = i + "password".len();
            out.push_str(&rest[..step]);
            rest = &rest[step..];
            continue;
        }
        let value = after_key[1..].trim_start();
        out.push_str(&rest[..i]);
        out.push_str("password=***");
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let mut close = quoted.len();
            for (j, c) in quoted.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '\'' => {
                        close = j + 1;
                        break;
                    }
                    _ => {}
                }
            }
            1 + close
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &value[end..];
    }
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

    #[test]
    fn redaction_of_passwords_with_url_delimiters() {
        for (url, want) in [
            ("postgres://u:a/b@h/db", "postgres://u:***@h/db"),
            ("postgres://u:12/x@h:5432/db", "postgres://u:***@h:5432/db"),
            ("postgres://u:a?b=c@h/db?x=1", "postgres://u:***@h/db?x=1"),
            ("postgres://u:a#b@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u:p%40ss%2F@h/db", "postgres://u:***@h/db"),
            ("postgresql://u:s3:cr/e?t#@@h", "postgresql://u:***@h"),
            ("postgres://u:/?#@@h/db", "postgres://u:***@h/db"),
            (
                "postgres://u@h/db?password=a/b?c#d&x=1",
                "postgres://u@h/db?password=***&x=1",
            ),
        ] {
            assert_eq!(redact(url), want, "{url}");
        }
        // Whatever the shape, no piece of the password survives.
        for secret in ["a/b", "x?y", "p@q", "h#i", "s3:cr/e?t#@"] {
            let url = format!("postgres://user:{secret}@db.internal:5432/callbid?sslmode=disable");
            let shown = redact(&url);
            assert!(!shown.contains(secret), "{shown}");
            assert!(
                shown.ends_with("@db.internal:5432/callbid?sslmode=disable"),
                "{shown}"
            );
            let e = StoreUrl::parse(&url).unwrap().to_string();
            assert!(!e.contains(secret), "{e}");
        }
    }

    #[test]
    fn redaction_of_key_value_strings() {
        assert_eq!(
            redact("host=h user=u password=s/e?c@r#t dbname=d"),
            "host=h user=u password=*** dbname=d"
        );
        assert_eq!(
            redact("host=h password = 'a b\\' c' dbname=d"),
            "host=h password=*** dbname=d"
        );
        assert_eq!(redact("host=h passwordless=1"), "host=h passwordless=1");
    }
}
