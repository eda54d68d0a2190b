//! The PostgreSQL store (feature `postgres`), for several processes sharing state.
//!
//! A [`deadpool_postgres`] pool of [`tokio_postgres`] connections. Atomicity:
//!
//! - cap reservations are group-committed (see `reserve`): concurrent reservations on
//!   one handle are decided together by one call of `callbid_reserve_batch` (schema
//!   v13) in one transaction with one commit. It locks each counter's row in
//!   `cap_counters` in byte order of the keys (so two batches, on two processes, never
//!   deadlock), decides the requests in queue order exactly as each would be decided
//!   alone, refusing one when a counter's unexpired usage would pass its limit, and
//!   writes the grants; every process reserving on the same counter queues on that
//!   row, one batch at a time (schema v9 made a counter one row; before, an advisory
//!   lock and a `SUM` over the counter's reservations);
//! - appends are group-committed (see `appends`): concurrent appends share one
//!   transaction, which takes an advisory lock on each of its calls (in order of the
//!   lock key, so batches never deadlock), so a call's events get their sequence
//!   numbers in the order they are folded into the `calls` row; a bulk
//!   [`PgStore::import`] takes one `SHARE ROW EXCLUSIVE` lock on `call_events` and
//!   `calls` instead (one lock for any number of calls).
//!
//! The pool has a connect timeout and an acquire timeout ([`PgOptions`]); reserving
//! prunes expired reservations as it goes (bounded; see the crate docs).
//!
//! Connections are made without TLS (`NoTls`): meant for loopback or a private network.

mod agents;
mod appends;
mod campaign;
mod pool;
mod postback;
mod quality;
mod reserve;
mod routing;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::state::{
    AppendOutcome, CallEvent, CallLog, CallRecord, CapStore, ClaimOutcome, DurationHistory,
    HistoryKey, HistoryStats, ReservationId, ReservationRequest, ReserveOutcome, SeenCallers,
    SeenClaim,
};
use callbid_core::{BuyerId, CallId, PhoneNumber, StateError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use rust_decimal::Decimal;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use crate::codec::{
    area_text, from_ns, hour_value, parse_record, to_ns, upsert_sql, CallRow, SqlValue,
    CALL_COLUMNS,
};
use crate::error::{Result, StoreError};
use crate::prune::{self, PruneGate};
use crate::report::{
    aggregate_sql, finish_page, page_sql, AggregateRow, CallReports, Dialect, GroupBy, Param,
    RawAggregate, ReportFilter, ReportPage, ReportQuery,
};
use crate::sqlite::{Dump, StateDump};

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_nulls_first_buyer_price.sql"),
    include_str!("../../migrations/postgres/0003_reservation_expiry.sql"),
    include_str!("../../migrations/postgres/0004_campaigns.sql"),
    include_str!("../../migrations/postgres/0005_seen_claims.sql"),
    include_str!("../../migrations/postgres/0006_number_pools.sql"),
    include_str!("../../migrations/postgres/0007_agents.sql"),
    include_str!("../../migrations/postgres/0008_routing.sql"),
    include_str!("../../migrations/postgres/0009_cap_counters.sql"),
    include_str!("../../migrations/postgres/0010_cap_refuse.sql"),
    include_str!("../../migrations/postgres/0011_quality.sql"),
    include_str!("../../migrations/postgres/0012_postbacks.sql"),
    include_str!("../../migrations/postgres/0013_reserve_batch.sql"),
];

/// Advisory lock key serializing migrations across processes.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_6269_6431; // "callbid1"

fn pg(operation: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |e| {
        let message = match e.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        StoreError::Postgres { operation, message }
    }
}

/// Options for [`PgStore::connect_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgOptions {
    /// Maximum pooled connections.
    pub max_connections: usize,
    /// How long opening one connection may take, TCP connect and PostgreSQL's startup
    /// handshake together (also the limit for checking a pooled connection before
    /// reuse). Default 10 s. A `connect_timeout` in the URL applies to the TCP connect
    /// as well.
    pub connect_timeout: Duration,
    /// How long an operation waits for a free pooled connection when all
    /// [`max_connections`](Self::max_connections) are busy. Default 30 s.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
            acquire_timeout: Duration::from_secs(30),
        }
    }
}

impl PgOptions {
    /// Sets the pool size (at least 1).
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }
    /// Sets the connect timeout (see [`PgOptions::connect_timeout`]).
    pub fn with_connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    /// Sets the acquire timeout (see [`PgOptions::acquire_timeout`]).
    pub fn with_acquire_timeout(mut self, t: Duration) -> Self {
        self.acquire_timeout = t;
        self
    }
}

