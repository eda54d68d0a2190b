//! Agent-pool rows on SQLite (see `crate::agents`). Each compare-and-set is one `UPDATE`
//! on the writer connection, atomic across processes sharing the file.

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension};

use super::SqliteStore;
use crate::agents::{agent_docs_via_rows, AgentRows, OfferRow};
use crate::error::{Result, StoreError};

#[async_trait]
impl AgentRows for SqliteStore {
    async fn put_pool_row(&self, pool: String, doc: String) -> Result<()> {
        const OP: &str = "agent put_pool";
        self.write(OP, move |c| {
            c.execute(
                "INSERT INTO agent_pools (id, doc) VALUES (?1, ?2) \
                 ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                params![pool, doc],
            )
            .map_err(StoreError::sqlite(OP))?;
            Ok(())
        })
        .await
    }

    async fn pool_row(&self, pool: String) -> Result<Option<String>> {
        const OP: &str = "agent pool";
        self.read(OP, move |c| {
            c.query_row("SELECT doc FROM agent_pools WHERE id = ?1", [pool], |r| {
                r.get(0)
            })
            .optional()
            .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn insert_agent_row(&self, pool: String, agent: String, doc: String) -> Result<bool> {
        const OP: &str = "agent insert";
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "INSERT INTO agents (pool_id, id, version, doc) VALUES (?1, ?2, 1, ?3) \
                     ON CONFLICT (pool_id, id) DO NOTHING",
                    params![pool, agent, doc],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn agent_row(&self, pool: String, agent: String) -> Result<Option<(i64, String)>> {
        const OP: &str = "agent read";
        self.read(OP, move |c| {
            c.query_row(
                "SELECT version, doc FROM agents WHERE pool_id = ?1 AND id = ?2",
                params![pool, agent],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn agent_rows(&self, pool: String) -> Result<Vec<(i64, String)>> {
        const OP: &str = "agent list";
        self.read(OP, move |c| {
            let mut st = c
                .prepare_cached("SELECT version, doc FROM agents WHERE pool_id = ?1 ORDER BY id")
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map([pool], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(StoreError::sqlite(OP))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn cas_agent_row(
        &self,
        pool: String,
        agent: String,
        version: i64,
        doc: String,
    ) -> Result<bool> {
        const OP: &str = "agent update";
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "UPDATE agents SET doc = ?1, version = version + 1 \
                     WHERE pool_id = ?2 AND id = ?3 AND version = ?4",
                    params![doc, pool, agent, version],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn delete_agent_row(&self, pool: String, agent: String, version: i64) -> Result<bool> {
        const OP: &str = "agent delete";
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "DELETE FROM agents WHERE pool_id = ?1 AND id = ?2 AND version = ?3",
                    params![pool, agent, version],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn insert_offer_row(&self, row: OfferRow) -> Result<bool> {
        const OP: &str = "offer insert";
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "INSERT INTO agent_offers (pool_id, id, version, live, created_ms, doc) \
                     VALUES (?1, ?2, 1, ?3, ?4, ?5) ON CONFLICT (pool_id, id) DO NOTHING",
                    params![row.pool, row.id, row.live, row.created_ms, row.doc],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn offer_row(&self, pool: String, offer: String) -> Result<Option<(i64, String)>> {
        const OP: &str = "offer read";
        self.read(OP, move |c| {
            c.query_row(
                "SELECT version, doc FROM agent_offers WHERE pool_id = ?1 AND id = ?2",
                params![pool, offer],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(StoreError::sqlite(OP))
        })
        .await
    }

    async fn cas_offer_row(&self, version: i64, row: OfferRow) -> Result<bool> {
        const OP: &str = "offer update";
        self.write(OP, move |c| {
            let n = c
                .execute(
                    "UPDATE agent_offers SET doc = ?1, live = ?2, version = version + 1 \
                     WHERE pool_id = ?3 AND id = ?4 AND version = ?5",
                    params![row.doc, row.live, row.pool, row.id, version],
                )
                .map_err(StoreError::sqlite(OP))?;
            Ok(n == 1)
        })
        .await
    }

    async fn offer_rows(
        &self,
        pool: String,
        since_ms: i64,
        live_only: bool,
    ) -> Result<Vec<String>> {
        const OP: &str = "offer list";
        self.read(OP, move |c| {
            let mut st = c
                .prepare_cached(
                    "SELECT doc FROM agent_offers WHERE pool_id = ?1 AND created_ms >= ?2 \
                     AND (?3 = 0 OR live = 1) ORDER BY created_ms, id",
                )
                .map_err(StoreError::sqlite(OP))?;
            let rows = st
                .query_map(params![pool, since_ms, i64::from(live_only)], |r| r.get(0))
                .map_err(StoreError::sqlite(OP))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
                .map_err(StoreError::sqlite(OP))
        })
        .await
    }
}

agent_docs_via_rows!(SqliteStore);
