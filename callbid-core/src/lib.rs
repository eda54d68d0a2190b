//! # callbid-core
//!
//! The heart of callbid: validated domain types, the [`Buyer`] and routing-rule traits,
//! the deterministic scoring engine and the concurrent ping-post auction. No HTTP, no
//! Twilio, no database: those live in `callbid-buyers`, `callbid-twilio` and
//! `callbid-store`, which implement the traits defined here.
#![deny(missing_docs)]

pub mod auction;
pub mod buyer;
pub mod call;
pub mod entry;
pub mod error;
pub mod geo;
pub mod ids;
pub mod inprocess;
pub mod money;
pub mod phone;
pub mod rules;
pub mod scoring;
pub mod state;
pub mod zip;

pub use buyer::{
    Bid, Buyer, BuyerError, BuyerErrorKind, BuyerProfile, BuyerStep, Capabilities, Deadline,
    PingReply,
};
pub use call::CallContext;
pub use entry::BuyerEntry;
pub use error::{StateError, ValidationError};
pub use geo::{area_code_info, zip_state, AreaCodeInfo, UsState};
pub use ids::{BuyerId, CallId, CampaignId, ServiceType, SourceId};
pub use money::{Currency, Money, MoneyError};
pub use phone::{Destination, PhoneNumber, SipUri};
pub use zip::Zip;
