//! [`NumberPoolStore`] on PostgreSQL, for several processes sharing one database.
//!
//! Atomicity: a lease request takes transaction-scoped advisory locks on its key and its
//! visitor (sorted, so two requests never deadlock), which serializes "the same key gets
//! the same lease" and the per-visitor cap; it then claims a free number with
//! `SELECT … FOR UPDATE SKIP LOCKED` on `pool_numbers`. A number's busy state
//! (`leased_until`, `lease_id`, `locked_until`) lives on its own row, so the row lock and
//! PostgreSQL's re-check of a locked row's new version are what keep two processes from
//! leasing one number to two live sessions. Renewals and releases lock the number row
//! (`FOR UPDATE`); recording a call takes an advisory lock on its call sid. Expiry is
//! evaluated against the `now` each call passes.

use std::time::Duration;

use async_trait::async_trait;
use callbid_core::pool::{
    peak_concurrency, Attribution, ExhaustionPolicy, Grant, InboundCall, Lease, LeaseId,
    LeaseOutcome, LeaseRequest, LockKey, NumberPool, NumberPoolStore, NumberState, NumberStatus,
    PoolHealth, PoolId, PoolNumber, RecordedCall, RenewOutcome, Via,
};
use callbid_core::{PhoneNumber, StateError, ValidationError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::{pg, read_committed, PgStore};
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

async fn opt(
    tx: &Transaction<'_>,
    op: &'static str,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<Option<Row>> {
    tx.query_opt(sql, p).await.map_err(pg(op))
}

async fn exec(
    tx: &Transaction<'_>,
    op: &'static str,
    sql: &str,
    p: &[&(dyn ToSql + Sync)],
) -> Result<u64> {
    tx.execute(sql, p).await.map_err(pg(op))
}

async fn settings(
    tx: &Transaction<'_>,
    op: &'static str,
    pool: &PoolId,
) -> Result<Option<NumberPool>> {
    let row = opt(
        tx,
        op,
        "SELECT settings FROM pool_pools WHERE pool_id = $1",
        &[&pool.as_str()],
    )
    .await?;
    row.map(|r| unjson(op, r.get::<_, &str>(0))).transpose()
}

fn lease_of(op: &'static str, r: &Row) -> Result<Lease> {
    let mut l: Lease = unjson(op, r.get::<_, &str>("body"))?;
    l.expires_at = from_ns(r.get("expires_at"));
    Ok(l)
}

async fn load_lease(tx: &Transaction<'_>, op: &'static str, id: &str) -> Result<Option<Lease>> {
    let r = opt(
        tx,
        op,
        "SELECT body, expires_at FROM pool_leases WHERE lease_id = $1",
        &[&id],
    )
    .await?;
    r.map(|r| lease_of(op, &r)).transpose()
}

/// Whether an exclusive lease still holds its number's row (locking the row).
async fn owns(tx: &Transaction<'_>, op: &'static str, l: &Lease) -> Result<bool> {
    if !l.exclusive {
        return Ok(true);
    }
    let r = opt(
        tx,
        op,
        "SELECT lease_id FROM pool_numbers WHERE pool_id = $1 AND number = $2 FOR UPDATE",
        &[&l.pool.as_str(), &l.number.as_str()],
    )
    .await?;
    Ok(r.and_then(|r| r.get::<_, Option<String>>(0)).as_deref() == Some(l.id.as_str()))
}

async fn extend(
    tx: &Transaction<'_>,
    op: &'static str,
    p: &NumberPool,
    l: &Lease,
    now: i64,
) -> Result<Lease> {
    let new_end = to_ns("expires_at", l.expires_at)?.max(now.saturating_add(ns(p.lease_length)));
    exec(
        tx,
        op,
        "UPDATE pool_leases SET expires_at = $2 WHERE lease_id = $1",
        &[&l.id.as_str(), &new_end],
    )
    .await?;
    exec(
        tx,
        op,
        "UPDATE pool_numbers SET
           leased_until = CASE WHEN lease_id = $3 THEN GREATEST(COALESCE(leased_until, 0), $4) ELSE leased_until END,
           last_active = GREATEST(last_active, $4)
         WHERE pool_id = $1 AND number = $2",
        &[&p.id.as_str(), &l.number.as_str(), &l.id.as_str(), &new_end],
    )
    .await?;
    let mut l = l.clone();
    l.expires_at = from_ns(new_end);
    Ok(l)
}

async fn live_for_key(
    tx: &Transaction<'_>,
    op: &'static str,
    pool: &PoolId,
    key: &str,
    now: i64,
) -> Result<Option<Lease>> {
    let rows = tx
        .query(
            "SELECT body, expires_at FROM pool_leases
             WHERE pool_id = $1 AND lease_key = $2 AND expires_at > $3 AND created_at <= $3
             ORDER BY exclusive DESC, created_at DESC, lease_id DESC",
            &[&pool.as_str(), &key, &now],
        )
        .await
        .map_err(pg(op))?;
    for r in rows {
        let l = lease_of(op, &r)?;
        if owns(tx, op, &l).await? {
            return Ok(Some(l));
        }
    }
    Ok(None)
}

async fn grant(
    tx: &Transaction<'_>,
    op: &'static str,
    p: &NumberPool,
    req: &LeaseRequest,
    key: &str,
    number: &str,
    grant: Grant,
) -> Result<LeaseOutcome> {
    let now = to_ns("now", req.now)?;
    let end = now.saturating_add(ns(p.lease_length));
    let Some(row) = opt(
        tx,
        op,
        "SELECT number, leased_until FROM pool_numbers WHERE pool_id = $1 AND number = $2 FOR UPDATE",
        &[&p.id.as_str(), &number],
    )
    .await?
    else {
        return Ok(LeaseOutcome::Exhausted);
    };
    let num: String = row.get(0);
    let leased_until: Option<i64> = row.get(1);
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
    exec(
        tx,
        op,
        "INSERT INTO pool_leases (lease_id, pool_id, lease_key, visitor, number, exclusive, created_at, expires_at, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[&lease.id.as_str(), &p.id.as_str(), &key, &lease.visitor.as_str(), &num, &exclusive, &now, &end, &json(op, &lease)?],
    )
    .await?;
    exec(
        tx,
        op,
        "UPDATE pool_numbers SET
           leased_until = CASE WHEN $3 THEN $4 ELSE leased_until END,
           lease_id = CASE WHEN $3 THEN $5 ELSE lease_id END,
           last_active = GREATEST(last_active, $4)
         WHERE pool_id = $1 AND number = $2",
        &[&p.id.as_str(), &num, &exclusive, &end, &lease.id.as_str()],
    )
    .await?;
    log_lease(tx, op, &p.id, now, true).await?;
    Ok(LeaseOutcome::Leased { lease, grant })
}

async fn log_lease(
    tx: &Transaction<'_>,
    op: &'static str,
    pool: &PoolId,
    at: i64,
    granted: bool,
) -> Result<()> {
    exec(
        tx,
        op,
        "INSERT INTO pool_lease_log (pool_id, at, granted) VALUES ($1, $2, $3)",
        &[&pool.as_str(), &at, &granted],
    )
    .await?;
    Ok(())
}

async fn advisory(tx: &Transaction<'_>, op: &'static str, keys: &mut [String]) -> Result<()> {
    keys.sort();
    for k in keys.iter() {
        exec(
            tx,
            op,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 3))",
            &[k],
        )
        .await?;
    }
    Ok(())
}

