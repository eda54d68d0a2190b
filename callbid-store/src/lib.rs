//! # callbid-store
//!
//! WIP
#![deny(missing_docs)]

mod codec;
pub mod error;
pub mod report;
pub mod sqlite;

pub use error::{Result, StoreError};
pub use report::{
    AggregateRow, CallReports, Cursor, GroupBy, ReportFilter, ReportPage, ReportQuery, SortKey,
    SortOrder,
};
pub use sqlite::{SqliteOptions, SqliteStore, Synchronous};
