//! How domain values become column values, shared by every backend.
//!
//! - Instants are `BIGINT` nanoseconds since the Unix epoch (UTC): exact for chrono's
//!   precision, sortable, and the same SQL works on SQLite and PostgreSQL. Instants
//!   outside 1677–2262 are rejected with a validation error.
//! - Money in the `calls` summary is kept twice: the exact decimal as text (`price`,
//!   `revenue`, `payout`) and integer micro-units (`*_micros`, 10⁻⁶ of the currency unit)
//!   that reports filter, sort and sum on exactly. An amount with more than six decimal
//!   places is rounded (half away from zero) in the micro-unit column only; the exact
//!   value stays in the text column and in the record.

use callbid_core::state::{AreaKey, CallRecord};
use callbid_core::ValidationError;
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{Result, StoreError};
use crate::report::Dialect;

/// Nanoseconds since the epoch.
pub(crate) fn to_ns(field: &'static str, at: DateTime<Utc>) -> Result<i64> {
    at.timestamp_nanos_opt().ok_or_else(|| {
        ValidationError::new(
            field,
            at.to_rfc3339(),
            "instant outside 1677-09-21..2262-04-11 cannot be stored",
        )
        .into()
    })
}

/// The instant of a nanosecond count.
pub(crate) fn from_ns(ns: i64) -> DateTime<Utc> {
    Utc.timestamp_nanos(ns)
}

/// Micro-units per unit.
const MICROS: i64 = 1_000_000;

/// An amount in micro-units, rounded half away from zero beyond six places.
pub(crate) fn to_micros(field: &'static str, amount: Decimal) -> Result<i64> {
    amount
        .round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
        .checked_mul(Decimal::from(MICROS))
        .and_then(|d| d.to_i64())
        .ok_or_else(|| {
            ValidationError::new(field, amount.to_string(), "amount too large to store").into()
        })
}

/// A filter bound in micro-units: refuses more than six decimal places instead of
/// silently changing the bound.
pub(crate) fn bound_to_micros(field: &'static str, amount: Decimal) -> Result<i64> {
    if amount.normalize().scale() > 6 {
        return Err(ValidationError::new(
            field,
            amount.to_string(),
            "at most 6 decimal places are supported",
        )
        .into());
    }
    to_micros(field, amount)
}

/// The exact amount of a micro-unit count.
pub(crate) fn from_micros(micros: i128) -> Decimal {
    // i128 sums of i64 values fit Decimal's 96-bit mantissa for any realistic total;
    // saturate instead of panicking if they ever do not.
    Decimal::try_from_i128_with_scale(micros, 6)
        .unwrap_or(if micros < 0 {
            Decimal::MIN
        } else {
            Decimal::MAX
        })
        .normalize()
}

/// The stored text of an area key (`any`, `state:TX`, `ac:512`).
pub(crate) fn area_text(area: &AreaKey) -> String {
    area.to_string()
}

/// A history hour as a column value (`-1` for all hours).
pub(crate) fn hour_value(hour: Option<u8>) -> i64 {
    hour.map_or(-1, i64::from)
}

/// The columns of the `calls` summary row of a record, in [`CALL_COLUMNS`] order.
#[derive(Debug, Clone)]
pub(crate) struct CallRow {
    pub call_id: String,
    pub received_ns: i64,
    pub day: i64,
    pub status: &'static str,
    pub caller: Option<String>,
    pub dialed: Option<String>,
    pub campaign: Option<String>,
    pub source: Option<String>,
    pub zip: Option<String>,
    pub service: Option<String>,
    pub buyer: Option<String>,
    pub currency: Option<String>,
    pub price: Option<String>,
    pub price_micros: Option<i64>,
    pub revenue: Option<String>,
    pub revenue_micros: Option<i64>,
    pub payout: Option<String>,
    pub payout_micros: Option<i64>,
    pub billable: Option<i64>,
    pub accepted: i64,
    pub duration_secs: Option<i64>,
    pub fallback: Option<String>,
    pub destination: Option<String>,
    pub recording_url: Option<String>,
    pub pinged: i64,
    pub bids: i64,
    pub events: i64,
    pub record: String,
}

/// The `calls` columns written by [`CallRow`], in order.
pub(crate) const CALL_COLUMNS: [&str; 28] = [
    "call_id",
    "received_ns",
    "day",
    "status",
    "caller",
    "dialed",
    "campaign",
    "source",
    "zip",
    "service",
    "buyer",
    "currency",
    "price",
    "price_micros",
    "revenue",
    "revenue_micros",
    "payout",
    "payout_micros",
    "billable",
    "accepted",
    "duration_secs",
    "fallback",
    "destination",
    "recording_url",
    "pinged",
    "bids",
    "events",
    "record",
];