async fn lease_tx(tx: &Transaction<'_>, req: &LeaseRequest) -> Result<LeaseOutcome> {
    const OP: &str = "pool lease";
    let Some(p) = settings(tx, OP, &req.pool).await? else {
        return Ok(LeaseOutcome::UnknownPool);
    };
    let now = to_ns("now", req.now)?;
    let key = p.lease_key(&req.visitor, &req.listing);
    let mut locks = vec![
        format!("pk|{}|{key}", p.id),
        format!("pv|{}|{}", p.id, req.visitor),
    ];
    advisory(tx, OP, &mut locks).await?;
    if let Some(l) = live_for_key(tx, OP, &p.id, &key, now).await? {
        let lease = extend(tx, OP, &p, &l, now).await?;
        return Ok(LeaseOutcome::Leased {
            lease,
            grant: Grant::Existing,
        });
    }
    let live: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM pool_leases l WHERE l.pool_id = $1 AND l.visitor = $2 AND l.expires_at > $3 AND l.created_at <= $3
               AND (NOT l.exclusive OR EXISTS (SELECT 1 FROM pool_numbers n WHERE n.pool_id = $1 AND n.lease_id = l.lease_id))",
            &[&p.id.as_str(), &req.visitor.as_str(), &now],
        )
        .await
        .map_err(pg(OP))?
        .get(0);
    if live >= i64::from(p.max_leases_per_visitor) {
        return Ok(LeaseOutcome::VisitorCap {
            limit: p.max_leases_per_visitor,
        });
    }
    let locked = opt(
        tx,
        OP,
        "SELECT k.number FROM pool_locks k JOIN pool_numbers n ON n.pool_id = k.pool_id AND n.number = k.number
         WHERE k.pool_id = $1 AND k.lease_key = $2 AND k.locked_until > $3
         ORDER BY k.locked_from DESC LIMIT 1",
        &[&p.id.as_str(), &key, &now],
    )
    .await?;
    if let Some(r) = locked {
        return grant(tx, OP, &p, req, &key, r.get(0), Grant::Locked).await;
    }
    let free = opt(
        tx,
        OP,
        "SELECT n.number FROM pool_numbers n
         WHERE n.pool_id = $1 AND COALESCE(n.leased_until, 0) <= $2 AND COALESCE(n.locked_until, 0) <= $2
           AND NOT EXISTS (SELECT 1 FROM pool_locks k WHERE k.pool_id = n.pool_id AND k.number = n.number
                           AND k.visitor = $3 AND k.locked_until > $2)
         ORDER BY COALESCE(n.leased_until, -9223372036854775808), n.number LIMIT 1
         FOR UPDATE OF n SKIP LOCKED",
        &[&p.id.as_str(), &now, &req.visitor.as_str()],
    )
    .await?;
    if let Some(r) = free {
        return grant(tx, OP, &p, req, &key, r.get(0), Grant::Fresh).await;
    }
    if p.exhaustion == ExhaustionPolicy::ReclaimOldest {
        if let Some((n, from)) = reclaim(tx, OP, &p.id, now).await? {
            return grant(tx, OP, &p, req, &key, &n, Grant::Reclaimed { from }).await;
        }
    }
    log_lease(tx, OP, &p.id, now, false).await?;
    Ok(match p.overflow_number {
        Some(number) => LeaseOutcome::Overflow { number },
        None => LeaseOutcome::Exhausted,
    })
}