/// Caps, duplicate callers, duration history, the call log and reports on PostgreSQL.
/// Cheap to clone (clones share the pool).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    options: PgOptions,
    prune: Arc<PruneGate>,
    /// Call-log appends waiting for their group commit (see [`appends`]).
    appends: Arc<crate::group::GroupQueue<crate::group::Events>>,
    /// Cap reservations waiting for their group commit (see [`reserve`]).
    reservations: Arc<crate::group::GroupQueue<reserve::Request>>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The pool's config holds the password: never print it.
        let s = self.pool.status();
        f.debug_struct("PgStore")
            .field("size", &s.size)
            .field("available", &s.available)
            .finish()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:pass@host:port/db`) and applies the embedded
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// Connects with options.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self> {
        let mut cfg =
            tokio_postgres::Config::from_str(url).map_err(|e| StoreError::InvalidUrl {
                url: crate::url::redact(url),
                reason: e.to_string(),
            })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(options.connect_timeout);
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .wait_timeout(Some(options.acquire_timeout))
            .build()
            .map_err(|e| StoreError::Postgres {
                operation: "connect",
                message: e.to_string(),
            })?;
        let store = PgStore {
            pool,
            options,
            prune: Arc::new(PruneGate::default()),
            appends: Arc::default(),
            reservations: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self, operation: &'static str) -> Result<Object> {
        self.pool.get().await.map_err(|e| {
            let message = match &e {
                PoolError::Timeout(TimeoutType::Wait) => format!(
                    "no pooled connection became free within the acquire timeout of {:?} \
                     (all {} in use)",
                    self.options.acquire_timeout, self.options.max_connections
                ),
                PoolError::Timeout(_) => format!(
                    "connecting did not finish within the connect timeout of {:?}",
                    self.options.connect_timeout
                ),
                other => other.to_string(),
            };
            StoreError::Postgres { operation, message }
        })
    }

    async fn migrate(&self) -> Result<()> {
        const OP: &str = "migrate";
        let mut c = self.client(OP).await?;
        let tx = read_committed(&mut c).await.map_err(pg(OP))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg(OP))?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS callbid_schema_migrations (\
             version BIGINT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(pg(OP))?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM callbid_schema_migrations",
                &[],
            )
            .await
            .map_err(pg(OP))?
            .get(0);
        let latest = MIGRATIONS.len() as i64;
        if current > latest {
            return Err(StoreError::corrupt(
                OP,
                format!("database schema version {current} is newer than this build ({latest})"),
            ));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            tx.batch_execute(sql).await.map_err(pg(OP))?;
            tx.execute(
                "INSERT INTO callbid_schema_migrations (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(pg(OP))?;
        }
        tx.commit().await.map_err(pg(OP))?;
        Ok(())
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64> {
        const OP: &str = "schema_version";
        let c = self.client(OP).await?;
        Ok(c.query_one(
            "SELECT COALESCE(MAX(version), 0) FROM callbid_schema_migrations",
            &[],
        )
        .await
        .map_err(pg(OP))?
        .get(0))
    }

    /// Refreshes the planner's statistics (`ANALYZE`) of the store's tables; useful after
    /// a bulk load such as [`PgStore::copy_from_sqlite`].
    pub async fn analyze(&self) -> Result<()> {
        const OP: &str = "analyze";
        let c = self.client(OP).await?;
        c.batch_execute("ANALYZE calls; ANALYZE call_events; ANALYZE cap_increments")
            .await
            .map_err(pg(OP))
    }

    /// Appends an event (see [`CallLog::append`]), with this crate's error type.
    pub async fn append_event(&self, event: &CallEvent) -> Result<AppendOutcome> {
        let mut out = appends::submit(self, vec![event.clone()]).await?;
        Ok(out.pop().unwrap_or(AppendOutcome::Duplicate))
    }

    /// Appends events in order in one transaction (see [`CallLog::append_all`]), with
    /// this crate's error type: all of them are committed, or none.
    pub async fn append_events(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        appends::submit(self, events.to_vec()).await
    }

    /// Appends many events in one transaction (imports, backfills, benchmarks),
    /// set-based: three statements per 1 000 events. Events may come in any order (a
    /// call's events are folded in input order). Returns how many were new; nothing is
    /// committed on error.
    ///
    /// Instead of an advisory lock per call (which fills PostgreSQL's shared lock table,
    /// `max_locks_per_transaction × max_connections` entries, after some thousands of
    /// calls), the import takes one lock on `call_events` and `calls` in `SHARE ROW
    /// EXCLUSIVE` mode for its transaction: any number of calls, and concurrent appends
    /// and imports wait for it to commit (reads go on), which keeps each call's events
    /// folded in sequence order.
    pub async fn import<I>(&self, events: I) -> Result<u64>
    where
        I: IntoIterator<Item = CallEvent> + Send,
        I::IntoIter: Send,
    {
        const OP: &str = "import";
        let mut c = self.client(OP).await?;
        let tx = read_committed(&mut c).await.map_err(pg(OP))?;
        tx.batch_execute("LOCK TABLE call_events, calls IN SHARE ROW EXCLUSIVE MODE")
            .await
            .map_err(pg(OP))?;
        let mut new = 0;
        let mut events = events.into_iter();
        loop {
            let chunk: Vec<CallEvent> = events.by_ref().take(IMPORT_CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            new += import_chunk(&tx, &chunk, OP)
                .await?
                .into_iter()
                .filter(|o| *o == AppendOutcome::Recorded)
                .count() as u64;
        }
        tx.commit().await.map_err(pg(OP))?;
        Ok(new)
    }

    /// Deletes cap reservations that expired before `before`. Returns how many.
    pub async fn prune_expired(&self, before: DateTime<Utc>) -> Result<u64> {
        let ns = to_ns("before", before)?;
        self.prune_batch(ns, i64::MAX).await
    }

    async fn reserve_inner(&self, request: &ReservationRequest) -> Result<ReserveOutcome> {
        let prepared = reserve::Request::new(request)?;
        self.prune_due(request.now).await?;
        reserve::submit(self, prepared).await
    }

    /// Prunes one bounded batch of expired reservations when this handle's gate says
    /// so (see the crate docs).
    async fn prune_due(&self, now: DateTime<Utc>) -> Result<()> {
        // Out of range only for instants near 1677, where there is nothing to prune.
        let Ok(before) = to_ns("now", prune::cutoff(now)) else {
            return Ok(());
        };
        if self.prune.claim() {
            let n = self.prune_batch(before, prune::BATCH).await?;
            self.prune.done(n);
        }
        Ok(())
    }

    /// Decides `requests` in order as one batch: one transaction and one commit, as
    /// concurrent [`CapStore::reserve`] calls on this handle share (see `reserve`).
    /// Each outcome is what its request would get alone, after the ones before it;
    /// deadlines are honoured as in `reserve`. One result per request: a request with
    /// an instant out of range fails alone.
    pub async fn reserve_batch(
        &self,
        requests: &[ReservationRequest],
    ) -> Vec<Result<ReserveOutcome>> {
        let prepared: Vec<Result<reserve::Request>> =
            requests.iter().map(reserve::Request::new).collect();
        let valid: Vec<&reserve::Request> =
            prepared.iter().filter_map(|r| r.as_ref().ok()).collect();
        let mut decided = reserve::decide(self, &valid).await.into_iter();
        prepared
            .into_iter()
            .map(|r| match r {
                Ok(_) => decided.next().unwrap_or_else(|| {
                    Err(StoreError::corrupt("reserve", "a batch lost an outcome"))
                }),
                Err(e) => Err(e),
            })
            .collect()
    }

    /// Deletes up to `limit` reservations that expired at or before `before` (oldest
    /// first) and subtracts their increments from their counters, in one transaction.
    /// `SKIP LOCKED`: rows another transaction is deleting are left to it, so two pruning
    /// processes never wait on each other, and each amount is subtracted once (by the
    /// transaction whose `DELETE … RETURNING` returned it).
    async fn prune_batch(&self, before: i64, limit: i64) -> Result<u64> {
        const OP: &str = "prune";
        let mut c = self.client(OP).await?;
        let tx = read_committed(&mut c).await.map_err(pg(OP))?;
        let rows = tx
            .query(
                "WITH r AS (DELETE FROM cap_reservations WHERE id IN (SELECT id FROM cap_reservations \
                 WHERE expires_ns IS NOT NULL AND expires_ns <= $1 \
                 ORDER BY expires_ns LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id), \
                 i AS (DELETE FROM cap_increments x USING r WHERE x.reservation_id = r.id \
                 RETURNING x.counter, x.amount) \
                 SELECT (SELECT count(*) FROM r), counter, amount FROM i \
                 UNION ALL SELECT (SELECT count(*) FROM r), NULL, NULL",
                &[&before, &limit],
            )
            .await
            .map_err(pg(OP))?;
        let n = deleted_count(&rows)?;
        subtract(&tx, &rows).await?;
        tx.commit().await.map_err(pg(OP))?;
        Ok(n)
    }
}

