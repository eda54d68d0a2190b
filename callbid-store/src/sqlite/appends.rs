//! Group commit of call-log appends on SQLite (the queue is [`crate::group`]).
//!
//! The leader runs on the blocking pool and writes each batch in one `BEGIN IMMEDIATE`
//! transaction, so its commit is one WAL sync under `synchronous = FULL`. Inside a
//! batch, each call's summary row is read once and written once (not once per event).
//! If anything in a batch fails, the batch is rolled back and each unit is retried in a
//! transaction of its own, so one bad event fails only its own append.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use callbid_core::state::{AppendOutcome, CallEvent, CallRecord};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{upsert_call, Inner};
use crate::codec::{parse_record, to_ns, CallRow};
use crate::error::{Result, StoreError};
use crate::group::{self, Events, Leader, Pending};

/// At most this many events go into one transaction; the rest wait for the next.
const MAX_BATCH_EVENTS: usize = 1024;

const OP: &str = "append";

/// Queues `events` as one unit and waits until the commit that holds them is synced.
pub(super) async fn submit(
    inner: &Arc<Inner>,
    events: Vec<CallEvent>,
) -> Result<Vec<AppendOutcome>> {
    let (queued, leader) = inner.appends.push(events);
    if let Some(leader) = leader {
        let inner = inner.clone();
        tokio::task::spawn_blocking(move || lead(&inner, leader));
    }
    group::wait(queued.answer, OP).await
}

/// The leader: writes batches until the queue is empty.
fn lead(inner: &Inner, mut leader: Leader<Events>) {
    while let Some(batch) = leader.next_batch(MAX_BATCH_EVENTS) {
        // A panic while writing drops this batch's answers (their appends get an
        // error) and rolls its transaction back; the leader goes on with the next.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut c = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let answers = write_batch(&mut c, &batch);
            drop(c);
            for (p, a) in batch.into_iter().zip(answers) {
                p.answer(a);
            }
        }));
    }
}

/// Writes a batch in one transaction; on any failure, each unit on its own.
fn write_batch(c: &mut Connection, batch: &[Pending<Events>]) -> Vec<Result<Vec<AppendOutcome>>> {
    let units: Vec<&[CallEvent]> = batch.iter().map(|p| p.unit.as_slice()).collect();
    match write_units(c, &units) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(_) if units.len() > 1 => units.iter().map(|u| write_one(c, u)).collect(),
        Err(e) => vec![Err(e)],
    }
}

fn write_one(c: &mut Connection, unit: &[CallEvent]) -> Result<Vec<AppendOutcome>> {
    let mut v = write_units(c, &[unit])?;
    Ok(v.pop().unwrap_or_default())
}

/// All `units` in one transaction: their outcomes, or nothing committed.
fn write_units(c: &mut Connection, units: &[&[CallEvent]]) -> Result<Vec<Vec<AppendOutcome>>> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    let mut records = Records::default();
    let mut outcomes = Vec::with_capacity(units.len());
    for unit in units {
        let mut out = Vec::with_capacity(unit.len());
        for e in *unit {
            out.push(append_event(&tx, e, &mut records)?);
        }
        outcomes.push(out);
    }
    records.flush(&tx)?;
    tx.commit().map_err(StoreError::sqlite(OP))?;
    Ok(outcomes)
}

/// The summary records a transaction touched, each written once at its end.
#[derive(Default)]
pub(super) struct Records {
    by_call: HashMap<String, CallRecord>,
    /// Calls in the order first touched, so rows are written in a deterministic order.
    order: Vec<String>,
}

impl Records {
    fn get_mut(&mut self, tx: &Transaction<'_>, e: &CallEvent) -> Result<&mut CallRecord> {
        let id = e.call_id.as_str();
        if !self.by_call.contains_key(id) {
            let r = load_record(tx, e)?;
            self.order.push(id.to_owned());
            self.by_call.insert(id.to_owned(), r);
        }
        self.by_call.get_mut(id).ok_or_else(|| StoreError::Task {
            operation: OP,
            message: format!("call {id} vanished from the batch's records"),
        })
    }

    /// How many calls' records are held.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Writes every held call's row and forgets them (a later event of the same call
    /// reads the row back).
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        for id in std::mem::take(&mut self.order) {
            if let Some(r) = self.by_call.remove(&id) {
                upsert_call(tx, CallRow::from_record(&r)?)?;
            }
        }
        Ok(())
    }
}