/// One column value of a [`CallRow`], owned, for either backend to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlValue {
    /// An integer column (`BIGINT` / `INTEGER`), possibly NULL.
    Int(Option<i64>),
    /// A text column, possibly NULL.
    Text(Option<String>),
}

/// `INSERT INTO calls (…) VALUES (…), … ON CONFLICT (call_id) DO UPDATE SET …` over
/// [`CALL_COLUMNS`] for `rows` rows (at least one), with the dialect's placeholders.
pub(crate) fn upsert_sql(dialect: Dialect, rows: usize) -> String {
    let cols = CALL_COLUMNS.join(", ");
    let width = CALL_COLUMNS.len();
    let values: Vec<String> = (0..rows.max(1))
        .map(|r| {
            let ph: Vec<String> = (1..=width)
                .map(|i| dialect.placeholder(r * width + i))
                .collect();
            format!("({})", ph.join(", "))
        })
        .collect();
    let set: Vec<String> = CALL_COLUMNS[1..]
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    format!(
        "INSERT INTO calls ({cols}) VALUES {} ON CONFLICT (call_id) DO UPDATE SET {}",
        values.join(", "),
        set.join(", ")
    )
}

/// Nanoseconds per day.
pub(crate) const NS_PER_DAY: i64 = 86_400 * 1_000_000_000;

impl CallRow {
    /// The summary row of a record.
    pub(crate) fn from_record(r: &CallRecord) -> Result<CallRow> {
        let received_ns = to_ns("received_at", r.received_at)?;
        let currency = r
            .price
            .or(r.revenue)
            .or(r.payout)
            .map(|m| m.currency.as_str().to_string());
        let record = serde_json::to_string(r)
            .map_err(|e| StoreError::corrupt("encode record", e.to_string()))?;
        Ok(CallRow {
            call_id: r.call_id.as_str().to_string(),
            received_ns,
            day: received_ns.div_euclid(NS_PER_DAY),
            status: r.status.as_str(),
            caller: r.caller.as_ref().map(|p| p.as_str().to_string()),
            dialed: r.dialed.as_ref().map(|p| p.as_str().to_string()),
            campaign: r.campaign.as_ref().map(|c| c.as_str().to_string()),
            source: r.source.as_ref().map(|s| s.as_str().to_string()),
            zip: r.zip.map(|z| z.as_str().to_string()),
            service: r.service.as_ref().map(|s| s.as_str().to_string()),
            buyer: r.buyer.as_ref().map(|b| b.as_str().to_string()),
            currency,
            price: r.price.map(|m| m.amount.to_string()),
            price_micros: r.price.map(|m| to_micros("price", m.amount)).transpose()?,
            revenue: r.revenue.map(|m| m.amount.to_string()),
            revenue_micros: r
                .revenue
                .map(|m| to_micros("revenue", m.amount))
                .transpose()?,
            payout: r.payout.map(|m| m.amount.to_string()),
            payout_micros: r
                .payout
                .map(|m| to_micros("payout", m.amount))
                .transpose()?,
            billable: r.billable.map(i64::from),
            accepted: i64::from(r.destination.is_some()),
            duration_secs: r
                .duration_secs
                .map(|d| i64::try_from(d).unwrap_or(i64::MAX)),
            fallback: r.fallback.clone(),
            destination: r.destination.as_ref().map(|d| d.to_string()),
            recording_url: r.recording_url.clone(),
            pinged: i64::from(r.pinged),
            bids: i64::from(r.bids),
            events: i64::from(r.events),
            record,
        })
    }
}

impl CallRow {
    /// The row's values in [`CALL_COLUMNS`] order: the one place the column list is
    /// spelled out for binding (both backends, appends, imports and copies).
    /// Whether column `i` of [`CALL_COLUMNS`] is an integer column (as
    /// [`into_values`](Self::into_values) binds it).
    pub(crate) fn is_int_column(i: usize) -> bool {
        matches!(i, 1 | 2 | 13 | 15 | 17 | 18 | 19 | 20 | 24 | 25 | 26)
    }

