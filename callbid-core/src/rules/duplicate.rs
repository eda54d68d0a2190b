//! Duplicate-caller window: the same caller is not sent (and paid) twice within N days.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{Hold, Reservation, RoutingRule, Verdict};
use crate::buyer::{Bid, BuyerProfile};
use crate::call::CallContext;
use crate::error::StateError;
use crate::state::{ClaimOutcome, ReservationId, SeenCallers, SeenClaim};

/// Refuses a buyer when the caller was sent to it within `window`. Calls without caller
/// id pass and take nothing (pair with `Capabilities::needs_caller_id` to refuse those).
///
/// `check` reads the confirmed sends (so a buyer that saw the caller is not pinged);
/// `reserve` takes the window atomically ([`SeenCallers::claim`], keyed on caller ×
/// buyer), so of two calls from one caller routed at the same moment only one gets the
/// buyer; the claim is released if the accept fails and becomes the lasting record on
/// `confirm`. An unconfirmed claim lapses after `claim_ttl` (default 10 minutes).
#[derive(Debug, Clone)]
pub struct DuplicateCallerRule {
    store: Arc<dyn SeenCallers>,
    window: chrono::Duration,
    claim_ttl: chrono::Duration,
}

/// The holder id of a call's claim on a buyer's window.
fn holder(call: &CallContext, buyer: &BuyerProfile) -> ReservationId {
    ReservationId(format!("dup|{}|{}", call.call_id, buyer.id))
}

impl DuplicateCallerRule {
    /// A window of `days` days.
    pub fn days(store: Arc<dyn SeenCallers>, days: u32) -> Self {
        Self::new(store, chrono::Duration::days(i64::from(days)))
    }

    /// A window of any length.
    pub fn new(store: Arc<dyn SeenCallers>, window: chrono::Duration) -> Self {
        DuplicateCallerRule {
            store,
            window,
            claim_ttl: chrono::Duration::minutes(10),
        }
    }

    /// How long an unconfirmed claim (reserved, accept not yet finished) blocks the
    /// caller at the buyer. Keep it above the accept step's longest duration.
    pub fn with_claim_ttl(mut self, ttl: chrono::Duration) -> Self {
        self.claim_ttl = ttl;
        self
    }
}

#[async_trait]
impl RoutingRule for DuplicateCallerRule {
    fn name(&self) -> &str {
        "duplicate_caller"
    }

    async fn check(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        now: DateTime<Utc>,
    ) -> Result<Verdict, StateError> {
        let Some(caller) = &call.caller else {
            return Ok(Verdict::Allow);
        };
        Ok(match self.store.last_seen(&buyer.id, caller).await? {
            Some(at) if now - at < self.window => Verdict::Deny(format!(
                "caller {caller} already sent at {}",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            )),
            _ => Verdict::Allow,
        })
    }

