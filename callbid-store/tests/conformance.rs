//! Core's conformance suite against every implementation: in-memory (again, for
//! completeness), SQLite (in-memory and file, and two handles on one file) and PostgreSQL
//! (when `DATABASE_URL` is set; required when `CI=true`).

use std::sync::Arc;

use callbid_core::state::conformance;
use callbid_core::state::{
    CapStore, MemoryCallLog, MemoryCapStore, MemoryDurationHistory, MemorySeenCallers, SeenCallers,
};
use callbid_store::SqliteStore;

mod common;

#[tokio::test]
async fn memory_passes_the_suite() {
    conformance::cap_store(&MemoryCapStore::new(), "m")
        .await
        .unwrap();
    conformance::seen_callers(&MemorySeenCallers::new(), "m")
        .await
        .unwrap();
    conformance::seen_claims(&MemorySeenCallers::new(), "m")
        .await
        .unwrap();
    conformance::duration_history(&MemoryDurationHistory::new(), "m")
        .await
        .unwrap();
    conformance::call_log(&MemoryCallLog::new(), "m")
        .await
        .unwrap();
    conformance::call_log_order(&MemoryCallLog::new(), "m", 11, 2)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_cap_concurrency() {
    let s: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
    conformance::cap_store_concurrency(s.clone(), s, "m", 1000, 100)
        .await
        .unwrap();
}

async fn full_suite(s: &SqliteStore, prefix: &str) {
    conformance::cap_store(s, prefix).await.unwrap();
    conformance::seen_callers(s, prefix).await.unwrap();
    conformance::seen_claims(s, prefix).await.unwrap();
    conformance::duration_history(s, prefix).await.unwrap();
    conformance::call_log(s, prefix).await.unwrap();
    conformance::call_log_order(s, prefix, 11, 2).await.unwrap();
}

#[tokio::test]
async fn sqlite_in_memory_passes_the_suite() {
    full_suite(&SqliteStore::open_in_memory().unwrap(), "mem").await;
}

#[tokio::test]
async fn sqlite_file_passes_the_suite_twice_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callbid.db");
    let s = SqliteStore::open(&path).unwrap();
    full_suite(&s, "run1").await;
    full_suite(&s, "run2").await;
    drop(s);
    // Migrations are idempotent and the data survives.
    let s = SqliteStore::open(&path).unwrap();
    full_suite(&s, "run3").await;
    assert_eq!(s.integrity_check().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_cap_atomicity_across_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("caps.db");
    // Two independently opened stores: separate connections, as two processes hold.
    let a: Arc<dyn CapStore> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn CapStore> = Arc::new(SqliteStore::open(&path).unwrap());
    conformance::cap_store_concurrency(a, b, "race", 1000, 100)
        .await
        .unwrap();
}

/// Two calls from one caller routed at once, through two stores on one file (two
/// instances): exactly one claim on the caller × buyer window wins, every round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_seen_claims_atomic_across_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seen.db");
    let a: Arc<dyn SeenCallers> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn SeenCallers> = Arc::new(SqliteStore::open(&path).unwrap());
    conformance::seen_claims_concurrency(a, b, "race", 30, 4)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_seen_claims_atomic_on_one_handle() {
    let s: Arc<dyn SeenCallers> = Arc::new(SqliteStore::open_in_memory().unwrap());
    conformance::seen_claims_concurrency(s.clone(), s, "race1", 30, 4)
        .await
        .unwrap();
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use callbid_store::PgStore;

    /// A store on a fresh database (the shared one may carry other branches' schema).
    async fn store() -> Option<PgStore> {
        let url = common::database_url("conformance")?;
        let url = common::fresh_pg_database(&url, "conformance").await;
        Some(PgStore::connect(&url).await.unwrap())
    }

    /// Two stores (two pools, as two processes hold) on one fresh database.
    async fn two_stores() -> Option<(PgStore, PgStore)> {
        let url = common::database_url("conformance")?;
        let url = common::fresh_pg_database(&url, "conformance2").await;
        let a = PgStore::connect(&url).await.unwrap();
        let b = PgStore::connect(&url).await.unwrap();
        Some((a, b))
    }

    #[tokio::test]
    async fn postgres_passes_the_suite() {
        let Some(s) = store().await else { return };
        let prefix = common::unique_prefix("pg");
        conformance::cap_store(&s, &prefix).await.unwrap();
        conformance::seen_callers(&s, &prefix).await.unwrap();
        conformance::seen_claims(&s, &prefix).await.unwrap();
        conformance::duration_history(&s, &prefix).await.unwrap();
        conformance::call_log(&s, &prefix).await.unwrap();
        conformance::call_log_order(&s, &prefix, 11, 2)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_cap_atomicity_across_two_pools() {
        let Some((a, b)) = two_stores().await else {
            return;
        };
        let prefix = common::unique_prefix("pgrace");
        conformance::cap_store_concurrency(Arc::new(a), Arc::new(b), &prefix, 1000, 100)
            .await
            .unwrap();
    }

    /// Two instances (two pools) on one PostgreSQL: one claim per caller × buyer wins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_seen_claims_atomic_across_two_pools() {
        let Some((a, b)) = two_stores().await else {
            return;
        };
        let prefix = common::unique_prefix("pgseen");
        conformance::seen_claims_concurrency(Arc::new(a), Arc::new(b), &prefix, 30, 6)
            .await
            .unwrap();
    }

    /// One instance: claims racing on one pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_seen_claims_atomic_on_one_pool() {
        let Some(s) = store().await else { return };
        let s: Arc<dyn SeenCallers> = Arc::new(s);
        conformance::seen_claims_concurrency(s.clone(), s, "pgseen1", 30, 6)
            .await
            .unwrap();
    }
}
