//! Group commit of PostgreSQL cap reservations: a batch decides exactly what its
//! requests one at a time would (randomized), two pools racing on one hot counter grant
//! exactly the cap, a lock timeout fails only the requests whose deadline passed, and a
//! request the server refuses fails alone. Needs `DATABASE_URL` (required when
//! `CI=true`).
#![cfg(feature = "postgres")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbid_core::state::{
    CapStore, CounterIncrement, ReservationId, ReservationRequest, ReserveOutcome,
};
use callbid_store::PgStore;
use chrono::{DateTime, TimeZone, Utc};
use common::*;
use proptest::prelude::*;
use rust_decimal::Decimal;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap()
}

fn one(key: &str, id: String, limit: i64, deadline: Option<Instant>) -> ReservationRequest {
    ReservationRequest {
        id: ReservationId(id),
        increments: vec![CounterIncrement {
            key: key.to_string(),
            amount: Decimal::ONE,
            limit: Decimal::from(limit),
        }],
        expires_at: None,
        now: Utc::now(),
        deadline,
    }
}

async fn fresh_store(name: &str) -> Option<(String, PgStore)> {
    let url = database_url(name)?;
    let url = fresh_pg_database(&url, name).await;
    let store = PgStore::connect(&url).await.unwrap();
    Some((url, store))
}

/// One generated request: an id out of a small pool (so ids repeat), 1–3 increments on
/// three counters, an optional expiry and a now, all within 50 s (pruning, which keeps
/// a minute's grace, never deletes any of them).
#[derive(Debug, Clone)]
struct Gen {
    id: u8,
    incs: Vec<(u8, i64, i64)>,
    expires: Option<i64>,
    now: i64,
}

fn gen() -> impl Strategy<Value = Gen> {
    (
        0u8..8,
        prop::collection::vec((0u8..3, 0i64..400, 0i64..800), 0..4),
        prop::option::of(0i64..50),
        0i64..50,
    )
        .prop_map(|(id, incs, expires, now)| Gen {
            id,
            incs,
            expires,
            now,
        })
}

/// `g` as a request in namespace `ns`: amounts and limits in hundredths.
fn request(ns: &str, g: &Gen) -> ReservationRequest {
    let at = |s: i64| t0() + chrono::Duration::seconds(s);
    ReservationRequest {
        id: ReservationId(format!("{ns}-{}", g.id)),
        increments: g
            .incs
            .iter()
            .map(|(k, a, l)| CounterIncrement {
                key: format!("{ns}|k{k}"),
                amount: Decimal::new(*a, 2),
                limit: Decimal::new(*l, 2),
            })
            .collect(),
        expires_at: g.expires.map(at),
        now: at(g.now),
        deadline: None,
    }
}

/// The outcome with the namespace taken out of the counter's name.
fn plain(ns: &str, o: ReserveOutcome) -> ReserveOutcome {
    match o {
        ReserveOutcome::Exceeded { key, used, limit } => ReserveOutcome::Exceeded {
            key: key.trim_start_matches(ns).to_string(),
            used,
            limit,
        },
        other => other,
    }
}

#[test]
fn a_batch_decides_what_its_requests_one_at_a_time_would() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some((_, store)) = rt.block_on(fresh_store("batch_equiv")) else {
        return;
    };
    let case = AtomicU64::new(0);
    let config = ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    };
    proptest!(config, |(script in prop::collection::vec(gen(), 1..14))| {
        let n = case.fetch_add(1, Ordering::Relaxed);
        let (batched, serial) = (format!("b{n}"), format!("s{n}"));
        rt.block_on(async {
            let reqs: Vec<_> = script.iter().map(|g| request(&batched, g)).collect();
            let got: Vec<_> = store
                .reserve_batch(&reqs)
                .await
                .into_iter()
                .map(|o| plain(&batched, o.unwrap()))
                .collect();
            let mut want = Vec::new();
            for g in &script {
                let o = store.reserve(&request(&serial, g)).await.unwrap();
                want.push(plain(&serial, o));
            }
            assert_eq!(got, want, "script {script:?}");
            for k in 0..3 {
                for s in [0, 25, 49, 60] {
                    let at = t0() + chrono::Duration::seconds(s);
                    let b = store.usage(&format!("{batched}|k{k}"), at).await.unwrap();
                    let a = store.usage(&format!("{serial}|k{k}"), at).await.unwrap();
                    assert_eq!(b, a, "usage of k{k} at +{s}s, script {script:?}");
                }
            }
        });
    });
}

