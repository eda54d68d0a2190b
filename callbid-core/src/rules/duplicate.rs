//! Duplicate-caller window: the same caller is not sent (and paid) twice within N days.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{RoutingRule, Verdict};
use crate::buyer::{Bid, BuyerProfile};
use crate::call::CallContext;
use crate::error::StateError;
use crate::state::SeenCallers;

/// Refuses a buyer when the caller was sent to it within `window`. Calls without caller
/// id pass (pair with `Capabilities::needs_caller_id` to refuse those).
#[derive(Debug, Clone)]
pub struct DuplicateCallerRule {
    store: Arc<dyn SeenCallers>,
    window: chrono::Duration,
}

impl DuplicateCallerRule {
    /// A window of `days` days.
    pub fn days(store: Arc<dyn SeenCallers>, days: u32) -> Self {
        Self::new(store, chrono::Duration::days(i64::from(days)))
    }

    /// A window of any length.
    pub fn new(store: Arc<dyn SeenCallers>, window: chrono::Duration) -> Self {
        DuplicateCallerRule { store, window }
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

    async fn confirm(
        &self,
        call: &CallContext,
        buyer: &BuyerProfile,
        _: &Bid,
        now: DateTime<Utc>,
    ) -> Result<(), StateError> {
        if let Some(caller) = &call.caller {
            self.store.record(&buyer.id, caller, now).await?;
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
}
