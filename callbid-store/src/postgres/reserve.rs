//! Group commit of cap reservations on PostgreSQL (the queue is [`crate::group`]).
//!
//! Why: a grant on a hot counter waits for the row lock, and the lock is held until the
//! previous holder's commit is flushed to the WAL. With one transaction per
//! reservation, one counter can grant at most one reservation per WAL flush, whatever
//! the number of processes and connections. So concurrent `reserve` calls on one
//! [`PgStore`] queue up, and a leader (a tokio task) decides everything queued in
//! **one** transaction: one pipelined round trip of `BEGIN`, one call of
//! `callbid_reserve_batch` (schema v13) and `COMMIT`, one WAL flush for the whole
//! batch. Each request is answered only after that commit. A lone reservation is
//! written at once (no timer).
//!
//! How the function decides (see `migrations/postgres/0013_reserve_batch.sql`): it
//! creates and locks every counter row of the batch one at a time in byte order of the
//! key (as every other writer of `cap_counters` does, so batches on two processes never
//! deadlock), decides the requests in queue order in memory exactly as each would be
//! decided alone after the ones before it (a held id is `Reserved` and counts once; an
//! amount above its limit, or a counter whose unexpired usage plus the amount passes
//! the limit, refuses the request with that counter's usage and limit), then writes the
//! grants set-based and each changed counter once.
//!
//! Failures. A deadline bounds each request's wait: the batch runs with `SET LOCAL
//! lock_timeout` at its soonest deadline (at least 1 ms); when the lock wait times out,
//! nothing of the batch is committed, the requests whose deadline has passed fail, and
//! the rest are decided again (so no caller that got an error was granted anything). A
//! request still queued, not taken by a leader, when its deadline passes is withdrawn
//! and fails. If the server refuses a batch for any other reason, each request is
//! decided again alone, so one bad request fails only itself; a connection or pool
//! failure fails the whole batch.
//!
//! One leader per handle, so reservations on unrelated counters share batches too: a
//! batch waits for the last of its counters' row locks, so a counter held long by
//! another session delays the other requests queued with it (bounded by their
//! deadlines). Counter locks are held only from a batch's lock phase to its commit.

use std::time::{Duration, Instant};

use callbid_core::state::{ReservationRequest, ReserveOutcome};
use futures::FutureExt;
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{pg, PgStore};
use crate::codec::to_ns;
use crate::error::{Result, StoreError};
use crate::group::{self, Leader, Pending, Queued, Unit};
use crate::sqlite::merge_increments;

const OP: &str = "reserve";

/// At most this many reservations go into one transaction (its arrays and the function's
/// in-memory state stay small); the rest wait for the next.
const MAX_BATCH: usize = 256;

/// One reservation, checked and converted, as the leader decides it.
#[derive(Debug)]
pub(crate) struct Request {
    id: String,
    /// Expiry (ns), `None`: until released.
    expires: Option<i64>,
    /// The request's now (ns).
    now: i64,
    /// Merged increments `(key, (amount, limit))`, in byte order of the key.
    incs: Vec<(String, (Decimal, Decimal))>,
    deadline: Option<Instant>,
}

impl Unit for Request {
    type Answer = ReserveOutcome;
    fn weight(&self) -> usize {
        1
    }
}

impl Request {
    /// Converts `request`; refuses instants out of range.
    pub(super) fn new(request: &ReservationRequest) -> Result<Self> {
        let mut incs = merge_increments(request);
        incs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Request {
            id: request.id.0.clone(),
            expires: request
                .expires_at
                .map(|t| to_ns("expires_at", t))
                .transpose()?,
            now: to_ns("now", request.now)?,
            incs,
            deadline: request.deadline,
        })
    }
}

/// Queues `request` and waits until the commit that decides it is done.
pub(super) async fn submit(store: &PgStore, request: Request) -> Result<ReserveOutcome> {
    let deadline = request.deadline;
    let (queued, leader) = store.reservations.push(request);
    if let Some(leader) = leader {
        let store = store.clone();
        tokio::spawn(async move { lead(&store, leader).await });
    }
    wait(store, queued, deadline).await
}

/// Waits for the answer; a request whose deadline passes while it is still queued is
/// withdrawn and fails. (One whose deadline had passed before it was queued gets one
/// try with the shortest lock wait, as it would alone.)
async fn wait(
    store: &PgStore,
    queued: Queued<ReserveOutcome>,
    deadline: Option<Instant>,
) -> Result<ReserveOutcome> {
    let Queued { mut answer, ticket } = queued;
    if let Some(d) = deadline.filter(|d| *d > Instant::now()) {
        let at = tokio::time::Instant::from_std(d);
        match tokio::time::timeout_at(at, &mut answer).await {
            Ok(got) => return group::received(got, OP),
            Err(_) if store.reservations.withdraw(ticket) => {
                return Err(deadline_passed("while queued behind another batch"))
            }
            Err(_) => {}
        }
    }
    group::wait(answer, OP).await
}