/// The reservation count of a [`PgStore::prune_batch`] or release result.
fn deleted_count(rows: &[tokio_postgres::Row]) -> Result<u64> {
    const OP: &str = "prune";
    match rows.first() {
        Some(r) => Ok(u64::try_from(r.try_get::<_, i64>(0).map_err(pg(OP))?).unwrap_or(0)),
        None => Ok(0),
    }
}

/// Subtracts deleted increments (rows of `(_, counter, amount)`; a NULL counter is
/// skipped) from their counters, one counter at a time in key order.
async fn subtract(tx: &Transaction<'_>, rows: &[tokio_postgres::Row]) -> Result<()> {
    const OP: &str = "cap_counter";
    let mut sums: std::collections::BTreeMap<String, Decimal> = Default::default();
    for r in rows {
        let Some(key) = r.try_get::<_, Option<String>>(1).map_err(pg(OP))? else {
            continue;
        };
        let amount: Decimal = r.try_get(2).map_err(pg(OP))?;
        let sum = sums.entry(key).or_default();
        *sum = sum
            .checked_add(amount)
            .ok_or_else(|| StoreError::corrupt(OP, "a cap counter overflows"))?;
    }
    for (key, amount) in &sums {
        tx.execute(
            "UPDATE cap_counters SET used = used - $2 WHERE counter = $1",
            &[key, amount],
        )
        .await
        .map_err(pg(OP))?;
    }
    Ok(())
}

async fn usage_in<C: tokio_postgres::GenericClient + Sync>(
    c: &C,
    key: &str,
    now: i64,
) -> Result<Decimal> {
    const OP: &str = "usage";
    let row = c
        .query_one(
            "SELECT COALESCE((SELECT used FROM cap_counters WHERE counter = $1), 0) \
             - (SELECT COALESCE(SUM(amount), 0) FROM cap_increments \
             WHERE counter = $1 AND expires_ns IS NOT NULL AND expires_ns <= $2)",
            &[&key, &now],
        )
        .await
        .map_err(pg(OP))?;
    row.try_get::<_, Decimal>(0)
        .map(|d| d.normalize())
        .map_err(pg(OP))
}

/// Events per round of [`PgStore::import`]: three statements per round (≤ 28 × this
/// parameters, under PostgreSQL's 65 535).
const IMPORT_CHUNK: usize = 1_000;

