//! [`NumberPoolStore`] on SQLite. Every write runs in one `BEGIN IMMEDIATE` transaction
//! on the writer connection: SQLite admits one writer per file at a time, so two
//! processes (or two handles) never lease one number to two live sessions. Expiry is
//! evaluated against the `now` each call passes; nothing depends on a background job.

use std::time::Duration;

use async_trait::async_trait;
use callbid_core::pool::{
    peak_concurrency, Attribution, ExhaustionPolicy, Grant, InboundCall, Lease, LeaseId,
    LeaseOutcome, LeaseRequest, LockKey, NumberPool, NumberPoolStore, NumberState, NumberStatus,
    PoolHealth, PoolId, PoolNumber, RecordedCall, RenewOutcome, Via,
};
use callbid_core::{PhoneNumber, StateError, ValidationError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::SqliteStore;
use crate::codec::{from_ns, to_ns};
use crate::error::{Result, StoreError};

fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

fn json<T: serde::Serialize>(op: &'static str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::corrupt(op, e))
}

fn unjson<T: serde::de::DeserializeOwned>(op: &'static str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::corrupt(op, e))
}

fn settings(tx: &Connection, op: &'static str, pool: &PoolId) -> Result<Option<NumberPool>> {
    let s: Option<String> = tx
        .query_row(
            "SELECT settings FROM pool_pools WHERE pool_id = ?1",
            [pool.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    s.map(|s| unjson(op, &s)).transpose()
}

fn lease_row(op: &'static str, body: &str, expires_at: i64) -> Result<Lease> {
    let mut l: Lease = unjson(op, body)?;
    l.expires_at = from_ns(expires_at);
    Ok(l)
}

fn load_lease(tx: &Connection, op: &'static str, id: &str) -> Result<Option<Lease>> {
    let row: Option<(String, i64)> = tx
        .query_row(
            "SELECT body, expires_at FROM pool_leases WHERE lease_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    row.map(|(b, e)| lease_row(op, &b, e)).transpose()
}

/// Whether an exclusive lease still holds its number's row.
fn owns(tx: &Connection, op: &'static str, l: &Lease) -> Result<bool> {
    if !l.exclusive {
        return Ok(true);
    }
    let holder: Option<Option<String>> = tx
        .query_row(
            "SELECT lease_id FROM pool_numbers WHERE pool_id = ?1 AND number = ?2",
            params![l.pool.as_str(), l.number.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    Ok(holder.flatten().as_deref() == Some(l.id.as_str()))
}

fn extend(tx: &Connection, op: &'static str, p: &NumberPool, l: &Lease, now: i64) -> Result<Lease> {
    let new_end = to_ns("expires_at", l.expires_at)?.max(now.saturating_add(ns(p.lease_length)));
    tx.execute(
        "UPDATE pool_leases SET expires_at = ?2 WHERE lease_id = ?1",
        params![l.id.as_str(), new_end],
    )
    .map_err(StoreError::sqlite(op))?;
    tx.execute(
        "UPDATE pool_numbers SET
           leased_until = CASE WHEN lease_id = ?3 THEN MAX(COALESCE(leased_until, 0), ?4) ELSE leased_until END,
           last_active = MAX(last_active, ?4)
         WHERE pool_id = ?1 AND number = ?2",
        params![p.id.as_str(), l.number.as_str(), l.id.as_str(), new_end],
    )
    .map_err(StoreError::sqlite(op))?;
    let mut l = l.clone();
    l.expires_at = from_ns(new_end);
    Ok(l)
}

fn live_for_key(
    tx: &Connection,
    op: &'static str,
    pool: &PoolId,
    key: &str,
    now: i64,
) -> Result<Option<Lease>> {
    let mut st = tx
        .prepare_cached(
            "SELECT body, expires_at FROM pool_leases
             WHERE pool_id = ?1 AND lease_key = ?2 AND expires_at > ?3 AND created_at <= ?3
             ORDER BY exclusive DESC, created_at DESC, lease_id DESC",
        )
        .map_err(StoreError::sqlite(op))?;
    let rows: Vec<(String, i64)> = st
        .query_map(params![pool.as_str(), key, now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .and_then(|m| m.collect())
        .map_err(StoreError::sqlite(op))?;
    for (b, e) in rows {
        let l = lease_row(op, &b, e)?;
        if owns(tx, op, &l)? {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

fn grant(
    tx: &Connection,
    op: &'static str,
    p: &NumberPool,
    req: &LeaseRequest,
    key: &str,
    number: &str,
    grant: Grant,
) -> Result<LeaseOutcome> {
    let now = to_ns("now", req.now)?;
    let end = now.saturating_add(ns(p.lease_length));
    let info: Option<(String, Option<i64>)> = tx
        .query_row(
            "SELECT number, leased_until FROM pool_numbers WHERE pool_id = ?1 AND number = ?2",
            params![p.id.as_str(), number],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    let Some((num, leased_until)) = info else {
        return Ok(LeaseOutcome::Exhausted);
    };
    let exclusive = leased_until.is_none_or(|u| u <= now);
    let lease = Lease {
        id: req.lease_id.clone(),
        pool: p.id.clone(),
        number: PhoneNumber::parse(&num).map_err(|e| StoreError::corrupt(op, e))?,
        visitor: req.visitor.clone(),
        listing: req.listing.clone(),
        context: req.context.clone(),
        created_at: req.now,
        expires_at: from_ns(end),
        exclusive,
    };
    tx.execute(
        "INSERT INTO pool_leases (lease_id, pool_id, lease_key, visitor, number, exclusive, created_at, expires_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![lease.id.as_str(), p.id.as_str(), key, lease.visitor.as_str(), num, exclusive, now, end, json(op, &lease)?],
    )
    .map_err(StoreError::sqlite(op))?;
    tx.execute(
        "UPDATE pool_numbers SET
           leased_until = CASE WHEN ?3 THEN ?4 ELSE leased_until END,
           lease_id = CASE WHEN ?3 THEN ?5 ELSE lease_id END,
           last_active = MAX(last_active, ?4)
         WHERE pool_id = ?1 AND number = ?2",
        params![p.id.as_str(), num, exclusive, end, lease.id.as_str()],
    )
    .map_err(StoreError::sqlite(op))?;
    log_lease(tx, op, &p.id, now, true)?;
    Ok(LeaseOutcome::Leased { lease, grant })
}

fn log_lease(
    tx: &Connection,
    op: &'static str,
    pool: &PoolId,
    at: i64,
    granted: bool,
) -> Result<()> {
    tx.execute(
        "INSERT INTO pool_lease_log (pool_id, at, granted) VALUES (?1, ?2, ?3)",
        params![pool.as_str(), at, granted],
    )
    .map_err(StoreError::sqlite(op))?;
    Ok(())
}

fn lease_tx(tx: &Transaction<'_>, req: &LeaseRequest) -> Result<LeaseOutcome> {
    const OP: &str = "pool lease";
    let Some(p) = settings(tx, OP, &req.pool)? else {
        return Ok(LeaseOutcome::UnknownPool);
    };
    let now = to_ns("now", req.now)?;
    let key = p.lease_key(&req.visitor, &req.listing);
    if let Some(l) = live_for_key(tx, OP, &p.id, &key, now)? {
        let lease = extend(tx, OP, &p, &l, now)?;
        return Ok(LeaseOutcome::Leased {
            lease,
            grant: Grant::Existing,
        });
    }
    let live: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM pool_leases WHERE pool_id = ?1 AND visitor = ?2 AND expires_at > ?3 AND created_at <= ?3
               AND (exclusive = 0 OR lease_id IN (SELECT lease_id FROM pool_numbers WHERE pool_id = ?1 AND lease_id IS NOT NULL))",
            params![p.id.as_str(), req.visitor.as_str(), now],
            |r| r.get(0),
        )
        .map_err(StoreError::sqlite(OP))?;
    if live >= i64::from(p.max_leases_per_visitor) {
        return Ok(LeaseOutcome::VisitorCap {
            limit: p.max_leases_per_visitor,
        });
    }
    let locked: Option<String> = tx
        .query_row(
            "SELECT k.number FROM pool_locks k JOIN pool_numbers n ON n.pool_id = k.pool_id AND n.number = k.number
             WHERE k.pool_id = ?1 AND k.lease_key = ?2 AND k.locked_until > ?3
             ORDER BY k.locked_from DESC LIMIT 1",
            params![p.id.as_str(), key, now],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some(n) = locked {
        return grant(tx, OP, &p, req, &key, &n, Grant::Locked);
    }
    let free: Option<String> = tx
        .query_row(
            "SELECT n.number FROM pool_numbers n
             WHERE n.pool_id = ?1 AND COALESCE(n.leased_until, 0) <= ?2 AND COALESCE(n.locked_until, 0) <= ?2
               AND NOT EXISTS (SELECT 1 FROM pool_locks k WHERE k.pool_id = n.pool_id AND k.number = n.number
                               AND k.visitor = ?3 AND k.locked_until > ?2)
             ORDER BY COALESCE(n.leased_until, -9223372036854775808), n.number LIMIT 1",
            params![p.id.as_str(), now, req.visitor.as_str()],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some(n) = free {
        return grant(tx, OP, &p, req, &key, &n, Grant::Fresh);
    }
    if p.exhaustion == ExhaustionPolicy::ReclaimOldest {
        if let Some((n, from)) = reclaim(tx, OP, &p.id, now)? {
            return grant(tx, OP, &p, req, &key, &n, Grant::Reclaimed { from });
        }
    }
    log_lease(tx, OP, &p.id, now, false)?;
    Ok(match p.overflow_number {
        Some(number) => LeaseOutcome::Overflow { number },
        None => LeaseOutcome::Exhausted,
    })
}

fn reclaim(
    tx: &Connection,
    op: &'static str,
    pool: &PoolId,
    now: i64,
) -> Result<Option<(String, LeaseId)>> {
    let n: Option<String> = tx
        .query_row(
            "SELECT number FROM pool_numbers WHERE pool_id = ?1 AND COALESCE(leased_until, 0) <= ?2 AND locked_until > ?2
             ORDER BY COALESCE(leased_until, -9223372036854775808), number LIMIT 1",
            params![pool.as_str(), now],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    let Some(n) = n else { return Ok(None) };
    let from: Option<String> = tx
        .query_row(
            "SELECT lease_id FROM pool_locks WHERE pool_id = ?1 AND number = ?2 ORDER BY caller DESC LIMIT 1",
            params![pool.as_str(), n],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(op))?;
    let Some(from) = from else { return Ok(None) };
    tx.execute(
        "DELETE FROM pool_locks WHERE pool_id = ?1 AND number = ?2",
        params![pool.as_str(), n],
    )
    .map_err(StoreError::sqlite(op))?;
    tx.execute(
        "UPDATE pool_numbers SET locked_until = NULL WHERE pool_id = ?1 AND number = ?2",
        params![pool.as_str(), n],
    )
    .map_err(StoreError::sqlite(op))?;
    Ok(Some((
        n,
        LeaseId::new(from).map_err(|e| StoreError::corrupt(op, e))?,
    )))
}

fn attribute_tx(tx: &Connection, call: &InboundCall) -> Result<Attribution> {
    const OP: &str = "pool attribute";
    let unknown = || Attribution::UnknownNumber {
        number: call.dialed.clone(),
    };
    let Some(p) = settings(tx, OP, &call.pool)? else {
        return Ok(unknown());
    };
    if p.overflow_number.as_ref() == Some(&call.dialed) {
        return Ok(Attribution::Overflow {
            number: call.dialed.clone(),
        });
    }
    let (pool, num) = (p.id.as_str(), call.dialed.as_str());
    let present: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM pool_numbers WHERE pool_id = ?1 AND number = ?2)",
            params![pool, num],
            |r| r.get(0),
        )
        .map_err(StoreError::sqlite(OP))?;
    if !present {
        return Ok(unknown());
    }
    let at = to_ns("at", call.at)?;
    let caller = call.caller.as_ref().map(|c| c.as_str()).unwrap_or("");
    let lock: Option<(String, String)> = tx
        .query_row(
            "SELECT lease_id, lease_key FROM pool_locks WHERE pool_id = ?1 AND number = ?2 AND (caller = ?3 OR caller = '')
               AND locked_from <= ?4 AND locked_until > ?4 ORDER BY caller DESC LIMIT 1",
            params![pool, num, caller, at],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some((lease_id, key)) = lock {
        let same: Option<(String, i64)> = tx
            .query_row(
                "SELECT body, expires_at FROM pool_leases WHERE pool_id = ?1 AND number = ?2 AND lease_key = ?3
                   AND created_at <= ?4 AND expires_at > ?4 ORDER BY created_at DESC, lease_id DESC LIMIT 1",
                params![pool, num, key, at],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite(OP))?;
        if let Some((b, e)) = same {
            return Ok(Attribution::Attributed {
                lease: lease_row(OP, &b, e)?,
                via: Via::Lease,
            });
        }
        if let Some(lease) = load_lease(tx, OP, &lease_id)? {
            return Ok(Attribution::Attributed {
                lease,
                via: Via::Lock,
            });
        }
    }
    let live: Option<(String, i64)> = tx
        .query_row(
            "SELECT body, expires_at FROM pool_leases WHERE pool_id = ?1 AND number = ?2 AND created_at <= ?3 AND expires_at > ?3
             ORDER BY exclusive DESC, created_at DESC, lease_id DESC LIMIT 1",
            params![pool, num, at],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some((b, e)) = live {
        return Ok(Attribution::Attributed {
            lease: lease_row(OP, &b, e)?,
            via: Via::Lease,
        });
    }
    let last: Option<(String, i64)> = tx
        .query_row(
            "SELECT body, expires_at FROM pool_leases WHERE pool_id = ?1 AND number = ?2 AND created_at <= ?3
             ORDER BY created_at DESC, lease_id DESC LIMIT 1",
            params![pool, num, at],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    Ok(Attribution::ExpiredLease {
        last: last.map(|(b, e)| lease_row(OP, &b, e)).transpose()?,
    })
}

fn record_call_tx(tx: &Transaction<'_>, call: &InboundCall) -> Result<Attribution> {
    const OP: &str = "pool record_call";
    let seen: Option<String> = tx
        .query_row(
            "SELECT body FROM pool_calls WHERE pool_id = ?1 AND call_sid = ?2",
            params![call.pool.as_str(), call.call_sid],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some(b) = seen {
        return unjson(OP, &b);
    }
    let a = attribute_tx(tx, call)?;
    let at = to_ns("at", call.at)?;
    if let (Attribution::Attributed { lease, .. }, Some(p)) = (&a, settings(tx, OP, &call.pool)?) {
        let until = at.saturating_add(ns(p.lock_period));
        let caller = match (p.lock_key, &call.caller) {
            (LockKey::NumberAndCaller, Some(c)) => c.as_str().to_string(),
            _ => String::new(),
        };
        let key = p.lease_key(&lease.visitor, &lease.listing);
        tx.execute(
            "INSERT INTO pool_locks (pool_id, number, caller, lease_id, lease_key, visitor, locked_from, locked_until)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (pool_id, number, caller) DO UPDATE SET lease_id = excluded.lease_id,
               lease_key = excluded.lease_key, visitor = excluded.visitor, locked_from = excluded.locked_from,
               locked_until = MAX(locked_until, excluded.locked_until)",
            params![p.id.as_str(), lease.number.as_str(), caller, lease.id.as_str(), key, lease.visitor.as_str(), at, until],
        )
        .map_err(StoreError::sqlite(OP))?;
        tx.execute(
            "UPDATE pool_numbers SET
               locked_until = CASE WHEN ?3 THEN MAX(COALESCE(locked_until, 0), ?4) ELSE locked_until END,
               last_active = MAX(last_active, ?5)
             WHERE pool_id = ?1 AND number = ?2",
            params![p.id.as_str(), lease.number.as_str(), caller.is_empty(), until, at],
        )
        .map_err(StoreError::sqlite(OP))?;
    }
    tx.execute(
        "INSERT INTO pool_calls (pool_id, call_sid, at, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            call.pool.as_str(),
            call.call_sid,
            at,
            a.kind(),
            json(OP, &a)?
        ],
    )
    .map_err(StoreError::sqlite(OP))?;
    Ok(a)
}

fn state_of(leased_until: Option<i64>, locked_until: Option<i64>, now: i64) -> NumberState {
    if leased_until.is_some_and(|u| u > now) {
        NumberState::Leased
    } else if locked_until.is_some_and(|u| u > now) {
        NumberState::Locked
    } else {
        NumberState::Free
    }
}

/// `info, added_at, leased_until, locked_until, last_active` of `pool_numbers`.
type NumberRow = (String, i64, Option<i64>, Option<i64>, i64);

fn numbers_q(c: &Connection, pool: &PoolId, now: i64) -> Result<Vec<NumberStatus>> {
    const OP: &str = "pool numbers";
    let mut st = c
        .prepare_cached(
            "SELECT info, added_at, leased_until, locked_until, last_active FROM pool_numbers WHERE pool_id = ?1 ORDER BY number",
        )
        .map_err(StoreError::sqlite(OP))?;
    let rows: Vec<NumberRow> = st
        .query_map([pool.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .and_then(|m| m.collect())
        .map_err(StoreError::sqlite(OP))?;
    rows.into_iter()
        .map(|(info, added, lu, ku, la)| {
            let number: PoolNumber = unjson(OP, &info)?;
            Ok(status(
                number,
                state_of(lu, ku, now),
                from_ns(added),
                from_ns(la),
            ))
        })
        .collect()
}

fn status(
    number: PoolNumber,
    state: NumberState,
    added_at: DateTime<Utc>,
    last_active: DateTime<Utc>,
) -> NumberStatus {
    NumberStatus {
        number,
        state,
        added_at,
        last_active,
    }
}

fn add_tx(tx: &Connection, p: &NumberPool, numbers: &[PoolNumber], now: i64) -> Result<u64> {
    const OP: &str = "pool add_numbers";
    let mut added = 0;
    for n in numbers {
        if p.overflow_number.as_ref() == Some(&n.number) {
            continue;
        }
        added += tx
            .execute(
                "INSERT INTO pool_numbers (pool_id, number, info, added_at, last_active) VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (pool_id, number) DO NOTHING",
                params![p.id.as_str(), n.number.as_str(), json(OP, n)?, now],
            )
            .map_err(StoreError::sqlite(OP))? as u64;
    }
    Ok(added)
}

fn health_q(
    c: &Connection,
    pool: &PoolId,
    since: i64,
    now: i64,
    idle_before: i64,
) -> Result<PoolHealth> {
    const OP: &str = "pool health";
    let mut h = PoolHealth::default();
    for s in numbers_q(c, pool, now)? {
        h.numbers += 1;
        match s.state {
            NumberState::Leased => h.leased += 1,
            NumberState::Locked => h.locked += 1,
            _ => {
                h.free += 1;
                if to_ns("last_active", s.last_active)? < idle_before {
                    h.idle += 1;
                }
            }
        }
    }
    let mut st = c
        .prepare_cached(
            "SELECT created_at, expires_at FROM pool_leases WHERE pool_id = ?1 AND exclusive = 1
               AND created_at <= ?3 AND expires_at > ?2",
        )
        .map_err(StoreError::sqlite(OP))?;
    let iv: Vec<(i64, i64)> = st
        .query_map(params![pool.as_str(), since, now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .and_then(|m| m.collect())
        .map_err(StoreError::sqlite(OP))?;
    h.peak_leased = peak_concurrency(
        iv.into_iter()
            .map(|(s, e)| (from_ns(s.max(since)), from_ns(e.min(now)))),
    );
    let (g, o): (i64, i64) = c
        .query_row(
            "SELECT COALESCE(SUM(granted), 0), COALESCE(SUM(1 - granted), 0) FROM pool_lease_log WHERE pool_id = ?1 AND at >= ?2 AND at <= ?3",
            params![pool.as_str(), since, now],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(StoreError::sqlite(OP))?;
    (h.leases_granted, h.lease_overflows) = (g as u64, o as u64);
    let mut st = c
        .prepare_cached("SELECT kind, COUNT(*) FROM pool_calls WHERE pool_id = ?1 AND at >= ?2 AND at <= ?3 GROUP BY kind")
        .map_err(StoreError::sqlite(OP))?;
    let kinds: Vec<(String, i64)> = st
        .query_map(params![pool.as_str(), since, now], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .and_then(|m| m.collect())
        .map_err(StoreError::sqlite(OP))?;
    h.calls = kinds.into_iter().map(|(k, n)| (k, n as u64)).collect();
    Ok(h)
}

fn purge_tx(tx: &Connection, pool: &PoolId, before: i64) -> Result<u64> {
    const OP: &str = "pool purge";
    let p = pool.as_str();
    let run = |sql: &str| {
        tx.execute(sql, params![p, before])
            .map_err(StoreError::sqlite(OP))
    };
    run("DELETE FROM pool_locks WHERE pool_id = ?1 AND locked_until < ?2")?;
    let n = run(
        "DELETE FROM pool_leases WHERE pool_id = ?1 AND expires_at < ?2
           AND lease_id NOT IN (SELECT lease_id FROM pool_locks WHERE pool_id = ?1)",
    )?;
    run("DELETE FROM pool_calls WHERE pool_id = ?1 AND at < ?2")?;
    run("DELETE FROM pool_lease_log WHERE pool_id = ?1 AND at < ?2")?;
    Ok(n as u64)
}

fn renew_tx(tx: &Connection, pool: &PoolId, id: &LeaseId, now: i64) -> Result<RenewOutcome> {
    const OP: &str = "pool renew";
    let Some(p) = settings(tx, OP, pool)? else {
        return Ok(RenewOutcome::Unknown);
    };
    let Some(l) = load_lease(tx, OP, id.as_str())?.filter(|l| &l.pool == pool) else {
        return Ok(RenewOutcome::Unknown);
    };
    if to_ns("expires_at", l.expires_at)? <= now || !owns(tx, OP, &l)? {
        return Ok(RenewOutcome::Ended { at: l.expires_at });
    }
    let l = extend(tx, OP, &p, &l, now)?;
    Ok(RenewOutcome::Renewed {
        expires_at: l.expires_at,
    })
}

fn release_tx(tx: &Connection, pool: &PoolId, id: &LeaseId, now: i64) -> Result<bool> {
    const OP: &str = "pool release";
    let Some(l) = load_lease(tx, OP, id.as_str())?.filter(|l| &l.pool == pool) else {
        return Ok(false);
    };
    let live =
        to_ns("created_at", l.created_at)? <= now && now < to_ns("expires_at", l.expires_at)?;
    if !live || !owns(tx, OP, &l)? {
        return Ok(false);
    }
    tx.execute(
        "UPDATE pool_leases SET expires_at = ?2 WHERE lease_id = ?1",
        params![id.as_str(), now],
    )
    .map_err(StoreError::sqlite(OP))?;
    tx.execute(
        "UPDATE pool_numbers SET leased_until = ?3 WHERE pool_id = ?1 AND number = ?2 AND lease_id = ?4",
        params![pool.as_str(), l.number.as_str(), now, id.as_str()],
    )
    .map_err(StoreError::sqlite(OP))?;
    Ok(true)
}

fn retire_tx(tx: &Connection, pool: &PoolId, number: &PhoneNumber, now: i64) -> Result<bool> {
    const OP: &str = "pool retire_number";
    let n = tx
        .execute(
            "DELETE FROM pool_numbers WHERE pool_id = ?1 AND number = ?2
               AND COALESCE(leased_until, 0) <= ?3 AND COALESCE(locked_until, 0) <= ?3
               AND NOT EXISTS (SELECT 1 FROM pool_locks k WHERE k.pool_id = ?1 AND k.number = ?2 AND k.locked_until > ?3)",
            params![pool.as_str(), number.as_str(), now],
        )
        .map_err(StoreError::sqlite(OP))?;
    Ok(n > 0)
}

impl SqliteStore {
    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer.
    async fn pool_write<T, F>(&self, op: &'static str, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.write(op, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(op))?;
            let out = f(&tx)?;
            tx.commit().map_err(StoreError::sqlite(op))?;
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(op))
    }

    async fn pool_read<T, F>(&self, op: &'static str, f: F) -> Result<T, StateError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.read(op, f).await.map_err(|e| e.into_state(op))
    }
}

fn t(field: &'static str, at: DateTime<Utc>) -> Result<i64, StateError> {
    to_ns(field, at).map_err(|e| e.into_state(field))
}

#[async_trait]
impl NumberPoolStore for SqliteStore {
    async fn put_pool(&self, pool: &NumberPool, now: DateTime<Utc>) -> Result<(), StateError> {
        let now = t("now", now)?;
        let mut settings = pool.clone();
        settings.numbers.clear();
        let body = json("pool put_pool", &settings).map_err(|e| e.into_state("pool put_pool"))?;
        let pool = pool.clone();
        self.pool_write("pool put_pool", move |tx| {
            tx.execute(
                "INSERT INTO pool_pools (pool_id, settings) VALUES (?1, ?2)
                 ON CONFLICT (pool_id) DO UPDATE SET settings = excluded.settings",
                params![pool.id.as_str(), body],
            )
            .map_err(StoreError::sqlite("pool put_pool"))?;
            add_tx(tx, &pool, &pool.numbers, now)?;
            Ok(())
        })
        .await
    }

    async fn pool(&self, pool: &PoolId) -> Result<Option<NumberPool>, StateError> {
        let pool = pool.clone();
        self.pool_read("pool get", move |c| {
            let Some(mut p) = settings(c, "pool get", &pool)? else {
                return Ok(None);
            };
            p.numbers = numbers_q(c, &pool, 0)?
                .into_iter()
                .map(|s| s.number)
                .collect();
            Ok(Some(p))
        })
        .await
    }

    async fn add_numbers(
        &self,
        pool: &PoolId,
        numbers: &[PoolNumber],
        now: DateTime<Utc>,
    ) -> Result<u64, StateError> {
        let now = t("now", now)?;
        let (pool, numbers) = (pool.clone(), numbers.to_vec());
        self.pool_write("pool add_numbers", move |tx| {
            let p = settings(tx, "pool add_numbers", &pool)?.ok_or_else(|| {
                StoreError::Invalid(ValidationError::new("pool", pool.as_str(), "no such pool"))
            })?;
            add_tx(tx, &p, &numbers, now)
        })
        .await
    }

    async fn retire_number(
        &self,
        pool: &PoolId,
        number: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let now = t("now", now)?;
        let (pool, number) = (pool.clone(), number.clone());
        self.pool_write("pool retire_number", move |tx| {
            retire_tx(tx, &pool, &number, now)
        })
        .await
    }

    async fn numbers(
        &self,
        pool: &PoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NumberStatus>, StateError> {
        let now = t("now", now)?;
        let pool = pool.clone();
        self.pool_read("pool numbers", move |c| numbers_q(c, &pool, now))
            .await
    }

    async fn lease(&self, request: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        request.context.validate()?;
        let req = request.clone();
        self.pool_write("pool lease", move |tx| lease_tx(tx, &req))
            .await
    }

    async fn renew(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<RenewOutcome, StateError> {
        let now = t("now", now)?;
        let (pool, lease) = (pool.clone(), lease.clone());
        self.pool_write("pool renew", move |tx| renew_tx(tx, &pool, &lease, now))
            .await
    }

    async fn release(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let now = t("now", now)?;
        let (pool, lease) = (pool.clone(), lease.clone());
        self.pool_write("pool release", move |tx| release_tx(tx, &pool, &lease, now))
            .await
    }

    async fn attribute(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        let call = call.clone();
        self.pool_read("pool attribute", move |c| attribute_tx(c, &call))
            .await
    }

    async fn record_call(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        let call = call.clone();
        self.pool_write("pool record_call", move |tx| record_call_tx(tx, &call))
            .await
    }

    async fn purge(&self, pool: &PoolId, before: DateTime<Utc>) -> Result<u64, StateError> {
        let before = t("before", before)?;
        let pool = pool.clone();
        self.pool_write("pool purge", move |tx| purge_tx(tx, &pool, before))
            .await
    }

    async fn health(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        idle_after: Duration,
    ) -> Result<PoolHealth, StateError> {
        let (since, now_ns) = (t("since", since)?, t("now", now)?);
        let idle_before = now_ns.saturating_sub(ns(idle_after));
        let pool = pool.clone();
        self.pool_read("pool health", move |c| {
            health_q(c, &pool, since, now_ns, idle_before)
        })
        .await
    }
    async fn leases_created(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StateError> {
        const OP: &str = "pool leases_created";
        let (since, until) = (t("since", since)?, t("until", until)?);
        let pool = pool.clone();
        self.pool_read(OP, move |c| {
            let mut st = c
                .prepare(
                    "SELECT body FROM pool_leases WHERE pool_id = ?1 AND created_at >= ?2
                       AND created_at < ?3 ORDER BY created_at, lease_id",
                )
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(params![pool.as_str(), since, until], |r| {
                    r.get::<_, String>(0)
                })
                .map_err(StoreError::sqlite(OP))?;
            rows.map(|r| unjson(OP, &r.map_err(StoreError::sqlite(OP))?))
                .collect()
        })
        .await
    }

    async fn calls_recorded(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RecordedCall>, StateError> {
        const OP: &str = "pool calls_recorded";
        let (since, until) = (t("since", since)?, t("until", until)?);
        let pool = pool.clone();
        self.pool_read(OP, move |c| {
            let mut st = c
                .prepare(
                    "SELECT call_sid, at, body FROM pool_calls WHERE pool_id = ?1 AND at >= ?2
                       AND at < ?3 ORDER BY at, call_sid",
                )
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(params![pool.as_str(), since, until], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .map_err(StoreError::sqlite(OP))?;
            rows.map(|r| {
                let (sid, at, body) = r.map_err(StoreError::sqlite(OP))?;
                Ok(RecordedCall::new(sid, from_ns(at), unjson(OP, &body)?))
            })
            .collect()
        })
        .await
    }
}

impl SqliteStore {
    /// Pairs of exclusive leases of `pool` that overlap in time on one number, counted
    /// in SQL: the invariant "no number is leased to two live sessions" (must be 0).
    pub async fn pool_overlapping_leases(&self, pool: &PoolId) -> Result<i64, StateError> {
        let pool = pool.clone();
        self.pool_read("pool invariant", move |c| {
            c.query_row(
                "SELECT COUNT(*) FROM pool_leases a JOIN pool_leases b
                   ON a.pool_id = b.pool_id AND a.number = b.number AND a.lease_id < b.lease_id
                 WHERE a.pool_id = ?1 AND a.exclusive = 1 AND b.exclusive = 1
                   AND a.created_at < b.expires_at AND b.created_at < a.expires_at",
                [pool.as_str()],
                |r| r.get(0),
            )
            .map_err(StoreError::sqlite("pool invariant"))
        })
        .await
    }
}
