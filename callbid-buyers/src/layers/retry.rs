//! Retries of requests that never reached the buyer, within the deadline.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use callbid_core::{
    Bid, Buyer, BuyerError, BuyerId, CallContext, Capabilities, Deadline, Destination, Money,
    PingReply,
};

/// Retries a step whose error [is safe to retry](BuyerError::is_safe_to_retry) — a
/// connection failure or a timeout where the request never reached the buyer (the
/// connection was never established) — up to `max_retries` times, after `backoff`, and
/// only while the deadline leaves room for the backoff. Nothing else is retried: a
/// request that may have reached the buyer (a timeout after it was written, a broken
/// answer) is not sent again, because a second ping (or worse, a second accept) is not
/// safe. Accepts are retried only when [`Retry::with_accept_retries`] is set.
pub struct Retry {
    inner: Arc<dyn Buyer>,
    max_retries: u32,
    backoff: Duration,
    retry_accept: bool,
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("max_retries", &self.max_retries)
            .field("backoff", &self.backoff)
            .field("retry_accept", &self.retry_accept)
            .finish()
    }
}

impl Retry {
    /// Up to `max_retries` retries, `backoff` apart (doubling each time).
    pub fn new(inner: Arc<dyn Buyer>, max_retries: u32, backoff: Duration) -> Self {
        Retry {
            inner,
            max_retries,
            backoff,
            retry_accept: false,
        }
    }

    /// Also retries accepts that failed to connect.
    pub fn with_accept_retries(mut self, yes: bool) -> Self {
        self.retry_accept = yes;
        self
    }

    async fn run<T, F, Fut>(&self, deadline: Deadline, mut f: F) -> Result<T, BuyerError>
    where
        F: FnMut() -> Fut + Send,
        Fut: std::future::Future<Output = Result<T, BuyerError>> + Send,
    {
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            match f().await {
                Err(e)
                    if e.is_safe_to_retry()
                        && attempt < self.max_retries
                        // leave at least the backoff again for the attempt itself
                        && deadline.remaining() > wait.saturating_mul(2) =>
                {
                    tracing::debug!(buyer = %e.buyer, attempt, error = %e, "retrying: the request did not reach the buyer");
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2);
                    attempt += 1;
                }
                Err(mut e) if attempt > 0 => {
                    e.message = format!("{} (after {attempt} retries)", e.message);
                    return Err(e);
                }
                other => return other,
            }
        }
    }
}

#[async_trait]
impl Buyer for Retry {
    fn id(&self) -> &BuyerId {
        self.inner.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn ping(&self, call: &CallContext, deadline: Deadline) -> Result<PingReply, BuyerError> {
        self.run(deadline, || self.inner.ping(call, deadline)).await
    }

    async fn accept(
        &self,
        call: &CallContext,
        bid: &Bid,
        deadline: Deadline,
    ) -> Result<Destination, BuyerError> {
        if self.retry_accept {
            self.run(deadline, || self.inner.accept(call, bid, deadline))
                .await
        } else {
            self.inner.accept(call, bid, deadline).await
        }
    }

    async fn report_loss(
        &self,
        call: &CallContext,
        bid: &Bid,
        sold: &Money,
    ) -> Result<(), BuyerError> {
        let deadline = Deadline::after(Duration::from_secs(5));
        self.run(deadline, || self.inner.report_loss(call, bid, sold))
            .await
    }
}