/// One round of an import, set-based: insert the events (in order, so their sequence
/// numbers follow the input), load the records of the calls they touch, fold the new
/// events in input order, and upsert those calls' rows. Returns how many were new.
/// Inserts `chunk` (at most [`IMPORT_CHUNK`] events) and folds the new ones into their
/// calls' rows, set-based: three statements. One outcome per event, in order. The
/// caller holds the locks that keep each call's events folded in sequence order.
async fn import_chunk(
    tx: &Transaction<'_>,
    chunk: &[CallEvent],
    op: &'static str,
) -> Result<Vec<AppendOutcome>> {
    let cols = EventColumns::of(chunk, op)?;
    let insert = tx.prepare_cached(INSERT_EVENTS).await.map_err(pg(op))?;
    let inserted = tx.query(&insert, &cols.params()).await.map_err(pg(op))?;
    let fresh = fresh_keys(&inserted, op)?;
    if fresh.is_empty() {
        return Ok(vec![AppendOutcome::Duplicate; chunk.len()]);
    }
    let mut touched: Vec<&str> = chunk
        .iter()
        .filter(|e| fresh.contains(&(e.call_id.as_str().to_string(), e.idempotency_key.clone())))
        .map(|e| e.call_id.as_str())
        .collect();
    touched.sort_unstable();
    touched.dedup();
    let select = tx.prepare_cached(SELECT_RECORDS).await.map_err(pg(op))?;
    let rows = tx.query(&select, &[&touched]).await.map_err(pg(op))?;
    let (outcomes, records) = fold_new(chunk, fresh, &rows, op)?;
    upsert_records(tx, &records, op).await?;
    Ok(outcomes)
}

/// Stores events, skipping those already stored; returns the new ones' (call, key).
/// $1 calls, $2 keys, $3 instants (ns), $4 kinds, $5 JSON.
pub(super) const INSERT_EVENTS: &str =
    "INSERT INTO call_events (call_id, idempotency_key, at_ns, kind, event) \
     SELECT c, k, a, t, e FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], \
     $5::text[]) WITH ORDINALITY AS u (c, k, a, t, e, n) ORDER BY n \
     ON CONFLICT (call_id, idempotency_key) DO NOTHING \
     RETURNING call_id, idempotency_key";

/// The summary records of the calls in $1.
pub(super) const SELECT_RECORDS: &str = "SELECT call_id, record FROM calls WHERE call_id = ANY($1)";

/// A chunk of events as the column arrays [`INSERT_EVENTS`] binds.
pub(super) struct EventColumns<'a> {
    ids: Vec<&'a str>,
    keys: Vec<&'a str>,
    ats: Vec<i64>,
    kinds: Vec<&'static str>,
    jsons: Vec<String>,
}

impl<'a> EventColumns<'a> {
    pub(super) fn of(chunk: &'a [CallEvent], op: &'static str) -> Result<Self> {
        let mut c = EventColumns {
            ids: Vec::with_capacity(chunk.len()),
            keys: Vec::with_capacity(chunk.len()),
            ats: Vec::with_capacity(chunk.len()),
            kinds: Vec::with_capacity(chunk.len()),
            jsons: Vec::with_capacity(chunk.len()),
        };
        for e in chunk {
            c.ids.push(e.call_id.as_str());
            c.keys.push(e.idempotency_key.as_str());
            c.ats.push(to_ns("at", e.at)?);
            c.kinds.push(e.kind.type_name());
            c.jsons
                .push(serde_json::to_string(e).map_err(|err| StoreError::corrupt(op, err))?);
        }
        Ok(c)
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [&self.ids, &self.keys, &self.ats, &self.kinds, &self.jsons]
    }
}

/// The (call, key) pairs [`INSERT_EVENTS`] returned.
pub(super) fn fresh_keys(
    inserted: &[tokio_postgres::Row],
    op: &'static str,
) -> Result<std::collections::HashSet<(String, String)>> {
    let mut fresh = std::collections::HashSet::with_capacity(inserted.len());
    for r in inserted {
        let call: String = r.try_get(0).map_err(pg(op))?;
        let key: String = r.try_get(1).map_err(pg(op))?;
        fresh.insert((call, key));
    }
    Ok(fresh)
}

/// Folds the new events of `chunk` (those in `fresh`), in order, into their calls'
/// records (`rows` of [`SELECT_RECORDS`]; a call without one starts a new record).
/// Returns one outcome per event and the records that changed.
pub(super) fn fold_new(
    chunk: &[CallEvent],
    mut fresh: std::collections::HashSet<(String, String)>,
    rows: &[tokio_postgres::Row],
    op: &'static str,
) -> Result<(Vec<AppendOutcome>, Vec<CallRecord>)> {
    let mut stored: std::collections::HashMap<String, CallRecord> =
        std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let call: String = r.try_get(0).map_err(pg(op))?;
        let record = parse_record(op, r.try_get::<_, &str>(1).map_err(pg(op))?)?;
        stored.insert(call, record);
    }
    let mut records: std::collections::HashMap<String, CallRecord> =
        std::collections::HashMap::new();
    let mut outcomes = Vec::with_capacity(chunk.len());
    for e in chunk {
        // The same (call, key) twice in one chunk is new only the first time.
        if !fresh.remove(&(e.call_id.as_str().to_string(), e.idempotency_key.clone())) {
            outcomes.push(AppendOutcome::Duplicate);
            continue;
        }
        let id = e.call_id.as_str();
        if !records.contains_key(id) {
            let r = stored
                .remove(id)
                .unwrap_or_else(|| CallRecord::new(e.call_id.clone(), e.at));
            records.insert(id.to_string(), r);
        }
        if let Some(r) = records.get_mut(id) {
            r.apply(e);
        }
        outcomes.push(AppendOutcome::Recorded);
    }
    let mut changed: Vec<CallRecord> = records.into_values().collect();
    // Rows are written in one order (call id) by every batch.
    changed.sort_unstable_by(|a, b| a.call_id.as_str().cmp(b.call_id.as_str()));
    Ok((outcomes, changed))
}

