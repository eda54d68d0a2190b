//! Money: a `Decimal` amount and an ISO 4217 currency. Never floating point.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// An ISO 4217 alphabetic currency code (three uppercase ASCII letters).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollars.
    pub const USD: Currency = Currency(*b"USD");
    /// Canadian dollars.
    pub const CAD: Currency = Currency(*b"CAD");
    /// Euros.
    pub const EUR: Currency = Currency(*b"EUR");

    /// Parses a three-letter code (case-insensitive).
    pub fn parse(code: &str) -> Result<Self, ValidationError> {
        let t = code.trim();
        let b = t.as_bytes();
        if b.len() != 3 || !b.iter().all(u8::is_ascii_alphabetic) {
            return Err(ValidationError::new(
                "currency",
                code,
                "expected a three-letter ISO 4217 code",
            ));
        }
        Ok(Currency([
            b[0].to_ascii_uppercase(),
            b[1].to_ascii_uppercase(),
            b[2].to_ascii_uppercase(),
        ]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl Default for Currency {
    fn default() -> Self {
        Currency::USD
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}

/// Arithmetic on money that would mix currencies or overflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The two amounts are in different currencies.
    #[error("cannot combine {left} with {right}: different currencies")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// The result does not fit a `Decimal`.
    #[error("money arithmetic overflowed")]
    Overflow,
}

/// An amount of money in a currency.
///
/// ```
/// use callbid_core::{Money, Currency};
/// use rust_decimal::Decimal;
/// let a = Money::new(Decimal::new(2550, 2), Currency::USD);
/// let b = Money::usd(Decimal::new(450, 2));
/// assert_eq!(a.checked_add(&b).unwrap().to_string(), "30.00 USD");
/// assert!(a.checked_add(&Money::new(Decimal::ONE, Currency::EUR)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount; exact decimal.
    pub amount: Decimal,
    /// The currency.
    pub currency: Currency,
}

impl Money {
    /// An amount in a currency.
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// An amount in US dollars.
    pub fn usd(amount: Decimal) -> Self {
        Money::new(amount, Currency::USD)
    }

    /// Zero in a currency.
    pub fn zero(currency: Currency) -> Self {
        Money::new(Decimal::ZERO, currency)
    }

    /// Parses a decimal amount string (`"12.50"`) in a currency. Rejects exponents, NaN,
    /// infinities and anything `Decimal` cannot hold exactly.
    pub fn parse_amount(
        field: &'static str,
        input: &str,
        currency: Currency,
    ) -> Result<Self, ValidationError> {
        let t = input.trim();
        if t.is_empty()
            || !t
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+')
        {
            return Err(ValidationError::new(
                field,
                input,
                "not a plain decimal amount",
            ));
        }
        Decimal::from_str_exact(t)
            .map(|d| Money::new(d, currency))
            .map_err(|e| ValidationError::new(field, input, e.to_string()))
    }

    fn same(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }

    /// `self + other`; refuses mixed currencies.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        self.amount
            .checked_add(other.amount)
            .map(|a| Money::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self - other`; refuses mixed currencies.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        self.amount
            .checked_sub(other.amount)
            .map(|a| Money::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// `self × factor`.
    pub fn checked_mul(&self, factor: Decimal) -> Result<Money, MoneyError> {
        self.amount
            .checked_mul(factor)
            .map(|a| Money::new(a, self.currency))
            .ok_or(MoneyError::Overflow)
    }

    /// Compares two amounts; refuses mixed currencies.
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same(other)?;
        Ok(self.amount.cmp(&other.amount))
    }

    /// Rounds to `dp` decimal places, halves away from zero (the rounding invoices use).
    pub fn round_dp(&self, dp: u32) -> Money {
        Money::new(
            self.amount
                .round_dp_with_strategy(dp, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
            self.currency,
        )
    }

    /// Whether the amount is greater than zero.
    pub fn is_positive(&self) -> bool {
        self.amount > Decimal::ZERO
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn currency_codes() {
        assert_eq!(Currency::parse("usd").unwrap(), Currency::USD);
        for bad in ["US", "USDD", "U$D", ""] {
            assert_eq!(Currency::parse(bad).unwrap_err().field, "currency");
        }
    }

    #[test]
    fn mixed_currency_is_refused() {
        let usd = Money::usd(dec!(10));
        let eur = Money::new(dec!(10), Currency::EUR);
        assert_eq!(
            usd.checked_add(&eur),
            Err(MoneyError::CurrencyMismatch {
                left: Currency::USD,
                right: Currency::EUR
            })
        );
        assert!(usd.checked_sub(&eur).is_err());
        assert!(usd.checked_cmp(&eur).is_err());
        assert_eq!(
            usd.checked_sub(&Money::usd(dec!(2.5))).unwrap().amount,
            dec!(7.5)
        );
    }

    #[test]
    fn exact_amount_parsing() {
        assert_eq!(
            Money::parse_amount("price", "12.50", Currency::USD)
                .unwrap()
                .amount,
            dec!(12.50)
        );
        for bad in [
            "1e3",
            "NaN",
            "inf",
            "",
            "1,000",
            "0x10",
            "99999999999999999999999999999999",
        ] {
            assert_eq!(
                Money::parse_amount("price", bad, Currency::USD)
                    .unwrap_err()
                    .field,
                "price",
                "{bad}"
            );
        }
    }

    #[test]
    fn rounding_is_to_the_cent() {
        assert_eq!(Money::usd(dec!(2.345)).round_dp(2).amount, dec!(2.35));
        assert_eq!(Money::usd(dec!(0.1) + dec!(0.2)).amount, dec!(0.3));
    }
}
