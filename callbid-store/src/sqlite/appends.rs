//! Group commit of call-log appends on SQLite (the queue is [`crate::group`]), and of
//! other small writes ([`Job`]s: route claims and decisions, duration history).
//!
//! The leader runs on the blocking pool and writes each batch in one `BEGIN IMMEDIATE`
//! transaction, so its commit is one WAL sync under `synchronous = FULL`. Inside a
//! batch, each call's summary row is read once and written once (not once per event).
//! A job runs in a savepoint of its own, in queue order: its error rolls back only its
//! own writes and is its own answer. If anything else in a batch fails (an event, the
//! commit), the batch is rolled back and each unit is retried in a transaction of its
//! own, so one bad event fails only its own append. Every answer, a job's too, is given
//! only after the commit that holds it is synced.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};

use callbid_core::state::{AppendOutcome, CallEvent, CallRecord};
use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::{sql_value, upsert_call, Inner};
use crate::codec::{parse_record, to_ns, CallRow, SqlValue, CALL_COLUMNS};
use crate::error::{Result, StoreError};
use crate::group::{self, Pending};

type Leader = group::Leader<Work>;
type Batch = Vec<Pending<Work>>;

/// What the SQLite queue carries: an append's events, or a [`Job`].
#[derive(Debug)]
pub(crate) enum Work {
    /// One append: its events, in order.
    Events(Vec<CallEvent>),
    /// One grouped write.
    Job(Job),
}

impl group::Unit for Work {
    /// An append's outcomes; none for a job (it keeps its own result).
    type Answer = Vec<AppendOutcome>;
    fn weight(&self) -> usize {
        match self {
            Work::Events(e) => e.len().max(1),
            Work::Job(_) => 1,
        }
    }
}

/// A write that joins the group commit. It runs inside the batch's transaction (which
/// holds the write lock), keeps its own result, and may run again when its batch is
/// retried unit by unit, so it must not depend on having run before. It must not touch
/// `calls` or `call_events`: the batch writes call rows at its end.
pub(crate) struct Job(Box<dyn FnMut(&Connection) + Send>);

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Job {
    /// A job running `f` in a savepoint; its result goes to `slot` (the last run's).
    pub(crate) fn new<T, F>(
        operation: &'static str,
        mut f: F,
        slot: Arc<std::sync::Mutex<Option<Result<T>>>>,
    ) -> Job
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        Job(Box::new(move |c: &Connection| {
            let result = in_savepoint(c, operation, &mut f);
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
        }))
    }
}

/// Runs `f` in a savepoint: released on success, rolled back on error.
fn in_savepoint<T>(
    c: &Connection,
    operation: &'static str,
    f: &mut impl FnMut(&Connection) -> Result<T>,
) -> Result<T> {
    c.execute_batch("SAVEPOINT callbid_job")
        .map_err(StoreError::sqlite(operation))?;
    let result = f(c);
    let end = if result.is_ok() {
        "RELEASE callbid_job"
    } else {
        "ROLLBACK TO callbid_job; RELEASE callbid_job"
    };
    c.execute_batch(end)
        .map_err(StoreError::sqlite(operation))?;
    result
}

/// Queues `job` and waits until the commit that holds it is synced.
pub(super) async fn submit_job(
    inner: &Arc<Inner>,
    job: Job,
    operation: &'static str,
) -> Result<()> {
    let (queued, leader) = inner.appends.push(Work::Job(job));
    start(inner, leader);
    group::wait(queued.answer, operation).await.map(|_| ())
}

fn start(inner: &Arc<Inner>, leader: Option<Leader>) {
    if let Some(leader) = leader {
        let inner = inner.clone();
        tokio::task::spawn_blocking(move || lead(&inner, leader));
    }
}

/// At most this many events go into one transaction; the rest wait for the next.
const MAX_BATCH_EVENTS: usize = 1024;

const OP: &str = "append";

/// Queues `events` as one unit and waits until the commit that holds them is synced.
pub(super) async fn submit(
    inner: &Arc<Inner>,
    events: Vec<CallEvent>,
) -> Result<Vec<AppendOutcome>> {
    let (queued, leader) = inner.appends.push(Work::Events(events));
    start(inner, leader);
    group::wait(queued.answer, OP).await
}

