//! Service-type and bid-bounds rules.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{RoutingRule, Verdict};
use crate::buyer::{Bid, BuyerProfile};
use crate::call::CallContext;
use crate::error::{StateError, ValidationError};
use crate::ids::ServiceType;
use crate::money::Money;

/// Only calls for these service types.
#[derive(Debug, Clone)]
pub struct ServiceRule {
    services: BTreeSet<ServiceType>,
}

impl ServiceRule {
    /// Allows exactly these services (an empty set allows none).
    pub fn new(services: impl IntoIterator<Item = ServiceType>) -> Self {
        ServiceRule {
            services: services.into_iter().collect(),
        }
    }
}

#[async_trait]
impl RoutingRule for ServiceRule {
    fn name(&self) -> &str {
        "service"
    }

    async fn check(
        &self,
        call: &CallContext,
        _: &BuyerProfile,
        _: DateTime<Utc>,
    ) -> Result<Verdict, StateError> {
        Ok(if self.services.contains(&call.service) {
            Verdict::Allow
        } else {
            Verdict::Deny(format!("service {} not bought", call.service))
        })
    }
}

/// A bid floor and/or ceiling: bids below the floor are refused, bids above the ceiling
/// are refused too (a ceiling protects against a buyer's pricing bug).
#[derive(Debug, Clone)]
pub struct BidBoundsRule {
    floor: Option<Money>,
    ceiling: Option<Money>,
}

impl BidBoundsRule {
    /// Bounds; they must share a currency and floor ≤ ceiling.
    pub fn new(floor: Option<Money>, ceiling: Option<Money>) -> Result<Self, ValidationError> {
        if let (Some(f), Some(c)) = (&floor, &ceiling) {
            match f.checked_cmp(c) {
                Err(_) => {
                    return Err(ValidationError::new(
                        "ceiling",
                        c.to_string(),
                        format!("currency differs from the floor {f}"),
                    ))
                }
                Ok(std::cmp::Ordering::Greater) => {
                    return Err(ValidationError::new(
                        "ceiling",
                        c.to_string(),
                        format!("below the floor {f}"),
                    ))
                }
                Ok(_) => {}
            }
        }
        Ok(BidBoundsRule { floor, ceiling })
    }
}

#[async_trait]
impl RoutingRule for BidBoundsRule {
    fn name(&self) -> &str {
        "bid_bounds"
    }

    async fn check(
        &self,
        _: &CallContext,
        _: &BuyerProfile,
        _: DateTime<Utc>,
    ) -> Result<Verdict, StateError> {
        Ok(Verdict::Allow)
    }

    fn check_bid(&self, _: &CallContext, _: &BuyerProfile, bid: &Bid) -> Verdict {
        if let Some(f) = &self.floor {
            match bid.price.checked_cmp(f) {
                Err(_) => {
                    return Verdict::Deny(format!(
                        "bid {} not in the floor's currency {}",
                        bid.price, f.currency
                    ))
                }
                Ok(std::cmp::Ordering::Less) => {
                    return Verdict::Deny(format!("bid {} below floor {f}", bid.price))
                }
                Ok(_) => {}
            }
        }
        if let Some(c) = &self.ceiling {
            match bid.price.checked_cmp(c) {
                Err(_) => {
                    return Verdict::Deny(format!(
                        "bid {} not in the ceiling's currency {}",
                        bid.price, c.currency
                    ))
                }
                Ok(std::cmp::Ordering::Greater) => {
                    return Verdict::Deny(format!("bid {} above ceiling {c}", bid.price))
                }
                Ok(_) => {}
            }
        }
        Verdict::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{BuyerId, CallId};
    use crate::money::Currency;
    use chrono::TimeZone;
    use rust_decimal_macros::dec;

    fn call(service: &str) -> CallContext {
        CallContext::new(
            CallId::new("CA1").unwrap(),
            "78701".parse().unwrap(),
            ServiceType::new(service).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        )
    }

    #[tokio::test]
    async fn services() {
        let r = ServiceRule::new([ServiceType::new("plumbing").unwrap()]);
        let p = BuyerProfile::new(BuyerId::new("b").unwrap());
        assert!(r
            .check(&call("plumbing"), &p, Utc::now())
            .await
            .unwrap()
            .is_allow());
        assert!(!r
            .check(&call("roofing"), &p, Utc::now())
            .await
            .unwrap()
            .is_allow());
    }

    #[test]
    fn bounds() {
        let b = BuyerId::new("b").unwrap();
        let p = BuyerProfile::new(b.clone());
        let r =
            BidBoundsRule::new(Some(Money::usd(dec!(10))), Some(Money::usd(dec!(200)))).unwrap();
        let c = call("plumbing");
        assert!(r
            .check_bid(&c, &p, &Bid::new(b.clone(), Money::usd(dec!(10))))
            .is_allow());
        assert!(!r
            .check_bid(&c, &p, &Bid::new(b.clone(), Money::usd(dec!(9.99))))
            .is_allow());
        assert!(!r
            .check_bid(&c, &p, &Bid::new(b.clone(), Money::usd(dec!(200.01))))
            .is_allow());
        assert!(!r
            .check_bid(&c, &p, &Bid::new(b, Money::new(dec!(50), Currency::EUR)))
            .is_allow());
        assert!(BidBoundsRule::new(Some(Money::usd(dec!(10))), Some(Money::usd(dec!(5)))).is_err());
        assert_eq!(
            BidBoundsRule::new(
                Some(Money::usd(dec!(10))),
                Some(Money::new(dec!(50), Currency::EUR))
            )
            .unwrap_err()
            .field,
            "ceiling"
        );
    }
}
