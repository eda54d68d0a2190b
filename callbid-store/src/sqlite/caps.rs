//! Cap counters on SQLite (schema v9).
//!
//! Each counter has one row in `cap_counters` whose `used` is the sum of the amounts of
//! every reservation still stored on it (an exact decimal, as text). A reservation adds
//! its amounts to the rows; releasing or pruning it subtracts them, in the transaction
//! that deletes its rows, so each amount is subtracted exactly once. Expired
//! reservations stop counting at once: usage at `now` is the row's `used` less the
//! amounts of the counter's reservations that expired at or before `now` and are not
//! pruned yet (found through a partial index, and few, since pruning removes them a
//! minute after they expire). Reading usage is two indexed look-ups, whatever the number
//! of reservations on the counter; before v9 it summed all of them.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use rust_decimal::Decimal;

use crate::error::{Result, StoreError};

/// Usage of `key` at `now`: what is stored on it, less what expired.
pub(super) fn usage_in(c: &Connection, key: &str, now: i64) -> Result<Decimal> {
    const OP: &str = "usage";
    let stored = stored(c, key)?;
    let expired = sum_amounts(
        c,
        "SELECT amount FROM cap_increments \
         WHERE counter = ?1 AND expires_ns IS NOT NULL AND expires_ns <= ?2",
        params![key, now],
        key,
    )?;
    stored
        .checked_sub(expired)
        .map(|d| d.normalize())
        .ok_or_else(|| StoreError::corrupt(OP, format!("counter {key} underflows")))
}

/// The counter row's `used` (0 for a counter never reserved on).
fn stored(c: &Connection, key: &str) -> Result<Decimal> {
    const OP: &str = "usage";
    let text = c
        .prepare_cached("SELECT used FROM cap_counters WHERE counter = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get::<_, String>(0)).optional())
        .map_err(StoreError::sqlite(OP))?;
    text.map_or(Ok(Decimal::ZERO), |t| parse(OP, &t))
}

/// Adds `delta` (negative to subtract) to the counter row.
fn add(tx: &Transaction<'_>, key: &str, delta: Decimal) -> Result<()> {
    const OP: &str = "cap_counter";
    let used = stored(tx, key)?
        .checked_add(delta)
        .ok_or_else(|| StoreError::corrupt(OP, format!("counter {key} overflows")))?;
    tx.prepare_cached(
        "INSERT INTO cap_counters (counter, used) VALUES (?1, ?2) \
         ON CONFLICT (counter) DO UPDATE SET used = excluded.used",
    )
    .and_then(|mut s| s.execute(params![key, used.normalize().to_string()]))
    .map_err(StoreError::sqlite(OP))?;
    Ok(())
}

/// Stores a reservation and adds its increments to their counters.
pub(super) fn insert(
    tx: &Transaction<'_>,
    id: &str,
    expires: Option<i64>,
    incs: &[(String, (Decimal, Decimal))],
) -> Result<()> {
    const OP: &str = "reserve";
    tx.prepare_cached("INSERT INTO cap_reservations (id, expires_ns) VALUES (?1, ?2)")
        .and_then(|mut s| s.execute(params![id, expires]))
        .map_err(StoreError::sqlite(OP))?;
    let mut st = tx
        .prepare_cached(
            "INSERT INTO cap_increments (reservation_id, counter, amount, expires_ns) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .map_err(StoreError::sqlite(OP))?;
    for (key, (amount, _)) in incs {
        st.execute(params![id, key, amount.to_string(), expires])
            .map_err(StoreError::sqlite(OP))?;
        add(tx, key, *amount)?;
    }
    Ok(())
}

/// Deletes a reservation and subtracts its increments from their counters. Returns
/// whether it was stored.
pub(super) fn delete(tx: &Transaction<'_>, id: &str) -> Result<bool> {
    const OP: &str = "release";
    let incs = tx
        .prepare_cached("SELECT counter, amount FROM cap_increments WHERE reservation_id = ?1")
        .and_then(|mut s| {
            s.query_map([id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sqlite(OP))?;
    for (key, amount) in &incs {
        let amount = parse(OP, amount)?;
        add(tx, key, -amount)?;
    }
    tx.prepare_cached("DELETE FROM cap_increments WHERE reservation_id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(StoreError::sqlite(OP))?;
    let n = tx
        .prepare_cached("DELETE FROM cap_reservations WHERE id = ?1")
        .and_then(|mut s| s.execute([id]))
        .map_err(StoreError::sqlite(OP))?;
    Ok(n > 0)
}

/// Migration v9's data step: one row per counter, `used` the exact sum of its stored
/// increments (SQL's `SUM` over text would go through floating point).
pub(super) fn seed_counters(tx: &Transaction<'_>) -> Result<()> {
    const OP: &str = "migrate";
    let rows = tx
        .prepare("SELECT counter, amount FROM cap_increments ORDER BY counter")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sqlite(OP))?;
    let mut sums: std::collections::BTreeMap<String, Decimal> = Default::default();
    for (key, amount) in rows {
        let amount = parse(OP, &amount)?;
        let sum = sums.entry(key).or_default();
        *sum = sum
            .checked_add(amount)
            .ok_or_else(|| StoreError::corrupt(OP, "a cap counter overflows"))?;
    }
    for (key, used) in sums {
        tx.execute(
            "INSERT INTO cap_counters (counter, used) VALUES (?1, ?2)",
            params![key, used.normalize().to_string()],
        )
        .map_err(StoreError::sqlite(OP))?;
    }
    Ok(())
}

fn sum_amounts(
    c: &Connection,
    sql: &str,
    args: impl rusqlite::Params,
    key: &str,
) -> Result<Decimal> {
    const OP: &str = "usage";
    let mut st = c.prepare_cached(sql).map_err(StoreError::sqlite(OP))?;
    let rows = st
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(StoreError::sqlite(OP))?;
    let mut total = Decimal::ZERO;
    for r in rows {
        let d = parse(OP, &r.map_err(StoreError::sqlite(OP))?)?;
        total = total
            .checked_add(d)
            .ok_or_else(|| StoreError::corrupt(OP, format!("counter {key} overflows")))?;
    }
    Ok(total)
}

fn parse(op: &'static str, s: &str) -> Result<Decimal> {
    Decimal::from_str_exact(s)
        .map_err(|e| StoreError::corrupt(op, format!("cap amount {s:?}: {e}")))
}
