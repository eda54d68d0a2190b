//! [`PostbackOutbox`] on SQLite: a claim and an attempt's record are each one
//! `BEGIN IMMEDIATE` transaction on the writer connection, so two processes sharing the
//! file never hold the same delivery at once, and never record over each other.

use async_trait::async_trait;
use callbid_core::state::{DeliveryState, PostbackAttempt, PostbackDelivery, PostbackOutbox};
use callbid_core::{CallId, StateError};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::SqliteStore;
use crate::codec::to_ns;
use crate::error::{Result, StoreError};
use crate::postback::{sort_due, Raw, COLUMNS};

fn raw(r: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        call_id: r.get(0)?,
        publisher: r.get(1)?,
        state: r.get(2)?,
        created_ns: r.get(3)?,
        attempts: r.get(4)?,
        next_ns: r.get(5)?,
        last_attempt_ns: r.get(6)?,
        last_status: r.get(7)?,
        last_error: r.get(8)?,
        url: r.get(9)?,
        delivered_ns: r.get(10)?,
        holder: r.get(11)?,
        lease_until_ns: r.get(12)?,
    })
}

fn insert(c: &Connection, op: &'static str, r: &Raw) -> Result<bool> {
    let n = c
        .execute(
            &format!(
                "INSERT INTO postbacks ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                 ON CONFLICT (call_id, publisher) DO NOTHING"
            ),
            params![
                r.call_id,
                r.publisher,
                r.state,
                r.created_ns,
                r.attempts,
                r.next_ns,
                r.last_attempt_ns,
                r.last_status,
                r.last_error,
                r.url,
                r.delivered_ns,
                r.holder,
                r.lease_until_ns
            ],
        )
        .map_err(StoreError::sqlite(op))?;
    Ok(n == 1)
}

/// Writes every mutable column of `r` to its row.
fn update(c: &Connection, op: &'static str, r: &Raw) -> Result<()> {
    c.execute(
        "UPDATE postbacks SET state = ?3, attempts = ?4, next_ns = ?5, last_attempt_ns = ?6, \
         last_status = ?7, last_error = ?8, url = ?9, delivered_ns = ?10, holder = ?11, \
         lease_until_ns = ?12 WHERE call_id = ?1 AND publisher = ?2",
        params![
            r.call_id,
            r.publisher,
            r.state,
            r.attempts,
            r.next_ns,
            r.last_attempt_ns,
            r.last_status,
            r.last_error,
            r.url,
            r.delivered_ns,
            r.holder,
            r.lease_until_ns
        ],
    )
    .map_err(StoreError::sqlite(op))?;
    Ok(())
}

fn claim(c: &mut Connection, holder: &str, now: i64, until: i64, limit: i64) -> Result<Vec<Raw>> {
    const OP: &str = "claim_postbacks";
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    let rows: Vec<Raw> = {
        let mut q = tx
            .prepare(&format!(
                "SELECT {COLUMNS} FROM postbacks WHERE state = 'pending' AND next_ns <= ?1 \
                 AND (lease_until_ns IS NULL OR lease_until_ns <= ?1) \
                 ORDER BY next_ns, call_id, publisher LIMIT ?2"
            ))
            .map_err(StoreError::sqlite(OP))?;
        let it = q
            .query_map(params![now, limit], raw)
            .map_err(StoreError::sqlite(OP))?;
        it.collect::<rusqlite::Result<_>>()
            .map_err(StoreError::sqlite(OP))?
    };
    let mut out = Vec::with_capacity(rows.len());
    for mut r in rows {
        tx.execute(
            "UPDATE postbacks SET holder = ?3, lease_until_ns = ?4 \
             WHERE call_id = ?1 AND publisher = ?2",
            params![r.call_id, r.publisher, holder, until],
        )
        .map_err(StoreError::sqlite(OP))?;
        r.holder = Some(holder.to_owned());
        r.lease_until_ns = Some(until);
        out.push(r);
    }
    tx.commit().map_err(StoreError::sqlite(OP))?;
    Ok(out)
}

fn record(
    c: &mut Connection,
    call: &str,
    publisher: &str,
    holder: &str,
    attempt: &PostbackAttempt,
) -> Result<bool> {
    const OP: &str = "record_postback_attempt";
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    let row = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM postbacks WHERE call_id = ?1 AND publisher = ?2"),
            params![call, publisher],
            raw,
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    let Some(row) = row else {
        return Ok(false);
    };
    let mut d = row.delivery(OP)?;
    if d.state != DeliveryState::Pending || d.holder.as_deref() != Some(holder) {
        return Ok(false);
    }
    d.apply(attempt);
    update(&tx, OP, &Raw::of(&d)?)?;
    tx.commit().map_err(StoreError::sqlite(OP))?;
    Ok(true)
}

fn list(c: &Connection, call: &str) -> Result<Vec<Raw>> {
    const OP: &str = "postbacks";
    let mut q = c
        .prepare(&format!(
            "SELECT {COLUMNS} FROM postbacks WHERE call_id = ?1 ORDER BY publisher"
        ))
        .map_err(StoreError::sqlite(OP))?;
    let it = q.query_map([call], raw).map_err(StoreError::sqlite(OP))?;
    it.collect::<rusqlite::Result<_>>()
        .map_err(StoreError::sqlite(OP))
}

fn deliveries(rows: Vec<Raw>, op: &'static str) -> Result<Vec<PostbackDelivery>> {
    rows.into_iter().map(|r| r.delivery(op)).collect()
}

#[async_trait]
impl PostbackOutbox for SqliteStore {
    async fn enqueue_postback(&self, delivery: &PostbackDelivery) -> Result<bool, StateError> {
        const OP: &str = "enqueue_postback";
        let r = Raw::of(delivery).map_err(|e| e.into_state(OP))?;
        self.write(OP, move |c| insert(c, OP, &r))
            .await
            .map_err(|e| e.into_state(OP))
    }

    async fn claim_postbacks(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PostbackDelivery>, StateError> {
        const OP: &str = "claim_postbacks";
        let conv = || Ok::<_, StoreError>((to_ns("now", now)?, to_ns("lease_until", lease_until)?));
        let (now_ns, until_ns) = conv().map_err(|e| e.into_state(OP))?;
        let holder = holder.to_owned();
        let rows = self
            .write(OP, move |c| {
                claim(c, &holder, now_ns, until_ns, i64::from(limit))
            })
            .await
            .map_err(|e| e.into_state(OP))?;
        let mut out = deliveries(rows, OP).map_err(|e| e.into_state(OP))?;
        sort_due(&mut out);
        Ok(out)
    }

    async fn record_postback_attempt(
        &self,
        call: &CallId,
        publisher: &str,
        holder: &str,
        attempt: &PostbackAttempt,
    ) -> Result<bool, StateError> {
        const OP: &str = "record_postback_attempt";
        let (call, publisher, holder) = (
            call.as_str().to_owned(),
            publisher.to_owned(),
            holder.to_owned(),
        );
        let attempt = attempt.clone();
        self.write(OP, move |c| record(c, &call, &publisher, &holder, &attempt))
            .await
            .map_err(|e| e.into_state(OP))
    }

    async fn postbacks(&self, call: &CallId) -> Result<Vec<PostbackDelivery>, StateError> {
        const OP: &str = "postbacks";
        let call = call.as_str().to_owned();
        let rows = self
            .read(OP, move |c| list(c, &call))
            .await
            .map_err(|e| e.into_state(OP))?;
        deliveries(rows, OP).map_err(|e| e.into_state(OP))
    }
}
