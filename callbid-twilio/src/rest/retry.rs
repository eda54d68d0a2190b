//! Retry policy: which failures are retried, and how long to wait.
//!
//! * HTTP 429 (Twilio error 20429) means the request was rejected unprocessed:
//!   retried for every method, honouring `Retry-After`.
//! * HTTP 503 may come after the request was received: retried only for
//!   idempotent requests (GET, DELETE).
//! * Connection failures (nothing was sent) are retried for every method; other
//!   transport failures (timeouts, resets) only for idempotent requests.
//!
//! A POST that creates or changes something is therefore never repeated when
//! Twilio may have acted on it.

use std::time::{Duration, SystemTime};

/// How many times and how long to retry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Backoff base: attempt `n` waits a random time in `[0, base * 2^n]` (full jitter).
    pub base_delay: Duration,
    /// Upper bound of one backoff wait.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the error is returned.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn none() -> Self {
        RetryConfig {
            max_retries: 0,
            ..Default::default()
        }
    }

    /// Sets `max_retries`.
    #[must_use]
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets `base_delay` and `max_delay`.
    #[must_use]
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.base_delay = base;
        self.max_delay = max;
        self
    }

    /// Sets `max_retry_after`.
    #[must_use]
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The jittered backoff before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if cap_ms == 0 {
            return Duration::ZERO;
        }
        use rand::Rng as _;
        Duration::from_millis(rand::rng().random_range(0..=cap_ms))
    }
}

/// Reads `Retry-After` (delay-seconds or an HTTP date) relative to `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let c = RetryConfig::default()
            .with_backoff(Duration::from_millis(100), Duration::from_millis(500));
        for attempt in 0..40 {
            let d = c.backoff(attempt);
            let cap = (100u64 << attempt.min(30)).min(500);
            assert!(d <= Duration::from_millis(cap), "attempt {attempt}: {d:?}");
        }
        let distinct: std::collections::HashSet<_> = (0..50).map(|_| c.backoff(5)).collect();
        assert!(distinct.len() > 1, "jitter varies");
        assert_eq!(
            RetryConfig::default()
                .with_backoff(Duration::ZERO, Duration::ZERO)
                .backoff(3),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        // 2015-10-21T07:28:00Z is 1445412480.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
