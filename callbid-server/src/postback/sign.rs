//! Signing postbacks, and [`verify`] for receivers.
//!
//! Every postback request carries:
//!
//! | header | value |
//! |---|---|
//! | [`TIMESTAMP_HEADER`] `X-Callbid-Timestamp` | Unix time of the attempt, whole seconds (`1796659200`) |
//! | [`SIGNATURE_HEADER`] `X-Callbid-Signature` | `v1=` and the lowercase hex HMAC-SHA256 of the signed string under the publisher's secret |
//! | [`IDEMPOTENCY_HEADER`] `Idempotency-Key` | `callbid-postback:{call_id}:{publisher}`, the same on every attempt |
//!
//! The signed string is `{timestamp}.{METHOD}.{url}.{body}`: the timestamp header's
//! text, the upper-case method, the full request URL exactly as sent (scheme, host,
//! path and query) and the body bytes (empty for the `GET` postbacks callbid sends).
//! This is the scheme of Stripe's webhook signatures (`t=…,v1=…` over
//! `{timestamp}.{payload}`, checked against a tolerance window to refuse replays; see
//! <https://stripe.com/docs/webhooks/signatures#verify-manually>; Svix signs
//! `{id}.{timestamp}.{body}` the same way), extended to cover the method and
//! URL because a postback's data travels in its query string. A receiver checks with
//! [`verify`], comparing in constant time and refusing timestamps outside its tolerance
//! (five minutes is usual). Several `v1=` values separated by commas are accepted (one
//! per secret while a secret is rotated).

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the attempt's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "X-Callbid-Timestamp";
/// The header carrying `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Callbid-Signature";
/// The header carrying the delivery's stable idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Why [`verify`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The timestamp header is not a whole number of seconds.
    #[error("X-Callbid-Timestamp {0:?} is not a Unix time in seconds")]
    BadTimestamp(String),
    /// The timestamp is further than the tolerance from now (a replay, or a skewed clock).
    #[error(
        "X-Callbid-Timestamp is {skew_secs} s from now, outside the {tolerance_secs} s tolerance"
    )]
    OutsideTolerance {
        /// Seconds between the timestamp and now.
        skew_secs: i64,
        /// The tolerance, in seconds.
        tolerance_secs: u64,
    },
    /// The signature header has no `v1=` value of 64 hex digits.
    #[error("X-Callbid-Signature {0:?} has no v1=<64 hex digits>")]
    BadSignature(String),
    /// No `v1=` value matches.
    #[error("X-Callbid-Signature does not match the request")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: &str, method: &str, url: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(method.to_ascii_uppercase().as_bytes());
    m.update(b".");
    m.update(url.as_bytes());
    m.update(b".");
    m.update(body);
    m
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The [`SIGNATURE_HEADER`] value (`v1=<hex>`) of a request.
pub fn sign(secret: &[u8], timestamp: &str, method: &str, url: &str, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, method, url, body)
        .finalize()
        .into_bytes();
    format!("v1={}", hex(&tag))
}

/// Checks a postback a receiver got: `timestamp` and `signature` are the headers'
/// values, `method`, `url` (as the sender requested it) and `body` the request's, `now`
/// the receiver's clock.
///
/// # Errors
/// [`VerifyError`]: a malformed header, a timestamp outside `tolerance`, or no match.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &[u8],
    method: &str,
    url: &str,
    body: &[u8],
    timestamp: &str,
    signature: &str,
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let t: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp(timestamp.to_owned()))?;
    let skew = now.timestamp().saturating_sub(t);
    if skew.unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance {
            skew_secs: skew,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    let tags: Vec<Vec<u8>> = signature
        .split(',')
        .filter_map(|p| p.trim().strip_prefix("v1="))
        .filter_map(unhex)
        .collect();
    if tags.is_empty() {
        return Err(VerifyError::BadSignature(signature.to_owned()));
    }
    let expected = mac(secret, timestamp.trim(), method, url, body);
    // `verify_slice` compares in constant time.
    if tags
        .iter()
        .any(|tag| expected.clone().verify_slice(tag).is_ok())
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://pub.example/pb?click=CA1&payout=17.50";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_within_the_tolerance() {
        let sig = sign(b"s3cret", "1796659200", "GET", URL, b"");
        assert!(sig.starts_with("v1=") && sig.len() == 67, "{sig}");
        let tol = Duration::from_secs(300);
        verify(
            b"s3cret",
            "GET",
            URL,
            b"",
            "1796659200",
            &sig,
            at(1796659200 + 299),
            tol,
        )
        .unwrap();
        // Lower-case method, and a second (rotated-out) signature next to it.
        let both = format!("v1={}, {sig}", "0".repeat(64));
        verify(
            b"s3cret",
            "get",
            URL,
            b"",
            "1796659200",
            &both,
            at(1796659200 - 10),
            tol,
        )
        .unwrap();
    }

    #[test]
    fn anything_changed_is_refused() {
        let tol = Duration::from_secs(300);
        let (ts, now) = ("1796659200", at(1796659200));
        let sig = sign(b"s3cret", ts, "GET", URL, b"");
        let check = |secret: &[u8], method, url, body: &[u8], ts, sig: &str, now| {
            verify(secret, method, url, body, ts, sig, now, tol)
        };
        assert_eq!(
            check(b"other", "GET", URL, b"", ts, &sig, now),
            Err(VerifyError::Mismatch)
        );
        let tampered = URL.replace("17.50", "99.00");
        assert_eq!(
            check(b"s3cret", "GET", &tampered, b"", ts, &sig, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(b"s3cret", "POST", URL, b"", ts, &sig, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(b"s3cret", "GET", URL, b"x", ts, &sig, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(b"s3cret", "GET", URL, b"", "1796659201", &sig, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(b"s3cret", "GET", URL, b"", ts, &sig, at(1796659200 + 301)),
            Err(VerifyError::OutsideTolerance {
                skew_secs: 301,
                tolerance_secs: 300
            })
        );
        assert!(matches!(
            check(b"s3cret", "GET", URL, b"", "soon", &sig, now),
            Err(VerifyError::BadTimestamp(_))
        ));
        assert!(matches!(
            check(b"s3cret", "GET", URL, b"", ts, "sha256=abc", now),
            Err(VerifyError::BadSignature(_))
        ));
    }

    #[test]
    fn the_signature_is_a_known_hmac() {
        // HMAC-SHA256(key "key", "1.GET.https://x/.") computed independently
        // (python3 -c 'import hmac,hashlib;print(hmac.new(b"key",b"1.GET.https://x/.",hashlib.sha256).hexdigest())').
        assert_eq!(
            sign(b"key", "1", "GET", "https://x/", b""),
            format!("v1={}", KNOWN)
        );
    }

    const KNOWN: &str = "120e85b88d5637a72437e891d2770581137641be1250dea97fb24faf769897d1";
}
