//! Core's conformance suite against every implementation: in-memory (again, for
//! completeness), SQLite (in-memory and file, and two handles on one file) and PostgreSQL
//! (when `DATABASE_URL` is set; required when `CI=true`).

use std::sync::Arc;

use callbid_core::state::conformance;
use callbid_core::state::{
    CallLog, CapStore, MemoryCallLog, MemoryCapStore, MemoryDurationHistory, MemorySeenCallers,
    SeenCallers,
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
    conformance::quality_history(&callbid_core::state::MemoryQualityHistory::new(), "m")
        .await
        .unwrap();
    conformance::call_log(&MemoryCallLog::new(), "m")
        .await
        .unwrap();
    conformance::call_log_order(&MemoryCallLog::new(), "m", 11, 2)
        .await
        .unwrap();
    conformance::call_log_append_all(&MemoryCallLog::new(), "m")
        .await
        .unwrap();
}

/// Concurrent appends, single and in slices, from writers on two handles (group
/// commit batches them): each event recorded once, every record canonical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_call_log_concurrency() {
    let s: Arc<dyn CallLog> = Arc::new(MemoryCallLog::new());
    conformance::call_log_concurrency(s.clone(), s, "m", 4, 8)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_call_log_concurrency_across_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log.db");
    let a: Arc<dyn CallLog> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn CallLog> = Arc::new(SqliteStore::open(&path).unwrap());
    conformance::call_log_concurrency(a, b, "race", 4, 8)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_call_log_concurrency_in_memory() {
    let s: Arc<dyn CallLog> = Arc::new(SqliteStore::open_in_memory().unwrap());
    conformance::call_log_concurrency(s.clone(), s, "race", 4, 8)
        .await
        .unwrap();
}

/// Two handles on one SQLite file record the same calls at once: each counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_quality_concurrency_across_two_handles() {
    use callbid_core::state::QualityHistory;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quality.db");
    let a: Arc<dyn QualityHistory> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn QualityHistory> = Arc::new(SqliteStore::open(&path).unwrap());
    conformance::quality_history_concurrency(a, b, "race", 24)
        .await
        .unwrap();
}

/// A burst of reservations with repeated ids on one handle, on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_burst_on_one_handle() {
    let m: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
    conformance::cap_store_burst(m, "m", 60, 25).await.unwrap();
    let s: Arc<dyn CapStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
    conformance::cap_store_burst(s, "sq", 60, 25).await.unwrap();
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
    conformance::quality_history(s, prefix).await.unwrap();
    conformance::call_log(s, prefix).await.unwrap();
    conformance::call_log_order(s, prefix, 11, 2).await.unwrap();
    conformance::call_log_append_all(s, prefix).await.unwrap();
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

/// The hardening issue's race through the rule: two calls from one caller, routed at
/// the same moment by two instances (one `DuplicateCallerRule` per store handle): both
/// usually pass `check` (nothing is confirmed yet), and exactly one gets the buyer in
/// `reserve` and confirms, every round.
async fn duplicate_rule_race(a: Arc<dyn SeenCallers>, b: Arc<dyn SeenCallers>, prefix: &str) {
    use callbid_core::rules::{DuplicateCallerRule, Reservation, RoutingRule};
    use callbid_core::{Bid, BuyerId, BuyerProfile, CallContext, CallId, Money, ServiceType};
    let now = chrono::Utc::now();
    let buyer = BuyerProfile::new(BuyerId::new(format!("{prefix}-dup")).unwrap());
    let bid = Bid::new(buyer.id.clone(), Money::usd(rust_decimal::Decimal::ONE));
    for round in 0..20 {
        let caller: callbid_core::PhoneNumber = format!("+1512556{round:04}").parse().unwrap();
        let mut tasks = Vec::new();
        for (i, store) in [a.clone(), b.clone()].into_iter().enumerate() {
            let rule = DuplicateCallerRule::days(store, 1);
            let call = CallContext::new(
                CallId::new(format!("{prefix}-CA{round}-{i}")).unwrap(),
                "78701".parse().unwrap(),
                ServiceType::new("plumbing").unwrap(),
                now,
            )
            .with_caller(caller.clone());
            let (buyer, bid) = (buyer.clone(), bid.clone());
            tasks.push(tokio::spawn(async move {
                // (The other call may already have confirmed: then check refuses.)
                if !rule.check(&call, &buyer, now).await.unwrap().is_allow() {
                    return 0;
                }
                match rule.reserve(&call, &buyer, &bid, now).await.unwrap() {
                    Reservation::Held(_) => {
                        rule.confirm(&call, &buyer, &bid, now).await.unwrap();
                        1
                    }
                    _ => 0,
                }
            }));
        }
        let mut won = 0;
        for t in tasks {
            won += t.await.unwrap();
        }
        assert_eq!(
            won, 1,
            "round {round}: {won} calls from one caller got the buyer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_duplicate_rule_race_across_two_handles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.db");
    let a: Arc<dyn SeenCallers> = Arc::new(SqliteStore::open(&path).unwrap());
    let b: Arc<dyn SeenCallers> = Arc::new(SqliteStore::open(&path).unwrap());
    duplicate_rule_race(a, b, "sq").await;
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
        conformance::quality_history(&s, &prefix).await.unwrap();
        conformance::call_log(&s, &prefix).await.unwrap();
        conformance::call_log_order(&s, &prefix, 11, 2)
            .await
            .unwrap();
        conformance::call_log_append_all(&s, &prefix).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_quality_concurrency_across_two_pools() {
        let Some((a, b)) = two_stores().await else {
            return;
        };
        let prefix = common::unique_prefix("pgq");
        conformance::quality_history_concurrency(Arc::new(a), Arc::new(b), &prefix, 40)
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_call_log_concurrency_across_two_pools() {
        let Some((a, b)) = two_stores().await else {
            return;
        };
        let prefix = common::unique_prefix("pglog");
        conformance::call_log_concurrency(Arc::new(a), Arc::new(b), &prefix, 4, 8)
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

    /// A burst with repeated ids on one pool: decided in shared batches, the outcomes
    /// are those of one at a time.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_cap_burst_on_one_pool() {
        let Some(s) = store().await else { return };
        let prefix = common::unique_prefix("pgburst");
        conformance::cap_store_burst(Arc::new(s), &prefix, 300, 120)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_duplicate_rule_race_across_two_pools() {
        let Some((a, b)) = two_stores().await else {
            return;
        };
        duplicate_rule_race(Arc::new(a), Arc::new(b), "pg").await;
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