async fn reclaim(
    tx: &Transaction<'_>,
    op: &'static str,
    pool: &PoolId,
    now: i64,
) -> Result<Option<(String, LeaseId)>> {
    let Some(r) = opt(
        tx,
        op,
        "SELECT number FROM pool_numbers WHERE pool_id = $1 AND COALESCE(leased_until, 0) <= $2 AND locked_until > $2
         ORDER BY COALESCE(leased_until, -9223372036854775808), number LIMIT 1 FOR UPDATE SKIP LOCKED",
        &[&pool.as_str(), &now],
    )
    .await?
    else {
        return Ok(None);
    };
    let n: String = r.get(0);
    let Some(from) = opt(
        tx,
        op,
        "SELECT lease_id FROM pool_locks WHERE pool_id = $1 AND number = $2 ORDER BY caller DESC LIMIT 1",
        &[&pool.as_str(), &n],
    )
    .await?
    else {
        return Ok(None);
    };
    let from: String = from.get(0);
    exec(
        tx,
        op,
        "DELETE FROM pool_locks WHERE pool_id = $1 AND number = $2",
        &[&pool.as_str(), &n],
    )
    .await?;
    exec(
        tx,
        op,
        "UPDATE pool_numbers SET locked_until = NULL WHERE pool_id = $1 AND number = $2",
        &[&pool.as_str(), &n],
    )
    .await?;
    Ok(Some((
        n,
        LeaseId::new(from).map_err(|e| StoreError::corrupt(op, e))?,
    )))
}

