//! Campaign rows on SQLite (see `crate::campaign`). Each write is one `BEGIN IMMEDIATE`
//! transaction on the writer connection, so a compare-and-set is atomic across processes.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::SqliteStore;
use crate::campaign::{campaign_store_via_rows, CampaignRows, ContactRow};
use crate::error::{Result, StoreError};

#[async_trait]
impl CampaignRows for SqliteStore {
    async fn insert(&self, id: &str, doc: String, contacts: Vec<ContactRow>) -> Result<bool> {
        const OP: &str = "campaign create";
        let id = id.to_string();
        self.write(OP, move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(StoreError::sqlite(OP))?;
            let n = tx
                .execute(
                    "INSERT INTO campaigns (id, version, doc) VALUES (?1, 0, ?2) ON CONFLICT (id) DO NOTHING",
                    params![id, doc],
                )
                .map_err(StoreError::sqlite(OP))?;
            if n == 0 {
                return Ok(false);
            }
            {
                let mut st = tx
                    .prepare(
                        "INSERT INTO campaign_contacts (campaign_id, number, seq, state, due_ms, \
                         dialing_since_ms, version, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
                    )
                    .map_err(StoreError::sqlite(OP))?;
                for r in &contacts {
                    st.execute(params![id, r.number, r.seq, r.state, r.due_ms, r.dialing_since_ms, r.doc])
                        .map_err(StoreError::sqlite(OP))?;
                }
            }
            tx.commit().map_err(StoreError::sqlite(OP))?;
            Ok(true)
        })
        .await
    }

    async fn load_campaign(&self, id: &str) -> Result<Option<(i64, String)>> {
        const OP: &str = "campaign read";
        let id = id.to_string();
        self.read(OP, move |c| {
            c.query_row(
                "SELECT version, doc FROM campaigns WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn cas_campaign(&self, id: &str, version: i64, doc: String) -> Result<bool> {
        const OP: &str = "campaign set_status";
        let id = id.to_string();
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "UPDATE campaigns SET doc = ?1, version = version + 1 WHERE id = ?2 AND version = ?3",
                    params![doc, id, version],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn due(
        &self,
        id: &str,
        now_ms: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, String)>> {
        const OP: &str = "campaign claim_due";
        let id = id.to_string();
        // Read on the writer: a reader connection may lag behind the last commit by a
        // snapshot, which would only cost lost CAS races, but the writer is exact.
        self.write(OP, move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT seq, version, doc FROM campaign_contacts WHERE campaign_id = ?1 \
                     AND due_ms IS NOT NULL AND due_ms <= ?2 AND seq > ?3 ORDER BY seq LIMIT ?4",
                )
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(params![id, now_ms, after_seq, limit], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .map_err(StoreError::sqlite(OP))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn load_contact(&self, id: &str, number: &str) -> Result<Option<(i64, String)>> {
        const OP: &str = "campaign contact";
        let (id, number) = (id.to_string(), number.to_string());
        self.write(OP, move |c| {
            c.query_row(
                "SELECT version, doc FROM campaign_contacts WHERE campaign_id = ?1 AND number = ?2",
                [id, number],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn cas_contact(&self, id: &str, version: i64, row: ContactRow) -> Result<bool> {
        const OP: &str = "campaign apply";
        let id = id.to_string();
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "UPDATE campaign_contacts SET state = ?1, due_ms = ?2, dialing_since_ms = ?3, \
                     doc = ?4, version = version + 1 \
                     WHERE campaign_id = ?5 AND number = ?6 AND version = ?7",
                    params![
                        row.state,
                        row.due_ms,
                        row.dialing_since_ms,
                        row.doc,
                        id,
                        row.number,
                        version
                    ],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn all(&self, id: &str) -> Result<Vec<String>> {
        const OP: &str = "campaign progress";
        let id = id.to_string();
        self.read(OP, move |c| {
            let mut st = c
                .prepare("SELECT doc FROM campaign_contacts WHERE campaign_id = ?1 ORDER BY seq")
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map([id], |r| r.get(0))
                .map_err(StoreError::sqlite(OP))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn dialing_before(&self, id: &str, before_ms: i64) -> Result<Vec<String>> {
        const OP: &str = "campaign stale";
        let id = id.to_string();
        self.read(OP, move |c| {
            let mut st = c
                .prepare(
                    "SELECT doc FROM campaign_contacts WHERE campaign_id = ?1 \
                     AND dialing_since_ms IS NOT NULL AND dialing_since_ms < ?2 ORDER BY seq",
                )
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(params![id, before_ms], |r| r.get(0))
                .map_err(StoreError::sqlite(OP))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn list_campaigns(&self) -> Result<Vec<String>> {
        const OP: &str = "campaign list";
        self.read(OP, move |c| {
            let mut st = c
                .prepare("SELECT doc FROM campaigns ORDER BY id")
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map([], |r| r.get(0))
                .map_err(StoreError::sqlite(OP))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(StoreError::sqlite(OP))
        })
        .await
    }
}

campaign_store_via_rows!(SqliteStore);