    pub(crate) fn into_values(self) -> [SqlValue; 28] {
        use SqlValue::{Int, Text};
        [
            Text(Some(self.call_id)),
            Int(Some(self.received_ns)),
            Int(Some(self.day)),
            Text(Some(self.status.to_string())),
            Text(self.caller),
            Text(self.dialed),
            Text(self.campaign),
            Text(self.source),
            Text(self.zip),
            Text(self.service),
            Text(self.buyer),
            Text(self.currency),
            Text(self.price),
            Int(self.price_micros),
            Text(self.revenue),
            Int(self.revenue_micros),
            Text(self.payout),
            Int(self.payout_micros),
            Int(self.billable),
            Int(Some(self.accepted)),
            Int(self.duration_secs),
            Text(self.fallback),
            Text(self.destination),
            Text(self.recording_url),
            Int(Some(self.pinged)),
            Int(Some(self.bids)),
            Int(Some(self.events)),
            Text(Some(self.record)),
        ]
    }
}

/// Parses a stored record.
pub(crate) fn parse_record(operation: &'static str, json: &str) -> Result<CallRecord> {
    serde_json::from_str(json).map_err(|e| StoreError::corrupt(operation, e))
}

#[cfg(test)]
mod tests {
    /// `is_int_column` agrees with the variants `into_values` binds.
    #[test]
    fn int_columns_are_the_integer_values() {
        let r = callbid_core::state::CallRecord::new(
            callbid_core::CallId::new("CA1").expect("id"),
            chrono::Utc::now(),
        );
        let values = CallRow::from_record(&r).expect("row").into_values();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                CallRow::is_int_column(i),
                matches!(v, SqlValue::Int(_)),
                "column {}",
                CALL_COLUMNS[i]
            );
        }
    }

    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn nanos_round_trip_and_range() {
        let t = Utc.timestamp_opt(1_763_737_200, 123_456_789).unwrap();
        assert_eq!(from_ns(to_ns("at", t).unwrap()), t);
        let far = Utc.with_ymd_and_hms(2300, 1, 1, 0, 0, 0).unwrap();
        let e = to_ns("at", far).unwrap_err().to_string();
        assert!(e.contains("at") && e.contains("2300"), "{e}");
    }

    #[test]
    fn micros_are_exact() {
        assert_eq!(to_micros("p", dec!(42.50)).unwrap(), 42_500_000);
        assert_eq!(to_micros("p", dec!(0.0000005)).unwrap(), 1);
        assert_eq!(from_micros(42_500_000), dec!(42.5));
        assert_eq!(from_micros(-1), dec!(-0.000001));
        assert!(bound_to_micros("min_price", dec!(1.1234567)).is_err());
        assert_eq!(
            bound_to_micros("min_price", dec!(1.1000000)).unwrap(),
            1_100_000
        );
        assert!(to_micros("p", Decimal::MAX).is_err());
    }

    #[test]
    fn upsert_sql_covers_every_column_in_order() {
        for (d, first, last) in [
            (Dialect::Sqlite, "?1", "?28"),
            (Dialect::Postgres, "$1", "$28"),
        ] {
            let s = upsert_sql(d, 1);
            assert!(
                s.starts_with("INSERT INTO calls (call_id, received_ns, day, status,"),
                "{s}"
            );
            assert!(s.contains(&format!("VALUES ({first}, ")), "{s}");
            assert!(
                s.contains(&format!(", {last}) ON CONFLICT (call_id)")),
                "{s}"
            );
            assert!(s.ends_with("record = excluded.record"), "{s}");
            assert!(!s.contains("call_id = excluded"), "{s}");
        }
        let two = upsert_sql(Dialect::Postgres, 2);
        assert!(two.contains(", $28), ($29, $30, "), "{two}");
        assert!(two.contains(", $56) ON CONFLICT"), "{two}");
    }

    #[test]
    fn values_follow_the_column_order() {
        let mut r = CallRecord::new(
            callbid_core::CallId::new("CA1").unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 1).unwrap(),
        );
        r.recording_url = Some("https://rec".into());
        let row = CallRow::from_record(&r).unwrap();
        let v = row.clone().into_values();
        let at = |name: &str| CALL_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(v[at("call_id")], SqlValue::Text(Some("CA1".into())));
        assert_eq!(v[at("received_ns")], SqlValue::Int(Some(row.received_ns)));
        assert_eq!(v[at("day")], SqlValue::Int(Some(row.day)));
        assert_eq!(v[at("status")], SqlValue::Text(Some(row.status.into())));
        assert_eq!(
            v[at("recording_url")],
            SqlValue::Text(Some("https://rec".into()))
        );
        assert_eq!(v[at("events")], SqlValue::Int(Some(row.events)));
        assert_eq!(v[at("record")], SqlValue::Text(Some(row.record)));
        assert_eq!(v[at("price_micros")], SqlValue::Int(None));
    }

    #[test]
    fn day_of_negative_instants_floors() {
        assert_eq!((-1i64).div_euclid(NS_PER_DAY), -1);
    }
}
