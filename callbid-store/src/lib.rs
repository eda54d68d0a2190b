//! callbid-store (work in progress).
#![deny(missing_docs)]
