//! [`AgentDocs`] (and so core's `AgentStore`) on SQLite and PostgreSQL.
//!
//! Both backends keep pools, agents and offers as JSON documents (`agent_pools`,
//! `agents`, `agent_offers`, migration `0007_agents`); agents and offers carry a
//! `version`, and every change is one `UPDATE … WHERE version = $read`. The offer logic
//! itself (claims, the accept that decides, tiers, TTLs) is core's, written once over
//! `AgentDocs`, so the backends only have to make each compare-and-set atomic: a single
//! `UPDATE` is, across processes on one SQLite file and across instances on one
//! PostgreSQL (the row lock makes the second writer re-check `version` and miss).

use async_trait::async_trait;

use callbid_core::agents::{AgentPool, AgentRecord, Offer};
use serde::de::DeserializeOwned;

use crate::error::{Result, StoreError};

/// What a backend provides; the JSON mapping below is shared.
#[async_trait]
pub(crate) trait AgentRows: Send + Sync {
    async fn put_pool_row(&self, pool: String, doc: String) -> Result<()>;
    async fn pool_row(&self, pool: String) -> Result<Option<String>>;
    async fn insert_agent_row(&self, pool: String, agent: String, doc: String) -> Result<bool>;
    async fn agent_row(&self, pool: String, agent: String) -> Result<Option<(i64, String)>>;
    async fn agent_rows(&self, pool: String) -> Result<Vec<(i64, String)>>;
    async fn cas_agent_row(
        &self,
        pool: String,
        agent: String,
        version: i64,
        doc: String,
    ) -> Result<bool>;
    async fn delete_agent_row(&self, pool: String, agent: String, version: i64) -> Result<bool>;
    async fn insert_offer_row(&self, row: OfferRow) -> Result<bool>;
    async fn offer_row(&self, pool: String, offer: String) -> Result<Option<(i64, String)>>;
    async fn cas_offer_row(&self, version: i64, row: OfferRow) -> Result<bool>;
    async fn offer_rows(&self, pool: String, since_ms: i64, live_only: bool)
        -> Result<Vec<String>>;
}

/// An offer as stored.
pub(crate) struct OfferRow {
    pub pool: String,
    pub id: String,
    pub live: i64,
    pub created_ms: i64,
    pub doc: String,
}

pub(crate) fn to_doc<T: serde::Serialize>(what: &'static str, v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::corrupt(what, e))
}

pub(crate) fn from_doc<T: DeserializeOwned>(what: &'static str, doc: &str) -> Result<T> {
    serde_json::from_str(doc).map_err(|e| StoreError::corrupt(what, e))
}

pub(crate) fn offer_row(o: &Offer) -> Result<OfferRow> {
    Ok(OfferRow {
        pool: o.pool.to_string(),
        id: o.id.to_string(),
        live: i64::from(!o.is_done()),
        created_ms: o.created_at.timestamp_millis(),
        doc: to_doc("agent offer", o)?,
    })
}

/// Checks that a stored agent's id matches its key (a corrupt row must not act as
/// another agent).
pub(crate) fn agent_of(doc: &str) -> Result<AgentRecord> {
    from_doc("agent", doc)
}

/// Pool settings from their document.
pub(crate) fn pool_of(doc: &str) -> Result<AgentPool> {
    from_doc("agent pool", doc)
}