fn deadline_passed(when: &str) -> StoreError {
    StoreError::Postgres {
        operation: OP,
        message: format!("the reservation's deadline passed {when}; nothing was reserved"),
    }
}

/// The leader: decides batches until the queue is empty.
async fn lead(store: &PgStore, mut leader: Leader<Request>) {
    while let Some(batch) = leader.next_batch(MAX_BATCH) {
        // A panic while deciding drops this batch's answers (their reservations get an
        // error) and its transaction rolls back; the leader goes on with the next.
        let _ = std::panic::AssertUnwindSafe(async {
            let requests: Vec<&Request> = batch.iter().map(|p| &p.unit).collect();
            let answers = decide(store, &requests).await;
            for (p, a) in batch.into_iter().zip(answers) {
                Pending::answer(p, a);
            }
        })
        .catch_unwind()
        .await;
    }
}

/// Decides `requests` in order in one transaction; if the server refuses the batch,
/// each one alone. One answer per request.
pub(super) async fn decide(store: &PgStore, requests: &[&Request]) -> Vec<Result<ReserveOutcome>> {
    match within_deadlines(store, requests).await {
        Ok(answers) => answers,
        Err(Failure::Refused(_)) if requests.len() > 1 => {
            let mut answers = Vec::with_capacity(requests.len());
            for r in requests {
                answers.push(match within_deadlines(store, &[r]).await {
                    Ok(mut one) => one.pop().unwrap_or_else(|| Err(lost())),
                    Err(f) => Err(f.into_error()),
                });
            }
            answers
        }
        Err(f) => {
            let e = f.into_error();
            requests.iter().map(|_| Err(share(&e))).collect()
        }
    }
}

/// Runs the batch until it commits, failing the requests whose deadline passed
/// whenever the lock wait times out and deciding the rest again.
async fn within_deadlines(
    store: &PgStore,
    requests: &[&Request],
) -> Result<Vec<Result<ReserveOutcome>>, Failure> {
    let mut answers: Vec<Option<Result<ReserveOutcome>>> = requests.iter().map(|_| None).collect();
    loop {
        let live: Vec<usize> = (0..requests.len())
            .filter(|&i| answers[i].is_none())
            .collect();
        if live.is_empty() {
            break;
        }
        let batch: Vec<&Request> = live.iter().map(|&i| requests[i]).collect();
        match transact(store, &batch, lock_timeout(&batch)).await {
            Ok(outcomes) => {
                for (i, o) in live.into_iter().zip(outcomes) {
                    answers[i] = Some(Ok(o));
                }
            }
            Err(Failure::LockTimeout(e)) => {
                let now = Instant::now();
                let passed: Vec<usize> = live
                    .into_iter()
                    .filter(|&i| requests[i].deadline.is_some_and(|d| d <= now))
                    .collect();
                // A lock timeout of the server's own (no deadline passed) fails them all.
                if passed.is_empty() {
                    return Err(Failure::Other(e));
                }
                for i in passed {
                    answers[i] = Some(Err(deadline_passed(
                        "while waiting for the counters' row locks (lock_timeout)",
                    )));
                }
            }
            Err(other) => return Err(other),
        }
    }
    Ok(answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(lost())))
        .collect())
}

/// The batch's lock wait: until its soonest deadline, rounded up to whole
/// milliseconds, at least 1 ms; `None` when no request has one.
fn lock_timeout(batch: &[&Request]) -> Option<Duration> {
    let soonest = batch.iter().filter_map(|r| r.deadline).min()?;
    let left = soonest.saturating_duration_since(Instant::now());
    let ms = left.as_micros().div_ceil(1000).clamp(1, i32::MAX as u128);
    Some(Duration::from_millis(ms as u64))
}

/// Why a batch's transaction did not commit.
#[derive(Debug)]
enum Failure {
    /// A counter's row lock was not free within the lock timeout (nothing committed).
    LockTimeout(StoreError),
    /// The server refused a statement (nothing committed): worth deciding each
    /// request alone.
    Refused(StoreError),
    /// The pool or the connection failed.
    Other(StoreError),
}

impl Failure {
    fn of(e: tokio_postgres::Error) -> Failure {
        match e.code() {
            Some(c) if *c == SqlState::LOCK_NOT_AVAILABLE => Failure::LockTimeout(pg(OP)(e)),
            Some(_) => Failure::Refused(pg(OP)(e)),
            None => Failure::Other(pg(OP)(e)),
        }
    }

    fn into_error(self) -> StoreError {
        match self {
            Failure::LockTimeout(e) | Failure::Refused(e) | Failure::Other(e) => e,
        }
    }
}