/// Two pools (two processes) × 40 tasks reserve 1 on one counter until refused:
/// exactly the cap is granted, and every task's last answer is a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_racing_on_one_counter_grant_exactly_the_cap() {
    let Some((url, a)) = fresh_store("batch_race").await else {
        return;
    };
    let b = PgStore::connect(&url).await.unwrap();
    const LIMIT: i64 = 1_500;
    let key = unique_prefix("hot");
    let granted = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (name, store) in [("a", a.clone()), ("b", b.clone())] {
        for t in 0..40 {
            let (store, key, granted) = (store.clone(), key.clone(), granted.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0.. {
                    let r = one(&key, format!("{key}-{name}-{t}-{i}"), LIMIT, None);
                    match store.reserve(&r).await.unwrap() {
                        ReserveOutcome::Reserved => granted.fetch_add(1, Ordering::Relaxed),
                        ReserveOutcome::Exceeded { used, .. } => {
                            assert_eq!(used, Decimal::from(LIMIT));
                            break;
                        }
                        other => panic!("{other:?}"),
                    };
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(granted.load(Ordering::Relaxed), LIMIT as u64);
    assert_eq!(
        a.usage(&key, Utc::now()).await.unwrap(),
        Decimal::from(LIMIT)
    );
    assert_eq!(
        b.usage(&key, Utc::now()).await.unwrap(),
        Decimal::from(LIMIT)
    );
}

/// While another session holds the counter's lock, a batch of a short-deadline request
/// and a long-deadline one: the short one fails at its deadline with nothing granted,
/// the long one is decided again and granted once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_timeout_fails_only_the_requests_whose_deadline_passed() {
    let Some((url, store)) = fresh_store("batch_deadline").await else {
        return;
    };
    let key = unique_prefix("held");
    let (mut other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    other
        .execute(
            "INSERT INTO cap_counters (counter, used) VALUES ($1, 0)",
            &[&key],
        )
        .await
        .unwrap();
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM cap_counters WHERE counter = $1 FOR UPDATE",
        &[&key],
    )
    .await
    .unwrap();
    let now = Instant::now();
    let short = one(
        &key,
        "short".into(),
        10,
        Some(now + Duration::from_millis(200)),
    );
    let long = one(&key, "long".into(), 10, Some(now + Duration::from_secs(20)));
    let batch = {
        let store = store.clone();
        tokio::spawn(async move { store.reserve_batch(&[short, long]).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    tx.rollback().await.unwrap();
    let answers = batch.await.unwrap();
    let e = answers[0].as_ref().expect_err("the short deadline passed");
    assert!(e.to_string().contains("deadline"), "{e}");
    assert_eq!(answers[1].as_ref().ok(), Some(&ReserveOutcome::Reserved));
    assert_eq!(store.usage(&key, Utc::now()).await.unwrap(), Decimal::ONE);
    assert!(!store.release(&ReservationId("short".into())).await.unwrap());
}

/// A batch holding a request PostgreSQL refuses (a NUL byte in its id): that one
/// fails, and every other request of the batch is decided alone and granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_fails_only_itself() {
    let Some((_, store)) = fresh_store("batch_refused").await else {
        return;
    };
    let key = unique_prefix("bad");
    let mut reqs: Vec<_> = (0..5)
        .map(|i| one(&key, format!("{key}-{i}"), 10, None))
        .collect();
    reqs.insert(2, one(&key, "bad\0id".into(), 10, None));
    let answers = store.reserve_batch(&reqs).await;
    assert!(answers[2].is_err(), "{:?}", answers[2]);
    for (i, a) in answers.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert_eq!(
            a.as_ref().ok(),
            Some(&ReserveOutcome::Reserved),
            "request {i}"
        );
    }
    assert_eq!(
        store.usage(&key, Utc::now()).await.unwrap(),
        Decimal::from(5)
    );
}

/// The server's own `lock_timeout` (here the database's), with no deadline in the
/// batch: the reservation fails, it is not retried forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lock_timeout_without_deadlines_fails_the_batch() {
    let Some(url) = database_url("batch_server_timeout") else {
        return;
    };
    let url = fresh_pg_database(&url, "batch_server_timeout").await;
    let (mut other, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let db: String = other
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    other
        .batch_execute(&format!("ALTER DATABASE {db} SET lock_timeout = '200ms'"))
        .await
        .unwrap();
    let store = PgStore::connect(&url).await.unwrap();
    let key = unique_prefix("server");
    other
        .execute(
            "INSERT INTO cap_counters (counter, used) VALUES ($1, 0)",
            &[&key],
        )
        .await
        .unwrap();
    let tx = other.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM cap_counters WHERE counter = $1 FOR UPDATE",
        &[&key],
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        store.reserve(&one(&key, "r".into(), 10, None)),
    )
    .await
    .expect("the reservation must give up by itself");
    assert!(r.is_err(), "{r:?}");
    tx.rollback().await.unwrap();
    assert_eq!(store.usage(&key, Utc::now()).await.unwrap(), Decimal::ZERO);
}
