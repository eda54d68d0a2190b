//! Pool sizing.
//!
//! - The seed's rule (Twilio, "Call attribution at the visitor level", part 4): pool 1
//!   needs `listings per session × peak concurrent visitors`, where the peak is the most
//!   visitors over any window of one session length (5 listings, 10-minute sessions:
//!   5 numbers per concurrent visitor). Pool 2 is not sized: numbers move there when
//!   called, so the provisioner keeps pool 1 stocked ([`super::provision`]).
//! - Nimbata: peak users per hour ÷ (60 ÷ average session minutes), i.e. visitors
//!   concurrently in a session at the hourly peak; one number per visitor.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The seed's three factors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizingInput {
    /// Average listings a visitor views per session (visitor × listing pools), or 1 for
    /// listing-level pools.
    pub listings_per_session: u32,
    /// Average session length.
    pub session_length: Duration,
    /// Most visitors that started a session within any window of one session length.
    pub peak_concurrent_visitors: u64,
}

/// Pool 1 size by the seed's rule: `listings_per_session × peak_concurrent_visitors`.
pub fn seed_pool_size(input: &SizingInput) -> u64 {
    u64::from(input.listings_per_session).saturating_mul(input.peak_concurrent_visitors)
}

/// Nimbata's formula: `ceil(peak users per hour ÷ (60 ÷ session minutes))`
/// = `ceil(peak_hourly × session_seconds ÷ 3600)`; multiply by listings per session
/// for a visitor × listing pool.
pub fn nimbata_pool_size(peak_users_per_hour: u64, session_length: Duration) -> u64 {
    let secs = u128::from(session_length.as_secs().max(1));
    let n = u128::from(peak_users_per_hour) * secs;
    u64::try_from(n.div_ceil(3600)).unwrap_or(u64::MAX)
}

/// Most session starts within any window of `window` (`[t, t + window)`), from
/// visitors' session start instants: the seed's "maximum number of visitors over any
/// 10-minute period". The input need not be sorted.
pub fn peak_in_window(starts: &[DateTime<Utc>], window: Duration) -> u64 {
    let mut s = starts.to_vec();
    s.sort();
    let w = super::chrono_dur(window);
    let (mut lo, mut best) = (0usize, 0usize);
    for hi in 0..s.len() {
        while s[hi] - s[lo] >= w {
            lo += 1;
        }
        best = best.max(hi + 1 - lo);
    }
    best as u64
}

/// Most session starts in any clock hour (Nimbata's "peak users per hour").
pub fn peak_per_hour(starts: &[DateTime<Utc>]) -> u64 {
    let mut by_hour = std::collections::BTreeMap::<i64, u64>::new();
    for t in starts {
        *by_hour.entry(t.timestamp().div_euclid(3600)).or_default() += 1;
    }
    by_hour.values().copied().max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn seed_example() {
        let i = SizingInput {
            listings_per_session: 5,
            session_length: Duration::from_secs(600),
            peak_concurrent_visitors: 200,
        };
        assert_eq!(seed_pool_size(&i), 1000);
        // 1200 visitors in the peak hour, 10-minute sessions: 200 concurrent.
        assert_eq!(nimbata_pool_size(1200, Duration::from_secs(600)), 200);
        assert_eq!(nimbata_pool_size(1201, Duration::from_secs(600)), 201);
    }

    #[test]
    fn window_peak() {
        let t = |m: i64| Utc.timestamp_opt(1_800_000_000 + m * 60, 0).unwrap();
        let starts = [t(0), t(5), t(9), t(10), t(30), t(31)];
        assert_eq!(peak_in_window(&starts, Duration::from_secs(600)), 3);
        assert_eq!(peak_in_window(&[], Duration::from_secs(600)), 0);
        assert_eq!(peak_per_hour(&starts), 6);
    }

    proptest::proptest! {
        #[test]
        fn peak_is_order_independent(mut mins in proptest::collection::vec(0i64..2000, 0..60)) {
            let t = |m: i64| Utc.timestamp_opt(1_800_000_000 + m * 60, 0).unwrap();
            let a: Vec<_> = mins.iter().map(|m| t(*m)).collect();
            mins.reverse();
            let b: Vec<_> = mins.iter().map(|m| t(*m)).collect();
            let w = Duration::from_secs(600);
            proptest::prop_assert_eq!(peak_in_window(&a, w), peak_in_window(&b, w));
            proptest::prop_assert!(peak_in_window(&a, w) <= a.len() as u64);
        }
    }
}
