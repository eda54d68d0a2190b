//! The SQLite store: the embedded default.
//!
//! One dedicated writer connection (behind a mutex, so writes from this process queue in
//! memory instead of spinning on SQLite's lock) and a few reader connections, all driven
//! through [`tokio::task::spawn_blocking`]. The database runs in WAL mode with
//! `synchronous = FULL` by default: an append returns only after its transaction is
//! committed and synced. Call-log appends are group-committed (see `appends`):
//! concurrent appends share one transaction and one sync. Every write transaction is `BEGIN IMMEDIATE`, which takes
//! SQLite's write lock up front, so a cap reservation's read-check-write is atomic across
//! every connection and every process that opens the same file; `busy_timeout` makes a
//! second writer wait instead of failing. Cap reservations wait no longer than their
//! deadline and hand the lock off between processes through a `<file>-waiters` sidecar
//! (a shared `flock` per waiting process; see `with_busy_deadline`), so two processes on
//! one hot counter share it about evenly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::state::{
    AppendOutcome, CallEvent, CallLog, CallRecord, CapStore, ClaimOutcome, DurationHistory,
    HistoryKey, HistoryStats, ReservationId, ReservationRequest, ReserveOutcome, SeenCallers,
    SeenClaim,
};
use callbid_core::{BuyerId, CallId, PhoneNumber, StateError};
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use rust_decimal::Decimal;

use crate::codec::{
    area_text, from_ns, hour_value, parse_record, to_ns, upsert_sql, SqlValue, CALL_COLUMNS,
};
use crate::error::{Result, StoreError};
use crate::prune::{self, PruneGate};
use crate::report::{
    aggregate_sql, finish_page, page_sql, AggregateRow, CallReports, Dialect, GroupBy, Param,
    RawAggregate, ReportFilter, ReportPage, ReportQuery,
};

mod agents;
mod appends;
mod campaign;
mod caps;
mod migrate;
mod pool;
mod postback;
mod quality;
mod routing;

/// An event row: seq, call id, idempotency key, at (ns), kind, JSON.
pub(crate) type RawEvent = (i64, String, String, i64, String, String);

/// A reservation row: id, expires_ns, and its (counter, amount) increments.
pub(crate) type RawReservation = (String, Option<i64>, Vec<(String, Decimal)>);

/// One item of [`SqliteStore::dump_snapshot`].
#[derive(Debug)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Dump {
    /// Call events, by sequence number.
    Events(Vec<RawEvent>),
    /// Call records, by call id.
    Records(Vec<CallRecord>),
    /// The small state tables, last.
    State(StateDump),
}

/// The small state tables, whole.
#[derive(Debug, Default)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) struct StateDump {
    /// (id, expires_ns, [(counter, amount)])
    pub reservations: Vec<RawReservation>,
    /// (buyer, caller, last_seen_ns)
    pub seen: Vec<(String, String, i64)>,
    /// (buyer, area, hour, calls, billable)
    pub history: Vec<(String, String, i64, i64, i64)>,
}

/// How strongly SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// Sync the WAL on every commit: a committed event survives a process kill and a
    /// power loss. The default.
    #[default]
    Full,
    /// Sync only at checkpoints: survives a process kill (the OS still has the data) but
    /// the last commits may be lost on power loss. Faster.
    Normal,
}

/// Options for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a writer waits for another process's write lock before failing.
    pub busy_timeout: Duration,
    /// Reader connections (file databases only; an in-memory database has one connection).
    pub readers: usize,
    /// Commit durability.
    pub synchronous: Synchronous,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(30),
            readers: 4,
            synchronous: Synchronous::Full,
        }
    }
}

impl SqliteOptions {
    /// Sets the busy timeout.
    pub fn with_busy_timeout(mut self, t: Duration) -> Self {
        self.busy_timeout = t;
        self
    }
    /// Sets the number of reader connections (at least 1 is used).
    pub fn with_readers(mut self, n: usize) -> Self {
        self.readers = n;
        self
    }
    /// Sets commit durability.
    pub fn with_synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }
}

#[derive(Debug)]
struct Inner {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: Option<PathBuf>,
    prune: PruneGate,
    /// `<file>-waiters`: writers waiting for the write lock hold a shared `flock` on it
    /// while they wait, so the writer that holds the lock can tell (see
    /// [`with_busy_deadline`]). `None` in memory, or if the file cannot be opened.
    waiters: Option<std::fs::File>,
    /// Call-log appends waiting for their group commit (see [`appends`]).
    appends: Arc<crate::group::GroupQueue<appends::Work>>,
    /// The call records the group commit last wrote (see [`appends::Warm`]); locked
    /// only while holding `writer`, after it.
    warm: Mutex<appends::Warm>,
}

/// Caps, duplicate callers, duration history, the call log and reports on one SQLite
/// database. Cheap to clone (all clones share the connections).
///
/// Two `SqliteStore`s opened on the same file (in one process or in several) see the
/// same data and keep caps atomic between them.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

fn configure(conn: &Connection, o: &SqliteOptions, file: bool) -> Result<()> {
    const OP: &str = "open";
    let e = StoreError::sqlite;
    conn.busy_timeout(o.busy_timeout).map_err(e(OP))?;
    if file {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(e(OP))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::corrupt(
                OP,
                format!("could not switch to WAL (journal_mode is {mode})"),
            ));
        }
    }
    let sync = match o.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))
    .map_err(e(OP))?;
    Ok(())
}

