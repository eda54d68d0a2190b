//! Core's postback-outbox conformance suite on SQLite (in memory; two handles on one
//! file) and PostgreSQL (two pools on one database, when `DATABASE_URL` is set; required
//! when `CI=true`), with racing claims across both handles.

use std::sync::Arc;

use callbid_core::state::{conformance, PostbackOutbox};
use callbid_store::SqliteStore;

mod common;

#[tokio::test]
async fn sqlite_in_memory_passes_the_postback_suite() {
    let s = SqliteStore::open_in_memory().unwrap();
    conformance::postback_outbox(&s, "mem").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_two_handles_never_claim_the_same_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postbacks.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    conformance::postback_outbox(&a, "run1").await.unwrap();
    let (a, b): (Arc<dyn PostbackOutbox>, Arc<dyn PostbackOutbox>) = (Arc::new(a), Arc::new(b));
    conformance::postback_concurrency(a, b, "two", 40, 8)
        .await
        .unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_pass_the_postback_suite() {
    use callbid_store::PgStore;
    let Some(url) = common::database_url("postback") else {
        return;
    };
    let url = common::fresh_pg_database(&url, "postback").await;
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    conformance::postback_outbox(&a, &common::unique_prefix("pg"))
        .await
        .unwrap();
    let (a, b): (Arc<dyn PostbackOutbox>, Arc<dyn PostbackOutbox>) = (Arc::new(a), Arc::new(b));
    conformance::postback_concurrency(a, b, &common::unique_prefix("race"), 100, 16)
        .await
        .unwrap();
}
