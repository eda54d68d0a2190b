//! `postbacks.toml`, the file the `postbacks` configuration key names:
//!
//! ```toml
//! # All optional; the defaults are shown.
//! max_attempts = 10       # attempts in all, then the delivery is abandoned
//! first_retry_secs = 10   # delay after the first failure, doubling after each one …
//! max_retry_secs = 3600   # … up to this
//! timeout_secs = 10       # per attempt (connect, send, response headers)
//! delay_secs = 1          # first attempt this long after the billing
//! poll_ms = 1000          # how often the worker looks for due deliveries
//! batch = 32              # deliveries sent concurrently at most
//!
//! # One table per publisher (a number-pool lease's `publisher`) or source id.
//! [publishers.pub-42]
//! url = "https://pub.example/pb?click={call_id}&payout={payout}&dur={duration}&src={source}"
//! secret_env = "PUB42_POSTBACK_SECRET"   # the signing secret, from the environment
//! # secret = "…"                         # or inline (keep the file private)
//! ```
//!
//! Tokens: [`super::template`]. Ids are 1–64 characters of `A-Z a-z 0-9 . _ -`; a
//! secret has at least 16 bytes. Unknown keys are refused, and every error names the
//! publisher and key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use callbid_core::state::Backoff;
use serde::Deserialize;

use super::template::{TemplateError, UrlTemplate};
use super::{Endpoint, PostbackConfig, Secret};

/// Why a `postbacks.toml` was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostbackConfigError {
    /// The file cannot be read.
    #[error("cannot read postbacks file {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// Not valid TOML, or a key is unknown or of the wrong type.
    #[error("postbacks file {origin}: {message}")]
    Toml {
        /// The file.
        origin: String,
        /// The parser's message.
        message: String,
    },
    /// A publisher's URL template is refused.
    #[error("postbacks file {origin}: publishers.{publisher}.url: {source}")]
    Template {
        /// The file.
        origin: String,
        /// The publisher.
        publisher: String,
        /// Why.
        source: TemplateError,
    },
    /// A publisher id, a secret or a number is not acceptable.
    #[error("postbacks file {origin}: {key}: {reason}")]
    Invalid {
        /// The file.
        origin: String,
        /// The key (`publishers.pub-1.secret_env`, `timeout_secs`).
        key: String,
        /// Why.
        reason: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    max_attempts: Option<u32>,
    first_retry_secs: Option<u64>,
    max_retry_secs: Option<u64>,
    timeout_secs: Option<u64>,
    delay_secs: Option<u64>,
    poll_ms: Option<u64>,
    batch: Option<u32>,
    #[serde(default)]
    publishers: BTreeMap<String, PublisherSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherSpec {
    url: String,
    secret: Option<String>,
    secret_env: Option<String>,
}

/// Loads `path`, reading `secret_env` variables from the process environment.
///
/// # Errors
/// [`PostbackConfigError`] naming the file, the publisher and the key.
pub fn load(path: &Path) -> Result<PostbackConfig, PostbackConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| PostbackConfigError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    parse(&text, &path.display().to_string(), &|k| {
        std::env::var(k).ok()
    })
}

/// Parses a `postbacks.toml` text; `origin` names it in errors and `env` looks up
/// `secret_env` variables.
///
/// # Errors
/// [`PostbackConfigError`] naming the publisher and the key.
pub fn parse(
    text: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<PostbackConfig, PostbackConfigError> {
    let spec: Spec = toml::from_str(text).map_err(|e| PostbackConfigError::Toml {
        origin: origin.to_owned(),
        message: e.message().to_owned(),
    })?;
    let invalid = |key: String, reason: &str| PostbackConfigError::Invalid {
        origin: origin.to_owned(),
        key,
        reason: reason.to_owned(),
    };
    let mut endpoints = BTreeMap::new();
    for (id, p) in &spec.publishers {
        check_id(id).map_err(|r| invalid(format!("publishers.{id}"), r))?;
        let url = UrlTemplate::parse(&p.url).map_err(|source| PostbackConfigError::Template {
            origin: origin.to_owned(),
            publisher: id.clone(),
            source,
        })?;
        let secret = secret(id, p, env).map_err(|(k, r)| invalid(k, &r))?;
        endpoints.insert(id.clone(), Endpoint::new(url, secret));
    }
    let mut c = PostbackConfig::new(endpoints);
    schedule(&mut c, &spec).map_err(|(k, r)| invalid(k.to_owned(), r))?;
    Ok(c)
}

fn check_id(id: &str) -> Result<(), &'static str> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err("a publisher id is 1-64 characters of A-Z a-z 0-9 . _ -")
    }
}

