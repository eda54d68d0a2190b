//! Billing: is a finished call billable, and who gets what.
//!
//! A call is billable when the talk time with the buyer reaches the bid's minimum
//! duration (or the buyer profile's default). The buyer is charged the bid price
//! (revenue); the publisher is paid by a [`PayoutRule`]; the margin is the difference.
//! Non-billable calls move no money. Amounts are rounded to the cent, halves away from zero.

use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::buyer::{Bid, BuyerProfile};
use crate::error::ValidationError;
use crate::money::{Money, MoneyError};

/// How much of a billable call the publisher gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PayoutRule {
    /// A fixed amount per billable call.
    Fixed(Money),
    /// A percentage (0–100) of the revenue.
    PercentOfRevenue(Decimal),
}

impl PayoutRule {
    /// Validates: fixed ≥ 0, percent within 0–100.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match self {
            PayoutRule::Fixed(m) if m.amount < Decimal::ZERO => Err(ValidationError::new(
                "payout",
                m.to_string(),
                "cannot be negative",
            )),
            PayoutRule::PercentOfRevenue(p) if *p < Decimal::ZERO || *p > Decimal::ONE_HUNDRED => {
                Err(ValidationError::new(
                    "payout percent",
                    p.to_string(),
                    "must be between 0 and 100",
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Why a settlement could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    /// The payout rule is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Currencies differ or the arithmetic overflowed.
    #[error(transparent)]
    Money(#[from] MoneyError),
}

/// The money of one finished call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Settlement {
    /// Whether the buyer pays.
    pub billable: bool,
    /// Talk time.
    pub duration: Duration,
    /// The minimum that applied.
    pub min_duration: Duration,
    /// What the buyer pays.
    pub revenue: Money,
    /// What the publisher gets.
    pub payout: Money,
    /// `revenue − payout`.
    pub margin: Money,
}

/// Settles a call that lasted `duration` with the buyer of `bid`.
///
/// ```
/// use std::time::Duration;
/// use callbid_core::{Bid, BuyerId, BuyerProfile, Money};
/// use callbid_core::billing::{settle, PayoutRule};
/// use rust_decimal::Decimal;
/// let buyer = BuyerId::new("b").unwrap();
/// let bid = Bid::new(buyer.clone(), Money::usd(Decimal::new(4500, 2))).with_min_duration(Duration::from_secs(90));
/// let s = settle(&bid, &BuyerProfile::new(buyer), Duration::from_secs(95), &PayoutRule::PercentOfRevenue(Decimal::from(70))).unwrap();
/// assert!(s.billable);
/// assert_eq!(s.payout.amount, Decimal::new(3150, 2));
/// assert_eq!(s.margin.amount, Decimal::new(1350, 2));
/// ```
pub fn settle(
    bid: &Bid,
    profile: &BuyerProfile,
    duration: Duration,
    payout: &PayoutRule,
) -> Result<Settlement, BillingError> {
    payout.validate()?;
    let min_duration = bid.min_duration.unwrap_or(profile.default_min_duration);
    let billable = duration >= min_duration;
    let currency = bid.price.currency;
    let (revenue, payout) = if billable {
        let revenue = bid.price.round_dp(2);
        let payout = match payout {
            PayoutRule::Fixed(m) => {
                if m.currency != currency {
                    return Err(MoneyError::CurrencyMismatch {
                        left: currency,
                        right: m.currency,
                    }
                    .into());
                }
                m.round_dp(2)
            }
            PayoutRule::PercentOfRevenue(p) => {
                revenue.checked_mul(*p / Decimal::ONE_HUNDRED)?.round_dp(2)
            }
        };
        (revenue, payout)
    } else {
        (Money::zero(currency), Money::zero(currency))
    };
    let margin = revenue.checked_sub(&payout)?;
    Ok(Settlement {
        billable,
        duration,
        min_duration,
        revenue,
        payout,
        margin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::BuyerId;
    use crate::money::Currency;
    use rust_decimal_macros::dec;

    fn bid(price: Decimal, min: Option<u64>) -> (Bid, BuyerProfile) {
        let id = BuyerId::new("b").unwrap();
        let mut b = Bid::new(id.clone(), Money::usd(price));
        if let Some(m) = min {
            b = b.with_min_duration(Duration::from_secs(m));
        }
        (b, BuyerProfile::new(id))
    }

    #[test]
    fn minimum_duration_decides() {
        let (b, p) = bid(dec!(40), Some(90));
        let fixed = PayoutRule::Fixed(Money::usd(dec!(25)));
        assert!(
            !settle(&b, &p, Duration::from_secs(89), &fixed)
                .unwrap()
                .billable
        );
        let s = settle(&b, &p, Duration::from_secs(90), &fixed).unwrap();
        assert!(s.billable);
        assert_eq!(
            (s.revenue.amount, s.payout.amount, s.margin.amount),
            (dec!(40), dec!(25), dec!(15))
        );
        // Profile default (60 s) when the bid states none.
        let (b, p) = bid(dec!(40), None);
        assert!(
            settle(&b, &p, Duration::from_secs(60), &fixed)
                .unwrap()
                .billable
        );
        let s = settle(&b, &p, Duration::from_secs(59), &fixed).unwrap();
        assert_eq!(
            (s.revenue.amount, s.payout.amount, s.margin.amount),
            (dec!(0), dec!(0), dec!(0))
        );
    }

    #[test]
    fn percent_rounds_to_the_cent() {
        let (b, p) = bid(dec!(33.33), Some(0));
        let s = settle(
            &b,
            &p,
            Duration::ZERO,
            &PayoutRule::PercentOfRevenue(dec!(33.5)),
        )
        .unwrap();
        // 33.33 × 0.335 = 11.16555 → 11.17
        assert_eq!(s.payout.amount, dec!(11.17));
        assert_eq!(s.margin.amount, dec!(22.16));
        assert_eq!(s.revenue.checked_sub(&s.payout).unwrap(), s.margin);
    }

    #[test]
    fn refusals() {
        let (b, p) = bid(dec!(10), Some(0));
        assert!(matches!(
            settle(
                &b,
                &p,
                Duration::ZERO,
                &PayoutRule::Fixed(Money::new(dec!(5), Currency::EUR))
            ),
            Err(BillingError::Money(_))
        ));
        assert!(matches!(
            settle(
                &b,
                &p,
                Duration::ZERO,
                &PayoutRule::PercentOfRevenue(dec!(101))
            ),
            Err(BillingError::Invalid(_))
        ));
        assert!(settle(
            &b,
            &p,
            Duration::ZERO,
            &PayoutRule::Fixed(Money::usd(dec!(-1)))
        )
        .is_err());
    }
}
