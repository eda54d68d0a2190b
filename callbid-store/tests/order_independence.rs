//! The stores rebuild a call's `calls` summary row from its events inside the append's
//! transaction. Whatever order the events arrive in, and however often each is
//! redelivered, the summary must equal the canonical fold
//! (`CallRecord::from_events` of the sequence as logged): proptest over arrival orders
//! of every sequence the examples and end-to-end tests produce
//! (`conformance::call_sequences`), on SQLite and PostgreSQL.

use callbid_core::state::conformance::{call_sequences, shuffled_with_duplicates};
use callbid_core::state::{CallEvent, CallLog, CallRecord};
use callbid_core::CallId;
use callbid_store::SqliteStore;
use proptest::prelude::*;

mod common;

/// Appends sequence `which` of `call_sequences`, shuffled and duplicated by `seed`,
/// under a fresh call id, and compares the stored record with the canonical fold.
async fn check(log: &dyn CallLog, prefix: &str, which: usize, seed: u64) -> Result<(), String> {
    let call = CallId::new(format!("{prefix}-{which}-{seed}")).map_err(|e| e.to_string())?;
    let (name, events) = call_sequences(&call)?.swap_remove(which);
    let canonical = CallRecord::from_events(&events).ok_or("empty")?;
    for e in shuffled_with_duplicates(&events, seed) {
        log.append(&e).await.map_err(|e| e.to_string())?;
    }
    let got = log.record(&call).await.map_err(|e| e.to_string())?;
    if got.as_ref() != Some(&canonical) {
        return Err(format!("{name}, seed {seed}: {got:?} != {canonical:?}"));
    }
    let stored: Vec<CallEvent> = log.events(&call).await.map_err(|e| e.to_string())?;
    if stored.len() != events.len() {
        return Err(format!(
            "{name}: {} events stored, {} distinct",
            stored.len(),
            events.len()
        ));
    }
    Ok(())
}

fn sequences() -> usize {
    call_sequences(&CallId::new("x").unwrap()).unwrap().len()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn sqlite_summary_is_the_canonical_fold(which in 0..sequences(), seed in any::<u64>()) {
        let rt = runtime();
        let s = SqliteStore::open_in_memory().unwrap();
        let r = rt.block_on(check(&s, "sq", which, seed));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use callbid_store::PgStore;
    use std::sync::OnceLock;

    /// One store for every case (connecting per case would dominate the run).
    fn store(rt: &tokio::runtime::Runtime) -> Option<&'static PgStore> {
        static STORE: OnceLock<Option<PgStore>> = OnceLock::new();
        STORE
            .get_or_init(|| {
                let url = common::database_url("order_independence")?;
                let url = rt.block_on(common::fresh_pg_database(&url, "order"));
                Some(rt.block_on(PgStore::connect(&url)).unwrap())
            })
            .as_ref()
    }

    #[test]
    fn postgres_summary_is_the_canonical_fold() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let Some(s) = store(&rt) else { return };
        let prefix = common::unique_prefix("pgorder");
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(24));
        runner
            .run(&(0..sequences(), any::<u64>()), |(which, seed)| {
                let r = rt.block_on(check(s, &prefix, which, seed));
                prop_assert!(r.is_ok(), "{}", r.unwrap_err());
                Ok(())
            })
            .unwrap();
    }
}