/// A copy of a batch's error for each of its requests.
fn share(e: &StoreError) -> StoreError {
    match e {
        StoreError::Postgres { operation, message } => StoreError::Postgres {
            operation,
            message: message.clone(),
        },
        other => StoreError::Postgres {
            operation: OP,
            message: other.to_string(),
        },
    }
}

fn lost() -> StoreError {
    StoreError::corrupt(OP, "the batch returned fewer outcomes than it had requests")
}

/// One transaction deciding `batch`: its outcomes, in order, once committed.
async fn transact(
    store: &PgStore,
    batch: &[&Request],
    lock_timeout: Option<Duration>,
) -> Result<Vec<ReserveOutcome>, Failure> {
    let args = Args::of(batch).map_err(Failure::Other)?;
    let c = store.client(OP).await.map_err(Failure::Other)?;
    let call = c.prepare_cached(DECIDE).await.map_err(Failure::of)?;
    let begin = match lock_timeout {
        Some(t) => format!(
            "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL lock_timeout = {}",
            t.as_millis()
        ),
        None => "BEGIN ISOLATION LEVEL READ COMMITTED".to_string(),
    };
    let client: &tokio_postgres::Client = &c;
    let params = args.params();
    // One round trip: every message is sent before any answer is read (tokio-postgres
    // pipelines futures polled together, in the order they are first polled). If the
    // call fails, the transaction is aborted and the COMMIT behind it rolls back.
    let (began, rows, committed) = futures::join!(
        client.batch_execute(&begin),
        client.query(&call, &params),
        client.batch_execute("COMMIT"),
    );
    began.map_err(Failure::of)?;
    let rows = rows.map_err(Failure::of)?;
    committed.map_err(Failure::of)?;
    outcomes(&rows, batch.len())
}

/// Decides a batch (see the module docs and migration v13).
const DECIDE: &str = "SELECT r_n, r_key, r_used, r_limit FROM callbid_reserve_batch(\
     $1::text[], $2::int8[], $3::int8[], $4::text[], $5::int4[], $6::int4[], \
     $7::numeric[], $8::numeric[]) ORDER BY r_n";

/// The function's arguments: the batch as parallel arrays.
#[derive(Debug, Default)]
struct Args {
    ids: Vec<String>,
    expires: Vec<Option<i64>>,
    nows: Vec<i64>,
    /// The batch's distinct counters, in byte order.
    keys: Vec<String>,
    /// Request `i`'s increments are `inc_start[i] .. inc_start[i + 1]` (1-based).
    inc_start: Vec<i32>,
    /// 1-based index into `keys`.
    inc_slot: Vec<i32>,
    inc_amount: Vec<Decimal>,
    inc_limit: Vec<Decimal>,
}

impl Args {
    fn of(batch: &[&Request]) -> Result<Self> {
        let mut keys: Vec<&str> = batch
            .iter()
            .flat_map(|r| r.incs.iter().map(|(k, _)| k.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut a = Args {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            ..Args::default()
        };
        for r in batch {
            a.ids.push(r.id.clone());
            a.expires.push(r.expires);
            a.nows.push(r.now);
            a.inc_start.push(index(a.inc_slot.len())?);
            for (key, (amount, limit)) in &r.incs {
                let slot = keys.binary_search(&key.as_str()).map_err(|_| lost())?;
                a.inc_slot.push(index(slot)?);
                a.inc_amount.push(*amount);
                a.inc_limit.push(*limit);
            }
        }
        a.inc_start.push(index(a.inc_slot.len())?);
        Ok(a)
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.expires,
            &self.nows,
            &self.keys,
            &self.inc_start,
            &self.inc_slot,
            &self.inc_amount,
            &self.inc_limit,
        ]
    }
}

/// A 0-based position as PostgreSQL's 1-based array index.
fn index(i: usize) -> Result<i32> {
    i32::try_from(i + 1).map_err(|_| StoreError::corrupt(OP, "a reservation batch is too large"))
}

/// The function's rows as outcomes (one per request, in order).
fn outcomes(rows: &[tokio_postgres::Row], n: usize) -> Result<Vec<ReserveOutcome>, Failure> {
    let fail = |e| Failure::Other(pg(OP)(e));
    if rows.len() != n {
        return Err(Failure::Other(lost()));
    }
    let mut out = Vec::with_capacity(n);
    for r in rows {
        let key: Option<String> = r.try_get(1).map_err(fail)?;
        out.push(match key {
            None => ReserveOutcome::Reserved,
            Some(key) => {
                let used: Decimal = r.try_get(2).map_err(fail)?;
                let limit: Decimal = r.try_get(3).map_err(fail)?;
                ReserveOutcome::Exceeded {
                    key,
                    used: used.normalize(),
                    limit,
                }
            }
        });
    }
    Ok(out)
}