/// The leader: writes batches until the queue is empty.
fn lead(inner: &Inner, mut leader: Leader) {
    while let Some(mut batch) = leader.next_batch(MAX_BATCH_EVENTS) {
        // A panic while writing drops this batch's answers (their appends get an
        // error) and rolls its transaction back; the leader goes on with the next.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut c = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mut warm = inner.warm.lock().unwrap_or_else(PoisonError::into_inner);
            let answers = write_batch(&mut c, &mut batch, &mut warm);
            drop(warm);
            drop(c);
            for (p, a) in batch.into_iter().zip(answers) {
                p.answer(a);
            }
        }));
    }
}

/// Writes a batch in one transaction; on any failure, each unit on its own.
fn write_batch(
    c: &mut Connection,
    batch: &mut Batch,
    warm: &mut Warm,
) -> Vec<Result<Vec<AppendOutcome>>> {
    match write_units(c, batch, warm) {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(_) if batch.len() > 1 => batch
            .iter_mut()
            .map(|p| {
                write_units(c, std::slice::from_mut(p), warm)
                    .map(|mut v| v.pop().unwrap_or_default())
            })
            .collect(),
        Err(e) => vec![Err(e)],
    }
}

/// All `units` in one transaction: their outcomes (none for a job), or nothing
/// committed. The records it writes are kept warm for the next batch once committed;
/// on any failure the warm records are dropped.
fn write_units(
    c: &mut Connection,
    units: &mut [Pending<Work>],
    warm: &mut Warm,
) -> Result<Vec<Vec<AppendOutcome>>> {
    let tx = c
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    let mut records = Records::warm(std::mem::take(warm).checked(&tx)?);
    let mut outcomes = Vec::with_capacity(units.len());
    for pending in units.iter_mut() {
        match &mut pending.unit {
            Work::Job(job) => {
                (job.0)(&tx);
                outcomes.push(Vec::new());
            }
            Work::Events(events) => {
                let mut out = Vec::with_capacity(events.len());
                for e in events.iter() {
                    out.push(append_event(&tx, e, &mut records)?);
                }
                outcomes.push(out);
            }
        }
    }
    records.flush(&tx)?;
    tx.commit().map_err(StoreError::sqlite(OP))?;
    *warm = records.into_warm();
    Ok(outcomes)
}

/// A call's record with its stored row's column values.
type Stored = (CallRecord, [SqlValue; CALL_COLUMNS.len()]);

/// The records the group commit wrote, kept between batches so that the next event of
/// a call does not read and parse its row again (most calls get several batches).
/// They are what this connection last committed; `PRAGMA data_version` tells when
/// another connection (another process, or another store on the same file) committed
/// since, and then they are all dropped. Writes to `calls` on this connection outside
/// the group commit (an import) clear them too. Bounded: when full, it starts over.
#[derive(Debug, Default)]
pub(super) struct Warm {
    /// `PRAGMA data_version` when these were written; `None` when empty.
    version: Option<i64>,
    rows: HashMap<String, Stored>,
}

/// At most this many calls' records are kept warm (about 2.5 KB each).
const WARM_CALLS: usize = 1024;

impl Warm {
    /// Drops every kept record.
    pub(super) fn clear(&mut self) {
        *self = Warm::default();
    }

    /// These records if no other connection has committed since they were written,
    /// else none; stamped with the current version, read inside `tx` (which holds the
    /// write lock, so nobody else commits until it ends).
    fn checked(mut self, tx: &Transaction<'_>) -> Result<Warm> {
        let version = tx
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
            .map_err(StoreError::sqlite(OP))?;
        if self.version != Some(version) {
            self.rows.clear();
        }
        self.version = Some(version);
        Ok(self)
    }

    fn put(&mut self, id: String, stored: Stored) {
        if self.rows.len() >= WARM_CALLS && !self.rows.contains_key(&id) {
            self.rows.clear();
        }
        self.rows.insert(id, stored);
    }
}

/// The summary records a transaction touched, each written once at its end.
#[derive(Default)]
pub(super) struct Records {
    /// Each call's record, and its stored row's column values when it has one.
    by_call: HashMap<String, (CallRecord, Option<[SqlValue; CALL_COLUMNS.len()]>)>,
    /// Calls in the order first touched, so rows are written in a deterministic order.
    order: Vec<String>,
    /// Records from earlier batches, and where written ones go; `None` for an import.
    warm: Option<Warm>,
}

impl Records {
    /// Records that start from `warm` and keep what they write in it.
    fn warm(warm: Warm) -> Self {
        Records {
            warm: Some(warm),
            ..Records::default()
        }
    }

    /// The warm records, with the ones written by [`Self::flush`].
    fn into_warm(self) -> Warm {
        self.warm.unwrap_or_default()
    }

