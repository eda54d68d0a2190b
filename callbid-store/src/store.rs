//! [`Store`]: one handle over whichever backend a URL names.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use callbid_core::state::{
    AppendOutcome, CallEvent, CallLog, CallRecord, CapStore, ClaimOutcome, DurationHistory,
    HistoryKey, HistoryStats, QualityHistory, QualityObservation, QualityRecorded, QualityStats,
    ReservationId, ReservationRequest, ReserveOutcome, SeenCallers, SeenClaim,
};
use callbid_core::{BuyerId, CallId, PhoneNumber, StateError};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::error::{Result, StoreError};
#[cfg(feature = "postgres")]
use crate::postgres::PgStore;
use crate::report::{AggregateRow, CallReports, GroupBy, ReportFilter, ReportPage, ReportQuery};
use crate::sqlite::SqliteStore;
use crate::url::StoreUrl;

/// A durable store on SQLite or PostgreSQL, chosen by URL. Implements every state trait
/// of `callbid-core` ([`CapStore`], [`SeenCallers`], [`DurationHistory`], [`CallLog`])
/// and [`CallReports`]. Cheap to clone.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Store {
    /// SQLite.
    Sqlite(SqliteStore),
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(PgStore),
}

/// The state traits of a store as shared trait objects, for code that wants them apart
/// (e.g. an auction taking `Arc<dyn CapStore>`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StateHandles {
    /// Caps.
    pub caps: Arc<dyn CapStore>,
    /// Duplicate callers.
    pub seen: Arc<dyn SeenCallers>,
    /// Duration history.
    pub history: Arc<dyn DurationHistory>,
    /// Call log.
    pub log: Arc<dyn CallLog>,
    /// Reports.
    pub reports: Arc<dyn CallReports>,
    /// Routing decisions (webhook retries answered the same on any instance).
    pub routing: Arc<dyn callbid_core::state::RoutingStore>,
}

impl Store {
    /// Opens the store a URL or path names (see [`StoreUrl::parse`]), creating the
    /// SQLite file and applying migrations as needed.
    pub async fn open(url: &str) -> Result<Store> {
        Self::open_url(&StoreUrl::parse(url)?).await
    }

    /// Opens a parsed [`StoreUrl`].
    pub async fn open_url(url: &StoreUrl) -> Result<Store> {
        match url {
            StoreUrl::SqliteMemory => Ok(Store::Sqlite(SqliteStore::open_in_memory()?)),
            StoreUrl::SqliteFile(p) => {
                let p = p.clone();
                let s = tokio::task::spawn_blocking(move || SqliteStore::open(p))
                    .await
                    .map_err(|e| StoreError::Task {
                        operation: "open",
                        message: e.to_string(),
                    })??;
                Ok(Store::Sqlite(s))
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(u) => Ok(Store::Postgres(PgStore::connect(u).await?)),
            #[cfg(not(feature = "postgres"))]
            StoreUrl::Postgres(_) => Err(StoreError::Unsupported {
                backend: "postgres",
                reason: "callbid-store was built without the `postgres` feature",
            }),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => "postgres",
        }
    }

    /// The state traits as shared trait objects (all backed by this store).
    pub fn handles(&self) -> StateHandles {
        let s = Arc::new(self.clone());
        StateHandles {
            caps: s.clone(),
            seen: s.clone(),
            history: s.clone(),
            log: s.clone(),
            reports: s.clone(),
            routing: s,
        }
    }

    /// Appends an event with this crate's error type.
    pub async fn append_event(&self, event: &CallEvent) -> Result<AppendOutcome> {
        match self {
            Store::Sqlite(s) => s.append_event(event).await,
            #[cfg(feature = "postgres")]
            Store::Postgres(s) => s.append_event(event).await,
        }
    }

    /// Streams the calls of `query` as CSV into `writer` (see [`crate::export`]).
    pub async fn export_csv<W: Write>(&self, query: &ReportQuery, writer: W) -> Result<u64> {
        crate::export::export_csv(self, query, writer).await
    }

    /// Streams the calls of `query` as an `.xlsx` workbook into `writer`.
    pub async fn export_xlsx<W: Write + Send>(
        &self,
        query: &ReportQuery,
        writer: W,
    ) -> Result<u64> {
        crate::export::export_xlsx(self, query, writer).await
    }
}

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
impl CallReports for Store {
    async fn page(&self, query: &ReportQuery) -> Result<ReportPage> {
        each!(self, s => s.page(query).await)
    }
    async fn aggregate(
        &self,
        filter: &ReportFilter,
        group_by: GroupBy,
    ) -> Result<Vec<AggregateRow>> {
        each!(self, s => s.aggregate(filter, group_by).await)
    }
}

#[async_trait]
impl CallLog for Store {
    async fn append(&self, event: &CallEvent) -> Result<AppendOutcome, StateError> {
        each!(self, s => CallLog::append(s, event).await)
    }
    async fn append_all(&self, events: &[CallEvent]) -> Result<Vec<AppendOutcome>, StateError> {
        each!(self, s => CallLog::append_all(s, events).await)
    }
    async fn events(&self, call: &CallId) -> Result<Vec<CallEvent>, StateError> {
        each!(self, s => CallLog::events(s, call).await)
    }
    async fn record(&self, call: &CallId) -> Result<Option<CallRecord>, StateError> {
        each!(self, s => CallLog::record(s, call).await)
    }
    async fn has_key_prefix(&self, call: &CallId, prefix: &str) -> Result<bool, StateError> {
        each!(self, s => CallLog::has_key_prefix(s, call, prefix).await)
    }
}

#[async_trait]
impl CapStore for Store {
    async fn usage(&self, key: &str, now: DateTime<Utc>) -> Result<Decimal, StateError> {
        each!(self, s => s.usage(key, now).await)
    }
    async fn reserve(&self, request: &ReservationRequest) -> Result<ReserveOutcome, StateError> {
        each!(self, s => s.reserve(request).await)
    }
    async fn release(&self, id: &ReservationId) -> Result<bool, StateError> {
        each!(self, s => s.release(id).await)
    }
}

#[async_trait]
impl SeenCallers for Store {
    async fn last_seen(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
    ) -> Result<Option<DateTime<Utc>>, StateError> {
        each!(self, s => s.last_seen(buyer, caller).await)
    }
    async fn record(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        each!(self, s => SeenCallers::record(s, buyer, caller, at).await)
    }

