//! Geographic targeting by ZIP, state and the caller's area code.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{RoutingRule, Verdict};
use crate::buyer::BuyerProfile;
use crate::call::CallContext;
use crate::error::StateError;
use crate::geo::UsState;
use crate::zip::Zip;

/// Whether the listed places are the only ones allowed, or the ones refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoMode {
    /// Only calls matching at least one listed ZIP, state or area code.
    Allow,
    /// Calls matching any listed ZIP, state or area code are refused.
    Deny,
}

/// Geo allow- or deny-list. A call matches when its ZIP is listed, or its state (from
/// the ZIP, else the caller's area code) is listed, or the caller's area code is listed.
///
/// ```
/// use callbid_core::rules::GeoRule;
/// use callbid_core::UsState;
/// let r = GeoRule::allow().with_states([UsState::parse("TX").unwrap()]).with_zips(["10001".parse().unwrap()]);
/// ```
#[derive(Debug, Clone)]
pub struct GeoRule {
    mode: GeoMode,
    zips: BTreeSet<u32>,
    states: BTreeSet<UsState>,
    area_codes: BTreeSet<u16>,
}

impl GeoRule {
    /// An allow-list (empty: allows nothing until entries are added).
    pub fn allow() -> Self {
        Self::with_mode(GeoMode::Allow)
    }

    /// A deny-list (empty: denies nothing).
    pub fn deny() -> Self {
        Self::with_mode(GeoMode::Deny)
    }

    fn with_mode(mode: GeoMode) -> Self {
        GeoRule {
            mode,
            zips: BTreeSet::new(),
            states: BTreeSet::new(),
            area_codes: BTreeSet::new(),
        }
    }

    /// Adds ZIPs.
    pub fn with_zips(mut self, zips: impl IntoIterator<Item = Zip>) -> Self {
        self.zips.extend(zips.into_iter().map(|z| z.as_u32()));
        self
    }

    /// Adds states.
    pub fn with_states(mut self, states: impl IntoIterator<Item = UsState>) -> Self {
        self.states.extend(states);
        self
    }

    /// Adds caller area codes.
    pub fn with_area_codes(mut self, codes: impl IntoIterator<Item = u16>) -> Self {
        self.area_codes.extend(codes);
        self
    }

    fn matches(&self, call: &CallContext) -> Option<String> {
        if self.zips.contains(&call.zip.as_u32()) {
            return Some(format!("zip {}", call.zip));
        }
        if let Some(st) = call.state() {
            if self.states.contains(&st) {
                return Some(format!("state {st}"));
            }
        }
        if let Some(ac) = call.caller.as_ref().and_then(|c| c.area_code()) {
            if self.area_codes.contains(&ac) {
                return Some(format!("area code {ac}"));
            }
        }
        None
    }
}

#[async_trait]
impl RoutingRule for GeoRule {
    fn name(&self) -> &str {
        match self.mode {
            GeoMode::Allow => "geo_allow",
            GeoMode::Deny => "geo_deny",
        }
    }

    async fn check(
        &self,
        call: &CallContext,
        _: &BuyerProfile,
        _: DateTime<Utc>,
    ) -> Result<Verdict, StateError> {
        Ok(match (self.mode, self.matches(call)) {
            (GeoMode::Allow, Some(_)) | (GeoMode::Deny, None) => Verdict::Allow,
            (GeoMode::Allow, None) => Verdict::Deny(format!(
                "zip {} / state {} / area code {} not targeted",
                call.zip,
                call.state().map(|s| s.as_str()).unwrap_or("?"),
                call.caller
                    .as_ref()
                    .and_then(|c| c.area_code())
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "?".into())
            )),
            (GeoMode::Deny, Some(what)) => Verdict::Deny(format!("{what} excluded")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BuyerId, CallId, ServiceType};
    use chrono::TimeZone;

    fn call(zip: &str, caller: Option<&str>) -> CallContext {
        let mut c = CallContext::new(
            CallId::new("CA1").unwrap(),
            zip.parse().unwrap(),
            ServiceType::new("plumbing").unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        );
        if let Some(p) = caller {
            c = c.with_caller(p.parse().unwrap());
        }
        c
    }

    async fn allowed(r: &GeoRule, c: &CallContext) -> bool {
        r.check(
            c,
            &BuyerProfile::new(BuyerId::new("b").unwrap()),
            Utc::now(),
        )
        .await
        .unwrap()
        .is_allow()
    }

    #[tokio::test]
    async fn allow_and_deny_lists() {
        let tx = GeoRule::allow().with_states([UsState::parse("TX").unwrap()]);
        assert!(allowed(&tx, &call("78701", None)).await);
        assert!(!allowed(&tx, &call("10001", None)).await);
        let zips = GeoRule::allow().with_zips(["10001".parse().unwrap()]);
        assert!(allowed(&zips, &call("10001-1234", None)).await);
        assert!(!allowed(&zips, &call("10002", None)).await);
        let acs = GeoRule::allow().with_area_codes([212]);
        assert!(allowed(&acs, &call("78701", Some("+12125550123"))).await);
        assert!(!allowed(&acs, &call("78701", Some("+15125550123"))).await);
        assert!(!allowed(&acs, &call("78701", None)).await);
        let deny = GeoRule::deny().with_states([UsState::parse("NY").unwrap()]);
        assert!(allowed(&deny, &call("78701", None)).await);
        assert!(!allowed(&deny, &call("10001", None)).await);
        assert!(allowed(&GeoRule::deny(), &call("10001", None)).await);
        assert!(!allowed(&GeoRule::allow(), &call("10001", None)).await);
    }
}
