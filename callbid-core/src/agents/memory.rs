//! The in-memory [`AgentDocs`] (and so [`super::AgentStore`]): one mutex (single process).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::*;
use super::{AgentDocs, Versioned};
use crate::error::StateError;

#[derive(Debug, Default)]
struct Inner {
    pools: HashMap<AgentPoolId, AgentPool>,
    agents: HashMap<AgentPoolId, BTreeMap<AgentId, Versioned<AgentRecord>>>,
    offers: HashMap<AgentPoolId, BTreeMap<OfferId, Versioned<Offer>>>,
}

/// Agent pools in memory, for tests, demos and single-process servers.
#[derive(Debug, Default)]
pub struct MemoryAgentStore {
    inner: Mutex<Inner>,
}

impl MemoryAgentStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl AgentDocs for MemoryAgentStore {
    async fn put_pool_doc(&self, pool: &AgentPool) -> Result<(), StateError> {
        self.lock().pools.insert(pool.id.clone(), pool.clone());
        Ok(())
    }

    async fn pool_doc(&self, pool: &AgentPoolId) -> Result<Option<AgentPool>, StateError> {
        Ok(self.lock().pools.get(pool).cloned())
    }

    async fn insert_agent(
        &self,
        pool: &AgentPoolId,
        record: &AgentRecord,
    ) -> Result<bool, StateError> {
        let mut g = self.lock();
        let m = g.agents.entry(pool.clone()).or_default();
        if m.contains_key(&record.agent.id) {
            return Ok(false);
        }
        m.insert(
            record.agent.id.clone(),
            Versioned {
                version: 1,
                value: record.clone(),
            },
        );
        Ok(true)
    }

    async fn agent_doc(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
    ) -> Result<Option<Versioned<AgentRecord>>, StateError> {
        Ok(self
            .lock()
            .agents
            .get(pool)
            .and_then(|m| m.get(agent))
            .cloned())
    }

    async fn agent_docs(
        &self,
        pool: &AgentPoolId,
    ) -> Result<Vec<Versioned<AgentRecord>>, StateError> {
        Ok(self
            .lock()
            .agents
            .get(pool)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn cas_agent(
        &self,
        pool: &AgentPoolId,
        version: i64,
        record: &AgentRecord,
    ) -> Result<bool, StateError> {
        let mut g = self.lock();
        let Some(v) = g
            .agents
            .get_mut(pool)
            .and_then(|m| m.get_mut(&record.agent.id))
        else {
            return Ok(false);
        };
        if v.version != version {
            return Ok(false);
        }
        v.version += 1;
        v.value = record.clone();
        Ok(true)
    }

    async fn delete_agent(
        &self,
        pool: &AgentPoolId,
        agent: &AgentId,
        version: i64,
    ) -> Result<bool, StateError> {
        let mut g = self.lock();
        let Some(m) = g.agents.get_mut(pool) else {
            return Ok(false);
        };
        if m.get(agent).map(|v| v.version) != Some(version) {
            return Ok(false);
        }
        m.remove(agent);
        Ok(true)
    }

    async fn insert_offer(&self, offer: &Offer) -> Result<bool, StateError> {
        let mut g = self.lock();
        let m = g.offers.entry(offer.pool.clone()).or_default();
        if m.contains_key(&offer.id) {
            return Ok(false);
        }
        m.insert(
            offer.id.clone(),
            Versioned {
                version: 1,
                value: offer.clone(),
            },
        );
        Ok(true)
    }

    async fn offer_doc(
        &self,
        pool: &AgentPoolId,
        offer: &OfferId,
    ) -> Result<Option<Versioned<Offer>>, StateError> {
        Ok(self
            .lock()
            .offers
            .get(pool)
            .and_then(|m| m.get(offer))
            .cloned())
    }

    async fn cas_offer(&self, version: i64, offer: &Offer) -> Result<bool, StateError> {
        let mut g = self.lock();
        let Some(v) = g
            .offers
            .get_mut(&offer.pool)
            .and_then(|m| m.get_mut(&offer.id))
        else {
            return Ok(false);
        };
        if v.version != version {
            return Ok(false);
        }
        v.version += 1;
        v.value = offer.clone();
        Ok(true)
    }

    async fn offer_docs(
        &self,
        pool: &AgentPoolId,
        since: DateTime<Utc>,
        live_only: bool,
    ) -> Result<Vec<Offer>, StateError> {
        let g = self.lock();
        let mut out: Vec<Offer> = g
            .offers
            .get(pool)
            .map(|m| {
                m.values()
                    .map(|v| v.value.clone())
                    .filter(|o| o.created_at >= since && (!live_only || !o.is_done()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::agents::conformance;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        let s = MemoryAgentStore::new();
        conformance::agent_store(&s, "mem").await.unwrap();
        conformance::two_handles(&s, &s, "mem2").await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_agents_race_on_threads() {
        let s = Arc::new(MemoryAgentStore::new());
        for i in 0..20 {
            conformance::concurrent_accepts(s.as_ref(), s.as_ref(), &format!("thr{i}"), 50)
                .await
                .unwrap();
        }
    }
}
