//! Replaying an auction from its [`AuctionExplanation`] (issue 12, item 4).
//!
//! [`replay`] re-runs, from the logged inputs alone, the three things the auction
//! computes:
//!
//! 1. **validation**: the auction's own checks of each bid (buyer id, currency, a
//!    positive price, the floor, expiry at the logged clock, destination or accept step,
//!    SIP policy), then the logged rule refusal, if any;
//! 2. **scoring**: [`ScoringEngine::rescore`] from the history counts in each logged
//!    breakdown (no store is read);
//! 3. **selection**: the same ordering code as [`Auction::run`](super::Auction::run),
//!    then the cascade over the logged accept attempts: the first candidate whose accept
//!    succeeded wins; one that failed or was refused passes the call on.
//!
//! [`verify`] replays with the logged configuration and compares: the same winner (or
//! reason for none), each bid's validity and reason, each breakdown serialized byte for
//! byte, and the order the accepts were tried in. A [`WhatIf`] replays with another
//! strategy, scoring configuration or floor instead: a candidate the original never
//! tried is then assumed to accept ([`Replay::winner_assumed`]), and a bid the original
//! never scored is scored with no history ([`ReplayedBuyer::notes`] says so).

use std::sync::Arc;

use serde::Serialize;

use super::explain::{AuctionExplanation, BuyerInput, EXPLANATION_VERSION};
use super::order::{order_candidates, ranks_of};
use super::{
    unscored, AcceptRecord, BidChecks, BuyerReply, Candidate, Eligibility, NoBuyerReason, Strategy,
};
use crate::buyer::Bid;
use crate::error::ValidationError;
use crate::ids::BuyerId;
use crate::money::Money;
use crate::scoring::{ScoreBreakdown, ScoringConfig, ScoringEngine};
use crate::state::MemoryDurationHistory;

/// What to change in a replay (all `None`: replay as logged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WhatIf {
    /// Another strategy.
    pub strategy: Option<Strategy>,
    /// Another scoring configuration (weights, prior, history on or off).
    pub scoring: Option<ScoringConfig>,
    /// Another floor (`Some(None)`: no floor).
    pub floor: Option<Option<Money>>,
}

impl WhatIf {
    /// Replays under `strategy`.
    pub fn with_strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = Some(strategy);
        self
    }

    /// Replays with `scoring` (validated when the replay runs).
    pub fn with_scoring(mut self, scoring: ScoringConfig) -> Self {
        self.scoring = Some(scoring);
        self
    }

    /// Replays with `floor` (`None`: no floor).
    pub fn with_floor(mut self, floor: Option<Money>) -> Self {
        self.floor = Some(floor);
        self
    }

    /// True when nothing is changed.
    pub fn is_empty(&self) -> bool {
        self == &WhatIf::default()
    }
}

/// Why a replay could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The explanation was written in a shape this version does not read.
    #[error("explanation version {found} is not supported (this build reads {supported})")]
    UnsupportedVersion {
        /// The logged version.
        found: u32,
        /// The version read.
        supported: u32,
    },
    /// A what-if value is invalid.
    #[error("what-if: {0}")]
    InvalidWhatIf(#[from] ValidationError),
}

/// One buyer in a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReplayedBuyer {
    /// The buyer.
    pub buyer: BuyerId,
    /// As logged: pinged, or the rule that excluded it.
    pub eligibility: Eligibility,
    /// Its bid's price, when it bid.
    pub price: Option<Money>,
    /// Why its bid is invalid, when it is.
    pub invalid: Option<String>,
    /// Its score, when its bid is valid and was scored.
    pub score: Option<ScoreBreakdown>,
    /// Its place in the order accepts are tried in (0 = first), when valid.
    pub rank: Option<u32>,
    /// The logged accept attempt, when the replay reached it.
    pub accept: Option<AcceptRecord>,
    /// Assumptions the replay made for this buyer.
    pub notes: Vec<String>,
}

/// The result of a replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Replay {
    /// The strategy replayed.
    pub strategy: Strategy,
    /// One per buyer, in the auction's order.
    pub buyers: Vec<ReplayedBuyer>,
    /// The valid candidates in the order their accepts are tried.
    pub order: Vec<BuyerId>,
    /// Who wins.
    pub winner: Option<BuyerId>,
    /// True when the winner's accept was never attempted in the original (a what-if):
    /// it is assumed to succeed.
    pub winner_assumed: bool,
    /// Why nobody wins.
    pub no_buyer: Option<NoBuyerReason>,
}

/// A replay compared with the logged decision ([`verify`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ReplayCheck {
    /// The replay.
    pub replay: Replay,
    /// Every difference from the log, in words (empty: the replay agrees).
    pub mismatches: Vec<String>,
}

