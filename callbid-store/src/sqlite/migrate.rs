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
    include_str!("../../migrations/sqlite/0011_quality.sql"),
    include_str!("../../migrations/sqlite/0012_postbacks.sql"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A v8 database with reservations gets counter rows holding the exact sums of its
    /// increments, and each increment its reservation's expiry.
    #[test]
    fn v9_seeds_cap_counters_from_stored_increments() {
        let mut c = Connection::open_in_memory().unwrap();
        for sql in &MIGRATIONS[..8] {
            c.execute_batch(sql).unwrap();
        }
        c.pragma_update(None, "user_version", 8).unwrap();
        c.execute_batch(
            "INSERT INTO cap_reservations (id, expires_ns) VALUES ('a', NULL), ('b', 100), ('c', 200);
             INSERT INTO cap_increments (reservation_id, counter, amount) VALUES
               ('a', 'spend', '0.10'), ('b', 'spend', '0.20'), ('c', 'spend', '1.005'),
               ('a', 'count', '1'), ('c', 'count', '1');",
        )
        .unwrap();
        apply(&mut c).unwrap();
        let used = |k: &str| -> String {
            c.query_row(
                "SELECT used FROM cap_counters WHERE counter = ?1",
                [k],
                |r| r.get(0),
            )
            .unwrap()
        };
        // 0.1 + 0.2 in floating point would be 0.30000000000000004.
        assert_eq!(used("spend"), "1.305");
        assert_eq!(used("count"), "2");
        let expiry: Option<i64> = c
            .query_row(
                "SELECT expires_ns FROM cap_increments WHERE reservation_id = 'b'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(expiry, Some(100));
        // At 150, b has expired and no longer counts; at 250, c neither.
        let usage = |k: &str, now| super::super::caps::usage_in(&c, k, now).unwrap();
        assert_eq!(usage("spend", 50).to_string(), "1.305");
        assert_eq!(usage("spend", 150).to_string(), "1.105");
        assert_eq!(usage("spend", 250).to_string(), "0.1");
        assert_eq!(usage("count", 250).to_string(), "1");
    }
}
