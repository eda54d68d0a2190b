//! Caps by count and by spend per hour / day / month / all time, and concurrency caps
//! (live calls), through a [`CapStore`] whose reservation is atomic.
//!
//! Windows are calendar periods in the buyer's time zone: the daily cap resets at local
//! midnight, the hourly cap at the top of each local hour (the repeated hour when clocks
//! fall back is two windows, told apart by their UTC offset), the monthly cap on the 1st.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::{Hold, Reservation, RoutingRule, Verdict};
use crate::buyer::{Bid, BuyerProfile};
use crate::call::CallContext;
use crate::error::{StateError, ValidationError};
use crate::ids::{BuyerId, CallId};
use crate::money::Money;
use crate::state::{CapStore, CounterIncrement, ReservationId, ReservationRequest, ReserveOutcome};

/// The period a cap counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CapWindow {
    /// The current local hour.
    Hourly,
    /// The current local day.
    Daily,
    /// The current local month.
    Monthly,
    /// All time.
    Total,
    /// Calls live at the same time.
    Concurrent,
}

impl CapWindow {
    /// The window's name (`hourly`, `daily`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            CapWindow::Hourly => "hourly",
            CapWindow::Daily => "daily",
            CapWindow::Monthly => "monthly",
            CapWindow::Total => "total",
            CapWindow::Concurrent => "concurrent",
        }
    }

    /// The period label of `at` in `tz` (part of the counter key).
    pub fn period(&self, at: DateTime<Utc>, tz: Tz) -> String {
        let local = at.with_timezone(&tz);
        match self {
            CapWindow::Hourly => local.format("%Y-%m-%dT%H%:z").to_string(),
            CapWindow::Daily => local.format("%Y-%m-%d").to_string(),
            CapWindow::Monthly => local.format("%Y-%m").to_string(),
            CapWindow::Total => "all".into(),
            CapWindow::Concurrent => "live".into(),
        }
    }
}

impl fmt::Display for CapWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a cap limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CapLimit {
    /// A number of won calls (or live calls for concurrency caps).
    Count(u64),
    /// Total of winning bids.
    Spend(Money),
}

/// One cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cap {
    /// The window.
    pub window: CapWindow,
    /// The limit.
    pub limit: CapLimit,
}

impl Cap {
    /// A count cap.
    pub fn count(window: CapWindow, n: u64) -> Self {
        Cap {
            window,
            limit: CapLimit::Count(n),
        }
    }

    /// A spend cap.
    pub fn spend(window: CapWindow, m: Money) -> Self {
        Cap {
            window,
            limit: CapLimit::Spend(m),
        }
    }

    fn key(&self, buyer: &BuyerId, at: DateTime<Utc>, tz: Tz) -> String {
        let metric = match &self.limit {
            CapLimit::Count(_) => "n".to_string(),
            CapLimit::Spend(m) => format!("spend:{}", m.currency),
        };
        format!(
            "{buyer}|{}|{}|{metric}",
            self.window,
            self.window.period(at, tz)
        )
    }

    fn limit_amount(&self) -> Decimal {
        match &self.limit {
            CapLimit::Count(n) => Decimal::from(*n),
            CapLimit::Spend(m) => m.amount,
        }
    }
}

/// Enforces a buyer's caps. Checks headroom before the ping, reserves atomically for the
/// winner (two holds: the windowed counts, which stay consumed, and the live-call slot,
/// which the application releases when the call ends — see [`CapRule::live_reservation_id`]).
#[derive(Debug, Clone)]
pub struct CapRule {
    store: Arc<dyn CapStore>,
    caps: Vec<Cap>,
    tz: Option<Tz>,
    live_call_ttl: Duration,
}

impl CapRule {
    /// Caps counted in `store`. Concurrency caps must be counts; spend limits must be positive.
    pub fn new(store: Arc<dyn CapStore>, caps: Vec<Cap>) -> Result<Self, ValidationError> {
        for c in &caps {
            match (c.window, &c.limit) {
                (CapWindow::Concurrent, CapLimit::Spend(m)) => {
                    return Err(ValidationError::new(
                        "cap",
                        m.to_string(),
                        "a concurrency cap limits a number of live calls, not spend",
                    ))
                }
                (_, CapLimit::Spend(m)) if m.amount <= Decimal::ZERO => {
                    return Err(ValidationError::new(
                        "cap",
                        m.to_string(),
                        "a spend cap must be positive",
                    ))
                }
                _ => {}
            }
        }
        Ok(CapRule {
            store,
            caps,
            tz: None,
            live_call_ttl: Duration::from_secs(4 * 3600),
        })
    }

    /// Counts windows in `tz` instead of the buyer profile's zone.
    pub fn with_time_zone(mut self, tz: Tz) -> Self {
        self.tz = Some(tz);
        self
    }

    /// How long a live-call slot is held at most if the end of the call is never
    /// reported (default 4 hours).
    pub fn with_live_call_ttl(mut self, ttl: Duration) -> Self {
        self.live_call_ttl = ttl;
        self
    }

