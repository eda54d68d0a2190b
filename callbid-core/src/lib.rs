//! callbid-core (work in progress).
#![deny(missing_docs)]
