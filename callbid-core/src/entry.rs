//! A buyer as an auction sees it: the buyer, its profile, its rules and its timeout.

use std::sync::Arc;
use std::time::Duration;

use crate::buyer::{Buyer, BuyerProfile};
use crate::rules::RoutingRule;

/// One buyer in an auction.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuyerEntry {
    /// The buyer.
    pub buyer: Arc<dyn Buyer>,
    /// Its profile (time zone, priority, weight, currency, minimum duration).
    pub profile: BuyerProfile,
    /// Rules that apply to this buyer only (the auction's global rules apply too).
    pub rules: Vec<Arc<dyn RoutingRule>>,
    /// Its own ping timeout, within the auction's deadline.
    pub timeout: Option<Duration>,
}

impl BuyerEntry {
    /// An entry with a default profile for the buyer's id and no rules.
    pub fn new(buyer: Arc<dyn Buyer>) -> Self {
        let profile = BuyerProfile::new(buyer.id().clone());
        BuyerEntry {
            buyer,
            profile,
            rules: Vec::new(),
            timeout: None,
        }
    }

    /// Sets the profile (its id should match the buyer's).
    pub fn with_profile(mut self, profile: BuyerProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Adds a rule.
    pub fn with_rule(mut self, rule: Arc<dyn RoutingRule>) -> Self {
        self.rules.push(rule);
        self
    }

    /// Sets the per-buyer ping timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}