/// Implements `AgentDocs` for a backend that implements [`AgentRows`].
macro_rules! agent_docs_via_rows {
    ($ty:ty) => {
        #[async_trait::async_trait]
        impl callbid_core::agents::AgentDocs for $ty {
            async fn put_pool_doc(
                &self,
                pool: &callbid_core::agents::AgentPool,
            ) -> std::result::Result<(), callbid_core::StateError> {
                let doc = crate::agents::to_doc("agent pool", pool)
                    .map_err(|e| e.into_state("agent put_pool"))?;
                self.put_pool_row(pool.id.to_string(), doc)
                    .await
                    .map_err(|e| e.into_state("agent put_pool"))
            }
            async fn pool_doc(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
            ) -> std::result::Result<
                Option<callbid_core::agents::AgentPool>,
                callbid_core::StateError,
            > {
                let op = "agent pool";
                match self
                    .pool_row(pool.to_string())
                    .await
                    .map_err(|e| e.into_state(op))?
                {
                    Some(d) => Ok(Some(
                        crate::agents::pool_of(&d).map_err(|e| e.into_state(op))?,
                    )),
                    None => Ok(None),
                }
            }
            async fn insert_agent(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
                record: &callbid_core::agents::AgentRecord,
            ) -> std::result::Result<bool, callbid_core::StateError> {
                let op = "agent insert";
                let doc = crate::agents::to_doc("agent", record).map_err(|e| e.into_state(op))?;
                self.insert_agent_row(pool.to_string(), record.agent.id.to_string(), doc)
                    .await
                    .map_err(|e| e.into_state(op))
            }
            async fn agent_doc(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
                agent: &callbid_core::agents::AgentId,
            ) -> std::result::Result<
                Option<callbid_core::agents::Versioned<callbid_core::agents::AgentRecord>>,
                callbid_core::StateError,
            > {
                let op = "agent read";
                let row = self
                    .agent_row(pool.to_string(), agent.to_string())
                    .await
                    .map_err(|e| e.into_state(op))?;
                row.map(|(version, d)| {
                    crate::agents::agent_of(&d)
                        .map(|value| callbid_core::agents::Versioned { version, value })
                        .map_err(|e| e.into_state(op))
                })
                .transpose()
            }
            async fn agent_docs(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
            ) -> std::result::Result<
                Vec<callbid_core::agents::Versioned<callbid_core::agents::AgentRecord>>,
                callbid_core::StateError,
            > {
                let op = "agent list";
                let rows = self
                    .agent_rows(pool.to_string())
                    .await
                    .map_err(|e| e.into_state(op))?;
                rows.into_iter()
                    .map(|(version, d)| {
                        crate::agents::agent_of(&d)
                            .map(|value| callbid_core::agents::Versioned { version, value })
                            .map_err(|e| e.into_state(op))
                    })
                    .collect()
            }
            async fn cas_agent(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
                version: i64,
                record: &callbid_core::agents::AgentRecord,
            ) -> std::result::Result<bool, callbid_core::StateError> {
                let op = "agent update";
                let doc = crate::agents::to_doc("agent", record).map_err(|e| e.into_state(op))?;
                self.cas_agent_row(pool.to_string(), record.agent.id.to_string(), version, doc)
                    .await
                    .map_err(|e| e.into_state(op))
            }
            async fn delete_agent(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
                agent: &callbid_core::agents::AgentId,
                version: i64,
            ) -> std::result::Result<bool, callbid_core::StateError> {
                self.delete_agent_row(pool.to_string(), agent.to_string(), version)
                    .await
                    .map_err(|e| e.into_state("agent delete"))
            }
            async fn insert_offer(
                &self,
                offer: &callbid_core::agents::Offer,
            ) -> std::result::Result<bool, callbid_core::StateError> {
                let op = "offer insert";
                let row = crate::agents::offer_row(offer).map_err(|e| e.into_state(op))?;
                self.insert_offer_row(row)
                    .await
                    .map_err(|e| e.into_state(op))
            }
            async fn offer_doc(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
                offer: &callbid_core::agents::OfferId,
            ) -> std::result::Result<
                Option<callbid_core::agents::Versioned<callbid_core::agents::Offer>>,
                callbid_core::StateError,
            > {
                let op = "offer read";
                let row = self
                    .offer_row(pool.to_string(), offer.to_string())
                    .await
                    .map_err(|e| e.into_state(op))?;
                row.map(|(version, d)| {
                    crate::agents::from_doc("agent offer", &d)
                        .map(|value| callbid_core::agents::Versioned { version, value })
                        .map_err(|e| e.into_state(op))
                })
                .transpose()
            }
            async fn cas_offer(
                &self,
                version: i64,
                offer: &callbid_core::agents::Offer,
            ) -> std::result::Result<bool, callbid_core::StateError> {
                let op = "offer update";
                let row = crate::agents::offer_row(offer).map_err(|e| e.into_state(op))?;
                self.cas_offer_row(version, row)
                    .await
                    .map_err(|e| e.into_state(op))
            }
            async fn offer_docs(
                &self,
                pool: &callbid_core::agents::AgentPoolId,
                since: chrono::DateTime<chrono::Utc>,
                live_only: bool,
            ) -> std::result::Result<Vec<callbid_core::agents::Offer>, callbid_core::StateError>
            {
                let op = "offer list";
                let rows = self
                    .offer_rows(pool.to_string(), since.timestamp_millis(), live_only)
                    .await
                    .map_err(|e| e.into_state(op))?;
                rows.iter()
                    .map(|d| {
                        crate::agents::from_doc("agent offer", d).map_err(|e| e.into_state(op))
                    })
                    .collect()
            }
        }
    };
}
pub(crate) use agent_docs_via_rows;
