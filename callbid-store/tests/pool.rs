//! Core's number-pool conformance suite and the cross-handle allocation race on SQLite
//! (in memory, a file, two handles on one file) and PostgreSQL (when `DATABASE_URL` is
//! set; required when `CI=true`).

use std::sync::Arc;

use callbid_core::pool::{conformance, NumberPoolStore, PoolId};
use callbid_store::SqliteStore;

mod common;

#[tokio::test]
async fn sqlite_in_memory_passes_the_pool_suite() {
    conformance::pool_store(&SqliteStore::open_in_memory().unwrap(), "mem")
        .await
        .unwrap();
}

#[tokio::test]
async fn sqlite_file_passes_the_pool_suite_twice() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("pool.db")).unwrap();
    conformance::pool_store(&s, "run1").await.unwrap();
    conformance::pool_store(&s, "run2").await.unwrap();
}

/// Two independently opened handles (separate connections, as two processes hold) race
/// 500 lease / renew / release operations each on one file; an SQL invariant query
/// then finds no number on two overlapping exclusive leases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_pool_race_across_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    let leases = conformance::pool_concurrency(
        Arc::new(a.clone()) as Arc<dyn NumberPoolStore>,
        Arc::new(b),
        "race",
        500,
        20,
    )
    .await
    .unwrap();
    assert!(leases.len() > 100, "{}", leases.len());
    let pool = PoolId::new("race-race").unwrap();
    assert_eq!(a.pool_overlapping_leases(&pool).await.unwrap(), 0);
}
