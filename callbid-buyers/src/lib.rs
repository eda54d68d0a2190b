//! callbid-buyers (work in progress).
#![deny(missing_docs)]
