//! Why this buyer won: an auction's full inputs, as the call log keeps them (issue 12,
//! item 3).
//!
//! [`Auction::explain`] gathers, after a run, everything that decided it: the call, the
//! clock reading the run used, the strategy (with its seed), the currency, floor and SIP
//! policy, the built-in scoring engine's configuration, and per buyer its profile,
//! whether it has an accept step, its eligibility (or the rule that excluded it), its
//! reply (the bid itself), its place among the answers, the rule that refused its bid,
//! its score breakdown with each factor and the history counts behind it, and its accept
//! attempt. [`replay`](super::replay) re-runs validation, scoring and selection from
//! exactly this and nothing else, so it can confirm the decision bit for bit, or show
//! what another configuration would have decided.
//!
//! What is taken as given rather than re-run: eligibility (rules read shared stores at
//! the time of the call), a rule's refusal of a bid, and the accept attempts (they are
//! the buyers' answers). Everything the auction computes from those is re-run.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    AcceptRecord, Auction, AuctionOutcome, BidChecks, BuyerRecord, BuyerReply, Eligibility,
    NoBuyerReason, Strategy,
};
use crate::buyer::BuyerProfile;
use crate::call::CallContext;
use crate::entry::BuyerEntry;
use crate::ids::BuyerId;
use crate::money::{Currency, Money};
use crate::scoring::{ScoreBreakdown, ScoringConfig};

/// The version of [`AuctionExplanation`]'s shape written today.
pub const EXPLANATION_VERSION: u32 = 1;

/// An auction's full inputs and its decision (see the module docs). Serialized as JSON
/// in the call log's `auction_explained` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuctionExplanation {
    /// [`EXPLANATION_VERSION`] when written.
    pub version: u32,
    /// The call as auctioned.
    pub call: CallContext,
    /// The auction clock's reading at the start: bids expire against it.
    pub clock: DateTime<Utc>,
    /// The strategy, with its seed for [`Strategy::PriorityWeighted`].
    pub strategy: Strategy,
    /// The currency bids had to be in.
    pub currency: Currency,
    /// The floor every bid had to reach.
    pub floor: Option<Money>,
    /// Whether SIP destinations were acceptable.
    pub allow_sip: bool,
    /// The scoring engine's configuration; `None` when the auction used a custom
    /// [`Scorer`](crate::scoring::Scorer) (a replay then takes the logged scores as given).
    pub scoring: Option<ScoringConfig>,
    /// One entry per buyer, in the order the auction was built with.
    pub buyers: Vec<BuyerInput>,
    /// The buyer that won.
    pub winner: Option<BuyerId>,
    /// Why nobody won.
    pub no_buyer: Option<NoBuyerReason>,
}

/// One buyer's inputs to an auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BuyerInput {
    /// The buyer.
    pub buyer: BuyerId,
    /// Its profile (zone, priority, weight, currency, default minimum duration).
    pub profile: BuyerProfile,
    /// Whether it has an accept step (a bid without a destination is valid only then).
    pub has_accept: bool,
    /// Pinged, or the rule that excluded it.
    pub eligibility: Eligibility,
    /// Its answer, the bid included.
    pub reply: BuyerReply,
    /// Its place among the answers (0 = first).
    #[serde(default)]
    pub arrival: Option<u32>,
    /// The rule's refusal when a rule's `check_bid` refused the bid (the auction's own
    /// checks having passed): `rule: reason`.
    #[serde(default)]
    pub rule_refusal: Option<String>,
    /// The score breakdown: each factor, and the history counts behind the duration
    /// factor.
    pub score: Option<ScoreBreakdown>,
    /// The accept attempt, when there was one.
    pub accept: Option<AcceptRecord>,
}

impl Auction {
    /// The explanation of `outcome`, a run of this auction for `call` (see the module
    /// docs). Cheap next to the run itself: it clones the records and the scoring
    /// configuration.
    pub fn explain(&self, call: &CallContext, outcome: &AuctionOutcome) -> AuctionExplanation {
        let inner = &self.inner;
        let checks = BidChecks {
            currency: inner.currency,
            floor: inner.floor.as_ref(),
            allow_sip: inner.allow_sip,
        };
        let now = outcome.timings.started_at;
        let buyers = inner
            .entries
            .iter()
            .zip(&outcome.buyers)
            .map(|(e, r)| buyer_input(e, r, &checks, now))
            .collect();
        AuctionExplanation {
            version: EXPLANATION_VERSION,
            call: call.clone(),
            clock: now,
            strategy: inner.strategy,
            currency: inner.currency,
            floor: inner.floor,
            allow_sip: inner.allow_sip,
            scoring: inner.scorer.scoring_config().cloned(),
            buyers,
            winner: outcome.winner().map(|w| w.buyer.clone()),
            no_buyer: outcome.no_buyer_reason(),
        }
    }
}

fn buyer_input(
    entry: &BuyerEntry,
    rec: &BuyerRecord,
    checks: &BidChecks<'_>,
    now: DateTime<Utc>,
) -> BuyerInput {
    let has_accept = entry.buyer.capabilities().has_accept;
    // A refused bid that passes the auction's own checks was refused by a rule.
    let rule_refusal = match &rec.reply {
        BuyerReply::InvalidBid { bid, reason } => checks
            .check(&rec.buyer, has_accept, bid, now)
            .is_ok()
            .then(|| reason.clone()),
        _ => None,
    };
    BuyerInput {
        buyer: rec.buyer.clone(),
        profile: entry.profile.clone(),
        has_accept,
        eligibility: rec.eligibility.clone(),
        reply: rec.reply.clone(),
        arrival: rec.arrival,
        rule_refusal,
        score: rec.score.clone(),
        accept: rec.accept.clone(),
    }
}
