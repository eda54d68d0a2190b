//! # callbid-store
//!
//! Durable state for callbid: the state traits of `callbid-core` ([`CapStore`],
//! [`SeenCallers`], [`DurationHistory`], [`CallLog`]) on **SQLite** (embedded, the
//! default) and **PostgreSQL** (feature `postgres`, for several processes sharing state),
//! plus reports over the call log and streaming CSV / Excel exports.
//!
//! ```
//! use callbid_core::state::{AppendOutcome, CallEvent, CallEventKind, CallLog, CallStatus};
//! use callbid_core::CallId;
//! use callbid_store::{CallReports, ReportFilter, ReportQuery, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(&format!("sqlite://{}", dir.path().join("calls.db").display())).await?;
//!
//! let call = CallId::new("CA0001")?;
//! let incoming = CallEvent::new(call.clone(), chrono::Utc::now(), "incoming",
//!     CallEventKind::Incoming { caller: None, dialed: None, campaign: None, source: None });
//! assert_eq!(store.append(&incoming).await?, AppendOutcome::Recorded);
//! // Twilio retried the webhook: recorded once.
//! assert_eq!(store.append(&incoming).await?, AppendOutcome::Duplicate);
//!
//! let fallback = CallEvent::new(call.clone(), chrono::Utc::now(), "fallback",
//!     CallEventKind::Fallback { kind: "voicemail".into(), reason: "no bids".into() });
//! store.append(&fallback).await?;
//! assert_eq!(store.record(&call).await?.unwrap().status, CallStatus::Fallback);
//!
//! let filter = ReportFilter::from_pairs([("status", "fallback")])?;
//! let page = store.page(&ReportQuery::new(filter)).await?;
//! assert_eq!(page.rows.len(), 1);
//!
//! let mut csv = Vec::new();
//! store.export_csv(&ReportQuery::default(), &mut csv).await?;
//! assert!(String::from_utf8(csv)?.starts_with("call_id,received_at,status"));
//! # Ok(()) }
//! ```
//!
//! ## Layout
//!
//! - [`Store`]: opens `sqlite://PATH`, a plain path, `sqlite::memory:` or
//!   `postgres://…` ([`StoreUrl`]) and implements every trait.
//! - [`SqliteStore`], `PgStore` (feature `postgres`): the backends.
//! - [`report`]: [`ReportFilter`] (date range, ZIP, service, buyer, status,
//!   campaign/source, price range, currency), [`ReportQuery`] (sort + key-set
//!   pagination), [`GroupBy`] aggregates (calls, accept rate, fallback rate, revenue,
//!   payout, margin, average bid).
//! - [`export`]: CSV (RFC 4180, formula-injection safe) and `.xlsx`, both streaming.
//!
//! ## Data model
//!
//! `call_events` is append-only (triggers refuse UPDATE and DELETE) with
//! `UNIQUE (call_id, idempotency_key)`: the same Twilio callback delivered twice is
//! stored once. In the same transaction as the insert, the call's row in `calls` is
//! re-derived with [`CallRecord::apply`](callbid_core::state::CallRecord::apply), so
//! every store derives status and fields exactly as core does. `calls` holds the columns
//! reports filter on, each leading an index that ends in `(received_ns, call_id)`, so a
//! filtered page is an index range scan. Money is never a float: report columns are
//! exact integer micro-units (10⁻⁶) next to the exact decimal text, cap amounts are
//! exact decimal text (SQLite) or `NUMERIC` (PostgreSQL). Migrations are embedded and
//! applied on open.
//!
//! ## Durability and atomicity
//!
//! An append returns only after its transaction commits (SQLite: WAL,
//! `synchronous = FULL`). A cap reservation is one `BEGIN IMMEDIATE` transaction on
//! SQLite (SQLite's write lock makes it atomic across processes sharing the file) and,
//! on PostgreSQL, decided in a transaction holding each counter's row lock
//! (`cap_counters`), shared by the reservations queued meanwhile on the same handle
//! (group commit: one commit per batch, each answered after it).
//! A SQLite path is always a plain file name: `file:` URIs (whose `nolock=1`,
//! `immutable=1` or `mode=memory` would break that cross-process locking), `:memory:`
//! and the empty path are refused, and every open or migration error names the path.
//!
//! Expired cap reservations stop counting at once and are deleted by later
//! reservations, on both backends: at most 256 per reservation, oldest first, only
//! those expired over a minute before both the request's `now` and the local clock,
//! and after a batch that was not full, none for 10 s. `prune_expired` remains for
//! deleting everything at once.
//!
//! A bulk PostgreSQL `import` runs in one transaction holding one `SHARE ROW
//! EXCLUSIVE` lock on `call_events` and `calls` (so any number of calls fits;
//! concurrent appends wait for it, reads do not), three statements per 1 000 events.
//! `copy_from_sqlite` reads the SQLite source in one read transaction: one consistent
//! snapshot even while it is being written to.
//!
//! The PostgreSQL pool has a connect timeout (10 s, TCP and startup handshake) and an
//! acquire timeout (30 s waiting for a free connection), both set in `PgOptions`.
//! Report aggregates group and order text by bytes (`COLLATE "C"`, missing values
//! first) on both backends, whatever the database's collation. Passwords in store
//! URLs are never printed, even with raw `/`, `?`, `#` or `@` in them.
//!
//! ## Why these dependencies
//!
//! - `rusqlite` (feature `bundled`): the mature synchronous SQLite binding; bundling
//!   compiles SQLite in, so a fresh machine needs no system library and every build
//!   gets the same SQLite (row values, `NULLS LAST`, UPSERT). Driven through
//!   `tokio::task::spawn_blocking` with one writer connection and a few readers.
//! - `tokio-postgres` + `deadpool-postgres` (feature `postgres`): the native async
//!   PostgreSQL client and its small, runtime-agnostic pool; no ORM or compile-time
//!   query checking (which would need a database at build time).
//! - `rust_xlsxwriter` (feature `constant_memory`): writes real `.xlsx` with a
//!   constant-memory mode, which is what makes million-row exports bounded.
//! - `csv`: correct RFC 4180 quoting without hand-rolled escaping.
//! - `thiserror`, `serde_json`, `chrono`, `rust_decimal`, `async-trait`, `tokio`,
//!   `tracing`: shared with the rest of the workspace.
#![deny(missing_docs)]

mod agents;
mod campaign;
mod codec;
pub mod error;
pub mod export;
mod group;
mod postback;
#[cfg(feature = "postgres")]
pub mod postgres;
mod prune;
pub mod report;
pub mod sqlite;
mod store;
mod store_agents;
mod store_pool;
mod store_postback;
mod store_routing;
mod url;

pub use callbid_core::state::{CallLog, CapStore, DurationHistory, QualityHistory, SeenCallers};
pub use error::{Result, StoreError};
#[cfg(feature = "postgres")]
pub use postgres::{CopyStats, PgOptions, PgStore};
pub use report::{
    AggregateRow, CallReports, Cursor, GroupBy, ReportFilter, ReportPage, ReportQuery, SortKey,
    SortOrder,
};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
pub use store::{StateHandles, Store};
pub use url::StoreUrl;