/// Writes `records`' summary rows in one multi-row upsert (its statement prepared once
/// per row count and connection).
pub(super) async fn upsert_records(
    tx: &Transaction<'_>,
    records: &[CallRecord],
    op: &'static str,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut params: Vec<Boxed> = Vec::with_capacity(records.len() * CALL_COLUMNS.len());
    for r in records {
        params.extend(CallRow::from_record(r)?.into_values().map(pg_value));
    }
    let st = tx
        .prepare_cached(&upsert_sql(Dialect::Postgres, records.len()))
        .await
        .map_err(pg(op))?;
    tx.execute(&st, &boxed_refs(&params))
        .await
        .map_err(pg(op))?;
    Ok(())
}

/// A `calls` column value as PostgreSQL binds it (`BIGINT` or `TEXT`, possibly NULL).
fn pg_value(v: SqlValue) -> Boxed {
    match v {
        SqlValue::Int(i) => Box::new(i),
        SqlValue::Text(s) => Box::new(s),
    }
}

fn boxed_refs(params: &[Boxed]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

/// Owned parameters for a built statement.
enum Owned {
    Int(i64),
    Text(String),
}

fn owned(params: Vec<Param>) -> Vec<Owned> {
    params
        .into_iter()
        .map(|p| match p {
            Param::Int(i) => Owned::Int(i),
            Param::Text(s) => Owned::Text(s),
        })
        .collect()
}

fn refs(params: &[Owned]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| match p {
            Owned::Int(i) => i as &(dyn ToSql + Sync),
            Owned::Text(s) => s as &(dyn ToSql + Sync),
        })
        .collect()
}

#[async_trait]
impl CallReports for PgStore {
    async fn page(&self, query: &ReportQuery) -> Result<ReportPage> {
        const OP: &str = "report page";
        let sql = page_sql(Dialect::Postgres, query)?;
        let c = self.client(OP).await?;
        let st = c.prepare_cached(&sql.text).await.map_err(pg(OP))?;
        let params = owned(sql.params);
        let rows = c.query(&st, &refs(&params)).await.map_err(pg(OP))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(parse_record(OP, r.try_get::<_, &str>(0).map_err(pg(OP))?)?);
        }
        finish_page(query, out)
    }

    async fn aggregate(
        &self,
        filter: &ReportFilter,
        group_by: GroupBy,
    ) -> Result<Vec<AggregateRow>> {
        const OP: &str = "aggregate";
        let sql = aggregate_sql(Dialect::Postgres, filter, group_by)?;
        let c = self.client(OP).await?;
        let st = c.prepare_cached(&sql.text).await.map_err(pg(OP))?;
        let params = owned(sql.params);
        let rows = c.query(&st, &refs(&params)).await.map_err(pg(OP))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let raw = (|| {
                Ok::<_, tokio_postgres::Error>(RawAggregate {
                    group: r.try_get(0)?,
                    calls: r.try_get(1)?,
                    accepted: r.try_get(2)?,
                    fallbacks: r.try_get(3)?,
                    bids: r.try_get(4)?,
                    price_sum: r.try_get(5)?,
                    revenue_sum: r.try_get(6)?,
                    payout_sum: r.try_get(7)?,
                    currencies: r.try_get(8)?,
                    currency: r.try_get(9)?,
                })
            })()
            .map_err(pg(OP))?;
            out.push(raw.finish(group_by)?);
        }
        Ok(out)
    }
}

#[async_trait]
impl CallLog for PgStore {
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
        async {
            let c = self.client(OP).await?;
            let rows = c
                .query(
                    "SELECT event FROM call_events WHERE call_id = $1 ORDER BY seq",
                    &[&call.as_str()],
                )
                .await
                .map_err(pg(OP))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let j: &str = r.try_get(0).map_err(pg(OP))?;
                out.push(serde_json::from_str(j).map_err(|e| StoreError::corrupt(OP, e))?);
            }
            Ok::<_, StoreError>(out)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn has_key_prefix(&self, call: &CallId, prefix: &str) -> Result<bool, StateError> {
        const OP: &str = "has_key_prefix";
        async {
            let c = self.client(OP).await?;
            let st = c
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM call_events WHERE call_id = $1 \
                     AND starts_with(idempotency_key, $2))",
                )
                .await
                .map_err(pg(OP))?;
            let row = c
                .query_one(&st, &[&call.as_str(), &prefix])
                .await
                .map_err(pg(OP))?;
            row.try_get::<_, bool>(0).map_err(pg(OP))
        }
        .await
        .map_err(|e: StoreError| e.into_state(OP))
    }

    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError> {
        const OP: &str = "record";
        async {
            let c = self.client(OP).await?;
            match c
                .query_opt(
                    "SELECT record FROM calls WHERE call_id = $1",
                    &[&call.as_str()],
                )
                .await
                .map_err(pg(OP))?
            {
                Some(r) => Ok(Some(parse_record(
                    OP,
                    r.try_get::<_, &str>(0).map_err(pg(OP))?,
                )?)),
                None => Ok(None),
            }
        }
        .await
        .map_err(|e: StoreError| e.into_state(OP))
    }
}