    async fn reserve(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        _: &Bid,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StateError> {
        let Some(caller) = &call.caller else {
            return Ok(Reservation::NotNeeded);
        };
        let claim = SeenClaim {
            buyer: buyer.id.clone(),
            caller: caller.clone(),
            holder: holder(call, buyer),
            since: now - self.window,
            now,
            expires_at: now + self.claim_ttl,
        };
        Ok(match self.store.claim(&claim).await? {
            ClaimOutcome::Claimed => Reservation::Held(vec![Hold::seen_window(
                self.name(),
                claim.holder,
                self.store.clone(),
                claim.buyer,
                claim.caller,
            )]),
            ClaimOutcome::Seen { at } => Reservation::Refused(format!(
                "caller {caller} already sent at {}",
                at.format("%Y-%m-%dT%H:%M:%SZ")
            )),
            ClaimOutcome::Held { .. } => Reservation::Refused(format!(
                "caller {caller} is being sent to {} by another call",
                buyer.id
            )),
        })
    }

    async fn confirm(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        _: &Bid,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        if let Some(caller) = &call.caller {
            self.store
                .confirm_claim(&buyer.id, caller, &holder(call, buyer), now)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BuyerId, CallId, ServiceType};
    use crate::money::Money;
    use crate::state::MemorySeenCallers;
    use chrono::TimeZone;

    #[tokio::test]
    async fn window() {
        let store = Arc::new(MemorySeenCallers::new());
        let rule = DuplicateCallerRule::days(store, 30);
        let b = BuyerProfile::new(BuyerId::new("b").unwrap());
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let call = CallContext::new(
            CallId::new("CA1").unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            t,
        )
        .with_caller("+15125550123".parse().unwrap());
        assert!(rule.check(&call, &b, t).await.unwrap().is_allow());
        rule.confirm(&call, &b, &Bid::new(b.id.clone(), Money::usd(1.into())), t)
            .await
            .unwrap();
        assert!(!rule
            .check(&call, &b, t + chrono::Duration::days(29))
            .await
            .unwrap()
            .is_allow());
        assert!(rule
            .check(&call, &b, t + chrono::Duration::days(30))
            .await
            .unwrap()
            .is_allow());
        let other = BuyerProfile::new(BuyerId::new("c").unwrap());
        assert!(rule.check(&call, &other, t).await.unwrap().is_allow());
        let mut anon = call.clone();
        anon.caller = None;
        assert!(rule.check(&anon, &b, t).await.unwrap().is_allow());
    }

    fn call_from(id: &str, caller: Option<&str>, t: DateTime<Utc>) -> CallContext {
        let mut c = CallContext::new(
            CallId::new(id).unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            t,
        );
        c.caller = caller.map(|p| p.parse().unwrap());
        c
    }

    /// Two calls from one caller routed at the same moment: exactly one gets the buyer's
    /// window; the other is refused in the reserve phase (the hardening issue's race).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_calls_from_one_caller_get_the_buyer_once() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        for round in 0..20 {
            let store = Arc::new(MemorySeenCallers::new());
            let rule = Arc::new(DuplicateCallerRule::days(store, 1));
            let b = BuyerProfile::new(BuyerId::new("b").unwrap());
            let bid = Bid::new(b.id.clone(), Money::usd(1.into()));
            let mut tasks = Vec::new();
            for i in 0..2 {
                let (rule, b, bid) = (rule.clone(), b.clone(), bid.clone());
                let call = call_from(&format!("CA{round}-{i}"), Some("+15125550123"), t);
                tasks.push(tokio::spawn(async move {
                    // Both pass the check: nothing is confirmed yet.
                    assert!(rule.check(&call, &b, t).await.unwrap().is_allow());
                    matches!(
                        rule.reserve(&call, &b, &bid, t).await.unwrap(),
                        Reservation::Held(_)
                    )
                }));
            }
            let mut held = 0;
            for task in tasks {
                held += usize::from(task.await.unwrap());
            }
            assert_eq!(held, 1, "round {round}");
        }
    }

    #[tokio::test]
    async fn withheld_caller_reserves_nothing() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let store = Arc::new(MemorySeenCallers::new());
        let rule = DuplicateCallerRule::days(store.clone(), 1);
        let b = BuyerProfile::new(BuyerId::new("b").unwrap());
        let bid = Bid::new(b.id.clone(), Money::usd(1.into()));
        for i in 0..3 {
            let anon = call_from(&format!("CA{i}"), None, t);
            assert!(matches!(
                rule.reserve(&anon, &b, &bid, t).await.unwrap(),
                Reservation::NotNeeded
            ));
            rule.confirm(&anon, &b, &bid, t).await.unwrap();
        }
        // A caller with id is unaffected by the anonymous calls.
        let known = call_from("CA9", Some("+15125550123"), t);
        assert!(matches!(
            rule.reserve(&known, &b, &bid, t).await.unwrap(),
            Reservation::Held(_)
        ));
    }

    #[tokio::test]
    async fn a_failed_accept_releases_the_window_and_a_confirmed_one_keeps_it() {
        let t = Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap();
        let store = Arc::new(MemorySeenCallers::new());
        let rule = DuplicateCallerRule::days(store.clone(), 1);
        let b = BuyerProfile::new(BuyerId::new("b").unwrap());
        let bid = Bid::new(b.id.clone(), Money::usd(1.into()));
        let first = call_from("CA1", Some("+15125550123"), t);
        let second = call_from("CA2", Some("+15125550123"), t);
        let Reservation::Held(holds) = rule.reserve(&first, &b, &bid, t).await.unwrap() else {
            panic!("first call holds the window");
        };
        assert!(matches!(
            rule.reserve(&second, &b, &bid, t).await.unwrap(),
            Reservation::Refused(_)
        ));
        // The accept failed: the hold is released, the second call may take it.
        for h in &holds {
            assert!(h.release().await.unwrap());
        }
        assert!(matches!(
            rule.reserve(&second, &b, &bid, t).await.unwrap(),
            Reservation::Held(_)
        ));
        rule.confirm(&second, &b, &bid, t).await.unwrap();
        let caller = second.caller.clone().unwrap();
        assert_eq!(store.last_seen(&b.id, &caller).await.unwrap(), Some(t));
        // Confirmed: the lasting record refuses a third call in the window.
        let third = call_from("CA3", Some("+15125550123"), t + chrono::Duration::hours(2));
        assert!(!rule.check(&third, &b, t).await.unwrap().is_allow());
        assert!(matches!(
            rule.reserve(&third, &b, &bid, t + chrono::Duration::hours(2))
                .await
                .unwrap(),
            Reservation::Refused(_)
        ));
    }
}