fn secret(
    id: &str,
    p: &PublisherSpec,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secret, (String, String)> {
    let (key, value) = match (&p.secret, &p.secret_env) {
        (Some(s), None) => (format!("publishers.{id}.secret"), s.clone()),
        (None, Some(var)) => {
            let key = format!("publishers.{id}.secret_env");
            let v = env(var).ok_or_else(|| (key.clone(), format!("${var} is not set")))?;
            (key, v)
        }
        _ => {
            let why = "set exactly one of secret and secret_env".to_owned();
            return Err((format!("publishers.{id}"), why));
        }
    };
    if value.len() < 16 {
        return Err((key, "a signing secret has at least 16 bytes".to_owned()));
    }
    Ok(Secret::new(value.into_bytes()))
}

fn schedule(c: &mut PostbackConfig, s: &Spec) -> Result<(), (&'static str, &'static str)> {
    let d = c.backoff;
    let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
    let first = secs(s.first_retry_secs, d.first);
    let cap = secs(s.max_retry_secs, d.cap);
    let attempts = s.max_attempts.unwrap_or(d.max_attempts);
    if !(1..=100).contains(&attempts) {
        return Err(("max_attempts", "must be 1 to 100"));
    }
    if first.is_zero() || cap < first {
        return Err((
            "first_retry_secs",
            "must be at least 1 and at most max_retry_secs",
        ));
    }
    c.backoff = Backoff::new(first, cap, attempts);
    c.timeout = secs(s.timeout_secs, c.timeout);
    if !(1..=120).contains(&c.timeout.as_secs()) {
        return Err(("timeout_secs", "must be 1 to 120"));
    }
    c.delay = secs(s.delay_secs, c.delay);
    c.poll = s.poll_ms.map_or(c.poll, Duration::from_millis);
    if !(10..=60_000).contains(&c.poll.as_millis()) {
        return Err(("poll_ms", "must be 10 to 60000"));
    }
    c.batch = s.batch.unwrap_or(c.batch);
    if !(1..=1000).contains(&c.batch) {
        return Err(("batch", "must be 1 to 1000"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        (k == "PB_SECRET").then(|| "0123456789abcdef-env".to_owned())
    }

    #[test]
    fn a_full_file_loads() {
        let c = parse(
            r#"
            max_attempts = 4
            first_retry_secs = 2
            max_retry_secs = 30
            timeout_secs = 3
            [publishers.pub-1]
            url = "https://pub.example/pb?click={call_id}&payout={payout}"
            secret_env = "PB_SECRET"
            [publishers.src_2]
            url = "http://127.0.0.1:9/x?d={duration}"
            secret = "inline-secret-0123456789"
            "#,
            "postbacks.toml",
            &env,
        )
        .unwrap();
        assert_eq!(c.endpoints.len(), 2);
        assert_eq!(
            c.endpoints["pub-1"].secret.expose(),
            b"0123456789abcdef-env"
        );
        assert_eq!(
            c.backoff,
            Backoff::new(Duration::from_secs(2), Duration::from_secs(30), 4)
        );
        assert_eq!(c.timeout, Duration::from_secs(3));
        assert_eq!(c.lease(), Duration::from_secs(11));
        assert!(
            !format!("{c:?}").contains("inline-secret"),
            "secrets are not printed"
        );
    }

    #[test]
    fn errors_name_the_publisher_and_key() {
        let bad = |text: &str| parse(text, "pb.toml", &env).unwrap_err().to_string();
        let e = bad(
            "[publishers.p]\nurl = \"https://x.example/?r={revenue}\"\nsecret_env = \"PB_SECRET\"",
        );
        assert!(
            e.contains("publishers.p.url") && e.contains("{revenue}"),
            "{e}"
        );
        let e = bad("[publishers.p]\nurl = \"https://x.example/\"\nsecret_env = \"NOPE\"");
        assert!(
            e.contains("publishers.p.secret_env") && e.contains("$NOPE"),
            "{e}"
        );
        let e = bad("[publishers.p]\nurl = \"https://x.example/\"\nsecret = \"short\"");
        assert!(
            e.contains("publishers.p.secret") && e.contains("16 bytes"),
            "{e}"
        );
        let e = bad("[publishers.p]\nurl = \"https://x.example/\"");
        assert!(e.contains("exactly one"), "{e}");
        let e =
            bad("[publishers.\"a b\"]\nurl = \"https://x.example/\"\nsecret_env = \"PB_SECRET\"");
        assert!(e.contains("publishers.a b"), "{e}");
        assert!(bad("timeout_secs = 0").contains("timeout_secs"));
        assert!(bad("max_attempts = 0").contains("max_attempts"));
        assert!(bad("retries = 3").contains("unknown field"));
    }
}
