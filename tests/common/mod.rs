//! Helpers shared by the end-to-end tests (not a test target of its own).
pub mod browser;
pub mod ivr;