async fn attribute_tx(tx: &Transaction<'_>, call: &InboundCall) -> Result<Attribution> {
    const OP: &str = "pool attribute";
    let unknown = || Attribution::UnknownNumber {
        number: call.dialed.clone(),
    };
    let Some(p) = settings(tx, OP, &call.pool).await? else {
        return Ok(unknown());
    };
    if p.overflow_number.as_ref() == Some(&call.dialed) {
        return Ok(Attribution::Overflow {
            number: call.dialed.clone(),
        });
    }
    let (pool, num) = (p.id.as_str(), call.dialed.as_str());
    if opt(
        tx,
        OP,
        "SELECT 1 FROM pool_numbers WHERE pool_id = $1 AND number = $2",
        &[&pool, &num],
    )
    .await?
    .is_none()
    {
        return Ok(unknown());
    }
    let at = to_ns("at", call.at)?;
    let caller = call.caller.as_ref().map(|c| c.as_str()).unwrap_or("");
    let lock = opt(
        tx,
        OP,
        "SELECT lease_id, lease_key FROM pool_locks WHERE pool_id = $1 AND number = $2 AND (caller = $3 OR caller = '')
           AND locked_from <= $4 AND locked_until > $4 ORDER BY caller DESC LIMIT 1",
        &[&pool, &num, &caller, &at],
    )
    .await?;
    if let Some(lock) = lock {
        let (lease_id, key): (String, String) = (lock.get(0), lock.get(1));
        let same = opt(
            tx,
            OP,
            "SELECT body, expires_at FROM pool_leases WHERE pool_id = $1 AND number = $2 AND lease_key = $3
               AND created_at <= $4 AND expires_at > $4 ORDER BY created_at DESC, lease_id DESC LIMIT 1",
            &[&pool, &num, &key, &at],
        )
        .await?;
        if let Some(r) = same {
            return Ok(Attribution::Attributed {
                lease: lease_of(OP, &r)?,
                via: Via::Lease,
            });
        }
        if let Some(lease) = load_lease(tx, OP, &lease_id).await? {
            return Ok(Attribution::Attributed {
                lease,
                via: Via::Lock,
            });
        }
    }
    let live = opt(
        tx,
        OP,
        "SELECT body, expires_at FROM pool_leases WHERE pool_id = $1 AND number = $2 AND created_at <= $3 AND expires_at > $3
         ORDER BY exclusive DESC, created_at DESC, lease_id DESC LIMIT 1",
        &[&pool, &num, &at],
    )
    .await?;
    if let Some(r) = live {
        return Ok(Attribution::Attributed {
            lease: lease_of(OP, &r)?,
            via: Via::Lease,
        });
    }
    let last = opt(
        tx,
        OP,
        "SELECT body, expires_at FROM pool_leases WHERE pool_id = $1 AND number = $2 AND created_at <= $3
         ORDER BY created_at DESC, lease_id DESC LIMIT 1",
        &[&pool, &num, &at],
    )
    .await?;
    Ok(Attribution::ExpiredLease {
        last: last.map(|r| lease_of(OP, &r)).transpose()?,
    })
}