    /// The id of the live-call reservation of `buyer` for `call`: release it through the
    /// cap store when the call ends.
    pub fn live_reservation_id(call: &CallId, buyer: &BuyerId) -> ReservationId {
        ReservationId(format!("{call}|{buyer}|live"))
    }

    /// The id of the windowed-count reservation of `buyer` for `call`.
    pub fn count_reservation_id(call: &CallId, buyer: &BuyerId) -> ReservationId {
        ReservationId(format!("{call}|{buyer}|caps"))
    }
}

#[async_trait]
impl RoutingRule for CapRule {
    fn name(&self) -> &str {
        "caps"
    }

    async fn check(
        &self,
        _: &CallContext,
        buyer: &BuyerProfile,
        now: DateTime<Utc>,
    ) -> Result<Verdict, StateError> {
        let tz = self.tz.unwrap_or(buyer.time_zone);
        for cap in &self.caps {
            let used = self.store.usage(&cap.key(&buyer.id, now, tz), now).await?;
            let full = match cap.limit {
                CapLimit::Count(n) => used + Decimal::ONE > Decimal::from(n),
                CapLimit::Spend(m) => used >= m.amount,
            };
            if full {
                return Ok(Verdict::Deny(format!(
                    "{} cap reached ({used} of {})",
                    cap.window,
                    cap.limit_amount()
                )));
            }
        }
        Ok(Verdict::Allow)
    }

    fn check_bid(&self, _: &CallContext, _: &BuyerProfile, bid: &Bid) -> Verdict {
        for cap in &self.caps {
            if let CapLimit::Spend(m) = cap.limit {
                if m.currency != bid.price.currency {
                    return Verdict::Deny(format!(
                        "bid currency {} differs from the spend cap's {}",
                        bid.price.currency, m.currency
                    ));
                }
            }
        }
        Verdict::Allow
    }

