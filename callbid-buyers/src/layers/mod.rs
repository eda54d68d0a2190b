//! Wrappers that are themselves [`Buyer`](callbid_core::Buyer)s, in the style of opendal
//! layers: wrap any buyer (HTTP or in-process) to add a rate limit, retries of
//! connection failures, or injected faults for tests.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use callbid_buyers::layers::{RateLimit, Retry};
//! # fn wrap(buyer: Arc<dyn callbid_core::Buyer>) -> Arc<dyn callbid_core::Buyer> {
//! let b: Arc<dyn callbid_core::Buyer> = Arc::new(Retry::new(buyer, 1, Duration::from_millis(20)));
//! Arc::new(RateLimit::new(b, 200, Duration::from_secs(60)))
//! # }
//! ```

mod faults;
mod rate_limit;
mod retry;

pub use faults::{Fault, FaultInjection};
pub use rate_limit::RateLimit;
pub use retry::Retry;
