//! Agent-pool rows on PostgreSQL (see `crate::agents`). Each compare-and-set is one
//! `UPDATE … WHERE version = $n`: a concurrent writer of the same row waits for the row
//! lock, re-checks the condition against the committed row and updates nothing, so of
//! any number of instances exactly one wins.

use async_trait::async_trait;

use super::{pg, PgStore};
use crate::agents::{agent_docs_via_rows, AgentRows, OfferRow};
use crate::error::Result;

impl PgStore {
    async fn exec(
        &self,
        op: &'static str,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let c = self.client(op).await?;
        c.execute(sql, args).await.map_err(pg(op))
    }

    async fn versioned(
        &self,
        op: &'static str,
        sql: &str,
        args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<(i64, String)>> {
        let c = self.client(op).await?;
        let rows = c.query(sql, args).await.map_err(pg(op))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }
}

#[async_trait]
impl AgentRows for PgStore {
    async fn put_pool_row(&self, pool: String, doc: String) -> Result<()> {
        self.exec(
            "agent put_pool",
            "INSERT INTO agent_pools (id, doc) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
            &[&pool, &doc],
        )
        .await
        .map(|_| ())
    }

    async fn pool_row(&self, pool: String) -> Result<Option<String>> {
        const OP: &str = "agent pool";
        let c = self.client(OP).await?;
        let row = c
            .query_opt("SELECT doc FROM agent_pools WHERE id = $1", &[&pool])
            .await
            .map_err(pg(OP))?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn insert_agent_row(&self, pool: String, agent: String, doc: String) -> Result<bool> {
        self.exec(
            "agent insert",
            "INSERT INTO agents (pool_id, id, version, doc) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (pool_id, id) DO NOTHING",
            &[&pool, &agent, &doc],
        )
        .await
        .map(|n| n == 1)
    }

    async fn agent_row(&self, pool: String, agent: String) -> Result<Option<(i64, String)>> {
        let mut v = self
            .versioned(
                "agent read",
                "SELECT version, doc FROM agents WHERE pool_id = $1 AND id = $2",
                &[&pool, &agent],
            )
            .await?;
        Ok(v.pop())
    }

    async fn agent_rows(&self, pool: String) -> Result<Vec<(i64, String)>> {
        self.versioned(
            "agent list",
            "SELECT version, doc FROM agents WHERE pool_id = $1 ORDER BY id",
            &[&pool],
        )
        .await
    }

    async fn cas_agent_row(
        &self,
        pool: String,
        agent: String,
        version: i64,
        doc: String,
    ) -> Result<bool> {
        self.exec(
            "agent update",
            "UPDATE agents SET doc = $1, version = version + 1 \
             WHERE pool_id = $2 AND id = $3 AND version = $4",
            &[&doc, &pool, &agent, &version],
        )
        .await
        .map(|n| n == 1)
    }

    async fn delete_agent_row(&self, pool: String, agent: String, version: i64) -> Result<bool> {
        self.exec(
            "agent delete",
            "DELETE FROM agents WHERE pool_id = $1 AND id = $2 AND version = $3",
            &[&pool, &agent, &version],
        )
        .await
        .map(|n| n == 1)
    }

    async fn insert_offer_row(&self, row: OfferRow) -> Result<bool> {
        self.exec(
            "offer insert",
            "INSERT INTO agent_offers (pool_id, id, version, live, created_ms, doc) \
             VALUES ($1, $2, 1, $3, $4, $5) ON CONFLICT (pool_id, id) DO NOTHING",
            &[&row.pool, &row.id, &row.live, &row.created_ms, &row.doc],
        )
        .await
        .map(|n| n == 1)
    }

    async fn offer_row(&self, pool: String, offer: String) -> Result<Option<(i64, String)>> {
        let mut v = self
            .versioned(
                "offer read",
                "SELECT version, doc FROM agent_offers WHERE pool_id = $1 AND id = $2",
                &[&pool, &offer],
            )
            .await?;
        Ok(v.pop())
    }

    async fn cas_offer_row(&self, version: i64, row: OfferRow) -> Result<bool> {
        self.exec(
            "offer update",
            "UPDATE agent_offers SET doc = $1, live = $2, version = version + 1 \
             WHERE pool_id = $3 AND id = $4 AND version = $5",
            &[&row.doc, &row.live, &row.pool, &row.id, &version],
        )
        .await
        .map(|n| n == 1)
    }

    async fn offer_rows(
        &self,
        pool: String,
        since_ms: i64,
        live_only: bool,
    ) -> Result<Vec<String>> {
        const OP: &str = "offer list";
        let c = self.client(OP).await?;
        let rows = c
            .query(
                "SELECT doc FROM agent_offers WHERE pool_id = $1 AND created_ms >= $2 \
                 AND ($3::BIGINT = 0 OR live = 1) ORDER BY created_ms, id",
                &[&pool, &since_ms, &i64::from(live_only)],
            )
            .await
            .map_err(pg(OP))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

agent_docs_via_rows!(PgStore);
