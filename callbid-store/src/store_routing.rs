//! [`RoutingStore`] for [`Store`]: forwards to the backend.

use async_trait::async_trait;
use callbid_core::state::{RouteClaim, RouteDecision, RoutingStore};
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
impl RoutingStore for Store {
    async fn claim_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<RouteClaim, StateError> {
        each!(self, s => s.claim_route(call, step, holder, now, lease_until).await)
    }
    async fn decide_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
        twiml: &str,
        now: DateTime<Utc>,
    ) -> Result<RouteDecision, StateError> {
        each!(self, s => s.decide_route(call, step, holder, twiml, now).await)
    }
    async fn release_route(
        &self,
        call: &CallId,
        step: &str,
        holder: &str,
    ) -> Result<bool, StateError> {
        each!(self, s => s.release_route(call, step, holder).await)
    }
    async fn route_decision(
        &self,
        call: &CallId,
        step: &str,
    ) -> Result<Option<String>, StateError> {
        each!(self, s => s.route_decision(call, step).await)
    }
    async fn prune_routes(&self, before: DateTime<Utc>) -> Result<u64, StateError> {
        each!(self, s => s.prune_routes(before).await)
    }
}
