//! An agent pool as an auction [`Buyer`]: it bids the pool's configured value for the
//! call's service while an agent who handles the call is available, and no-bids
//! otherwise, so the auction weighs in-house agents against buyer networks.
//!
//! The bid's destination is the pool's *line*: the number or SIP URI whose inbound
//! webhook runs the offer (callbid-server's `agents` router, `POST /agents/voice`). The
//! accept step checks availability again (agents may have been taken since the ping) and
//! refuses when nobody is left, so the auction moves on to the next bid.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;

use super::model::{AgentPoolId, Needs};
use super::AgentStore;
use crate::buyer::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerStep, Capabilities, Deadline, PingReply,
};
use crate::call::CallContext;
use crate::ids::BuyerId;
use crate::phone::Destination;

/// The pool as a buyer.
#[derive(Debug, Clone)]
pub struct AgentPoolBuyer {
    id: BuyerId,
    pool: AgentPoolId,
    line: Destination,
    store: Arc<dyn AgentStore>,
}

impl AgentPoolBuyer {
    /// A buyer `id` for `pool`, whose calls are sent to `line`.
    pub fn new(
        id: BuyerId,
        pool: AgentPoolId,
        line: Destination,
        store: Arc<dyn AgentStore>,
    ) -> Self {
        AgentPoolBuyer {
            id,
            pool,
            line,
            store,
        }
    }

    fn needs(call: &CallContext) -> Needs {
        let mut n = Needs::new(call.service.clone(), call.zip);
        if let Some(l) = call
            .attributes
            .get("language")
            .and_then(|l| super::Language::new(l).ok())
        {
            n = n.with_language(l);
        }
        if let Some(c) = &call.caller {
            n = n.with_caller(c.clone());
        }
        n
    }

    fn err(&self, step: BuyerStep, kind: BuyerErrorKind, msg: impl Into<String>) -> BuyerError {
        BuyerError::new(self.id.clone(), step, kind, msg)
    }

    async fn available(&self, call: &CallContext, step: BuyerStep) -> Result<usize, BuyerError> {
        self.store
            .available(&self.pool, &Self::needs(call), Utc::now())
            .await
            .map_err(|e| self.err(step, BuyerErrorKind::Transport, e.to_string()))
    }
}

#[async_trait]
impl Buyer for AgentPoolBuyer {
    fn id(&self) -> &BuyerId {
        &self.id
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::default().with_has_accept(true)
    }

    async fn ping(&self, call: &CallContext, _deadline: Deadline) -> Result<PingReply, BuyerError> {
        let pool = self
            .store
            .pool(&self.pool)
            .await
            .map_err(|e| self.err(BuyerStep::Ping, BuyerErrorKind::Transport, e.to_string()))?
            .ok_or_else(|| {
                self.err(
                    BuyerStep::Ping,
                    BuyerErrorKind::Config,
                    format!("no agent pool {}", self.pool),
                )
            })?;
        let Some(price) = pool.bid_for(&call.service) else {
            return Ok(PingReply::NoBid {
                reason: format!("no bid configured for {}", call.service),
            });
        };
        let n = self.available(call, BuyerStep::Ping).await?;
        if n == 0 {
            return Ok(PingReply::NoBid {
                reason: "no agent available".into(),
            });
        }
        let data = serde_json::json!({ "agent_pool": self.pool.as_str(), "available": n });
        Ok(PingReply::Bid(
            Bid::new(self.id.clone(), price)
                .with_destination(self.line.clone())
                .with_adapter_data(data),
        ))
    }

    async fn accept(
        &self,
        call: &CallContext,
        _bid: &Bid,
        _deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        if self.available(call, BuyerStep::Accept).await? == 0 {
            return Err(self.err(
                BuyerStep::Accept,
                BuyerErrorKind::Rejected,
                "no agent available any more",
            ));
        }
        Ok(self.line.clone())
    }
}
