//! Group commit of call-log appends on PostgreSQL (the queue is [`crate::group`]).
//!
//! The leader is a tokio task. It writes each batch in one transaction on one pooled
//! connection, in six statements and four round trips whatever the batch's size:
//! `BEGIN`; then, pipelined in one round trip, the advisory locks of every call in the
//! batch (taken in order of their lock key, so two batches on different instances never
//! deadlock), the events' `INSERT … RETURNING` and one read of the calls' rows; one
//! multi-row upsert of the changed rows; and `COMMIT`. Every statement is prepared once
//! per connection. (Before group commit, each event was its own transaction of six
//! statements.) If anything in a batch fails, the batch is rolled back and each unit is
//! retried in a transaction of its own, so one bad event fails only its own append.

use callbid_core::state::{AppendOutcome, CallEvent};
use futures::FutureExt;
use tokio_postgres::types::ToSql;

use super::{
    fold_new, fresh_keys, pg, read_committed, upsert_records, EventColumns, PgStore, INSERT_EVENTS,
    SELECT_RECORDS,
};
use crate::error::Result;
use crate::group::{self, Events, Leader, Pending};

const OP: &str = "append";

/// At most this many events (so at most this many calls' advisory locks) go into one
/// transaction: PostgreSQL's shared lock table has `max_locks_per_transaction ×
/// max_connections` slots (6,400 by default), shared by every instance.
const MAX_BATCH_EVENTS: usize = 256;

/// Queues `events` as one unit and waits until the commit that holds them is done.
pub(super) async fn submit(store: &PgStore, events: Vec<CallEvent>) -> Result<Vec<AppendOutcome>> {
    let (queued, leader) = store.appends.push(events);
    if let Some(leader) = leader {
        let store = store.clone();
        tokio::spawn(async move { lead(&store, leader).await });
    }
    group::wait(queued.answer, OP).await
}

/// The leader: writes batches until the queue is empty.
async fn lead(store: &PgStore, mut leader: Leader<Events>) {
    while let Some(batch) = leader.next_batch(MAX_BATCH_EVENTS) {
        // A panic while writing drops this batch's answers (their appends get an
        // error) and its transaction rolls back; the leader goes on with the next.
        let _ = std::panic::AssertUnwindSafe(async {
            let answers = write_batch(store, &batch).await;
            for (p, a) in batch.into_iter().zip(answers) {
                p.answer(a);
            }
        })
        .catch_unwind()
        .await;
    }
}

/// Writes a batch in one transaction; on any failure, each unit on its own.
async fn write_batch(
    store: &PgStore,
    batch: &[Pending<Events>],
) -> Vec<Result<Vec<AppendOutcome>>> {
    let units: Vec<&[CallEvent]> = batch.iter().map(|p| p.unit.as_slice()).collect();
    match write_units(store, &units).await {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(_) if units.len() > 1 => {
            let mut answers = Vec::with_capacity(units.len());
            for u in &units {
                answers.push(
                    write_units(store, &[u])
                        .await
                        .map(|mut v| v.pop().unwrap_or_default()),
                );
            }
            answers
        }
        Err(e) => vec![Err(e)],
    }
}

/// All `units` in one transaction: their outcomes, or nothing committed. Four round
/// trips: `BEGIN`; the calls' advisory locks, the events' insert and the read of the
/// calls' rows, pipelined (sent together, run in order); the rows' upsert; `COMMIT`.
async fn write_units(store: &PgStore, units: &[&[CallEvent]]) -> Result<Vec<Vec<AppendOutcome>>> {
    let events: Vec<CallEvent> = units.iter().flat_map(|u| u.iter().cloned()).collect();
    let cols = EventColumns::of(&events, OP)?;
    let mut calls: Vec<&str> = events.iter().map(|e| e.call_id.as_str()).collect();
    calls.sort_unstable();
    calls.dedup();
    let mut c = store.client(OP).await?;
    let tx = read_committed(&mut c).await.map_err(pg(OP))?;
    let (lock, insert, select) = futures::try_join!(
        tx.prepare_cached(LOCK_CALLS),
        tx.prepare_cached(INSERT_EVENTS),
        tx.prepare_cached(SELECT_RECORDS),
    )
    .map_err(pg(OP))?;
    // Every call of the batch is read, not only those with a new event: the read is in
    // the same round trip as the insert. A duplicate's row is read and left alone.
    let (calls_param, event_params): (&[&(dyn ToSql + Sync)], _) = (&[&calls], cols.params());
    let (locked, inserted, rows) = futures::join!(
        tx.execute(&lock, calls_param),
        tx.query(&insert, &event_params),
        tx.query(&select, calls_param),
    );
    locked.map_err(pg(OP))?;
    let fresh = fresh_keys(&inserted.map_err(pg(OP))?, OP)?;
    let rows = rows.map_err(pg(OP))?;
    let (outcomes, records) = fold_new(&events, fresh, &rows, OP)?;
    upsert_records(&tx, &records, OP).await?;
    tx.commit().await.map_err(pg(OP))?;
    let mut flat = outcomes.into_iter();
    Ok(units
        .iter()
        .map(|u| flat.by_ref().take(u.len()).collect())
        .collect())
}

/// Takes the advisory lock of every call in $1, in lock-key order (so two batches on
/// different instances never deadlock), until the transaction ends.
const LOCK_CALLS: &str = "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT \
     hashtextextended(c, 1) AS k FROM unnest($1::text[]) AS c ORDER BY k) AS keys";