async fn record_call_tx(tx: &Transaction<'_>, call: &InboundCall) -> Result<Attribution> {
    const OP: &str = "pool record_call";
    let mut locks = vec![
        format!("pc|{}|{}", call.pool, call.call_sid),
        format!("pn|{}|{}", call.pool, call.dialed),
    ];
    advisory(tx, OP, &mut locks).await?;
    let seen = opt(
        tx,
        OP,
        "SELECT body FROM pool_calls WHERE pool_id = $1 AND call_sid = $2",
        &[&call.pool.as_str(), &call.call_sid],
    )
    .await?;
    if let Some(r) = seen {
        return unjson(OP, r.get::<_, &str>(0));
    }
    let a = attribute_tx(tx, call).await?;
    let at = to_ns("at", call.at)?;
    if let (Attribution::Attributed { lease, .. }, Some(p)) =
        (&a, settings(tx, OP, &call.pool).await?)
    {
        let until = at.saturating_add(ns(p.lock_period));
        let caller = match (p.lock_key, &call.caller) {
            (LockKey::NumberAndCaller, Some(c)) => c.as_str().to_string(),
            _ => String::new(),
        };
        let key = p.lease_key(&lease.visitor, &lease.listing);
        exec(
            tx,
            OP,
            "INSERT INTO pool_locks (pool_id, number, caller, lease_id, lease_key, visitor, locked_from, locked_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (pool_id, number, caller) DO UPDATE SET lease_id = excluded.lease_id,
               lease_key = excluded.lease_key, visitor = excluded.visitor, locked_from = excluded.locked_from,
               locked_until = GREATEST(pool_locks.locked_until, excluded.locked_until)",
            &[&p.id.as_str(), &lease.number.as_str(), &caller, &lease.id.as_str(), &key, &lease.visitor.as_str(), &at, &until],
        )
        .await?;
        exec(
            tx,
            OP,
            "UPDATE pool_numbers SET
               locked_until = CASE WHEN $3 THEN GREATEST(COALESCE(locked_until, 0), $4) ELSE locked_until END,
               last_active = GREATEST(last_active, $5)
             WHERE pool_id = $1 AND number = $2",
            &[&p.id.as_str(), &lease.number.as_str(), &caller.is_empty(), &until, &at],
        )
        .await?;
    }
    exec(
        tx,
        OP,
        "INSERT INTO pool_calls (pool_id, call_sid, at, kind, body) VALUES ($1, $2, $3, $4, $5)",
        &[
            &call.pool.as_str(),
            &call.call_sid,
            &at,
            &a.kind(),
            &json(OP, &a)?,
        ],
    )
    .await?;
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

async fn numbers_q(tx: &Transaction<'_>, pool: &PoolId, now: i64) -> Result<Vec<NumberStatus>> {
    const OP: &str = "pool numbers";
    let rows = tx
        .query(
            "SELECT info, added_at, leased_until, locked_until, last_active FROM pool_numbers WHERE pool_id = $1 ORDER BY number COLLATE \"C\"",
            &[&pool.as_str()],
        )
        .await
        .map_err(pg(OP))?;
    rows.iter()
        .map(|r| {
            Ok(NumberStatus {
                number: unjson(OP, r.get::<_, &str>(0))?,
                state: state_of(r.get(2), r.get(3), now),
                added_at: from_ns(r.get(1)),
                last_active: from_ns(r.get(4)),
            })
        })
        .collect()
}

async fn add_tx(
    tx: &Transaction<'_>,
    p: &NumberPool,
    numbers: &[PoolNumber],
    now: i64,
) -> Result<u64> {
    const OP: &str = "pool add_numbers";
    let mut added = 0;
    for n in numbers {
        if p.overflow_number.as_ref() == Some(&n.number) {
            continue;
        }
        added += exec(
            tx,
            OP,
            "INSERT INTO pool_numbers (pool_id, number, info, added_at, last_active) VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (pool_id, number) DO NOTHING",
            &[&p.id.as_str(), &n.number.as_str(), &json(OP, n)?, &now],
        )
        .await?;
    }
    Ok(added)
}

async fn health_q(
    tx: &Transaction<'_>,
    pool: &PoolId,
    since: i64,
    now: i64,
    idle_before: i64,
) -> Result<PoolHealth> {
    const OP: &str = "pool health";
    let mut h = PoolHealth::default();
    for s in numbers_q(tx, pool, now).await? {
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
    let iv = tx
        .query(
            "SELECT created_at, expires_at FROM pool_leases WHERE pool_id = $1 AND exclusive AND created_at <= $3 AND expires_at > $2",
            &[&pool.as_str(), &since, &now],
        )
        .await
        .map_err(pg(OP))?;
    h.peak_leased = peak_concurrency(iv.iter().map(|r| {
        let (s, e): (i64, i64) = (r.get(0), r.get(1));
        (from_ns(s.max(since)), from_ns(e.min(now)))
    }));
    let r = tx
        .query_one(
            "SELECT COUNT(*) FILTER (WHERE granted), COUNT(*) FILTER (WHERE NOT granted) FROM pool_lease_log
             WHERE pool_id = $1 AND at >= $2 AND at <= $3",
            &[&pool.as_str(), &since, &now],
        )
        .await
        .map_err(pg(OP))?;
    h.leases_granted = r.get::<_, i64>(0) as u64;
    h.lease_overflows = r.get::<_, i64>(1) as u64;
    let kinds = tx
        .query(
            "SELECT kind, COUNT(*) FROM pool_calls WHERE pool_id = $1 AND at >= $2 AND at <= $3 GROUP BY kind",
            &[&pool.as_str(), &since, &now],
        )
        .await
        .map_err(pg(OP))?;
    h.calls = kinds
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1) as u64))
        .collect();
    Ok(h)
}

