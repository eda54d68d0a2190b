//! [`AgentDocs`] (and so `AgentStore`) for [`Store`]: forwards to the backend.

use async_trait::async_trait;
use callbid_core::agents::{
    AgentDocs, AgentId, AgentPool, AgentPoolId, AgentRecord, Offer, OfferId, Versioned,
};
use callbid_core::StateError;
use chrono::{DateTime, Utc};

use crate::store::Store;

macro_rules! each {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            Store::Sqlite($s) => $e,
            #[cfg(feature = "postgres")]
            Store::Postgres($s) => $e,
        }
    };
}

#[async_trait]
impl AgentDocs for Store {
    async fn put_pool_doc(&self, pool: &AgentPool) -> Result<(), StateError> {
        each!(self, s => s.put_pool_doc(pool).await)
    }
    async fn pool_doc(&self, pool: &AgentPoolId) -> Result<Option<AgentPool>, StateError> {
        each!(self, s => s.pool_doc(pool).await)
    }
    async fn insert_agent(
        &self,
        pool: &AgentPoolId,
        record: &AgentRecord,
    ) -> Result<bool, StateError> {
        each!(self, s => s.insert_agent(pool, record).await)
    }
    async fn agent_doc(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
    ) -> Result<Option<Versioned<AgentRecord>>, StateError> {
        each!(self, s => s.agent_doc(pool, agent).await)
    }
    async fn agent_docs(
        &self,
        pool: &AgentPoolId,
    ) -> Result<Vec<Versioned<AgentRecord>>, StateError> {
        each!(self, s => s.agent_docs(pool).await)
    }
    async fn cas_agent(
        &self,
        pool: &AgentPoolId,
        version: i64,
        record: &AgentRecord,
    ) -> Result<bool, StateError> {
        each!(self, s => s.cas_agent(pool, version, record).await)
    }
    async fn delete_agent(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        version: i64,
    ) -> Result<bool, StateError> {
        each!(self, s => s.delete_agent(pool, agent, version).await)
    }
    async fn insert_offer(&self, offer: &Offer) -> Result<bool, StateError> {
        each!(self, s => s.insert_offer(offer).await)
    }
    async fn offer_doc(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
    ) -> Result<Option<Versioned<Offer>>, StateError> {
        each!(self, s => s.offer_doc(pool, offer).await)
    }
    async fn cas_offer(&self, version: i64, offer: &Offer) -> Result<bool, StateError> {
        each!(self, s => s.cas_offer(version, offer).await)
    }
    async fn offer_docs(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
        live_only: bool,
    ) -> Result<Vec<Offer>, StateError> {
        each!(self, s => s.offer_docs(pool, since, live_only).await)
    }
}
