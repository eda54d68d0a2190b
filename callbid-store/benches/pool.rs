//! Number-pool operations per second on SQLite (a file, WAL) and PostgreSQL (when
//! `DATABASE_URL` is set and the `postgres` feature is on), each next to its floor: one
//! bare SQL statement claiming the free row idle longest, what a lease cannot beat.
//!
//!     cargo bench -p callbid-store --bench pool
//!     DATABASE_URL=postgres://… cargo bench -p callbid-store --features postgres --bench pool
//!
//! `lease`: a new visitor per iteration, virtual time advancing 1 s per lease with
//! 30 s leases (about 30 live leases on 256 numbers, so every lease claims a number and
//! none overflow). `renew`: one live lease renewed at advancing instants. `attribute`:
//! a call to a live leased number, resolved (read only).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callbid_core::pool::{
    InboundCall, LeaseRequest, ListingId, NumberPool, NumberPoolStore, PoolId, PoolNumber,
    VisitorId,
};
use callbid_core::PhoneNumber;
use callbid_store::SqliteStore;
use chrono::{DateTime, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

const NUMBERS: usize = 256;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
}

fn pool(name: &str) -> NumberPool {
    NumberPool::builder(PoolId::new(name).unwrap())
        .lease_length(Duration::from_secs(30))
        .heartbeat(Duration::from_secs(10))
        .max_leases_per_visitor(1_000_000)
        .numbers(
            (0..NUMBERS).map(|i| PoolNumber::parse(&format!("+1512{:07}", 2_000_000 + i)).unwrap()),
        )
        .build()
        .unwrap()
}

fn ops(
    c: &mut Criterion,
    backend: &str,
    rt: &tokio::runtime::Runtime,
    store: Arc<dyn NumberPoolStore>,
    name: &str,
) {
    let p = pool(name);
    rt.block_on(store.put_pool(&p, t(0))).unwrap();
    let clock = Arc::new(AtomicI64::new(1));
    let mut g = c.benchmark_group(format!("pool/{backend}"));
    g.bench_function("lease", |b| {
        b.to_async(rt).iter(|| {
            let (store, p, clock) = (store.clone(), p.clone(), clock.clone());
            async move {
                let i = clock.fetch_add(1, Ordering::Relaxed);
                let r = LeaseRequest::new(
                    p.id.clone(),
                    VisitorId::new(format!("v{i}")).unwrap(),
                    ListingId::new("l1").unwrap(),
                    t(i),
                );
                let out = store.lease(&r).await.unwrap();
                assert!(out.lease().is_some(), "{out:?}");
            }
        })
    });
    let now = clock.load(Ordering::Relaxed) + 10;
    let r = LeaseRequest::new(
        p.id.clone(),
        VisitorId::new("renewer").unwrap(),
        ListingId::new("l1").unwrap(),
        t(now),
    );
    let lease = rt
        .block_on(store.lease(&r))
        .unwrap()
        .lease()
        .unwrap()
        .clone();
    let tick = Arc::new(AtomicI64::new(0));
    g.bench_function("renew", |b| {
        b.to_async(rt).iter(|| {
            let (store, p, lease, tick) = (store.clone(), p.clone(), lease.clone(), tick.clone());
            async move {
                // Nanosecond steps keep the lease live however many iterations run.
                let at =
                    t(now) + chrono::Duration::nanoseconds(tick.fetch_add(1, Ordering::Relaxed));
                store.renew(&p.id, &lease.id, at).await.unwrap();
            }
        })
    });
    let call = InboundCall::new(
        p.id.clone(),
        "CAbench",
        lease.number.clone(),
        Some(PhoneNumber::parse("+12125550100").unwrap()),
        t(now),
    )
    .unwrap();
    g.bench_function("attribute", |b| {
        b.to_async(rt).iter(|| {
            let (store, call) = (store.clone(), call.clone());
            async move {
                assert!(store.attribute(&call).await.unwrap().lease().is_some());
            }
        })
    });
    g.finish();
}

/// The floor on SQLite: one `BEGIN IMMEDIATE` transaction claiming the row free longest.
fn sqlite_floor(c: &mut Criterion, path: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, until INTEGER NOT NULL);
         CREATE INDEX IF NOT EXISTS floor_until ON floor (until);",
    )
    .unwrap();
    for i in 0..NUMBERS as i64 {
        conn.execute(
            "INSERT OR IGNORE INTO floor (id, until) VALUES (?1, 0)",
            [i],
        )
        .unwrap();
    }
    let mut i = 1i64;
    c.bench_function("pool/sqlite/floor_claim", |b| {
        b.iter(|| {
            i += 1;
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
            tx.execute(
                "UPDATE floor SET until = ?1 WHERE id = (SELECT id FROM floor WHERE until <= ?2 ORDER BY until LIMIT 1)",
                [i + 30, i],
            )
            .unwrap();
            tx.commit().unwrap();
        })
    });
}

fn sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("pool.db")).unwrap();
    ops(c, "sqlite", &rt, Arc::new(store), "bench");
    sqlite_floor(c, &dir.path().join("floor.db"));
}

#[cfg(feature = "postgres")]
fn postgres(c: &mut Criterion) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("skipping the PostgreSQL pool bench: DATABASE_URL is not set");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // A throwaway database: the shared one may carry other branches' migrations.
    let url = rt.block_on(fresh_database(&url, &format!("pool_bench_{nanos}")));
    let store = rt.block_on(callbid_store::PgStore::connect(&url)).unwrap();
    ops(
        c,
        "postgres",
        &rt,
        Arc::new(store),
        &format!("bench-{nanos}"),
    );
    let client = rt.block_on(pg_floor_setup(&url));
    pg_floor(c, &rt, client);
}

#[cfg(feature = "postgres")]
async fn fresh_database(url: &str, db: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    let (base, query) = url
        .split_once('?')
        .map_or((url, String::new()), |(b, q)| (b, format!("?{q}")));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}

#[cfg(feature = "postgres")]
async fn pg_floor_setup(url: &str) -> Arc<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(
            "CREATE TEMP TABLE floor (id BIGINT PRIMARY KEY, until BIGINT NOT NULL);
             CREATE INDEX ON floor (until);",
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO floor SELECT g, 0 FROM generate_series(0, $1::bigint - 1) g",
            &[&(NUMBERS as i64)],
        )
        .await
        .unwrap();
    Arc::new(client)
}

#[cfg(feature = "postgres")]
fn pg_floor(c: &mut Criterion, rt: &tokio::runtime::Runtime, client: Arc<tokio_postgres::Client>) {
    let i = Arc::new(AtomicI64::new(1));
    {
        c.bench_function("pool/postgres/floor_claim", |b| {
            b.to_async(rt).iter(|| {
                let (client, i) = (client.clone(), i.clone());
                async move {
                    let n = i.fetch_add(1, Ordering::Relaxed);
                    client
                        .execute(
                            "UPDATE floor SET until = $1 WHERE id = (SELECT id FROM floor WHERE until <= $2
                               ORDER BY until LIMIT 1 FOR UPDATE SKIP LOCKED)",
                            &[&(n + 30), &n],
                        )
                        .await
                        .unwrap();
                }
            })
        });
    }
}

#[cfg(not(feature = "postgres"))]
fn postgres(_: &mut Criterion) {
    eprintln!("skipping the PostgreSQL pool bench: built without the `postgres` feature");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = sqlite, postgres
}
criterion_main!(benches);