    fn get_mut(&mut self, tx: &Transaction<'_>, e: &CallEvent) -> Result<&mut CallRecord> {
        let id = e.call_id.as_str();
        if !self.by_call.contains_key(id) {
            let kept = self.warm.as_mut().and_then(|w| w.rows.remove(id));
            let loaded = match kept {
                Some((record, row)) => (record, Some(row)),
                None => load_record(tx, e)?,
            };
            self.order.push(id.to_owned());
            self.by_call.insert(id.to_owned(), loaded);
        }
        self.by_call
            .get_mut(id)
            .map(|(r, _)| r)
            .ok_or_else(|| StoreError::Task {
                operation: OP,
                message: format!("call {id} vanished from the batch's records"),
            })
    }

    /// How many calls' records are held.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Writes every held call's row and forgets them (a later event of the same call
    /// reads the row back). A stored row is updated in the columns that changed only,
    /// so SQLite rewrites only the indexes on those columns (an `UPDATE` naming a
    /// column rewrites its index entries even when the value is the same): most events
    /// change the record and a counter, not the status, buyer or price the twelve
    /// report indexes are on. That is most of the WAL pages a commit writes.
    pub(super) fn flush(&mut self, tx: &Transaction<'_>) -> Result<()> {
        for id in std::mem::take(&mut self.order) {
            if let Some((r, stored)) = self.by_call.remove(&id) {
                let row = CallRow::from_record(&r)?.into_values();
                let kept = self.warm.is_some().then(|| row.clone());
                match stored {
                    Some(old) => update_changed(tx, &old, row)?,
                    None => upsert_call(tx, row)?,
                }
                if let (Some(warm), Some(row)) = (self.warm.as_mut(), kept) {
                    warm.put(id, (r, row));
                }
            }
        }
        Ok(())
    }
}

/// `UPDATE calls SET <the columns of `new` that differ from `old`> WHERE call_id = …`
/// (nothing when no column changed). Statements are cached per set of columns.
fn update_changed(
    tx: &Transaction<'_>,
    old: &[SqlValue; CALL_COLUMNS.len()],
    new: [SqlValue; CALL_COLUMNS.len()],
) -> Result<()> {
    let mut set = String::new();
    let mut values = Vec::new();
    let mut call_id = None;
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        if i == 0 {
            call_id = Some(sql_value(n));
            continue;
        }
        if *o != n {
            if !set.is_empty() {
                set.push_str(", ");
            }
            set.push_str(&format!("{} = ?{}", CALL_COLUMNS[i], values.len() + 1));
            values.push(sql_value(n));
        }
    }
    let Some(call_id) = call_id.filter(|_| !values.is_empty()) else {
        return Ok(());
    };
    let sql = format!(
        "UPDATE calls SET {set} WHERE call_id = ?{}",
        values.len() + 1
    );
    values.push(call_id);
    tx.prepare_cached(&sql)
        .and_then(|mut st| st.execute(rusqlite::params_from_iter(values)))
        .map_err(StoreError::sqlite(OP))?;
    Ok(())
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

/// The call's stored record with its row's column values, or a new record starting at
/// this event (no row).
fn load_record(
    tx: &Transaction<'_>,
    e: &CallEvent,
) -> Result<(CallRecord, Option<[SqlValue; CALL_COLUMNS.len()]>)> {
    thread_local! {
        static SQL: String = format!(
            "SELECT {} FROM calls WHERE call_id = ?1",
            CALL_COLUMNS.join(", ")
        );
    }
    let sql = SQL.with(Clone::clone);
    let stored = tx
        .prepare_cached(&sql)
        .and_then(|mut s| s.query_row([e.call_id.as_str()], read_row).optional())
        .map_err(StoreError::sqlite(OP))?;
    let Some(values) = stored else {
        return Ok((CallRecord::new(e.call_id.clone(), e.at), None));
    };
    let record = match &values[CALL_COLUMNS.len() - 1] {
        SqlValue::Text(Some(json)) => parse_record(OP, json)?,
        other => {
            return Err(StoreError::corrupt(
                OP,
                format!("a call row without its record: {other:?}"),
            ))
        }
    };
    Ok((record, Some(values)))
}