/// Inserts an event and folds it into its call's (cached) record, inside `tx`.
pub(super) fn append_event(
    tx: &Transaction<'_>,
    e: &CallEvent,
    records: &mut Records,
) -> Result<AppendOutcome> {
    let at = to_ns("at", e.at)?;
    let json = serde_json::to_string(e).map_err(|err| StoreError::corrupt(OP, err))?;
    let n = tx
        .prepare_cached(
            "INSERT INTO call_events (call_id, idempotency_key, at_ns, kind, event) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (call_id, idempotency_key) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                e.call_id.as_str(),
                e.idempotency_key,
                at,
                e.kind.type_name(),
                json
            ])
        })
        .map_err(StoreError::sqlite(OP))?;
    if n == 0 {
        return Ok(AppendOutcome::Duplicate);
    }
    records.get_mut(tx, e)?.apply(e);
    Ok(AppendOutcome::Recorded)
}

/// The call's stored record, or a new one starting at this event.
fn load_record(tx: &Transaction<'_>, e: &CallEvent) -> Result<CallRecord> {
    Ok(tx
        .prepare_cached("SELECT record FROM calls WHERE call_id = ?1")
        .and_then(|mut s| {
            s.query_row([e.call_id.as_str()], |r| r.get::<_, String>(0))
                .optional()
        })
        .map_err(StoreError::sqlite(OP))?
        .map(|j| parse_record(OP, &j))
        .transpose()?
        .unwrap_or_else(|| CallRecord::new(e.call_id.clone(), e.at)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use callbid_core::state::{CallEventKind, CallLog};
    use callbid_core::CallId;
    use chrono::{TimeZone, Utc};

    fn ev(call: &str, key: &str, at: chrono::DateTime<Utc>) -> CallEvent {
        CallEvent::new(
            CallId::new(call).expect("id"),
            at,
            key,
            CallEventKind::Recording { url: key.into() },
        )
    }

    /// A batch holding one bad unit (an instant SQLite's nanosecond column cannot
    /// hold) commits every other unit, and answers the bad one with its own error.
    #[tokio::test]
    async fn a_bad_unit_fails_alone_and_the_rest_of_its_batch_commits() {
        let s = SqliteStore::open_in_memory().expect("open");
        let far = Utc
            .with_ymd_and_hms(2400, 1, 1, 0, 0, 0)
            .single()
            .expect("far");
        let now = Utc::now();
        let q = &s.inner.appends;
        let _a = q.push(vec![ev("CA1", "a", now), ev("CA2", "a", now)]);
        let _b = q.push(vec![ev("CA1", "b", now), ev("CA1", "bad", far)]);
        let _c = q.push(vec![ev("CA1", "c", now), ev("CA1", "a", now)]);
        let batch = q.take(100);
        assert_eq!(batch.len(), 3);
        let answers = {
            let mut c = s.inner.writer.lock().expect("writer");
            write_batch(&mut c, &batch)
        };
        use AppendOutcome::{Duplicate, Recorded};
        assert_eq!(answers[0].as_ref().ok(), Some(&vec![Recorded, Recorded]));
        let err = answers[1].as_ref().expect_err("the far instant");
        assert!(err.to_string().contains("at"), "{err}");
        assert_eq!(answers[2].as_ref().ok(), Some(&vec![Recorded, Duplicate]));
        let keys: Vec<String> = s
            .events(&CallId::new("CA1").expect("id"))
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.idempotency_key)
            .collect();
        assert_eq!(
            keys,
            ["a", "c"],
            "the bad unit's good event is rolled back with it"
        );
        assert!(s
            .record(&CallId::new("CA2").expect("id"))
            .await
            .expect("record")
            .is_some());
    }

    /// `append_all` through the trait is one transaction: a bad event in the slice
    /// leaves none of the slice recorded.
    #[tokio::test]
    async fn append_all_is_all_or_nothing() {
        let s = SqliteStore::open_in_memory().expect("open");
        let far = Utc
            .with_ymd_and_hms(2400, 1, 1, 0, 0, 0)
            .single()
            .expect("far");
        let log: &dyn CallLog = &s;
        let slice = [ev("CA1", "a", Utc::now()), ev("CA1", "b", far)];
        assert!(log.append_all(&slice).await.is_err());
        let id = CallId::new("CA1").expect("id");
        assert!(log.events(&id).await.expect("events").is_empty());
        assert!(log.record(&id).await.expect("record").is_none());
    }

    /// Many concurrent single appends on one call (one webhook each) are answered
    /// after their commit, and every one is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_all_answered_and_stored() {
        let s = SqliteStore::open_in_memory().expect("open");
        let t0 = Utc::now();
        let appends = (0..200).map(|i| {
            let s = s.clone();
            let e = ev("CA9", &format!("r{i}"), t0 + chrono::Duration::seconds(i));
            tokio::spawn(async move { s.append(&e).await })
        });
        for a in futures::future::join_all(appends).await {
            assert_eq!(a.expect("task").expect("append"), AppendOutcome::Recorded);
        }
        let n = s
            .events(&CallId::new("CA9").expect("id"))
            .await
            .expect("events")
            .len();
        assert_eq!(n, 200);
    }
}