async fn purge_tx(tx: &Transaction<'_>, pool: &PoolId, before: i64) -> Result<u64> {
    const OP: &str = "pool purge";
    let p = pool.as_str();
    exec(
        tx,
        OP,
        "DELETE FROM pool_locks WHERE pool_id = $1 AND locked_until < $2",
        &[&p, &before],
    )
    .await?;
    let n = exec(
        tx,
        OP,
        "DELETE FROM pool_leases WHERE pool_id = $1 AND expires_at < $2
           AND lease_id NOT IN (SELECT lease_id FROM pool_locks WHERE pool_id = $1)",
        &[&p, &before],
    )
    .await?;
    exec(
        tx,
        OP,
        "DELETE FROM pool_calls WHERE pool_id = $1 AND at < $2",
        &[&p, &before],
    )
    .await?;
    exec(
        tx,
        OP,
        "DELETE FROM pool_lease_log WHERE pool_id = $1 AND at < $2",
        &[&p, &before],
    )
    .await?;
    Ok(n)
}

async fn renew_tx(
    tx: &Transaction<'_>,
    pool: &PoolId,
    id: &LeaseId,
    now: i64,
) -> Result<RenewOutcome> {
    const OP: &str = "pool renew";
    let Some(p) = settings(tx, OP, pool).await? else {
        return Ok(RenewOutcome::Unknown);
    };
    let Some(l) = load_lease(tx, OP, id.as_str())
        .await?
        .filter(|l| &l.pool == pool)
    else {
        return Ok(RenewOutcome::Unknown);
    };
    // Lock the number row first, then re-read the lease under it.
    let owned = owns(tx, OP, &l).await?;
    let Some(l) = load_lease(tx, OP, id.as_str()).await? else {
        return Ok(RenewOutcome::Unknown);
    };
    if to_ns("expires_at", l.expires_at)? <= now || !owned {
        return Ok(RenewOutcome::Ended { at: l.expires_at });
    }
    let l = extend(tx, OP, &p, &l, now).await?;
    Ok(RenewOutcome::Renewed {
        expires_at: l.expires_at,
    })
}

async fn release_tx(tx: &Transaction<'_>, pool: &PoolId, id: &LeaseId, now: i64) -> Result<bool> {
    const OP: &str = "pool release";
    let Some(l) = load_lease(tx, OP, id.as_str())
        .await?
        .filter(|l| &l.pool == pool)
    else {
        return Ok(false);
    };
    let owned = owns(tx, OP, &l).await?;
    let Some(l) = load_lease(tx, OP, id.as_str()).await? else {
        return Ok(false);
    };
    let live =
        to_ns("created_at", l.created_at)? <= now && now < to_ns("expires_at", l.expires_at)?;
    if !live || !owned {
        return Ok(false);
    }
    exec(
        tx,
        OP,
        "UPDATE pool_leases SET expires_at = $2 WHERE lease_id = $1",
        &[&id.as_str(), &now],
    )
    .await?;
    exec(
        tx,
        OP,
        "UPDATE pool_numbers SET leased_until = $3 WHERE pool_id = $1 AND number = $2 AND lease_id = $4",
        &[&pool.as_str(), &l.number.as_str(), &now, &id.as_str()],
    )
    .await?;
    Ok(true)
}