    async fn reserve(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        bid: &Bid,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StateError> {
        self.reserve_by(call, buyer, bid, now, None).await
    }

    async fn reserve_by(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        bid: &Bid,
        now: DateTime<Utc>,
        deadline: Option<std::time::Instant>,
    ) -> Result<Reservation, StateError> {
        let tz = self.tz.unwrap_or(buyer.time_zone);
        let mut windowed = Vec::new();
        let mut live = Vec::new();
        for cap in &self.caps {
            let amount = match cap.limit {
                CapLimit::Count(_) => Decimal::ONE,
                CapLimit::Spend(_) => bid.price.amount,
            };
            let inc = CounterIncrement {
                key: cap.key(&buyer.id, now, tz),
                amount,
                limit: cap.limit_amount(),
            };
            if cap.window == CapWindow::Concurrent {
                live.push(inc);
            } else {
                windowed.push(inc);
            }
        }
        let mut holds = Vec::new();
        if !windowed.is_empty() {
            let id = Self::count_reservation_id(&call.call_id, &buyer.id);
            let req = ReservationRequest {
                id: id.clone(),
                increments: windowed,
                expires_at: None,
                now,
                deadline,
            };
            match self.store.reserve(&req).await? {
                ReserveOutcome::Reserved => holds.push(Hold::new("caps", id, self.store.clone())),
                ReserveOutcome::Exceeded { key, used, limit } => {
                    return Ok(Reservation::Refused(format!(
                        "cap {key} full ({used} of {limit})"
                    )))
                }
            }
        }
        if !live.is_empty() {
            let id = Self::live_reservation_id(&call.call_id, &buyer.id);
            let ttl = chrono::Duration::from_std(self.live_call_ttl)
                .unwrap_or(chrono::Duration::hours(4));
            let req = ReservationRequest {
                id: id.clone(),
                increments: live,
                expires_at: Some(now + ttl),
                now,
                deadline,
            };
            match self.store.reserve(&req).await? {
                ReserveOutcome::Reserved => {
                    holds.push(Hold::new("caps", id, self.store.clone()).live())
                }
                ReserveOutcome::Exceeded { key, used, limit } => {
                    for h in &holds {
                        h.release().await?;
                    }
                    return Ok(Reservation::Refused(format!(
                        "cap {key} full ({used} of {limit})"
                    )));
                }
            }
        }
        Ok(if holds.is_empty() {
            Reservation::NotNeeded
        } else {
            Reservation::Held(holds)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServiceType;
    use crate::state::MemoryCapStore;
    use chrono::TimeZone;
    use chrono_tz::America::{Los_Angeles, New_York};
    use rust_decimal_macros::dec;

    fn call(id: &str, at: DateTime<Utc>) -> CallContext {
        CallContext::new(
            CallId::new(id).unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            at,
        )
    }

    async fn win(
        rule: &CapRule,
        p: &BuyerProfile,
        id: &str,
        at: DateTime<Utc>,
        price: Decimal,
    ) -> bool {
        let c = call(id, at);
        if !rule.check(&c, p, at).await.unwrap().is_allow() {
            return false;
        }
        matches!(
            rule.reserve(&c, p, &Bid::new(p.id.clone(), Money::usd(price)), at)
                .await
                .unwrap(),
            Reservation::Held(_)
        )
    }

    #[tokio::test]
    async fn daily_cap_resets_at_local_midnight() {
        let store = Arc::new(MemoryCapStore::new());
        let rule = CapRule::new(store, vec![Cap::count(CapWindow::Daily, 2)]).unwrap();
        let p = BuyerProfile::new(BuyerId::new("b").unwrap()).with_time_zone(Los_Angeles);
        // 2026-11-21 07:30 UTC = Nov 20 23:30 in Los Angeles.
        let before = Utc.with_ymd_and_hms(2026, 11, 21, 7, 30, 0).unwrap();
        assert!(win(&rule, &p, "c1", before, dec!(10)).await);
        assert!(win(&rule, &p, "c2", before, dec!(10)).await);
        assert!(
            !win(&rule, &p, "c3", before, dec!(10)).await,
            "third call the same local day"
        );
        // 08:30 UTC is 00:30 on Nov 21 in Los Angeles: a new day although still the same UTC date.
        let after = Utc.with_ymd_and_hms(2026, 11, 21, 8, 30, 0).unwrap();
        assert!(win(&rule, &p, "c4", after, dec!(10)).await);
        // In New York the same two instants are the same local day (02:30 and 03:30 on Nov 21).
        let ny = BuyerProfile::new(BuyerId::new("ny").unwrap()).with_time_zone(New_York);
        assert!(win(&rule, &ny, "c5", before, dec!(10)).await);
        assert!(win(&rule, &ny, "c6", before, dec!(10)).await);
        assert!(!win(&rule, &ny, "c7", after, dec!(10)).await);
    }

    #[tokio::test]
    async fn hourly_windows_across_fall_back() {
        let store = Arc::new(MemoryCapStore::new());
        let rule = CapRule::new(store, vec![Cap::count(CapWindow::Hourly, 1)]).unwrap();
        let p = BuyerProfile::new(BuyerId::new("b").unwrap()).with_time_zone(New_York);
        // 2026-11-01: 01:30 EDT (05:30 UTC) and 01:30 EST (06:30 UTC) are different hours.
        assert!(
            win(
                &rule,
                &p,
                "c1",
                Utc.with_ymd_and_hms(2026, 11, 1, 5, 30, 0).unwrap(),
                dec!(1)
            )
            .await
        );
        assert!(
            !win(
                &rule,
                &p,
                "c2",
                Utc.with_ymd_and_hms(2026, 11, 1, 5, 59, 0).unwrap(),
                dec!(1)
            )
            .await
        );
        assert!(
            win(
                &rule,
                &p,
                "c3",
                Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap(),
                dec!(1)
            )
            .await
        );
    }

    #[tokio::test]
    async fn spend_and_monthly_caps() {
        let store = Arc::new(MemoryCapStore::new());
        let rule = CapRule::new(
            store,
            vec![Cap::spend(CapWindow::Monthly, Money::usd(dec!(100)))],
        )
        .unwrap();
        let p = BuyerProfile::new(BuyerId::new("b").unwrap());
        let t = Utc.with_ymd_and_hms(2026, 11, 15, 15, 0, 0).unwrap();
        assert!(win(&rule, &p, "c1", t, dec!(60)).await);
        assert!(
            !win(&rule, &p, "c2", t, dec!(40.01)).await,
            "would exceed the spend cap"
        );
        assert!(win(&rule, &p, "c3", t, dec!(40)).await);
        assert!(!win(&rule, &p, "c4", t, dec!(1)).await);
        assert!(
            win(
                &rule,
                &p,
                "c5",
                Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap(),
                dec!(1)
            )
            .await
        );
    }

    #[tokio::test]
    async fn concurrency_cap_released_when_call_ends() {
        let store: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
        let rule = CapRule::new(
            store.clone(),
            vec![
                Cap::count(CapWindow::Concurrent, 1),
                Cap::count(CapWindow::Total, 10),
            ],
        )
        .unwrap();
        let p = BuyerProfile::new(BuyerId::new("b").unwrap());
        let t = Utc.with_ymd_and_hms(2026, 11, 15, 15, 0, 0).unwrap();
        assert!(win(&rule, &p, "c1", t, dec!(5)).await);
        assert!(
            !win(&rule, &p, "c2", t, dec!(5)).await,
            "one live call at a time"
        );
        assert!(store
            .release(&CapRule::live_reservation_id(
                &CallId::new("c1").unwrap(),
                &p.id
            ))
            .await
            .unwrap());
        assert!(win(&rule, &p, "c3", t, dec!(5)).await);
        // The total cap kept its two counts: c1 and c3 (c2's refusal took nothing).
        assert_eq!(store.usage("b|total|all|n", t).await.unwrap(), dec!(2));
    }

    #[test]
    fn invalid_caps_are_refused() {
        let store: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
        assert_eq!(
            CapRule::new(
                store.clone(),
                vec![Cap::spend(CapWindow::Concurrent, Money::usd(dec!(5)))]
            )
            .unwrap_err()
            .field,
            "cap"
        );
        assert!(CapRule::new(
            store,
            vec![Cap::spend(CapWindow::Daily, Money::usd(dec!(0)))]
        )
        .is_err());
    }
}
