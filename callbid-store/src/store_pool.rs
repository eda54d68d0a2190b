//! [`NumberPoolStore`] for [`Store`]: forwards to the backend.

use std::time::Duration;

use async_trait::async_trait;
use callbid_core::pool::{
    Attribution, InboundCall, LeaseId, LeaseOutcome, LeaseRequest, NumberPool, NumberPoolStore,
    NumberStatus, PoolHealth, PoolId, PoolNumber, RenewOutcome,
};
use callbid_core::{PhoneNumber, StateError};
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

impl Store {
    /// Pairs of exclusive leases of `pool` overlapping in time on one number, counted in
    /// SQL (the "never leased to two live sessions" invariant; must be 0).
    pub async fn pool_overlapping_leases(&self, pool: &PoolId) -> Result<i64, StateError> {
        each!(self, s => s.pool_overlapping_leases(pool).await)
    }
}

#[async_trait]
impl NumberPoolStore for Store {
    async fn put_pool(&self, pool: &NumberPool, now: DateTime<Utc>) -> Result<(), StateError> {
        each!(self, s => s.put_pool(pool, now).await)
    }
    async fn pool(&self, pool: &PoolId) -> Result<Option<NumberPool>, StateError> {
        each!(self, s => s.pool(pool).await)
    }
    async fn add_numbers(
        &self,
        pool: &PoolId,
        numbers: &[PoolNumber],
        now: DateTime<Utc>,
    ) -> Result<u64, StateError> {
        each!(self, s => s.add_numbers(pool, numbers, now).await)
    }
    async fn retire_number(
        &self,
        pool: &PoolId,
        number: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        each!(self, s => s.retire_number(pool, number, now).await)
    }
    async fn numbers(
        &self,
        pool: &PoolId,
        now: DateTime<Utc>,
    ) -> Result<Vec<NumberStatus>, StateError> {
        each!(self, s => s.numbers(pool, now).await)
    }
    async fn lease(&self, request: &LeaseRequest) -> Result<LeaseOutcome, StateError> {
        each!(self, s => s.lease(request).await)
    }
    async fn renew(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<RenewOutcome, StateError> {
        each!(self, s => s.renew(pool, lease, now).await)
    }
    async fn release(
        &self,
        pool: &PoolId,
        lease: &LeaseId,
        now: DateTime<Utc>,
    ) -> Result<bool, StateError> {
        each!(self, s => s.release(pool, lease, now).await)
    }
    async fn attribute(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        each!(self, s => s.attribute(call).await)
    }
    async fn record_call(&self, call: &InboundCall) -> Result<Attribution, StateError> {
        each!(self, s => s.record_call(call).await)
    }
    async fn purge(&self, pool: &PoolId, before: DateTime<Utc>) -> Result<u64, StateError> {
        each!(self, s => s.purge(pool, before).await)
    }
    async fn health(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        idle_after: Duration,
    ) -> Result<PoolHealth, StateError> {
        each!(self, s => s.health(pool, since, now, idle_after).await)
    }
    async fn leases_created(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<callbid_core::pool::Lease>, StateError> {
        each!(self, s => s.leases_created(pool, since, until).await)
    }
    async fn calls_recorded(
        &self,
        pool: &PoolId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<callbid_core::pool::RecordedCall>, StateError> {
        each!(self, s => s.calls_recorded(pool, since, until).await)
    }
}