/// A `calls` row's [`CALL_COLUMNS`] as [`SqlValue`]s (integers or text, by column).
fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<[SqlValue; CALL_COLUMNS.len()]> {
    let mut out: [SqlValue; CALL_COLUMNS.len()] = std::array::from_fn(|_| SqlValue::Int(None));
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = match r.get_ref(i)? {
            rusqlite::types::ValueRef::Integer(v) => SqlValue::Int(Some(v)),
            rusqlite::types::ValueRef::Text(t) => {
                SqlValue::Text(Some(String::from_utf8_lossy(t).into_owned()))
            }
            rusqlite::types::ValueRef::Null => match CallRow::is_int_column(i) {
                true => SqlValue::Int(None),
                false => SqlValue::Text(None),
            },
            other => {
                return Err(rusqlite::Error::InvalidColumnType(
                    i,
                    CALL_COLUMNS[i].to_owned(),
                    other.data_type(),
                ))
            }
        };
    }
    Ok(out)
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
        let _a = q.push(Work::Events(vec![ev("CA1", "a", now), ev("CA2", "a", now)]));
        let _b = q.push(Work::Events(vec![
            ev("CA1", "b", now),
            ev("CA1", "bad", far),
        ]));
        let _c = q.push(Work::Events(vec![ev("CA1", "c", now), ev("CA1", "a", now)]));
        let mut batch = q.take(100);
        assert_eq!(batch.len(), 3);
        let answers = {
            let mut c = s.inner.writer.lock().expect("writer");
            write_batch(&mut c, &mut batch, &mut Warm::default())
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

    fn route_job(
        call: &'static str,
        fail: bool,
        slot: &Arc<std::sync::Mutex<Option<Result<usize>>>>,
    ) -> Job {
        Job::new(
            "test_job",
            move |c: &Connection| {
                let n = c
                    .execute(
                        "INSERT INTO routes (call_id, step, holder, lease_until_ns, at_ns) \
                         VALUES (?1, 'service', 'h', 0, 0)",
                        [call],
                    )
                    .map_err(StoreError::sqlite("test_job"))?;
                if fail {
                    return Err(StoreError::corrupt("test_job", "refused on purpose"));
                }
                Ok(n)
            },
            slot.clone(),
        )
    }

    fn routes(s: &SqliteStore) -> Vec<String> {
        let c = s.inner.writer.lock().expect("writer");
        let mut st = c
            .prepare("SELECT call_id FROM routes ORDER BY call_id")
            .expect("prepare");
        let rows = st.query_map([], |r| r.get(0)).expect("query");
        rows.map(|r| r.expect("row")).collect()
    }

    /// Jobs share the batch's transaction: a failing job rolls back only its own
    /// writes (its savepoint) and answers its own error; the appends and the other
    /// job in the batch commit. A bad event fails the batch, whose units are then
    /// retried alone: the jobs run again and keep their results.
    #[tokio::test]
    async fn a_job_runs_in_its_own_savepoint_and_survives_a_batch_retry() {
        let s = SqliteStore::open_in_memory().expect("open");
        let now = Utc::now();
        let far = Utc
            .with_ymd_and_hms(2400, 1, 1, 0, 0, 0)
            .single()
            .expect("far");
        let q = &s.inner.appends;
        let (good, bad) = (Arc::default(), Arc::default());
        let _a = q.push(Work::Events(vec![ev("CA1", "a", now)]));
        let _j = q.push(Work::Job(route_job("CA1", false, &good)));
        let _f = q.push(Work::Job(route_job("CA2", true, &bad)));
        let _b = q.push(Work::Events(vec![ev("CA3", "bad", far)]));
        let mut batch = q.take(100);
        assert_eq!(batch.len(), 4);
        let answers = {
            let mut c = s.inner.writer.lock().expect("writer");
            write_batch(&mut c, &mut batch, &mut Warm::default())
        };
        assert!(answers[0].is_ok() && answers[1].is_ok() && answers[2].is_ok());
        assert!(answers[3].is_err(), "the far instant fails its own unit");
        let good = good.lock().expect("slot").take().expect("ran");
        assert_eq!(good.expect("the good job"), 1);
        let bad = bad.lock().expect("slot").take().expect("ran");
        assert!(bad
            .expect_err("the failing job")
            .to_string()
            .contains("on purpose"));
        assert_eq!(
            routes(&s),
            ["CA1"],
            "the failing job's insert is rolled back"
        );
        let id = CallId::new("CA1").expect("id");
        assert_eq!(s.events(&id).await.expect("events").len(), 1);
    }

    /// Through the store: a grouped write answers only after its commit, and many
    /// concurrent ones with appends all land.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_and_appends_all_land() {
        let s = SqliteStore::open_in_memory().expect("open");
        let writes = (0..100).map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let call = format!("CA{i}");
                let c2 = call.clone();
                let n = s
                    .write_grouped("test", move |c: &Connection| {
                        c.execute(
                            "INSERT INTO routes (call_id, step, holder, lease_until_ns, at_ns) \
                             VALUES (?1, 'service', 'h', 0, 0)",
                            [&c2],
                        )
                        .map_err(StoreError::sqlite("test"))
                    })
                    .await?;
                s.append_event(&ev(&call, "a", Utc::now())).await?;
                Ok::<_, StoreError>(n)
            })
        });
        for w in futures::future::join_all(writes).await {
            assert_eq!(w.expect("task").expect("write"), 1);
        }
        assert_eq!(routes(&s).len(), 100);
    }

    /// Two stores on one file (two writer connections, as two processes would have)
    /// append to the same call in turn: each sees the other's commits, so neither
    /// writes its row from a record it kept warm before the other wrote.
    #[tokio::test]
    async fn warm_records_yield_to_another_connections_commits() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("warm.db");
        let a = SqliteStore::open(&path).expect("a");
        let b = SqliteStore::open(&path).expect("b");
        let id = CallId::new("CA1").expect("id");
        let t0 = Utc::now();
        for i in 0..10i64 {
            let (s, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let at = t0 + chrono::Duration::seconds(i);
            s.append_event(&ev("CA1", &format!("k{i}"), at))
                .await
                .expect("append");
            for seen in [s, other] {
                let r = seen.record(&id).await.expect("record").expect("row");
                assert_eq!(i64::from(r.events), i + 1, "after append {i}");
            }
        }
    }

    /// An import writes `calls` rows on the writer connection outside the group
    /// commit (no `data_version` change): the warm records are dropped, so the next
    /// append folds into the imported row, not the one kept before.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_import_between_appends_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        let s = SqliteStore::open(dir.path().join("import.db")).expect("open");
        let id = CallId::new("CA1").expect("id");
        let t0 = Utc::now();
        s.append_event(&ev("CA1", "a", t0)).await.expect("append");
        let imported = s.clone();
        let late = t0 + chrono::Duration::seconds(1);
        tokio::task::spawn_blocking(move || {
            imported.import_blocking([ev("CA1", "b", late), ev("CA1", "c", late)])
        })
        .await
        .expect("task")
        .expect("import");
        s.append_event(&ev("CA1", "d", late)).await.expect("append");
        let r = s.record(&id).await.expect("record").expect("row");
        assert_eq!(r.events, 4);
    }

    /// A call's row, written in changed columns only across many batches, always
    /// equals the row its record gives in full (every column, NULLs included).
    #[tokio::test]
    async fn rows_updated_in_changed_columns_equal_the_full_row() {
        use callbid_core::{BuyerId, Destination, Money, PhoneNumber};
        let s = SqliteStore::open_in_memory().expect("open");
        let t0 = Utc::now();
        let buyer = BuyerId::new("acme").expect("buyer");
        let kinds = vec![
            CallEventKind::Incoming {
                caller: Some(PhoneNumber::parse("+15125550100").expect("caller")),
                dialed: None,
                campaign: None,
                source: None,
            },
            CallEventKind::IvrInput {
                step: "zip".into(),
                value: "78701".into(),
            },
            CallEventKind::Winner {
                buyer: buyer.clone(),
                price: Money::usd(rust_decimal::Decimal::new(2500, 2)),
                score: rust_decimal::Decimal::new(25, 0),
            },
            CallEventKind::Forwarded {
                buyer: buyer.clone(),
                destination: Destination::parse("+15125550111").expect("dest"),
            },
            CallEventKind::Connected { buyer: Some(buyer) },
            CallEventKind::Recording { url: "r1".into() },
        ];
        let id = CallId::new("CA1").expect("id");
        for (i, kind) in kinds.into_iter().enumerate() {
            let e = CallEvent::new(
                id.clone(),
                t0 + chrono::Duration::seconds(i as i64),
                format!("k{i}"),
                kind,
            );
            s.append_event(&e).await.expect("append");
            let record = s.record(&id).await.expect("record").expect("row");
            let want = CallRow::from_record(&record).expect("row").into_values();
            let c = s.inner.writer.lock().expect("writer");
            let sql = format!(
                "SELECT {} FROM calls WHERE call_id = ?1",
                CALL_COLUMNS.join(", ")
            );
            let got = c.query_row(&sql, ["CA1"], read_row).expect("stored row");
            assert_eq!(got, want, "after event {i}");
        }
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