    async fn claim(&self, claim: &SeenClaim) -> Result<ClaimOutcome, StateError> {
        each!(self, s => s.claim(claim).await)
    }

    async fn confirm_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
        at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        each!(self, s => s.confirm_claim(buyer, caller, holder, at).await)
    }

    async fn release_claim(
        &self,
        buyer: &BuyerId,
        caller: &PhoneNumber,
        holder: &ReservationId,
    ) -> Result<bool, StateError> {
        each!(self, s => s.release_claim(buyer, caller, holder).await)
    }
}

#[async_trait]
impl DurationHistory for Store {
    async fn record(&self, keys: &[HistoryKey], billable: bool) -> Result<(), StateError> {
        each!(self, s => DurationHistory::record(s, keys, billable).await)
    }
    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<HistoryStats>, StateError> {
        each!(self, s => DurationHistory::stats(s, keys).await)
    }
}

#[async_trait]
impl QualityHistory for Store {
    async fn record(
        &self,
        call: &CallId,
        keys: &[HistoryKey],
        obs: QualityObservation,
    ) -> Result<QualityRecorded, StateError> {
        each!(self, s => QualityHistory::record(s, call, keys, obs).await)
    }
    async fn outcome(&self, call: &CallId) -> Result<Option<QualityObservation>, StateError> {
        each!(self, s => s.outcome(call).await)
    }
    async fn stats(&self, keys: &[HistoryKey]) -> Result<Vec<QualityStats>, StateError> {
        each!(self, s => QualityHistory::stats(s, keys).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_forms() {
        let s = Store::open("sqlite::memory:").await.unwrap();
        assert_eq!(s.backend(), "sqlite");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.db");
        let s = Store::open(&format!("sqlite://{}", p.display()))
            .await
            .unwrap();
        assert_eq!(s.backend(), "sqlite");
        assert!(p.exists());
        let e = Store::open("ftp://x").await.unwrap_err().to_string();
        assert!(e.contains("ftp"), "{e}");
        let missing_dir = dir.path().join("no/such/dir/x.db");
        let e = Store::open(missing_dir.to_str().unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("open"), "{e}");
    }

    #[cfg(not(feature = "postgres"))]
    #[tokio::test]
    async fn postgres_needs_the_feature() {
        let e = Store::open("postgres://u@127.0.0.1/db").await.unwrap_err();
        assert!(matches!(
            e,
            StoreError::Unsupported {
                backend: "postgres",
                ..
            }
        ));
    }
}