async fn retire_tx(
    tx: &Transaction<'_>,
    pool: &PoolId,
    number: &PhoneNumber,
    now: i64,
) -> Result<bool> {
    const OP: &str = "pool retire_number";
    let n = exec(
        tx,
        OP,
        "DELETE FROM pool_numbers WHERE pool_id = $1 AND number = $2
           AND COALESCE(leased_until, 0) <= $3 AND COALESCE(locked_until, 0) <= $3
           AND NOT EXISTS (SELECT 1 FROM pool_locks k WHERE k.pool_id = $1 AND k.number = $2 AND k.locked_until > $3)",
        &[&pool.as_str(), &number.as_str(), &now],
    )
    .await?;
    Ok(n > 0)
}

fn t(field: &'static str, at: DateTime<Utc>) -> Result<i64, StateError> {
    to_ns(field, at).map_err(|e| e.into_state(field))
}

/// Runs one pool operation in a READ COMMITTED transaction and commits it.
macro_rules! in_tx {
    ($self:ident, $op:expr, |$tx:ident| $body:expr) => {{
        let op: &'static str = $op;
        let run = async {
            let mut c = $self.client(op).await?;
            let $tx = read_committed(&mut c).await.map_err(pg(op))?;
            let out = $body;
            $tx.commit().await.map_err(pg(op))?;
            Ok::<_, StoreError>(out)
        };
        run.await.map_err(|e| e.into_state(op))
    }};
}

#[async_trait]
impl NumberPoolStore for PgStore {
    async fn put_pool(&self, pool: &NumberPool, now: DateTime<Utc>) -> Result<(), StateError> {
        let now = t("now", now)?;
        let mut s = pool.clone();
        s.numbers.clear();
        let body = json("pool put_pool", &s).map_err(|e| e.into_state("pool put_pool"))?;
        in_tx!(self, "pool put_pool", |tx| {
            exec(
                &tx,
                "pool put_pool",
                "INSERT INTO pool_pools (pool_id, settings) VALUES ($1, $2)
                 ON CONFLICT (pool_id) DO UPDATE SET settings = excluded.settings",
                &[&pool.id.as_str(), &body],
            )
            .await?;
            add_tx(&tx, pool, &pool.numbers, now).await?;
        })
    }

    async fn pool(&self, pool: &PoolId) -> Result<Option<NumberPool>, StateError> {
        in_tx!(self, "pool get", |tx| {
            match settings(&tx, "pool get", pool).await? {
                Some(mut p) => {
                    p.numbers = numbers_q(&tx, pool, 0)
                        .await?
                        .into_iter()
                        .map(|s| s.number)
                        .collect();
                    Some(p)
                }
                None => None,
            }
        })
    }

    async fn add_numbers(
        &self,
        pool: &PoolId,
        numbers: &[PoolNumber],
        now: DateTime<Utc>,
    ) -> Result<u64, StateError> {
        let now = t("now", now)?;
        in_tx!(self, "pool add_numbers", |tx| {
            let p = settings(&tx, "pool add_numbers", pool)
                .await?
                .ok_or_else(|| {
                    StoreError::Invalid(ValidationError::new("pool", pool.as_str(), "no such pool"))
                })?;
            add_tx(&tx, &p, numbers, now).await?
        })
    }

    async fn retire_number(
        &self,
        pool: &PoolId,
        number: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let now = t("now", now)?;
        in_tx!(self, "pool retire_number", |tx| retire_tx(
            &tx, pool, number, now
        )
        .await?)
    }