/// Refuses names SQLite would not treat as a plain, shared database file.
fn check_file_path(path: &Path) -> Result<()> {
    let shown = path.display().to_string();
    let refuse = |reason: &str| -> Result<()> {
        Err(callbid_core::ValidationError::new("path", &shown, reason).into())
    };
    let bytes = path.as_os_str().as_encoded_bytes();
    if bytes.len() >= 5 && bytes[..5].eq_ignore_ascii_case(b"file:") {
        return refuse(
            "SQLite URIs are not accepted (their parameters, e.g. nolock=1, immutable=1 or \
             mode=memory, would break cross-process locking); give a plain file path \
             (write ./file:… for a file really named so)",
        );
    }
    if bytes.is_empty() || bytes == b":memory:" {
        return refuse(
            "not a database file (each connection would get its own private database); \
             use sqlite::memory: / SqliteStore::open_in_memory",
        );
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` with default options,
    /// applying the embedded migrations. Blocking: call it before starting to serve, or
    /// use [`crate::Store::open`] from async code.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens the database file at `path` with `options`.
    ///
    /// `path` is always a file name, never an SQLite URI: a path starting with `file:`
    /// is refused (its query could say `nolock=1`, `immutable=1` or `mode=memory`, which
    /// would break the cross-process locking caps rely on), and so are `:memory:` and
    /// the empty path (use [`SqliteStore::open_in_memory`]). Prefix a relative file that
    /// really is named `file:…` with `./`. Every error names the path.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        check_file_path(&path)?;
        Self::open_file(&path, &options).map_err(|source| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        })
    }

    fn open_file(path: &Path, options: &SqliteOptions) -> Result<Self> {
        const OP: &str = "open";
        // No SQLITE_OPEN_URI; the bundled SQLite is built with SQLITE_USE_URI, which is
        // why `check_file_path` refuses `file:` names before they get here.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut writer =
            Connection::open_with_flags(path, flags).map_err(StoreError::sqlite(OP))?;
        configure(&writer, options, true)?;
        migrate::apply(&mut writer)?;
        let mut readers = Vec::new();
        for _ in 0..options.readers.max(1) {
            let c = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(StoreError::sqlite(OP))?;
            c.busy_timeout(options.busy_timeout)
                .map_err(StoreError::sqlite(OP))?;
            readers.push(Mutex::new(c));
        }
        Ok(Self::from_parts(writer, readers, Some(path.to_path_buf())))
    }

    /// A private in-memory database (one connection; lost when the last clone drops).
    pub fn open_in_memory() -> Result<Self> {
        let mut c = Connection::open_in_memory().map_err(StoreError::sqlite("open"))?;
        configure(&c, &SqliteOptions::default(), false)?;
        migrate::apply(&mut c)?;
        Ok(Self::from_parts(c, Vec::new(), None))
    }

    fn from_parts(
        writer: Connection,
        readers: Vec<Mutex<Connection>>,
        path: Option<PathBuf>,
    ) -> Self {
        SqliteStore {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                waiters: path.as_deref().and_then(open_waiters),
                path,
                prune: PruneGate::default(),
                appends: Arc::default(),
                warm: Mutex::default(),
            }),
        }
    }

    /// The database file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The schema version the database is at (the number of applied migrations).
    pub async fn schema_version(&self) -> Result<i64> {
        self.read("schema_version", |c| {
            c.query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(StoreError::sqlite("schema_version"))
        })
        .await
    }

    async fn write<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside a closure unwinds through its open transaction, which rolls
            // back on drop: the connection is consistent, so a poisoned lock is taken over.
            let mut c = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Task {
            operation,
            message: e.to_string(),
        })?
    }

    /// Runs `f` on the writer connection inside the call log's group commit (see
    /// [`appends::Job`]): in a savepoint of the shared `BEGIN IMMEDIATE` transaction,
    /// answered once that transaction is committed and synced. So concurrent small
    /// writes share one sync with each other and with appends. `f` may run twice (a
    /// batch that fails is retried unit by unit) and must not touch the call log.
    async fn write_grouped<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> Result<T> + Send + 'static,
    {
        let slot = Arc::new(Mutex::new(None));
        let job = appends::Job::new(operation, f, slot.clone());
        appends::submit_job(&self.inner, job, operation).await?;
        let result = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
        result.unwrap_or_else(|| {
            Err(StoreError::Task {
                operation,
                message: "the grouped write was committed without running".to_owned(),
            })
        })
    }

    async fn read<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            if inner.readers.is_empty() {
                let c = inner.writer.lock().unwrap_or_else(PoisonError::into_inner);
                return f(&c);
            }
            let i = inner.next_reader.fetch_add(1, Ordering::Relaxed) % inner.readers.len();
            let c = inner.readers[i]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            f(&c)
        })
        .await
        .map_err(|e| StoreError::Task {
            operation,
            message: e.to_string(),
        })?
    }

    /// A point read (one call's events or record, a few keyed rows: tens of
    /// microseconds) on the calling thread when a reader connection of a file database
    /// is free, so it costs no hand-off to the blocking pool and back; otherwise (all
    /// readers busy, or an in-memory database) it goes through [`Self::read`]. Readers
    /// of a WAL database never wait for the writer, so this does not block the runtime
    /// behind a write.
    async fn read_point<T, F>(&self, operation: &'static str, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        if let Some(c) = self.free_reader() {
            return f(&c);
        }
        self.read(operation, f).await
    }

    /// A reader connection nobody holds, trying each once from the next in turn.
    fn free_reader(&self) -> Option<MutexGuard<'_, Connection>> {
        let readers = &self.inner.readers;
        let start = self.inner.next_reader.fetch_add(1, Ordering::Relaxed);
        (0..readers.len()).find_map(|i| match readers[(start + i) % readers.len()].try_lock() {
            Ok(c) => Some(c),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        })
    }

    /// Appends an event (see [`CallLog::append`]), with this crate's error type.
    pub async fn append_event(&self, event: &CallEvent) -> Result<AppendOutcome> {
        let mut out = appends::submit(&self.inner, vec![event.clone()]).await?;
        Ok(out.pop().unwrap_or(AppendOutcome::Duplicate))
    }

    /// Appends events in order in one transaction (see [`CallLog::append_all`]), with
    /// this crate's error type: all of them are committed, or none.
    pub async fn append_events(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        appends::submit(&self.inner, events.to_vec()).await
    }

    /// Appends many events in **one** transaction with prepared statements (imports,
    /// backfills, benchmarks). Blocking: it runs on the calling thread while holding the
    /// writer connection, so call it outside async code or inside `spawn_blocking`.
    /// Returns how many events were new. Nothing is committed if any event fails.
    pub fn import_blocking<I>(&self, events: I) -> Result<u64>
    where
        I: IntoIterator<Item = CallEvent>,
    {
        const OP: &str = "import";
        let mut c = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The import writes `calls` rows on this connection, outside the group commit.
        self.inner
            .warm
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        // A bigger page cache while the indexes grow (256 MiB), back to the default after.
        c.execute_batch("PRAGMA cache_size = -262144")
            .map_err(StoreError::sqlite(OP))?;
        let result = (|| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            let mut records = appends::Records::default();
            let mut new = 0u64;
            for e in events {
                if appends::append_event(&tx, &e, &mut records)? == AppendOutcome::Recorded {
                    new += 1;
                }
                if records.len() >= IMPORT_HELD_RECORDS {
                    records.flush(&tx)?;
                }
            }
            records.flush(&tx)?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(new)
        })();
        c.execute_batch("PRAGMA cache_size = -2000")
            .map_err(StoreError::sqlite(OP))?;
        result
    }

    /// Deletes cap reservations that expired before `before` (they no longer count).
    /// Returns how many were removed.
    pub async fn prune_expired(&self, before: DateTime<Utc>) -> Result<u64> {
        const OP: &str = "prune_expired";
        let ns = to_ns("before", before)?;
        self.write(OP, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            let n = prune_in(&tx, ns, i64::MAX)?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(n)
        })
        .await
    }

    /// Runs `PRAGMA integrity_check`; returns its report (`"ok"` when healthy).
    pub async fn integrity_check(&self) -> Result<String> {
        self.write("integrity_check", |c| {
            let mut st = c
                .prepare("PRAGMA integrity_check")
                .map_err(StoreError::sqlite("integrity_check"))?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(StoreError::sqlite("integrity_check"))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r.map_err(StoreError::sqlite("integrity_check"))?);
            }
            Ok(out.join("\n"))
        })
        .await
    }

    /// SQLite's `EXPLAIN QUERY PLAN` for the statement a report page runs (to check
    /// which index answers a filter).
    pub async fn explain_page(&self, query: &ReportQuery) -> Result<String> {
        const OP: &str = "explain";
        let sql = page_sql(Dialect::Sqlite, query)?;
        self.read(OP, move |c| {
            let mut st = c
                .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(rusqlite::params_from_iter(values(sql.params)), |r| {
                    r.get::<_, String>(3)
                })
                .map_err(StoreError::sqlite(OP))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r.map_err(StoreError::sqlite(OP))?);
            }
            Ok(out.join("\n"))
        })
        .await
    }

    /// Streams the whole database for copying to another store, read in **one** read
    /// transaction, so the copy is one consistent snapshot even while this store keeps
    /// taking writes: batches of up to `batch` events (by sequence number), then of
    /// call records (by id), then the small state tables once. A file database is read
    /// on a connection of its own (writers go on meanwhile; WAL keeps the snapshot); an
    /// in-memory one holds its only connection, so its writes wait until the stream ends
    /// or is dropped.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn dump_snapshot(&self, batch: usize) -> tokio::sync::mpsc::Receiver<Result<Dump>> {
        const OP: &str = "snapshot";
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let inner = self.inner.clone();
        let batch = batch.max(1);
        tokio::task::spawn_blocking(move || {
            let run = |c: &Connection| -> Result<()> {
                // Ends (rolls back) when dropped; the first read pins the snapshot.
                let snap = c.unchecked_transaction().map_err(StoreError::sqlite(OP))?;
                let mut after = i64::MIN;
                loop {
                    let rows = dump_events(&snap, after, batch)?;
                    let Some(last) = rows.last() else { break };
                    after = last.0;
                    if tx.blocking_send(Ok(Dump::Events(rows))).is_err() {
                        return Ok(());
                    }
                }
                let mut after = String::new();
                loop {
                    let recs = dump_records(&snap, &after, batch)?;
                    let Some(last) = recs.last() else { break };
                    after = last.call_id.as_str().to_string();
                    if tx.blocking_send(Ok(Dump::Records(recs))).is_err() {
                        return Ok(());
                    }
                }
                let _ = tx.blocking_send(Ok(Dump::State(dump_state(&snap)?)));
                Ok(())
            };
            let result = match &inner.path {
                Some(path) => Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .and_then(|c| c.busy_timeout(Duration::from_secs(30)).map(|()| c))
                .map_err(StoreError::sqlite(OP))
                .and_then(|c| run(&c)),
                None => run(&inner.writer.lock().unwrap_or_else(PoisonError::into_inner)),
            };
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        rx
    }

    /// Number of calls in the summary table.
    pub async fn call_count(&self) -> Result<u64> {
        self.read("call_count", |c| {
            c.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get::<_, i64>(0))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .map_err(StoreError::sqlite("call_count"))
        })
        .await
    }

    async fn reserve_inner(&self, request: &ReservationRequest) -> Result<ReserveOutcome> {
        const OP: &str = "reserve";
        let now = to_ns("now", request.now)?;
        let expires = request
            .expires_at
            .map(|t| to_ns("expires_at", t))
            .transpose()?;
        // Out of range only for instants near 1677, where there is nothing to prune.
        let prune_before = to_ns("now", prune::cutoff(request.now)).ok();
        let id = request.id.0.clone();
        let incs = merge_increments(request);
        let inner = self.inner.clone();
        let deadline = request.deadline;
        self.write(OP, move |c| {
            let waiters = inner.waiters.as_ref();
            with_busy_deadline(c, deadline, waiters, |c| {
                reserve_tx(c, &inner, &id, &incs, now, expires, prune_before)
            })
        })
        .await
    }
}

// The busy handler's state for the current (blocking) thread: when to give up, a
// xorshift state for the jitter, and the waiters file to announce itself on.
thread_local! {
    static BUSY_UNTIL: std::cell::Cell<Option<std::time::Instant>> =
        const { std::cell::Cell::new(None) };
    static JITTER: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    static WAITING_ON: std::cell::RefCell<Option<std::fs::File>> =
        const { std::cell::RefCell::new(None) };
    static ANNOUNCED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Opens (creating) the waiters file beside the database. Without it reservations still
/// work, only without the hand-off.
fn open_waiters(db: &Path) -> Option<std::fs::File> {
    let mut name = db.as_os_str().to_owned();
    name.push("-waiters");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(PathBuf::from(name))
        .ok()
}

/// The longest a waiter sleeps between two tries of the write lock.
const WAIT_SLICE_MAX_US: u64 = 1_250;
/// How long a writer that just committed stays away from the lock when another process
/// is waiting for it: longer than a waiter's longest sleep, so the waiter's next try
/// finds the lock free.
const HAND_OFF_US: u64 = 1_500;

/// Runs `f` with SQLite's busy handling replaced by [`jittered_busy`] until `deadline`
/// (or, without one, the connection's own `busy_timeout` from now), then restores the
/// busy timeout.
///
/// SQLite's default busy handler sleeps in steps growing to 100 ms, so a process that
/// waits sleeps through many commits of one that does not: across two processes on one
/// counter one took every grant. Here a waiter sleeps short jittered slices (0.25–1.25
/// ms) and, while it waits, holds a shared lock on the `-waiters` file. A writer that
/// commits while some other process holds that lock (its non-blocking exclusive lock
/// fails) hands off: it stays away from the write lock for 1.5 ms before answering, so
/// the waiter's next try gets in instead of the same writer taking the lock again right
/// after its commit. The deadline bounds both the wait and the hand-off.
fn with_busy_deadline<T>(
    c: &mut Connection,
    deadline: Option<std::time::Instant>,
    waiters: Option<&std::fs::File>,
    f: impl FnOnce(&mut Connection) -> Result<T>,
) -> Result<T> {
    const OP: &str = "reserve";
    let saved_ms: i64 = c
        .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
        .map_err(StoreError::sqlite(OP))?;
    let fallback = std::time::Instant::now() + Duration::from_millis(saved_ms.max(0) as u64);
    let until = deadline.unwrap_or(fallback);
    BUSY_UNTIL.with(|b| b.set(Some(until)));
    WAITING_ON.with(|w| *w.borrow_mut() = waiters.and_then(|f| f.try_clone().ok()));
    ANNOUNCED.with(|a| a.set(false));
    c.busy_handler(Some(jittered_busy))
        .map_err(StoreError::sqlite(OP))?;
    let out = f(c);
    stop_waiting();
    BUSY_UNTIL.with(|b| b.set(None));
    c.busy_timeout(Duration::from_millis(saved_ms.max(0) as u64))
        .map_err(StoreError::sqlite(OP))?;
    if out.is_ok() {
        hand_off_if_awaited(waiters, until);
    }
    out
}

/// Withdraws this thread's announcement (its shared lock on the waiters file).
fn stop_waiting() {
    WAITING_ON.with(|w| {
        if let Some(f) = w.borrow_mut().take() {
            if ANNOUNCED.with(|a| a.replace(false)) {
                let _ = f.unlock();
            }
        }
    });
}

/// After a commit: if another process is waiting for the write lock, stay away from it
/// for [`HAND_OFF_US`] (never past `until`).
fn hand_off_if_awaited(waiters: Option<&std::fs::File>, until: std::time::Instant) {
    let Some(f) = waiters else {
        return;
    };
    let awaited = match f.try_lock() {
        Ok(()) => {
            let _ = f.unlock();
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    };
    if awaited {
        let left = until.saturating_duration_since(std::time::Instant::now());
        std::thread::sleep(Duration::from_micros(HAND_OFF_US).min(left));
    }
}

/// SQLite busy handler: `false` (give up, `SQLITE_BUSY`) once the thread's deadline has
/// passed; otherwise announces the wait (first call), sleeps a random 0.25–1.25 ms
/// without passing the deadline, and asks SQLite to retry.
fn jittered_busy(_attempt: i32) -> bool {
    let Some(until) = BUSY_UNTIL.with(|b| b.get()) else {
        return false;
    };
    let now = std::time::Instant::now();
    if now >= until {
        return false;
    }
    if !ANNOUNCED.with(|a| a.get()) {
        WAITING_ON.with(|w| {
            if let Some(f) = w.borrow().as_ref() {
                if f.try_lock_shared().is_ok() {
                    ANNOUNCED.with(|a| a.set(true));
                }
            }
        });
    }
    let r = JITTER.with(|j| {
        let mut x = j.get();
        if x == 0 {
            x = (now.elapsed().as_nanos() as u64
                ^ std::process::id() as u64
                ^ 0x9e37_79b9_7f4a_7c15)
                | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        j.set(x);
        x
    });
    let sleep = Duration::from_micros(250 + r % (WAIT_SLICE_MAX_US - 250)).min(until - now);
    std::thread::sleep(sleep);
    true
}

/// One reservation inside `BEGIN IMMEDIATE`.
fn reserve_tx(
    c: &mut Connection,
    inner: &Inner,
    id: &str,
    incs: &[(String, (Decimal, Decimal))],
    now: i64,
    expires: Option<i64>,
    prune_before: Option<i64>,
) -> Result<ReserveOutcome> {
    const OP: &str = "reserve";
    {
        {
            let e = StoreError::sqlite(OP);
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(e)?;
            let exists = tx
                .prepare_cached("SELECT 1 FROM cap_reservations WHERE id = ?1")
                .and_then(|mut s| s.exists([&id]))
                .map_err(StoreError::sqlite(OP))?;
            if exists {
                return Ok(ReserveOutcome::Reserved);
            }
            if let Some(before) = prune_before {
                if inner.prune.claim() {
                    let n = prune_in(&tx, before, prune::BATCH)?;
                    inner.prune.done(n);
                }
            }
            for (key, (amount, limit)) in incs {
                let used = caps::usage_in(&tx, key, now)?;
                // An overflowing sum can only exceed the limit.
                if used.checked_add(*amount).is_none_or(|total| total > *limit) {
                    // Commits what pruning deleted (nothing else was written).
                    tx.commit().map_err(StoreError::sqlite(OP))?;
                    return Ok(ReserveOutcome::Exceeded {
                        key: key.clone(),
                        used,
                        limit: *limit,
                    });
                }
            }
            caps::insert(&tx, id, expires, incs)?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(ReserveOutcome::Reserved)
        }
    }
}

/// Deletes up to `limit` reservations that expired at or before `before` (oldest
/// first), with their increments. Returns how many.
fn prune_in(tx: &Transaction<'_>, before: i64, limit: i64) -> Result<u64> {
    const OP: &str = "prune";
    let ids = tx
        .prepare_cached(
            "SELECT id FROM cap_reservations WHERE expires_ns IS NOT NULL AND expires_ns <= ?1 \
             ORDER BY expires_ns LIMIT ?2",
        )
        .and_then(|mut s| {
            s.query_map(params![before, limit], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(StoreError::sqlite(OP))?;
    for id in &ids {
        caps::delete(tx, id)?;
    }
    Ok(ids.len() as u64)
}

/// The increments of a request per counter, with a counter listed twice counted as the
/// sum of its amounts (and the smallest limit), in request order of first appearance.
pub(crate) fn merge_increments(request: &ReservationRequest) -> Vec<(String, (Decimal, Decimal))> {
    let mut order: Vec<String> = Vec::new();
    let mut m: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for i in &request.increments {
        match m.get_mut(&i.key) {
            Some((a, l)) => {
                *a = a.checked_add(i.amount).unwrap_or(Decimal::MAX);
                *l = (*l).min(i.limit);
            }
            None => {
                order.push(i.key.clone());
                m.insert(i.key.clone(), (i.amount, i.limit));
            }
        }
    }
    order
        .into_iter()
        .filter_map(|k| m.remove(&k).map(|v| (k, v)))
        .collect()
}

/// Up to `limit` events after sequence number `after`, in order, as raw columns
/// (seq, call id, key, at, kind, JSON): for copying to another store.
fn dump_events(c: &Connection, after: i64, limit: usize) -> Result<Vec<RawEvent>> {
    const OP: &str = "dump_events";
    let mut st = c
        .prepare_cached(
            "SELECT seq, call_id, idempotency_key, at_ns, kind, event FROM call_events \
             WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .map_err(StoreError::sqlite(OP))?;
    let rows = st
        .query_map(params![after, limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .map_err(StoreError::sqlite(OP))?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(StoreError::sqlite(OP))
}

/// Up to `limit` call records with ids after `after`, by id.
fn dump_records(c: &Connection, after: &str, limit: usize) -> Result<Vec<CallRecord>> {
    const OP: &str = "dump_records";
    let mut st = c
        .prepare_cached("SELECT record FROM calls WHERE call_id > ?1 ORDER BY call_id LIMIT ?2")
        .map_err(StoreError::sqlite(OP))?;
    let rows = st
        .query_map(params![after, limit as i64], |r| r.get::<_, String>(0))
        .map_err(StoreError::sqlite(OP))?;
    let mut out = Vec::new();
    for r in rows {
        out.push(parse_record(OP, &r.map_err(StoreError::sqlite(OP))?)?);
    }
    Ok(out)
}

/// Caps, seen callers and history, whole (small tables).
fn dump_state(c: &Connection) -> Result<StateDump> {
    const OP: &str = "dump_state";
    let e = StoreError::sqlite;
    let mut d = StateDump::default();
    let mut st = c
        .prepare("SELECT id, expires_ns FROM cap_reservations ORDER BY id")
        .map_err(e(OP))?;
    let res = st
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?))
        })
        .map_err(e(OP))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(e(OP))?;
    let mut inc = c
        .prepare("SELECT counter, amount FROM cap_increments WHERE reservation_id = ?1")
        .map_err(e(OP))?;
    for (id, exp) in res {
        let mut incs = Vec::new();
        let rows = inc
            .query_map([&id], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(e(OP))?;
        for row in rows {
            let (counter, amount) = row.map_err(e(OP))?;
            let amount = Decimal::from_str_exact(&amount)
                .map_err(|err| StoreError::corrupt(OP, format!("{amount:?}: {err}")))?;
            incs.push((counter, amount));
        }
        d.reservations.push((id, exp, incs));
    }
    let mut st = c
        .prepare("SELECT buyer, caller, last_seen_ns FROM seen_callers")
        .map_err(e(OP))?;
    d.seen = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(e(OP))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(e(OP))?;
    let mut st = c
        .prepare("SELECT buyer, area, hour_of_week, calls, billable FROM duration_history")
        .map_err(e(OP))?;
    d.history = st
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .map_err(e(OP))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(e(OP))?;
    Ok(d)
}

/// The record of the last call an import touched, and whether its `calls` row is
/// behind (`true` while an import defers writing it).
/// An import writes its held summary rows when it holds this many calls' records.
const IMPORT_HELD_RECORDS: usize = 4096;

fn upsert_call(tx: &Transaction<'_>, r: [SqlValue; CALL_COLUMNS.len()]) -> Result<()> {
    const OP: &str = "append";
    thread_local! {
        static SQL: String = upsert_sql(Dialect::Sqlite, 1);
    }
    let sql = SQL.with(Clone::clone);
    let mut st = tx.prepare_cached(&sql).map_err(StoreError::sqlite(OP))?;
    st.execute(rusqlite::params_from_iter(r.into_iter().map(sql_value)))
        .map_err(StoreError::sqlite(OP))?;
    Ok(())
}

/// A `calls` column value as SQLite binds it.
pub(super) fn sql_value(v: SqlValue) -> Value {
    match v {
        SqlValue::Int(Some(i)) => Value::Integer(i),
        SqlValue::Text(Some(s)) => Value::Text(s),
        SqlValue::Int(None) | SqlValue::Text(None) => Value::Null,
    }
}

fn values(params: Vec<Param>) -> Vec<Value> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Int(i) => Value::Integer(i),
            Param::Text(s) => Value::Text(s),
        })
        .collect()
}

#[async_trait]
impl CallReports for SqliteStore {
    async fn page(&self, query: &ReportQuery) -> Result<ReportPage> {
        const OP: &str = "report page";
        let sql = page_sql(Dialect::Sqlite, query)?;
        let q = query.clone();
        self.read(OP, move |c| {
            let mut st = c
                .prepare_cached(&sql.text)
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(rusqlite::params_from_iter(values(sql.params)), |r| {
                    r.get::<_, String>(0)
                })
                .map_err(StoreError::sqlite(OP))?;
            let mut out = Vec::with_capacity(q.limit as usize + 1);
            for r in rows {
                out.push(parse_record(OP, &r.map_err(StoreError::sqlite(OP))?)?);
            }
            finish_page(&q, out)
        })
        .await
    }

    async fn aggregate(
        &self,
        filter: &ReportFilter,
        group_by: GroupBy,
    ) -> Result<Vec<AggregateRow>> {
        const OP: &str = "aggregate";
        let sql = aggregate_sql(Dialect::Sqlite, filter, group_by)?;
        self.read(OP, move |c| {
            let mut st = c
                .prepare_cached(&sql.text)
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(rusqlite::params_from_iter(values(sql.params)), |r| {
                    Ok(RawAggregate {
                        group: r.get(0)?,
                        calls: r.get(1)?,
                        accepted: r.get(2)?,
                        fallbacks: r.get(3)?,
                        bids: r.get(4)?,
                        price_sum: r.get(5)?,
                        revenue_sum: r.get(6)?,
                        payout_sum: r.get(7)?,
                        currencies: r.get(8)?,
                        currency: r.get(9)?,
                    })
                })
                .map_err(StoreError::sqlite(OP))?;
            let mut out = Vec::new();
            for r in rows {
                out.push(r.map_err(StoreError::sqlite(OP))?.finish(group_by)?);
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl CallLog for SqliteStore {
    async fn append(&self, event: &CallEvent) -> Result<AppendOutcome, StateError> {
        self.append_event(event)
            .await
            .map_err(|e| e.into_state("append"))
    }
    async fn append_all(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>, StateError> {
        self.append_events(events)
            .await
            .map_err(|e| e.into_state("append"))
    }

    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError> {
        const OP: &str = "events";
        let id = call.as_str().to_string();
        self.read_point(OP, move |c| {
            let mut st = c
                .prepare_cached("SELECT event FROM call_events WHERE call_id = ?1 ORDER BY seq")
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map([id], |r| r.get::<_, String>(0))
                .map_err(StoreError::sqlite(OP))?;
            let mut out = Vec::new();
            for r in rows {
                let j = r.map_err(StoreError::sqlite(OP))?;
                out.push(serde_json::from_str(&j).map_err(|e| StoreError::corrupt(OP, e))?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn has_key_prefix(&self, call: &CallId, prefix: &str) -> Result<bool, StateError> {
        const OP: &str = "has_key_prefix";
        let (id, prefix) = (call.as_str().to_string(), prefix.to_string());
        self.read_point(OP, move |c| {
            // `substr` and `length` both count characters; the (call_id,
            // idempotency_key) index covers the scan of one call's keys.
            c.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM call_events WHERE call_id = ?1 \
                 AND substr(idempotency_key, 1, length(?2)) = ?2)",
            )
            .and_then(|mut s| s.query_row(params![id, prefix], |r| r.get::<_, bool>(0)))
            .map_err(StoreError::sqlite(OP))
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError> {
        const OP: &str = "record";
        let id = call.as_str().to_string();
        self.read_point(OP, move |c| {
            c.prepare_cached("SELECT record FROM calls WHERE call_id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get::<_, String>(0)).optional())
                .map_err(StoreError::sqlite(OP))?
                .map(|j| parse_record(OP, &j))
                .transpose()
        })
        .await
        .map_err(|e| e.into_state(OP))
    }
}

#[async_trait]
impl CapStore for SqliteStore {
    async fn usage(&self, key: &str, now: DateTime<Utc>) -> Result<Decimal, StateError> {
        const OP: &str = "usage";
        let key = key.to_string();
        let now = to_ns("now", now).map_err(|e| e.into_state(OP))?;
        self.read_point(OP, move |c| caps::usage_in(c, &key, now))
            .await
            .map_err(|e| e.into_state(OP))
    }

    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, StateError> {
        self.reserve_inner(request)
            .await
            .map_err(|e| e.into_state("reserve"))
    }

    async fn release(&self, id: &ReservationId) -> Result<bool, StateError> {
        const OP: &str = "release";
        let id = id.0.clone();
        self.write(OP, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            let n = caps::delete(&tx, &id)?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(n)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }
}

#[async_trait]
impl SeenCallers for SqliteStore {
    async fn last_seen(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        const OP: &str = "last_seen";
        let (b, p) = (buyer.as_str().to_string(), caller.as_str().to_string());
        self.read_point(OP, move |c| {
            c.prepare_cached(
                "SELECT last_seen_ns FROM seen_callers WHERE buyer = ?1 AND caller = ?2",
            )
            .and_then(|mut s| s.query_row([b, p], |r| r.get::<_, i64>(0)).optional())
            .map(|o| o.map(from_ns))
            .map_err(StoreError::sqlite(OP))
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn record(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        const OP: &str = "record_seen";
        let (b, p) = (buyer.as_str().to_string(), caller.as_str().to_string());
        let at = to_ns("at", at).map_err(|e| e.into_state(OP))?;
        self.write(OP, move |c| {
            c.prepare_cached(
                "INSERT INTO seen_callers (buyer, caller, last_seen_ns) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (buyer, caller) DO UPDATE SET last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
            )
            .and_then(|mut s| s.execute(params![b, p, at]))
            .map_err(StoreError::sqlite(OP))?;
            Ok(())
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn claim(&self, claim: &SeenClaim) -> Result<ClaimOutcome, StateError> {
        const OP: &str = "claim_seen";
        let conv = || -> Result<(i64, i64, i64)> {
            Ok((
                to_ns("since", claim.since)?,
                to_ns("now", claim.now)?,
                to_ns("expires_at", claim.expires_at)?,
            ))
        };
        let (since, now, expires) = conv().map_err(|e| e.into_state(OP))?;
        let (b, p) = (
            claim.buyer.as_str().to_string(),
            claim.caller.as_str().to_string(),
        );
        let holder = claim.holder.0.clone();
        self.write(OP, move |c| {
            // BEGIN IMMEDIATE: the check and the claim are one write transaction, so a
            // second process cannot read between them.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            let out = claim_in(&tx, &b, &p, &holder, since, now, expires)?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn confirm_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        const OP: &str = "confirm_seen_claim";
        let (b, p) = (buyer.as_str().to_string(), caller.as_str().to_string());
        let holder = holder.0.clone();
        let at = to_ns("at", at).map_err(|e| e.into_state(OP))?;
        self.write(OP, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            tx.execute(
                "INSERT INTO seen_callers (buyer, caller, last_seen_ns) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (buyer, caller) DO UPDATE SET last_seen_ns = MAX(last_seen_ns, excluded.last_seen_ns)",
                params![b, p, at],
            )
            .map_err(StoreError::sqlite(OP))?;
            tx.execute(
                "DELETE FROM seen_claims WHERE buyer = ?1 AND caller = ?2 AND holder = ?3",
                params![b, p, holder],
            )
            .map_err(StoreError::sqlite(OP))?;
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(())
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn release_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
    ) -> Result<bool, StateError> {
        const OP: &str = "release_seen_claim";
        let (b, p) = (buyer.as_str().to_string(), caller.as_str().to_string());
        let holder = holder.0.clone();
        self.write(OP, move |c| {
            c.execute(
                "DELETE FROM seen_claims WHERE buyer = ?1 AND caller = ?2 AND holder = ?3",
                params![b, p, holder],
            )
            .map(|n| n > 0)
            .map_err(StoreError::sqlite(OP))
        })
        .await
        .map_err(|e| e.into_state(OP))
    }
}

#[async_trait]
impl DurationHistory for SqliteStore {
    async fn record(&self, keys: &[HistoryKey], billable: bool) -> Result<(), StateError> {
        const OP: &str = "record_history";
        let rows: Vec<(String, String, i64)> = keys
            .iter()
            .map(|k| {
                (
                    k.buyer.as_str().to_string(),
                    area_text(&k.area),
                    hour_value(k.hour_of_week),
                )
            })
            .collect();
        let b = i64::from(billable);
        // In the call log's group commit: a savepoint of the shared transaction, so
        // the record shares its sync with concurrent appends and other records.
        self.write_grouped(OP, move |tx| {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO duration_history (buyer, area, hour_of_week, calls, billable) \
                     VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT (buyer, area, hour_of_week) \
                     DO UPDATE SET calls = calls + 1, billable = billable + excluded.billable",
                )
                .map_err(StoreError::sqlite(OP))?;
            for (buyer, area, hour) in &rows {
                st.execute(params![buyer, area, hour, b])
                    .map_err(StoreError::sqlite(OP))?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<HistoryStats>, StateError> {
        const OP: &str = "history_stats";
        let rows: Vec<(String, String, i64)> = keys
            .iter()
            .map(|k| {
                (
                    k.buyer.as_str().to_string(),
                    area_text(&k.area),
                    hour_value(k.hour_of_week),
                )
            })
            .collect();
        self.read_point(OP, move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT calls, billable FROM duration_history \
                     WHERE buyer = ?1 AND area = ?2 AND hour_of_week = ?3",
                )
                .map_err(StoreError::sqlite(OP))?;
            let mut out = Vec::with_capacity(rows.len());
            for (buyer, area, hour) in &rows {
                let s = st
                    .query_row(params![buyer, area, hour], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                    })
                    .optional()
                    .map_err(StoreError::sqlite(OP))?;
                out.push(
                    s.map_or_else(HistoryStats::default, |(calls, billable)| HistoryStats {
                        calls: u64::try_from(calls).unwrap_or(0),
                        billable: u64::try_from(billable).unwrap_or(0),
                    }),
                );
            }
            Ok(out)
        })
        .await
        .map_err(|e| e.into_state(OP))
    }
}

/// [`SeenCallers::claim`] inside an immediate transaction.
fn claim_in(
    tx: &Transaction<'_>,
    buyer: &str,
    caller: &str,
    holder: &str,
    since: i64,
    now: i64,
    expires: i64,
) -> Result<ClaimOutcome> {
    const OP: &str = "claim_seen";
    let seen: Option<i64> = tx
        .query_row(
            "SELECT last_seen_ns FROM seen_callers WHERE buyer = ?1 AND caller = ?2",
            params![buyer, caller],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some(at) = seen.filter(|at| *at > since) {
        return Ok(ClaimOutcome::Seen { at: from_ns(at) });
    }
    let held: Option<String> = tx
        .query_row(
            "SELECT holder FROM seen_claims WHERE buyer = ?1 AND caller = ?2 \
             AND expires_ns > ?3 AND holder <> ?4",
            params![buyer, caller, now, holder],
            |r| r.get(0),
        )
        .optional()
        .map_err(StoreError::sqlite(OP))?;
    if let Some(h) = held {
        return Ok(ClaimOutcome::Held {
            holder: ReservationId(h),
        });
    }
    tx.execute(
        "INSERT INTO seen_claims (buyer, caller, holder, expires_ns) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (buyer, caller) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns",
        params![buyer, caller, holder, expires],
    )
    .map_err(StoreError::sqlite(OP))?;
    Ok(ClaimOutcome::Claimed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::state::{CallEventKind, CounterIncrement};
    use rust_decimal_macros::dec;

    fn ev(call: &str, key: &str, kind: CallEventKind) -> CallEvent {
        CallEvent::new(CallId::new(call).unwrap(), Utc::now(), key, kind)
    }

    /// While another connection holds the write lock, a reservation gives up at its
    /// deadline (not after the 30 s busy timeout), and succeeds once the lock is free;
    /// the connection's busy timeout is restored afterwards.
    #[tokio::test]
    async fn reserve_waits_no_longer_than_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deadline.db");
        let s = SqliteStore::open(&path).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let req = |id: &str, deadline| ReservationRequest {
            id: ReservationId(id.into()),
            increments: vec![CounterIncrement {
                key: "k".into(),
                amount: dec!(1),
                limit: dec!(10),
            }],
            expires_at: None,
            now: Utc::now(),
            deadline,
        };
        for wait_ms in [0u64, 50, 300] {
            let started = std::time::Instant::now();
            let deadline = started + Duration::from_millis(wait_ms);
            let r = s
                .reserve(&req(&format!("r{wait_ms}"), Some(deadline)))
                .await;
            let waited = started.elapsed();
            assert!(r.is_err(), "{r:?}");
            assert!(waited >= Duration::from_millis(wait_ms), "{waited:?}");
            assert!(waited < Duration::from_millis(wait_ms + 2000), "{waited:?}");
        }
        other.execute_batch("COMMIT").unwrap();
        assert_eq!(
            s.reserve(&req(
                "free",
                Some(std::time::Instant::now() + Duration::from_secs(5))
            ))
            .await
            .unwrap(),
            ReserveOutcome::Reserved
        );
        let ms: i64 = s
            .write("t", |c| {
                c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))
                    .map_err(StoreError::sqlite("t"))
            })
            .await
            .unwrap();
        assert_eq!(ms, 30_000);
    }

    #[tokio::test]
    async fn events_are_append_only() {
        let s = SqliteStore::open_in_memory().unwrap();
        s.append_event(&ev(
            "CA1",
            "rej",
            CallEventKind::Rejected {
                reason: "blocked".into(),
            },
        ))
        .await
        .unwrap();
        let r = s
            .write("t", |c| {
                c.execute("DELETE FROM call_events", [])
                    .map_err(StoreError::sqlite("t"))
            })
            .await;
        assert!(r.unwrap_err().to_string().contains("append-only"));
        assert_eq!(s.schema_version().await.unwrap(), migrate::LATEST);
    }

    #[tokio::test]
    async fn a_counter_listed_twice_counts_its_sum() {
        let s = SqliteStore::open_in_memory().unwrap();
        let inc = |a| CounterIncrement {
            key: "k".into(),
            amount: a,
            limit: dec!(1),
        };
        let r = ReservationRequest {
            id: ReservationId("r".into()),
            increments: vec![inc(dec!(1)), inc(dec!(1))],
            expires_at: None,
            now: Utc::now(),
            deadline: None,
        };
        assert!(matches!(
            s.reserve(&r).await.unwrap(),
            ReserveOutcome::Exceeded { .. }
        ));
    }

    #[test]
    fn sqlite_uris_and_private_names_are_refused_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        for query in [
            "?nolock=1",
            "?immutable=1",
            "?mode=memory",
            "?vfs=unix-none",
            "",
        ] {
            for scheme in ["file:", "FILE:"] {
                let path = format!("{scheme}{}/x.db{query}", dir.path().display());
                match SqliteStore::open(&path) {
                    Err(StoreError::Invalid(e)) => {
                        assert_eq!(e.field, "path");
                        let shown = e.to_string();
                        assert!(shown.contains(&path) && shown.contains("URI"), "{shown}");
                    }
                    other => panic!("{path}: {other:?}"),
                }
            }
        }
        for path in [":memory:", ""] {
            assert!(
                matches!(SqliteStore::open(path), Err(StoreError::Invalid(e)) if e.field == "path"),
                "{path:?}"
            );
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing created"
        );
        // A file really named `file:…` opens when written as a relative path.
        let named = dir.path().join("file:y.db");
        let s = SqliteStore::open(&named).unwrap();
        assert_eq!(s.path(), Some(named.as_path()));
        assert!(named.exists());
    }

    #[test]
    fn open_and_migrate_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no/such/dir/calls.db");
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, vec![b'x'; 8192]).unwrap();
        let newer = dir.path().join("newer.db");
        Connection::open(&newer)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        for (path, why) in [
            (&missing, "unable to open"),
            (&garbage, "not a database"),
            (&newer, "newer than this build"),
        ] {
            let e = SqliteStore::open(path).unwrap_err();
            assert!(matches!(e, StoreError::Open { .. }), "{e:?}");
            let shown = e.to_string();
            assert!(
                shown.contains(&path.display().to_string()) && shown.contains(why),
                "{shown}"
            );
            // The path survives the mapping to core's error too.
            let state = e.into_state("open").to_string();
            assert!(state.contains(&path.display().to_string()), "{state}");
        }
    }

    fn count(s: &SqliteStore, table: &'static str) -> i64 {
        let c = s.inner.writer.lock().unwrap();
        c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn reserve_prunes_expired_reservations_in_bounded_batches() {
        let s = SqliteStore::open_in_memory().unwrap();
        let t = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 1, 12, 0, 0).unwrap();
        let hour = chrono::Duration::hours(1);
        let req = |id: String, key: &str, limit, now, expires_at| ReservationRequest {
            id: ReservationId(id),
            increments: vec![CounterIncrement {
                key: key.into(),
                amount: dec!(1),
                limit,
            }],
            expires_at,
            now,
            deadline: None,
        };
        // 300 live-call reservations that all ended an hour before `t`.
        for i in 0..300 {
            let r = req(
                format!("old{i}"),
                "live",
                dec!(1000),
                t - hour * 2,
                Some(t - hour),
            );
            assert_eq!(s.reserve(&r).await.unwrap(), ReserveOutcome::Reserved);
        }
        // The first of them claimed the gate (nothing had expired yet): closed since.
        assert_eq!(count(&s, "cap_reservations"), 300);
        assert_eq!(usage_at(&s, "live", t).await, dec!(0));

        // Open again: a reservation deletes one full batch, oldest first...
        s.inner.prune.reopen();
        let r = req("new1".into(), "live", dec!(1000), t, Some(t + hour));
        assert_eq!(s.reserve(&r).await.unwrap(), ReserveOutcome::Reserved);
        assert_eq!(count(&s, "cap_reservations"), 300 - prune::BATCH + 1);
        // ...a full batch leaves the gate open, and a refused reservation prunes too...
        let r = req("over".into(), "full", dec!(0), t, None);
        assert!(matches!(
            s.reserve(&r).await.unwrap(),
            ReserveOutcome::Exceeded { .. }
        ));
        assert_eq!(count(&s, "cap_reservations"), 1);
        assert_eq!(count(&s, "cap_increments"), 1);
        // ...and after a partial batch the gate stays shut for the interval.
        let r = req(
            "old-again".into(),
            "live",
            dec!(1000),
            t - hour * 2,
            Some(t - hour),
        );
        s.reserve(&r).await.unwrap();
        let r = req("new2".into(), "live", dec!(1000), t, Some(t + hour));
        s.reserve(&r).await.unwrap();
        assert_eq!(count(&s, "cap_reservations"), 3);
        assert_eq!(usage_at(&s, "live", t).await, dec!(2));
        // Never a reservation still inside the grace period, even when asked for later.
        s.inner.prune.reopen();
        let now = Utc::now();
        let r = req(
            "fresh".into(),
            "x",
            dec!(5),
            now - hour,
            Some(now - chrono::Duration::seconds(1)),
        );
        s.reserve(&r).await.unwrap();
        let r = req("later".into(), "x", dec!(5), now + hour * 24, None);
        s.reserve(&r).await.unwrap();
        assert_eq!(
            usage_at(&s, "x", now - chrono::Duration::seconds(30)).await,
            dec!(2)
        );
    }

    async fn usage_at(s: &SqliteStore, key: &str, now: DateTime<Utc>) -> Decimal {
        CapStore::usage(s, key, now).await.unwrap()
    }

    #[tokio::test]
    async fn a_snapshot_ignores_writes_made_after_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path().join("snap.db")).unwrap();
        for call in ["CA1", "CA2", "CA3"] {
            for key in ["a", "b"] {
                s.append_event(&ev(call, key, CallEventKind::Recording { url: key.into() }))
                    .await
                    .unwrap();
            }
        }
        let mut rx = s.dump_snapshot(1);
        let first = rx.recv().await.unwrap().unwrap();
        assert!(matches!(&first, Dump::Events(e) if e.len() == 1));
        // Written while the copy is under way: not part of it.
        s.append_event(&ev(
            "CA4",
            "a",
            CallEventKind::Recording { url: "u".into() },
        ))
        .await
        .unwrap();
        s.append_event(&ev(
            "CA1",
            "c",
            CallEventKind::Recording { url: "u".into() },
        ))
        .await
        .unwrap();
        let r = ReservationRequest {
            id: ReservationId("r".into()),
            increments: vec![CounterIncrement {
                key: "k".into(),
                amount: dec!(1),
                limit: dec!(1),
            }],
            expires_at: None,
            now: Utc::now(),
            deadline: None,
        };
        s.reserve(&r).await.unwrap();
        let (mut events, mut records, mut reservations) = (1, Vec::new(), None);
        while let Some(item) = rx.recv().await {
            match item.unwrap() {
                Dump::Events(e) => events += e.len(),
                Dump::Records(r) => records.extend(r),
                Dump::State(st) => reservations = Some(st.reservations.len()),
            }
        }
        assert_eq!(events, 6);
        assert_eq!(records.len(), 3);
        assert!(records.iter().all(|r| r.events == 2), "{records:?}");
        assert_eq!(reservations, Some(0));
    }

    #[tokio::test]
    async fn out_of_range_instants_are_invalid_input() {
        let s = SqliteStore::open_in_memory().unwrap();
        let far = chrono::TimeZone::with_ymd_and_hms(&Utc, 2400, 1, 1, 0, 0, 0).unwrap();
        let e = CallEvent::new(
            CallId::new("CA1").unwrap(),
            far,
            "k",
            CallEventKind::Recording { url: "u".into() },
        );
        assert!(matches!(
            CallLog::append(&s, &e).await,
            Err(StateError::Invalid(v)) if v.field == "at"
        ));
    }
}