#[async_trait]
impl CapStore for PgStore {
    async fn usage(&self, key: &str, now: DateTime<Utc>) -> Result<Decimal, StateError> {
        const OP: &str = "usage";
        async {
            let now = to_ns("now", now)?;
            let c = self.client(OP).await?;
            let client: &tokio_postgres::Client = &c;
            usage_in(client, key, now).await
        }
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
        async {
            let mut c = self.client(OP).await?;
            let tx = read_committed(&mut c).await.map_err(pg(OP))?;
            let rows = tx
                .query(
                    "WITH r AS (DELETE FROM cap_reservations WHERE id = $1 RETURNING id), \
                     i AS (DELETE FROM cap_increments x USING r WHERE x.reservation_id = r.id \
                     RETURNING x.counter, x.amount) \
                     SELECT (SELECT count(*) FROM r), counter, amount FROM i \
                     UNION ALL SELECT (SELECT count(*) FROM r), NULL, NULL",
                    &[&id.0],
                )
                .await
                .map_err(pg(OP))?;
            let n = deleted_count(&rows)?;
            subtract(&tx, &rows).await?;
            tx.commit().await.map_err(pg(OP))?;
            Ok::<_, StoreError>(n > 0)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }
}

#[async_trait]
impl SeenCallers for PgStore {
    async fn last_seen(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        const OP: &str = "last_seen";
        async {
            let c = self.client(OP).await?;
            let row = c
                .query_opt(
                    "SELECT last_seen_ns FROM seen_callers WHERE buyer = $1 AND caller = $2",
                    &[&buyer.as_str(), &caller.as_str()],
                )
                .await
                .map_err(pg(OP))?;
            row.map(|r| r.try_get::<_, i64>(0).map(from_ns))
                .transpose()
                .map_err(pg(OP))
        }
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
        async {
            let at = to_ns("at", at)?;
            let c = self.client(OP).await?;
            c.execute(
                "INSERT INTO seen_callers (buyer, caller, last_seen_ns) VALUES ($1, $2, $3) \
                 ON CONFLICT (buyer, caller) DO UPDATE \
                 SET last_seen_ns = GREATEST(seen_callers.last_seen_ns, excluded.last_seen_ns)",
                &[&buyer.as_str(), &caller.as_str(), &at],
            )
            .await
            .map_err(pg(OP))?;
            Ok::<_, StoreError>(())
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    async fn claim(&self, claim: &SeenClaim) -> Result<ClaimOutcome, StateError> {
        const OP: &str = "claim_seen";
        async {
            let since = to_ns("since", claim.since)?;
            let now = to_ns("now", claim.now)?;
            let expires = to_ns("expires_at", claim.expires_at)?;
            let (b, p) = (claim.buyer.as_str(), claim.caller.as_str());
            let mut c = self.client(OP).await?;
            let tx = c.transaction().await.map_err(pg(OP))?;
            seen_lock(&tx, b, p).await?;
            let seen = tx
                .query_opt(
                    "SELECT last_seen_ns FROM seen_callers WHERE buyer = $1 AND caller = $2",
                    &[&b, &p],
                )
                .await
                .map_err(pg(OP))?
                .map(|r| r.try_get::<_, i64>(0))
                .transpose()
                .map_err(pg(OP))?;
            if let Some(at) = seen.filter(|at| *at > since) {
                return Ok(ClaimOutcome::Seen { at: from_ns(at) });
            }
            let held = tx
                .query_opt(
                    "SELECT holder FROM seen_claims WHERE buyer = $1 AND caller = $2 \
                     AND expires_ns > $3 AND holder <> $4",
                    &[&b, &p, &now, &claim.holder.0],
                )
                .await
                .map_err(pg(OP))?
                .map(|r| r.try_get::<_, String>(0))
                .transpose()
                .map_err(pg(OP))?;
            if let Some(h) = held {
                return Ok(ClaimOutcome::Held {
                    holder: ReservationId(h),
                });
            }
            tx.execute(
                "INSERT INTO seen_claims (buyer, caller, holder, expires_ns) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (buyer, caller) DO UPDATE SET holder = excluded.holder, expires_ns = excluded.expires_ns",
                &[&b, &p, &claim.holder.0, &expires],
            )
            .await
            .map_err(pg(OP))?;
            tx.commit().await.map_err(pg(OP))?;
            Ok::<_, StoreError>(ClaimOutcome::Claimed)
        }
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
        async {
            let at = to_ns("at", at)?;
            let (b, p) = (buyer.as_str(), caller.as_str());
            let mut c = self.client(OP).await?;
            let tx = c.transaction().await.map_err(pg(OP))?;
            seen_lock(&tx, b, p).await?;
            tx.execute(
                "INSERT INTO seen_callers (buyer, caller, last_seen_ns) VALUES ($1, $2, $3) \
                 ON CONFLICT (buyer, caller) DO UPDATE \
                 SET last_seen_ns = GREATEST(seen_callers.last_seen_ns, excluded.last_seen_ns)",
                &[&b, &p, &at],
            )
            .await
            .map_err(pg(OP))?;
            tx.execute(
                "DELETE FROM seen_claims WHERE buyer = $1 AND caller = $2 AND holder = $3",
                &[&b, &p, &holder.0],
            )
            .await
            .map_err(pg(OP))?;
            tx.commit().await.map_err(pg(OP))?;
            Ok::<_, StoreError>(())
        }
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
        async {
            let c = self.client(OP).await?;
            let n = c
                .execute(
                    "DELETE FROM seen_claims WHERE buyer = $1 AND caller = $2 AND holder = $3",
                    &[&buyer.as_str(), &caller.as_str(), &holder.0],
                )
                .await
                .map_err(pg(OP))?;
            Ok::<_, StoreError>(n > 0)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }
}

#[async_trait]
impl DurationHistory for PgStore {
    /// One autocommit statement whatever the number of keys: a multi-row upsert over
    /// `unnest` of the keys, merged (a key given twice counts twice) and sorted, so two
    /// concurrent records lock their rows in one order and never deadlock.
    async fn record(&self, keys: &[HistoryKey], billable: bool) -> Result<(), StateError> {
        const OP: &str = "record_history";
        async {
            let merged = merge_history_keys(keys);
            if merged.is_empty() {
                return Ok(());
            }
            let b = i64::from(billable);
            let (mut buyers, mut areas, mut hours, mut calls, mut bills) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for ((buyer, area, hour), n) in merged {
                buyers.push(buyer);
                areas.push(area);
                hours.push(hour);
                calls.push(n);
                bills.push(n * b);
            }
            let c = self.client(OP).await?;
            let st = c
                .prepare_cached(
                    "INSERT INTO duration_history AS d (buyer, area, hour_of_week, calls, billable) \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[]) \
                     ON CONFLICT (buyer, area, hour_of_week) \
                     DO UPDATE SET calls = d.calls + excluded.calls, \
                     billable = d.billable + excluded.billable",
                )
                .await
                .map_err(pg(OP))?;
            c.execute(&st, &[&buyers, &areas, &hours, &calls, &bills])
                .await
                .map_err(pg(OP))?;
            Ok::<_, StoreError>(())
        }
        .await
        .map_err(|e| e.into_state(OP))
    }

    /// One query whatever the number of keys (`unnest … WITH ORDINALITY` joined to the
    /// buckets), answered in the keys' order; a missing bucket counts zero.
    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<HistoryStats>, StateError> {
        const OP: &str = "history_stats";
        async {
            if keys.is_empty() {
                return Ok(Vec::new());
            }
            let buyers: Vec<&str> = keys.iter().map(|k| k.buyer.as_str()).collect();
            let areas: Vec<String> = keys.iter().map(|k| area_text(&k.area)).collect();
            let hours: Vec<i64> = keys.iter().map(|k| hour_value(k.hour_of_week)).collect();
            let c = self.client(OP).await?;
            let st = c
                .prepare_cached(
                    "SELECT COALESCE(d.calls, 0), COALESCE(d.billable, 0) \
                     FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY \
                     AS k (buyer, area, hour, i) LEFT JOIN duration_history d \
                     ON d.buyer = k.buyer AND d.area = k.area AND d.hour_of_week = k.hour \
                     ORDER BY k.i",
                )
                .await
                .map_err(pg(OP))?;
            let rows = c
                .query(&st, &[&buyers, &areas, &hours])
                .await
                .map_err(pg(OP))?;
            let mut out = Vec::with_capacity(keys.len());
            for r in rows {
                let calls: i64 = r.try_get(0).map_err(pg(OP))?;
                let billable: i64 = r.try_get(1).map_err(pg(OP))?;
                out.push(HistoryStats {
                    calls: u64::try_from(calls).unwrap_or(0),
                    billable: u64::try_from(billable).unwrap_or(0),
                });
            }
            if out.len() != keys.len() {
                return Err(StoreError::corrupt(
                    OP,
                    format!("{} history rows for {} keys", out.len(), keys.len()),
                ));
            }
            Ok::<_, StoreError>(out)
        }
        .await
        .map_err(|e| e.into_state(OP))
    }
}

/// History keys as `(buyer, area, hour)` column values with how often each was given,
/// in key order.
fn merge_history_keys(
    keys: &[HistoryKey],
) -> std::collections::BTreeMap<(String, String, i64), i64> {
    let mut merged = std::collections::BTreeMap::new();
    for k in keys {
        let key = (
            k.buyer.as_str().to_owned(),
            area_text(&k.area),
            hour_value(k.hour_of_week),
        );
        *merged.entry(key).or_insert(0) += 1;
    }
    merged
}

/// What [`PgStore::copy_from_sqlite`] copied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyStats {
    /// Call events.
    pub events: u64,
    /// Call summary rows.
    pub calls: u64,
    /// Cap reservations (with their increments).
    pub reservations: u64,
    /// Duplicate-caller rows.
    pub seen_callers: u64,
    /// Duration-history buckets.
    pub history_buckets: u64,
}

/// Rows moved per statement by [`PgStore::copy_from_sqlite`].
const COPY_BATCH: usize = 1_000;

type Boxed = Box<dyn ToSql + Sync + Send>;

impl PgStore {
    /// Copies everything in a SQLite store into this (empty) PostgreSQL store, in one
    /// transaction: the way to move from one process on SQLite to several sharing
    /// PostgreSQL. Events keep their per-call order. Refuses (and copies nothing) when
    /// this store already holds call events, reservations, seen callers or history.
    pub async fn copy_from_sqlite(&self, source: &crate::SqliteStore) -> Result<CopyStats> {
        const OP: &str = "copy_from_sqlite";
        let mut c = self.client(OP).await?;
        let tx = read_committed(&mut c).await.map_err(pg(OP))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg(OP))?;
        for table in [
            "call_events",
            "calls",
            "cap_reservations",
            "seen_callers",
            "duration_history",
        ] {
            let any = tx
                .query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
                .await
                .map_err(pg(OP))?;
            if any.is_some() {
                return Err(StoreError::Invalid(callbid_core::ValidationError::new(
                    "target",
                    table,
                    "the PostgreSQL store is not empty; copy only into a fresh database",
                )));
            }
        }
        let mut stats = CopyStats::default();
        // One read transaction on the source: a consistent snapshot even while it is
        // being written to.
        let mut snapshot = source.dump_snapshot(COPY_BATCH);
        while let Some(item) = snapshot.recv().await {
            match item? {
                // call_events, in seq order.
                Dump::Events(rows) => {
                    let params: Vec<Boxed> = rows
                        .into_iter()
                        .flat_map(|(_, call, key, at, kind, event)| {
                            [
                                Box::new(call) as Boxed,
                                Box::new(key),
                                Box::new(at),
                                Box::new(kind),
                                Box::new(event),
                            ]
                        })
                        .collect();
                    stats.events += insert_many(
                        &tx,
                        "call_events (call_id, idempotency_key, at_ns, kind, event)",
                        5,
                        &params,
                    )
                    .await?;
                }
                // calls, re-derived from their stored records.
                Dump::Records(recs) => {
                    let mut params: Vec<Boxed> =
                        Vec::with_capacity(recs.len() * CALL_COLUMNS.len());
                    for r in &recs {
                        params.extend(CallRow::from_record(r)?.into_values().map(pg_value));
                    }
                    let cols = format!("calls ({})", CALL_COLUMNS.join(", "));
                    stats.calls += insert_many(&tx, &cols, CALL_COLUMNS.len(), &params).await?;
                }
                // Small tables in one go each.
                Dump::State(state) => copy_state(&tx, state, &mut stats).await?,
            }
        }
        tx.commit().await.map_err(pg(OP))?;
        Ok(stats)
    }
}

/// Copies the small state tables of a snapshot.
async fn copy_state(tx: &Transaction<'_>, state: StateDump, stats: &mut CopyStats) -> Result<()> {
    const OP: &str = "copy_from_sqlite";
    for (id, expires, incs) in state.reservations {
        tx.execute(
            "INSERT INTO cap_reservations (id, expires_ns) VALUES ($1, $2)",
            &[&id, &expires],
        )
        .await
        .map_err(pg(OP))?;
        for (counter, amount) in incs {
            tx.execute(
                "INSERT INTO cap_increments (reservation_id, counter, amount, expires_ns) \
                 VALUES ($1, $2, $3, $4)",
                &[&id, &counter, &amount, &expires],
            )
            .await
            .map_err(pg(OP))?;
        }
        stats.reservations += 1;
    }
    tx.execute(
        "INSERT INTO cap_counters (counter, used) \
         SELECT counter, SUM(amount) FROM cap_increments GROUP BY counter",
        &[],
    )
    .await
    .map_err(pg(OP))?;
    for (buyer, caller, at) in state.seen {
        tx.execute(
            "INSERT INTO seen_callers (buyer, caller, last_seen_ns) VALUES ($1, $2, $3)",
            &[&buyer, &caller, &at],
        )
        .await
        .map_err(pg(OP))?;
        stats.seen_callers += 1;
    }
    for (buyer, area, hour, calls, billable) in state.history {
        tx.execute(
            "INSERT INTO duration_history (buyer, area, hour_of_week, calls, billable) \
             VALUES ($1, $2, $3, $4, $5)",
            &[&buyer, &area, &hour, &calls, &billable],
        )
        .await
        .map_err(pg(OP))?;
        stats.history_buckets += 1;
    }
    Ok(())
}

/// One multi-row `INSERT INTO target VALUES (…), (…)` of `params.len() / width` rows.
async fn insert_many(
    tx: &Transaction<'_>,
    target: &str,
    width: usize,
    params: &[Boxed],
) -> Result<u64> {
    const OP: &str = "copy_from_sqlite";
    let rows = params.len() / width;
    let mut sql = format!("INSERT INTO {target} VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * width + c + 1));
        }
        sql.push(')');
    }
    tx.execute(&sql, &boxed_refs(params)).await.map_err(pg(OP))
}

/// Opens a transaction at READ COMMITTED whatever the server's default is: cap
/// reservations wait for a counter's row lock and then read usage, which must see what
/// the previous holder of the lock committed (under REPEATABLE READ the snapshot would be
/// taken before the lock was granted).
async fn read_committed(
    c: &mut deadpool_postgres::ClientWrapper,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    c.build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
}

/// Serializes claims and confirms on one caller × buyer across every process (the
/// seen-callers check and the claim write are one step under it).
async fn seen_lock(tx: &tokio_postgres::Transaction<'_>, buyer: &str, caller: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 1))",
        &[&format!("seen|{buyer}|{caller}")],
    )
    .await
    .map_err(pg("seen lock"))?;
    Ok(())
}