    async fn numbers(
        &self,
        pool: &PoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NumberStatus>, StateError> {
        let now = t("now", now)?;
        in_tx!(self, "pool numbers", |tx| numbers_q(&tx, pool, now).await?)
    }

    async fn lease(&self, request: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        request.context.validate()?;
        in_tx!(self, "pool lease", |tx| lease_tx(&tx, request).await?)
    }

    async fn renew(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<RenewOutcome, StateError> {
        let now = t("now", now)?;
        in_tx!(self, "pool renew", |tx| renew_tx(&tx, pool, lease, now)
            .await?)
    }

    async fn release(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        let now = t("now", now)?;
        in_tx!(self, "pool release", |tx| release_tx(&tx, pool, lease, now)
            .await?)
    }

    async fn attribute(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        in_tx!(self, "pool attribute", |tx| attribute_tx(&tx, call).await?)
    }

    async fn record_call(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        in_tx!(self, "pool record_call", |tx| record_call_tx(&tx, call)
            .await?)
    }

    async fn purge(&self, pool: &PoolId, before: DateTime<Utc>) -> Result<u64, StateError> {
        let before = t("before", before)?;
        in_tx!(self, "pool purge", |tx| purge_tx(&tx, pool, before).await?)
    }

    async fn health(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        idle_after: Duration,
    ) -> Result<PoolHealth, StateError> {
        let (since, now) = (t("since", since)?, t("now", now)?);
        let idle_before = now.saturating_sub(ns(idle_after));
        in_tx!(self, "pool health", |tx| health_q(
            &tx,
            pool,
            since,
            now,
            idle_before
        )
        .await?)
    }
    async fn leases_created(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Lease>, StateError> {
        let (since, until) = (t("since", since)?, t("until", until)?);
        in_tx!(self, "pool leases_created", |tx| {
            leases_created_q(&tx, pool, since, until).await?
        })
    }

    async fn calls_recorded(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RecordedCall>, StateError> {
        let (since, until) = (t("since", since)?, t("until", until)?);
        in_tx!(self, "pool calls_recorded", |tx| {
            calls_recorded_q(&tx, pool, since, until).await?
        })
    }
}

async fn leases_created_q(
    tx: &Transaction<'_>,
    pool: &PoolId,
    since: i64,
    until: i64,
) -> Result<Vec<Lease>> {
    const OP: &str = "pool leases_created";
    let rows = tx
        .query(
            "SELECT body FROM pool_leases WHERE pool_id = $1 AND created_at >= $2
               AND created_at < $3 ORDER BY created_at, lease_id",
            &[&pool.as_str(), &since, &until],
        )
        .await
        .map_err(pg(OP))?;
    rows.iter()
        .map(|r| unjson(OP, &r.get::<_, String>(0)))
        .collect()
}

async fn calls_recorded_q(
    tx: &Transaction<'_>,
    pool: &PoolId,
    since: i64,
    until: i64,
) -> Result<Vec<RecordedCall>> {
    const OP: &str = "pool calls_recorded";
    let rows = tx
        .query(
            "SELECT call_sid, at, body FROM pool_calls WHERE pool_id = $1 AND at >= $2
               AND at < $3 ORDER BY at, call_sid",
            &[&pool.as_str(), &since, &until],
        )
        .await
        .map_err(pg(OP))?;
    rows.iter()
        .map(|r| {
            let body: String = r.get(2);
            Ok(RecordedCall::new(
                r.get::<_, String>(0),
                from_ns(r.get::<_, i64>(1)),
                unjson(OP, &body)?,
            ))
        })
        .collect()
}

impl PgStore {
    /// Pairs of exclusive leases of `pool` overlapping in time on one number, counted in
    /// SQL: the invariant "no number is leased to two live sessions" (must be 0).
    pub async fn pool_overlapping_leases(&self, pool: &PoolId) -> Result<i64, StateError> {
        in_tx!(self, "pool invariant", |tx| {
            tx.query_one(
                "SELECT COUNT(*) FROM pool_leases a JOIN pool_leases b
                   ON a.pool_id = b.pool_id AND a.number = b.number AND a.lease_id < b.lease_id
                 WHERE a.pool_id = $1 AND a.exclusive AND b.exclusive
                   AND a.created_at < b.expires_at AND b.created_at < a.expires_at",
                &[&pool.as_str()],
            )
            .await
            .map_err(pg("pool invariant"))?
            .get::<_, i64>(0)
        })
    }
}
