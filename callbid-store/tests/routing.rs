//! Core's routing-decision conformance suite on SQLite (in memory; two handles on one
//! file) and PostgreSQL (two pools on one database, when `DATABASE_URL` is set; required
//! when `CI=true`), with racing claims across both handles.

use std::sync::Arc;

use callbid_core::state::{conformance, RoutingStore};
use callbid_store::SqliteStore;

mod common;

#[tokio::test]
async fn sqlite_in_memory_passes_the_routing_suite() {
    let s = SqliteStore::open_in_memory().unwrap();
    conformance::routing_store(&s, "mem").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_file_two_handles_race_to_one_claim() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routing.db");
    let a = SqliteStore::open(&path).unwrap();
    let b = SqliteStore::open(&path).unwrap();
    conformance::routing_store(&a, "run1").await.unwrap();
    let (a, b): (Arc<dyn RoutingStore>, Arc<dyn RoutingStore>) = (Arc::new(a), Arc::new(b));
    conformance::routing_concurrency(a, b, "two", 20, 16)
        .await
        .unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_instances_pass_the_routing_suite() {
    use callbid_store::PgStore;
    let Some(url) = common::database_url("routing") else {
        return;
    };
    let url = common::fresh_pg_database(&url, "routing").await;
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    conformance::routing_store(&a, &common::unique_prefix("pg"))
        .await
        .unwrap();
    let (a, b): (Arc<dyn RoutingStore>, Arc<dyn RoutingStore>) = (Arc::new(a), Arc::new(b));
    conformance::routing_concurrency(a, b, &common::unique_prefix("race"), 50, 20)
        .await
        .unwrap();
}