impl ReplayCheck {
    /// True when the replay agrees with the log in every respect.
    pub fn agrees(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Replays `expl` with the changes in `what_if` (see the module docs).
pub fn replay(expl: &AuctionExplanation, what_if: &WhatIf) -> Result<Replay, ReplayError> {
    if expl.version != EXPLANATION_VERSION {
        return Err(ReplayError::UnsupportedVersion {
            found: expl.version,
            supported: EXPLANATION_VERSION,
        });
    }
    let setup = Setup::new(expl, what_if)?;
    let mut buyers: Vec<ReplayedBuyer> = expl.buyers.iter().map(start).collect();
    let mut cands = setup.validate(expl, &mut buyers);
    setup.score(expl, &mut buyers, &mut cands);
    setup.order(expl, &mut cands);
    Ok(setup.cascade(expl, buyers, &cands))
}

/// Replays `expl` as logged and compares the result with the logged decision.
pub fn verify(expl: &AuctionExplanation) -> Result<ReplayCheck, ReplayError> {
    let replay = replay(expl, &WhatIf::default())?;
    let mismatches = compare(expl, &replay);
    Ok(ReplayCheck { replay, mismatches })
}

/// The configuration a replay runs under: the log's, with the what-if's changes.
struct Setup {
    strategy: Strategy,
    floor: Option<Money>,
    engine: Option<ScoringEngine>,
    /// True when the replay changes something (unattempted accepts are then assumed).
    what_if: bool,
}

impl Setup {
    fn new(expl: &AuctionExplanation, w: &WhatIf) -> Result<Self, ReplayError> {
        let floor = w.floor.unwrap_or(expl.floor);
        if let Some(f) = &floor {
            if f.currency != expl.currency {
                return Err(ValidationError::new(
                    "floor",
                    f.to_string(),
                    format!("not in the auction currency {}", expl.currency),
                )
                .into());
            }
        }
        let engine = match w.scoring.as_ref().or(expl.scoring.as_ref()) {
            Some(cfg) => Some(ScoringEngine::new(
                Arc::new(MemoryDurationHistory::new()),
                cfg.clone(),
            )?),
            None => None,
        };
        Ok(Setup {
            strategy: w.strategy.unwrap_or(expl.strategy),
            floor,
            engine,
            what_if: !w.is_empty(),
        })
    }

    /// Step 1: the auction's own checks, then the logged rule refusal.
    fn validate(&self, expl: &AuctionExplanation, out: &mut [ReplayedBuyer]) -> Vec<Candidate> {
        let checks = BidChecks {
            currency: expl.currency,
            floor: self.floor.as_ref(),
            allow_sip: expl.allow_sip,
        };
        let mut cands = Vec::new();
        for (idx, (b, r)) in expl.buyers.iter().zip(out.iter_mut()).enumerate() {
            let Some(bid) = received_bid(b) else { continue };
            let verdict = checks
                .check(&b.buyer, b.has_accept, bid, expl.clock)
                .and_then(|()| b.rule_refusal.clone().map_or(Ok(()), Err));
            match verdict {
                Ok(()) => cands.push(Candidate::new(idx, bid.price.amount)),
                Err(reason) => r.invalid = Some(reason),
            }
        }
        cands
    }

    /// Step 2: each candidate's score, from its logged evidence.
    fn score(&self, expl: &AuctionExplanation, out: &mut [ReplayedBuyer], cands: &mut [Candidate]) {
        // The original scored every candidate in one batch (except under FirstAccept);
        // a valid bid without a score there means that batch failed, and the auction
        // then ordered by price with every score 0.
        let batch_failed = expl.strategy != Strategy::FirstAccept
            && cands.iter().any(|c| {
                matches!(expl.buyers[c.idx].reply, BuyerReply::Bid { .. })
                    && expl.buyers[c.idx].score.is_none()
            });
        for c in cands.iter_mut() {
            let b = &expl.buyers[c.idx];
            let Some(bid) = received_bid(b) else { continue };
            let r = &mut out[c.idx];
            let logged = match (&b.score, &self.engine) {
                (Some(s), _) => s.clone(),
                (None, _) if batch_failed && !self.what_if => continue,
                (None, Some(_)) => {
                    r.notes
                        .push("not scored in the original: scored with no history".into());
                    unscored(bid)
                }
                (None, None) => {
                    r.notes
                        .push("not scored in the original, no engine to score it".into());
                    continue;
                }
            };
            let s = match &self.engine {
                Some(e) => e.rescore(&expl.call, &b.profile, bid, &logged),
                None => logged,
            };
            c.score = s.score;
            r.score = Some(s);
        }
    }

    /// Step 3a: the order accepts are tried in.
    fn order(&self, expl: &AuctionExplanation, cands: &mut [Candidate]) {
        if self.strategy == Strategy::FirstAccept {
            // Each valid bid was accepted as it arrived.
            cands.sort_by_key(|c| (expl.buyers[c.idx].arrival.unwrap_or(u32::MAX), c.idx));
            return;
        }
        let ids: Vec<&BuyerId> = expl.buyers.iter().map(|b| &b.buyer).collect();
        let id_rank = ranks_of(&ids);
        let profile = |idx: usize| {
            let p = &expl.buyers[idx].profile;
            (p.priority, p.weight)
        };
        order_candidates(self.strategy, &expl.call, profile, &id_rank, cands);
    }

    /// Step 3b: the cascade over the logged accept attempts.
    fn cascade(
        &self,
        expl: &AuctionExplanation,
        mut buyers: Vec<ReplayedBuyer>,
        cands: &[Candidate],
    ) -> Replay {
        let mut winner = None;
        let mut assumed = false;
        let mut cut = false;
        for (rank, c) in cands.iter().enumerate() {
            let r = &mut buyers[c.idx];
            r.rank = Some(u32::try_from(rank).unwrap_or(u32::MAX));
            if winner.is_some() || cut {
                continue;
            }
            let logged = expl.buyers[c.idx].accept.clone();
            match &logged {
                Some(AcceptRecord::Accepted { .. }) => winner = Some(r.buyer.clone()),
                Some(_) => {}
                None if self.what_if => {
                    r.notes
                        .push("accept not attempted in the original: assumed to succeed".into());
                    winner = Some(r.buyer.clone());
                    assumed = true;
                }
                // Not attempted: the original's deadline cut the cascade here.
                None => cut = true,
            }
            r.accept = logged;
        }
        let no_buyer = winner
            .is_none()
            .then(|| no_buyer_reason(expl, cands.is_empty(), cut));
        Replay {
            strategy: self.strategy,
            order: cands
                .iter()
                .map(|c| expl.buyers[c.idx].buyer.clone())
                .collect(),
            buyers,
            winner,
            winner_assumed: assumed,
            no_buyer,
        }
    }
}

/// A replayed buyer before the steps: its eligibility and price.
fn start(b: &BuyerInput) -> ReplayedBuyer {
    ReplayedBuyer {
        buyer: b.buyer.clone(),
        eligibility: b.eligibility.clone(),
        price: received_bid(b).map(|bid| bid.price),
        invalid: None,
        score: None,
        rank: None,
        accept: None,
        notes: Vec::new(),
    }
}

/// The bid a buyer answered with, valid or not.
fn received_bid(b: &BuyerInput) -> Option<&Bid> {
    match &b.reply {
        BuyerReply::Bid { bid } | BuyerReply::InvalidBid { bid, .. } => Some(bid),
        _ => None,
    }
}

/// The auction's rule for why nobody won, over the replayed validity.
fn no_buyer_reason(expl: &AuctionExplanation, no_valid: bool, cut: bool) -> NoBuyerReason {
    let any_pinged = expl
        .buyers
        .iter()
        .any(|b| b.eligibility == Eligibility::Eligible);
    let any_bid = expl.buyers.iter().any(|b| received_bid(b).is_some());
    if !any_pinged {
        NoBuyerReason::NoEligibleBuyers
    } else if !any_bid {
        NoBuyerReason::NoBids
    } else if no_valid {
        NoBuyerReason::NoValidBids
    } else if cut || expl.no_buyer == Some(NoBuyerReason::DeadlineExceeded) {
        NoBuyerReason::DeadlineExceeded
    } else {
        NoBuyerReason::AllAcceptsFailed
    }
}

/// Every difference between a replay and the logged decision.
fn compare(expl: &AuctionExplanation, replay: &Replay) -> Vec<String> {
    let mut out = Vec::new();
    if replay.winner != expl.winner {
        out.push(format!(
            "winner: logged {}, replayed {}",
            name(&expl.winner),
            name(&replay.winner)
        ));
    }
    if replay.no_buyer != expl.no_buyer {
        out.push(format!(
            "no-buyer reason: logged {:?}, replayed {:?}",
            expl.no_buyer, replay.no_buyer
        ));
    }
    for (b, r) in expl.buyers.iter().zip(&replay.buyers) {
        compare_buyer(b, r, &mut out);
    }
    out
}

fn compare_buyer(b: &BuyerInput, r: &ReplayedBuyer, out: &mut Vec<String>) {
    let logged_invalid = match &b.reply {
        BuyerReply::InvalidBid { reason, .. } => Some(reason),
        _ => None,
    };
    if logged_invalid != r.invalid.as_ref() {
        out.push(format!(
            "{}: validity: logged {:?}, replayed {:?}",
            b.buyer, logged_invalid, r.invalid
        ));
    }
    if let Some(s) = &b.score {
        let (logged, replayed) = (json(Some(s)), json(r.score.as_ref()));
        if logged != replayed {
            out.push(format!(
                "{}: breakdown: logged {logged}, replayed {replayed}",
                b.buyer
            ));
        }
    }
    // The accepts the original tried are exactly the ones the replay's cascade reached.
    if b.accept.is_some() != r.accept.is_some() {
        out.push(format!(
            "{}: accept attempted in the original: {}, reached by the replay: {}",
            b.buyer,
            b.accept.is_some(),
            r.accept.is_some()
        ));
    }
}

fn name(b: &Option<BuyerId>) -> &str {
    b.as_ref().map_or("nobody", |b| b.as_str())
}

/// A breakdown as serialized: bit-for-bit equality (decimals keep their scale).
fn json(s: Option<&ScoreBreakdown>) -> String {
    serde_json::to_string(&s).unwrap_or_else(|e| format!("unserializable: {e}"))
}
