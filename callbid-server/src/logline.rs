//! Rate-limited log lines: a flood of the same warning (refused signatures, oversized
//! bodies) writes a few lines and a count, not one line per request (a 20-second flood
//! of forged webhooks used to write 18 MB of stderr).
//!
//! Each line has a class (e.g. `"ivr:signature"`); per class, a burst of
//! [`BURST`] lines is written, then one per [`PERIOD`], through a keyed GCRA limiter
//! (`governor`). The next line written after some were suppressed says how many.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Lines of one class written at once before limiting starts.
pub const BURST: u32 = 5;
/// After the burst, one line of a class per period.
pub const PERIOD: Duration = Duration::from_secs(10);

/// A keyed limiter of log lines with counts of what it suppressed.
#[derive(Debug)]
pub struct LogLimiter {
    limiter: DefaultKeyedRateLimiter<&'static str>,
    suppressed: Mutex<HashMap<&'static str, u64>>,
}

impl LogLimiter {
    /// `burst` lines per class at once, then one per `period`.
    pub fn new(burst: NonZeroU32, period: Duration) -> Self {
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        LogLimiter {
            limiter: RateLimiter::keyed(quota),
            suppressed: Mutex::new(HashMap::new()),
        }
    }

    /// The line to write for `class`, or `None` when it is suppressed. A line written
    /// after suppressed ones ends with their count.
    pub fn admit(&self, class: &'static str, line: impl FnOnce() -> String) -> Option<String> {
        let allowed = self.limiter.check_key(&class).is_ok();
        let Ok(mut counts) = self.suppressed.lock() else {
            return allowed.then(line);
        };
        if !allowed {
            *counts.entry(class).or_insert(0) += 1;
            return None;
        }
        let mut text = line();
        if let Some(n) = counts.remove(class).filter(|n| *n > 0) {
            text.push_str(&format!(" ({n} similar lines suppressed)"));
        }
        Some(text)
    }
}

static GLOBAL: LazyLock<LogLimiter> =
    LazyLock::new(|| LogLimiter::new(NonZeroU32::new(BURST).unwrap_or(NonZeroU32::MIN), PERIOD));

/// Writes `line()` to stderr unless its class is over its rate ([`BURST`], [`PERIOD`]).
pub fn warn_limited(class: &'static str, line: impl FnOnce() -> String) {
    if let Some(l) = GLOBAL.admit(class, line) {
        eprintln!("{l}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_the_burst_then_counts() {
        let l = LogLimiter::new(NonZeroU32::new(3).unwrap(), Duration::from_secs(3600));
        let written: Vec<_> = (0..1000)
            .filter_map(|i| l.admit("sig", || format!("refused {i}")))
            .collect();
        assert_eq!(written, ["refused 0", "refused 1", "refused 2"]);
        // Another class has its own budget.
        assert!(l.admit("body", || "x".into()).is_some());
    }

    #[test]
    fn the_next_line_after_a_pause_says_how_many_were_suppressed() {
        let l = LogLimiter::new(NonZeroU32::new(1).unwrap(), Duration::from_millis(50));
        assert!(l.admit("sig", || "a".into()).is_some());
        for _ in 0..7 {
            assert!(l.admit("sig", || "b".into()).is_none());
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(
            l.admit("sig", || "c".into()).as_deref(),
            Some("c (7 similar lines suppressed)")
        );
    }
}
