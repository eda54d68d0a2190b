//! Campaign rows on PostgreSQL (see `crate::campaign`). Each compare-and-set is one
//! `UPDATE … WHERE version = $n`, atomic across instances sharing the database.

use async_trait::async_trait;

use super::{pg, PgStore};
use crate::campaign::{campaign_store_via_rows, CampaignRows, ContactRow};
use crate::error::Result;

#[async_trait]
impl CampaignRows for PgStore {
    async fn insert(&self, id: &str, doc: String, contacts: Vec<ContactRow>) -> Result<bool> {
        const OP: &str = "campaign create";
        let mut c = self.client(OP).await?;
        let tx = c.transaction().await.map_err(pg(OP))?;
        let n = tx
            .execute(
                "INSERT INTO campaigns (id, version, doc) VALUES ($1, 0, $2) ON CONFLICT (id) DO NOTHING",
                &[&id, &doc],
            )
            .await
            .map_err(pg(OP))?;
        if n == 0 {
            return Ok(false);
        }
        let st = tx
            .prepare(
                "INSERT INTO campaign_contacts (campaign_id, number, seq, state, due_ms, \
                 dialing_since_ms, version, doc) VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
            )
            .await
            .map_err(pg(OP))?;
        for r in &contacts {
            tx.execute(
                &st,
                &[
                    &id,
                    &r.number,
                    &r.seq,
                    &r.state,
                    &r.due_ms,
                    &r.dialing_since_ms,
                    &r.doc,
                ],
            )
            .await
            .map_err(pg(OP))?;
        }
        tx.commit().await.map_err(pg(OP))?;
        Ok(true)
    }

    async fn load_campaign(&self, id: &str) -> Result<Option<(i64, String)>> {
        const OP: &str = "campaign read";
        let c = self.client(OP).await?;
        let row = c
            .query_opt("SELECT version, doc FROM campaigns WHERE id = $1", &[&id])
            .await
            .map_err(pg(OP))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn cas_campaign(&self, id: &str, version: i64, doc: String) -> Result<bool> {
        const OP: &str = "campaign set_status";
        let c = self.client(OP).await?;
        let n = c
            .execute(
                "UPDATE campaigns SET doc = $1, version = version + 1 WHERE id = $2 AND version = $3",
                &[&doc, &id, &version],
            )
            .await
            .map_err(pg(OP))?;
        Ok(n == 1)
    }

    async fn due(
        &self,
        id: &str,
        now_ms: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, String)>> {
        const OP: &str = "campaign claim_due";
        let c = self.client(OP).await?;
        let rows = c
            .query(
                "SELECT seq, version, doc FROM campaign_contacts WHERE campaign_id = $1 \
                 AND due_ms IS NOT NULL AND due_ms <= $2 AND seq > $3 ORDER BY seq LIMIT $4",
                &[&id, &now_ms, &after_seq, &limit],
            )
            .await
            .map_err(pg(OP))?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    async fn load_contact(&self, id: &str, number: &str) -> Result<Option<(i64, String)>> {
        const OP: &str = "campaign contact";
        let c = self.client(OP).await?;
        let row = c
            .query_opt(
                "SELECT version, doc FROM campaign_contacts WHERE campaign_id = $1 AND number = $2",
                &[&id, &number],
            )
            .await
            .map_err(pg(OP))?;
        Ok(row.map(|r| (r.get(0), r.get(1))))
    }

    async fn cas_contact(&self, id: &str, version: i64, row: ContactRow) -> Result<bool> {
        const OP: &str = "campaign apply";
        let c = self.client(OP).await?;
        let n = c
            .execute(
                "UPDATE campaign_contacts SET state = $1, due_ms = $2, dialing_since_ms = $3, \
                 doc = $4, version = version + 1 \
                 WHERE campaign_id = $5 AND number = $6 AND version = $7",
                &[
                    &row.state,
                    &row.due_ms,
                    &row.dialing_since_ms,
                    &row.doc,
                    &id,
                    &row.number,
                    &version,
                ],
            )
            .await
            .map_err(pg(OP))?;
        Ok(n == 1)
    }

    async fn all(&self, id: &str) -> Result<Vec<String>> {
        const OP: &str = "campaign progress";
        let c = self.client(OP).await?;
        let rows = c
            .query(
                "SELECT doc FROM campaign_contacts WHERE campaign_id = $1 ORDER BY seq",
                &[&id],
            )
            .await
            .map_err(pg(OP))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn dialing_before(&self, id: &str, before_ms: i64) -> Result<Vec<String>> {
        const OP: &str = "campaign stale";
        let c = self.client(OP).await?;
        let rows = c
            .query(
                "SELECT doc FROM campaign_contacts WHERE campaign_id = $1 \
                 AND dialing_since_ms IS NOT NULL AND dialing_since_ms < $2 ORDER BY seq",
                &[&id, &before_ms],
            )
            .await
            .map_err(pg(OP))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn list_campaigns(&self) -> Result<Vec<String>> {
        const OP: &str = "campaign list";
        let c = self.client(OP).await?;
        let rows = c
            .query("SELECT doc FROM campaigns ORDER BY id", &[])
            .await
            .map_err(pg(OP))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}

campaign_store_via_rows!(PgStore);
