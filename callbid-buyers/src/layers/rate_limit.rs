//! A ping rate limit: at most `limit` pings in any sliding window of `period`.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerId, BuyerStep, CallContext, Capabilities,
    Deadline, Destination, Money, PingReply,
};
use tokio::time::Instant;

/// Refuses pings over `limit` per `period` with [`BuyerErrorKind::Refused`] at once,
/// rather than waiting (a wait would spend the caller's deadline). Accepts and loss
/// reports pass through uncounted.
pub struct RateLimit {
    inner: Arc<dyn Buyer>,
    limit: u32,
    period: Duration,
    sent: Mutex<VecDeque<Instant>>,
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("period", &self.period)
            .finish()
    }
}

impl RateLimit {
    /// At most `limit` pings per `period` (e.g. 200 per minute).
    pub fn new(inner: Arc<dyn Buyer>, limit: u32, period: Duration) -> Self {
        RateLimit {
            inner,
            limit,
            period,
            sent: Mutex::new(VecDeque::new()),
        }
    }

    fn admit(&self) -> Result<(), String> {
        let now = Instant::now();
        let mut q = self
            .sent
            .lock()
            .map_err(|_| "rate limiter state poisoned".to_string())?;
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.period)
        {
            q.pop_front();
        }
        if q.len() >= self.limit as usize {
            let wait = q
                .front()
                .map(|t| self.period.saturating_sub(now.duration_since(*t)))
                .unwrap_or_default();
            return Err(format!(
                "rate limit of {} pings per {} ms reached (next slot in {} ms)",
                self.limit,
                self.period.as_millis(),
                wait.as_millis()
            ));
        }
        q.push_back(now);
        Ok(())
    }
}

#[async_trait]
impl Buyer for RateLimit {
    fn id(&self) -> &BuyerId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn ping(&self, call: &CallContext, deadline: Deadline) -> Result<PingReply, BuyerError> {
        self.admit().map_err(|m| {
            BuyerError::new(
                self.id().clone(),
                BuyerStep::Ping,
                BuyerErrorKind::Refused,
                m,
            )
        })?;
        self.inner.ping(call, deadline).await
    }

    async fn accept(
        &self,
        call: &CallContext,
        bid: &Bid,
        deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        self.inner.accept(call, bid, deadline).await
    }

    async fn report_loss(
        &self,
        call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<(), BuyerError> {
        self.inner.report_loss(call, bid, sold).await
    }
}
