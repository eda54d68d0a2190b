//! Embedded SQLite migrations, applied on open.
//!
//! The schema version is `PRAGMA user_version`. Migrations run inside one
//! `BEGIN IMMEDIATE` transaction together with the version bump, so two processes opening
//! a fresh file at once cannot both apply them, and a crash mid-migration leaves the old
//! schema intact.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{Result, StoreError};

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_buyer_price.sql"),
    include_str!("../../migrations/sqlite/0003_reservation_expiry.sql"),
    include_str!("../../migrations/sqlite/0004_campaigns.sql"),
    include_str!("../../migrations/sqlite/0005_seen_claims.sql"),
    include_str!("../../migrations/sqlite/0006_number_pools.sql"),
    include_str!("../../migrations/sqlite/0007_agents.sql"),
    include_str!("../../migrations/sqlite/0008_routing.sql"),
    include_str!("../../migrations/sqlite/0009_cap_counters.sql"),
];

/// The version whose data step seeds the cap counters (see `caps::seed_counters`).
const CAP_COUNTERS: usize = 9;

/// The schema version after every migration.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the database to [`LATEST`].
pub(crate) fn apply(conn: &mut Connection) -> Result<()> {
    const OP: &str = "migrate";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(OP))?;
    let current: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(StoreError::sqlite(OP))?;
    if current > LATEST {
        return Err(StoreError::corrupt(
            OP,
            format!("database schema version {current} is newer than this build ({LATEST})"),
        ));
    }
    let done = usize::try_from(current)
        .map_err(|_| StoreError::corrupt(OP, format!("negative schema version {current}")))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        tx.execute_batch(sql).map_err(StoreError::sqlite(OP))?;
        if i + 1 == CAP_COUNTERS {
            super::caps::seed_counters(&tx)?;
        }
        tx.pragma_update(None, "user_version", i as i64 + 1)
            .map_err(StoreError::sqlite(OP))?;
    }
    tx.commit().map_err(StoreError::sqlite(OP))?;
    Ok(())
}
