//! Opportunistic pruning of expired cap reservations, shared by the backends.
//!
//! Expired reservations stop counting at once (usage ignores them), but their rows stay
//! until deleted. Every store deletes them from inside its reserve path, bounded so a
//! reservation never pays for much: at most [`BATCH`] reservations per reserve, and
//! after a batch that was not full (the backlog is gone) none for [`INTERVAL`]. A full
//! batch leaves the gate open, so a backlog drains at up to [`BATCH`] per reservation.
//! Only reservations that expired more than [`GRACE`] before both the request's `now`
//! and this machine's clock are deleted, so a process whose clock runs behind, or a
//! caller asking about a slightly earlier `now`, still sees what it would have seen.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Most reservations one reserve call deletes.
pub(crate) const BATCH: i64 = 256;

/// Quiet time after a prune that found less than a full batch.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// How long past its expiry a reservation is kept.
pub(crate) const GRACE: Duration = Duration::from_secs(60);

/// Decides when a store handle prunes; one per handle (shared by its clones).
#[derive(Debug)]
pub(crate) struct PruneGate {
    base: Instant,
    /// Milliseconds since `base` before which no prune starts.
    next_ms: AtomicU64,
}

impl Default for PruneGate {
    fn default() -> Self {
        PruneGate {
            base: Instant::now(),
            next_ms: AtomicU64::new(0),
        }
    }
}

impl PruneGate {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether this caller should prune now; at most one caller per quiet period wins.
    pub(crate) fn claim(&self) -> bool {
        let now = self.now_ms();
        let next = self.next_ms.load(Ordering::Relaxed);
        now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(ms(INTERVAL)),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// Reports how many rows a claimed prune deleted: a full batch reopens the gate.
    pub(crate) fn done(&self, deleted: u64) {
        if deleted >= BATCH as u64 {
            self.next_ms.store(self.now_ms(), Ordering::Relaxed);
        }
    }
}

impl PruneGate {
    /// Opens the gate now (tests of the stores' pruning).
    #[cfg(test)]
    pub(crate) fn reopen(&self) {
        self.next_ms.store(0, Ordering::Relaxed);
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Reservations that expired at or before this instant may be deleted.
pub(crate) fn cutoff(now: DateTime<Utc>) -> DateTime<Utc> {
    let grace = chrono::Duration::from_std(GRACE).unwrap_or(chrono::Duration::MAX);
    now.min(Utc::now()) - grace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_admits_one_then_waits_unless_the_batch_was_full() {
        let g = PruneGate::default();
        assert!(g.claim());
        assert!(!g.claim(), "closed for the interval");
        g.done(BATCH as u64);
        assert!(g.claim(), "a full batch reopens the gate");
        g.done(3);
        assert!(!g.claim());
    }

    #[test]
    fn cutoff_is_before_both_clocks() {
        let wall = Utc::now();
        let future = wall + chrono::Duration::days(1);
        let c = cutoff(future);
        let minute = chrono::Duration::seconds(60);
        assert!(c >= wall - minute && c <= Utc::now() - minute, "{c}");
        let past = wall - chrono::Duration::days(1);
        assert_eq!(cutoff(past), past - chrono::Duration::seconds(60));
    }
}
