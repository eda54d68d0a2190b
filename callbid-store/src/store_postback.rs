//! [`PostbackOutbox`] for [`Store`]: forwards to the backend.

use async_trait::async_trait;
use callbid_core::state::{PostbackAttempt, PostbackDelivery, PostbackOutbox};
use callbid_core::{CallId, StateError};
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
impl PostbackOutbox for Store {
    async fn enqueue_postback(&self, delivery: &PostbackDelivery) -> Result<bool, StateError> {
        each!(self, s => s.enqueue_postback(delivery).await)
    }
    async fn claim_postbacks(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<PostbackDelivery>, StateError> {
        each!(self, s => s.claim_postbacks(holder, now, lease_until, limit).await)
    }
    async fn record_postback_attempt(
        &self,
        call: &CallId,
        publisher: &str,
        holder: &str,
        attempt: &PostbackAttempt,
    ) -> Result<bool, StateError> {
        each!(self, s => s.record_postback_attempt(call, publisher, holder, attempt).await)
    }
    async fn postbacks(&self, call: &CallId) -> Result<Vec<PostbackDelivery>, StateError> {
        each!(self, s => s.postbacks(call).await)
    }
}
