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

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use callbid_store::PgStore;

    /// A throwaway database of its own (the shared one may carry other branches'
    /// migrations), and a store on it.
    async fn fresh() -> Option<String> {
        let url = common::database_url("pool")?;
        Some(common::fresh_pg_database(&url, "pool").await)
    }

    async fn store() -> Option<PgStore> {
        Some(PgStore::connect(&fresh().await?).await.unwrap())
    }

    #[tokio::test]
    async fn postgres_passes_the_pool_suite() {
        let Some(s) = store().await else { return };
        conformance::pool_store(&s, &common::unique_prefix("pgpool"))
            .await
            .unwrap();
    }

    /// Two pools of connections, each driven from its own thread and runtime (as two
    /// processes), race 500 operations each; the SQL invariant query finds no overlap.
    #[test]
    fn postgres_pool_race_across_two_runtimes() {
        let rt = || {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap()
        };
        let main = rt();
        let Some(url) = main.block_on(fresh()) else {
            return;
        };
        let a = main.block_on(PgStore::connect(&url)).unwrap();
        let b = main.block_on(PgStore::connect(&url)).unwrap();
        let prefix = common::unique_prefix("pgrace");
        // The race itself needs both handles in one call; each is driven by its own
        // runtime's worker through `spawn` inside `pool_concurrency`, and `b` is bound
        // to a second runtime by wrapping it.
        let other = rt();
        let b = Arc::new(OnRuntime {
            inner: b,
            rt: other.handle().clone(),
        });
        let leases = main
            .block_on(conformance::pool_concurrency(
                Arc::new(a.clone()),
                b,
                &prefix,
                500,
                20,
            ))
            .unwrap();
        assert!(leases.len() > 100, "{}", leases.len());
        let pool = PoolId::new(format!("{prefix}-race")).unwrap();
        assert_eq!(main.block_on(a.pool_overlapping_leases(&pool)).unwrap(), 0);
        drop(other);
    }

    /// A store whose every call runs on another runtime (its own thread).
    #[derive(Debug)]
    struct OnRuntime {
        inner: PgStore,
        rt: tokio::runtime::Handle,
    }

    macro_rules! fwd {
        ($self:ident, $s:ident => $e:expr) => {{
            let $s = $self.inner.clone();
            $self.rt.spawn(async move { $e }).await.map_err(|e| {
                callbid_core::StateError::Unavailable {
                    store: "postgres",
                    operation: "join",
                    message: e.to_string(),
                }
            })?
        }};
    }

    use callbid_core::pool::*;
    use callbid_core::{PhoneNumber, StateError};
    use chrono::{DateTime, Utc};

    #[async_trait::async_trait]
    impl NumberPoolStore for OnRuntime {
        async fn put_pool(&self, p: &NumberPool, now: DateTime<Utc>) -> Result<(), StateError> {
            let p = p.clone();
            fwd!(self, s => s.put_pool(&p, now).await)
        }
        async fn pool(&self, p: &PoolId) -> Result<Option<NumberPool>, StateError> {
            let p = p.clone();
            fwd!(self, s => s.pool(&p).await)
        }
        async fn add_numbers(
            &self,
            p: &PoolId,
            n: &[PoolNumber],
            now: DateTime<Utc>,
        ) -> Result<u64, StateError> {
            let (p, n) = (p.clone(), n.to_vec());
            fwd!(self, s => s.add_numbers(&p, &n, now).await)
        }
        async fn retire_number(
            &self,
            p: &PoolId,
            n: &PhoneNumber,
            now: DateTime<Utc>,
        ) -> Result<bool, StateError> {
            let (p, n) = (p.clone(), n.clone());
            fwd!(self, s => s.retire_number(&p, &n, now).await)
        }
        async fn numbers(
            &self,
            p: &PoolId,
            now: DateTime<Utc>,
        ) -> Result<Vec<NumberStatus>, StateError> {
            let p = p.clone();
            fwd!(self, s => s.numbers(&p, now).await)
        }
        async fn lease(&self, r: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
            let r = r.clone();
            fwd!(self, s => s.lease(&r).await)
        }
        async fn renew(
            &self,
            p: &PoolId,
            l: &LeaseId,
            now: DateTime<Utc>,
        ) -> Result<RenewOutcome, StateError> {
            let (p, l) = (p.clone(), l.clone());
            fwd!(self, s => s.renew(&p, &l, now).await)
        }
        async fn release(
            &self,
            p: &PoolId,
            l: &LeaseId,
            now: DateTime<Utc>,
        ) -> Result<bool, StateError> {
            let (p, l) = (p.clone(), l.clone());
            fwd!(self, s => s.release(&p, &l, now).await)
        }
        async fn attribute(&self, c: &InboundCall) -> Result<Attribution, StateError> {
            let c = c.clone();
            fwd!(self, s => s.attribute(&c).await)
        }
        async fn record_call(&self, c: &InboundCall) -> Result<Attribution, StateError> {
            let c = c.clone();
            fwd!(self, s => s.record_call(&c).await)
        }
        async fn purge(&self, p: &PoolId, b: DateTime<Utc>) -> Result<u64, StateError> {
            let p = p.clone();
            fwd!(self, s => s.purge(&p, b).await)
        }
        async fn health(
            &self,
            p: &PoolId,
            a: DateTime<Utc>,
            b: DateTime<Utc>,
            i: std::time::Duration,
        ) -> Result<PoolHealth, StateError> {
            let p = p.clone();
            fwd!(self, s => s.health(&p, a, b, i).await)
        }
        async fn leases_created(
            &self,
            p: &PoolId,
            a: DateTime<Utc>,
            b: DateTime<Utc>,
        ) -> Result<Vec<callbid_core::pool::Lease>, StateError> {
            let p = p.clone();
            fwd!(self, s => s.leases_created(&p, a, b).await)
        }
        async fn calls_recorded(
            &self,
            p: &PoolId,
            a: DateTime<Utc>,
            b: DateTime<Utc>,
        ) -> Result<Vec<callbid_core::pool::RecordedCall>, StateError> {
            let p = p.clone();
            fwd!(self, s => s.calls_recorded(&p, a, b).await)
        }
    }
}
