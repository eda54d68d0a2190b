//! Why this buyer won, and replay, over the call log (issue 12, items 3 and 4).
//!
//! Every auction the servers run logs an `auction_explained` event: the auction's full
//! inputs ([`AuctionExplanation`]). From it:
//!
//! - [`why_rows`] builds the dashboard's "why this buyer won" table: one row per buyer
//!   with its eligibility (or the rule that excluded it), its bid, each score factor
//!   and the history counts behind the duration factor, its place in the order and its
//!   accept;
//! - [`replay_call`] re-runs validation, scoring and selection from the logged inputs
//!   ([`callbid_core::auction::replay`]): with no change it confirms the logged winner
//!   and breakdowns bit for bit (`agrees`); with a [`WhatIfParams`] it shows what
//!   another strategy, floor or scoring configuration would have done. It serves
//!   `GET /api/calls/{call_id}/replay` and `callbid replay CALL_ID`.
//!
//! What-if parameters (query string or CLI flags), each validated with an error that
//! names the parameter and the value:
//!
//! | parameter | value |
//! |---|---|
//! | `strategy` | `highest-score`, `highest-bid`, `priority-weighted[:SEED]`, `first-accept` |
//! | `floor` | an amount in the auction's currency (`12.50`), or `none` |
//! | `prior` | the duration prior, 0 to 1 |
//! | `prior_strength` | calls of evidence the prior is worth, > 0 |
//! | `duration_history` | `on` or `off` |
//! | `hour_weight.H` | the weight of local hour `H` (0–23), ≥ 0 |
//! | `geo_weight.KEY` | the global weight of `state:TX` or `ac:512`, ≥ 0 |

use std::fmt::Write as _;

use callbid_core::auction::{
    replay, verify, AcceptRecord, AuctionExplanation, BuyerInput, BuyerReply, Eligibility, Replay,
    ReplayError, ReplayedBuyer, Strategy, WhatIf,
};
use callbid_core::scoring::{GeoKey, ScoreBreakdown, ScoringConfig};
use callbid_core::state::{CallEvent, CallEventKind, CallLog, HistoryStats};
use callbid_core::{BuyerId, CallId, Money, StateError, ValidationError};
use rust_decimal::Decimal;
use serde::Serialize;

/// The latest auction explanation among a call's events (an agent-assisted call may be
/// auctioned more than once: the last attempt is the one that routed it).
pub fn latest_explanation(events: &[CallEvent]) -> Option<&AuctionExplanation> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            CallEventKind::AuctionExplained { explanation } => Some((e, &**explanation)),
            _ => None,
        })
        .max_by(|(a, _), (b, _)| (a.at, &a.idempotency_key).cmp(&(b.at, &b.idempotency_key)))
        .map(|(_, x)| x)
}

/// One buyer's row of "why this buyer won".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WhyRow {
    /// The buyer.
    pub buyer: String,
    /// `won`, `excluded`, `no bid`, `failed`, `timed out`, `cancelled`, `invalid`,
    /// `accept failed`, `outbid`.
    pub outcome: String,
    /// The reason behind the outcome (the excluding rule, the invalid bid's reason, the
    /// accept's failure), or empty.
    pub detail: String,
    /// The bid, e.g. `42.00 USD`.
    pub bid: Option<String>,
    /// `1.2 (global:state:TX)`.
    pub geo: Option<String>,
    /// `1.5 (h09)`.
    pub time: Option<String>,
    /// `0.96875`.
    pub duration: Option<String>,
    /// The history behind the duration factor: `all 30/40 · state×hour 3/4 · ac×hour 1/1`
    /// (billable/calls).
    pub evidence: Option<String>,
    /// The score.
    pub score: Option<String>,
    /// Place in the order accepts were tried in (1 = first).
    pub rank: Option<u32>,
    /// True for the winner.
    pub winner: bool,
}

/// The "why this buyer won" rows of `replay` over the explanation it replayed: the
/// valid bids in the order their accepts were tried (the winner's first when it was
/// tried first), then the other buyers in the auction's order.
pub fn why_rows(expl: &AuctionExplanation, replay: &Replay) -> Vec<WhyRow> {
    let mut rows: Vec<WhyRow> = expl
        .buyers
        .iter()
        .zip(&replay.buyers)
        .map(|(input, r)| why_row(input, r, replay.winner.as_ref()))
        .collect();
    // Stable: unranked rows keep the auction's order.
    rows.sort_by_key(|r| r.rank.unwrap_or(u32::MAX));
    rows
}

fn why_row(input: &BuyerInput, r: &ReplayedBuyer, winner: Option<&BuyerId>) -> WhyRow {
    let won = winner == Some(&r.buyer);
    let (outcome, detail) = outcome_of(input, r, won);
    let s = r.score.as_ref();
    WhyRow {
        buyer: r.buyer.to_string(),
        outcome: outcome.to_owned(),
        detail,
        bid: r.price.map(|p| p.to_string()),
        geo: s.map(|s| format!("{} ({})", s.geo_factor, s.geo_basis)),
        time: s.map(|s| format!("{} (h{:02})", s.time_factor, s.local_hour)),
        duration: s.map(|s| s.duration_factor.to_string()),
        evidence: s.map(evidence),
        score: s.map(|s| s.score.to_string()),
        rank: r.rank.map(|k| k + 1),
        winner: won,
    }
}

fn outcome_of(input: &BuyerInput, r: &ReplayedBuyer, won: bool) -> (&'static str, String) {
    if won {
        return ("won", String::new());
    }
    if let Eligibility::Excluded { rule, reason } = &input.eligibility {
        return ("excluded", format!("{rule}: {reason}"));
    }
    if let Some(reason) = &r.invalid {
        return ("invalid", reason.clone());
    }
    match (&input.reply, &r.accept) {
        (BuyerReply::NoBid { reason }, _) => ("no bid", reason.clone()),
        (BuyerReply::Failed { kind, message }, _) => ("failed", format!("{kind}: {message}")),
        (BuyerReply::TimedOut, _) => ("timed out", String::new()),
        (BuyerReply::Cancelled, _) => ("cancelled", "another buyer accepted first".into()),
        (_, Some(AcceptRecord::Refused { reason })) => ("accept failed", reason.clone()),
        (_, Some(AcceptRecord::Failed { kind, message })) => {
            ("accept failed", format!("{kind}: {message}"))
        }
        _ => ("outbid", String::new()),
    }
}

fn evidence(s: &ScoreBreakdown) -> String {
    let ev = &s.duration_evidence;
    let part = |name: &str, h: Option<HistoryStats>| {
        h.map(|h| format!(" · {name} {}/{}", h.billable, h.calls))
            .unwrap_or_default()
    };
    format!(
        "all {}/{}{}{}",
        ev.overall.billable,
        ev.overall.calls,
        part("state×hour", ev.state_hour),
        part("ac×hour", ev.area_code_hour)
    )
}

/// What-if changes, as given by a user (see the module docs); applied to an
/// explanation by [`WhatIfParams::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WhatIfParams {
    /// Another strategy.
    pub strategy: Option<Strategy>,
    /// Another floor amount, in the auction's currency (`Some(None)`: no floor).
    pub floor: Option<Option<Decimal>>,
    /// Another prior.
    pub prior: Option<Decimal>,
    /// Another prior strength.
    pub prior_strength: Option<Decimal>,
    /// Duration history on or off.
    pub duration_history: Option<bool>,
    /// Hour weights to set.
    pub hour_weights: Vec<(u8, Decimal)>,
    /// Global geography weights to set.
    pub geo_weights: Vec<(GeoKey, Decimal)>,
}

impl WhatIfParams {
    /// Parses `(name, value)` pairs (a query string, or the CLI's flags).
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, ValidationError> {
        let mut p = WhatIfParams::default();
        for (k, v) in pairs {
            p.set(k, v)?;
        }
        Ok(p)
    }

    fn set(&mut self, k: &str, v: &str) -> Result<(), ValidationError> {
        match k {
            "strategy" => self.strategy = Some(crate::settle::parse_strategy(v)?),
            "floor" if v.trim().eq_ignore_ascii_case("none") => self.floor = Some(None),
            "floor" => {
                let floor = decimal("floor", v)?;
                if floor.is_sign_negative() {
                    return Err(ValidationError::new(
                        "floor",
                        v,
                        "a floor cannot be negative",
                    ));
                }
                self.floor = Some(Some(floor));
            }
            "prior" => self.prior = Some(decimal("prior", v)?),
            "prior_strength" => self.prior_strength = Some(decimal("prior_strength", v)?),
            "duration_history" => self.duration_history = Some(on_off("duration_history", v)?),
            _ => return self.set_weight(k, v),
        }
        Ok(())
    }

    fn set_weight(&mut self, k: &str, v: &str) -> Result<(), ValidationError> {
        if let Some(h) = k.strip_prefix("hour_weight.") {
            let hour = h
                .parse::<u8>()
                .ok()
                .filter(|h| *h < 24)
                .ok_or_else(|| ValidationError::new("hour_weight", h, "hours are 0 to 23"))?;
            self.hour_weights.push((hour, decimal("hour_weight", v)?));
        } else if let Some(g) = k.strip_prefix("geo_weight.") {
            self.geo_weights
                .push((g.parse()?, decimal("geo_weight", v)?));
        } else {
            return Err(ValidationError::new(
                "parameter",
                k,
                "expected strategy, floor, prior, prior_strength, duration_history, \
                 hour_weight.H or geo_weight.KEY",
            ));
        }
        Ok(())
    }

    /// True when nothing is changed.
    pub fn is_empty(&self) -> bool {
        self == &WhatIfParams::default()
    }

    /// The [`WhatIf`] these changes make of `expl`'s configuration (validated).
    pub fn apply(&self, expl: &AuctionExplanation) -> Result<WhatIf, ValidationError> {
        let mut w = WhatIf::default();
        if let Some(s) = self.strategy {
            w = w.with_strategy(s);
        }
        if let Some(f) = self.floor {
            w = w.with_floor(f.map(|a| Money::new(a, expl.currency)));
        }
        if self.changes_scoring() {
            w = w.with_scoring(self.scoring(expl)?);
        }
        Ok(w)
    }

    fn changes_scoring(&self) -> bool {
        self.prior.is_some()
            || self.prior_strength.is_some()
            || self.duration_history.is_some()
            || !self.hour_weights.is_empty()
            || !self.geo_weights.is_empty()
    }

    fn scoring(&self, expl: &AuctionExplanation) -> Result<ScoringConfig, ValidationError> {
        let mut cfg = expl.scoring.clone().unwrap_or_default();
        if let Some(p) = self.prior {
            cfg.prior = p;
        }
        if let Some(k) = self.prior_strength {
            cfg.prior_strength = k;
        }
        if let Some(on) = self.duration_history {
            cfg.use_duration_history = on;
        }
        cfg.hour_weights.extend(self.hour_weights.iter().copied());
        cfg.geo_weights.extend(self.geo_weights.iter().copied());
        cfg.validate()?;
        Ok(cfg)
    }
}

fn decimal(field: &'static str, v: &str) -> Result<Decimal, ValidationError> {
    v.trim()
        .parse()
        .map_err(|_| ValidationError::new(field, v, "expected a decimal number like 12.50"))
}

fn on_off(field: &'static str, v: &str) -> Result<bool, ValidationError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(ValidationError::new(field, v, "expected on or off")),
    }
}

/// A replay of one call's logged auction.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ReplayReport {
    /// The call.
    pub call_id: CallId,
    /// The logged winner.
    pub logged_winner: Option<BuyerId>,
    /// The logged strategy.
    pub logged_strategy: Strategy,
    /// True when the replay changed the configuration (a what-if).
    pub what_if: bool,
    /// Without a what-if: whether the replay agrees with the log, bit for bit.
    pub agrees: Option<bool>,
    /// Without a what-if: every difference from the log.
    pub mismatches: Vec<String>,
    /// The replay.
    pub replay: Replay,
    /// "Why this buyer won" under the replay.
    pub rows: Vec<WhyRow>,
}

/// Why a call could not be replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayCallError {
    /// The call log could not be read.
    #[error("cannot read call {call}: {source}")]
    Store {
        /// The call.
        call: CallId,
        /// The store's error.
        source: StateError,
    },
    /// The call has no logged auction explanation (no auction, or logged before
    /// explanations existed).
    #[error("call {0} has no logged auction explanation")]
    NoExplanation(CallId),
    /// A what-if value is invalid.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The replay itself refused.
    #[error("call {call}: {source}")]
    Replay {
        /// The call.
        call: CallId,
        /// Why.
        source: ReplayError,
    },
}

/// Replays `call`'s latest logged auction, as logged (`params` empty: confirms it) or
/// with the what-if `params`.
pub async fn replay_call(
    log: &dyn CallLog,
    call: &CallId,
    params: &WhatIfParams,
) -> Result<ReplayReport, ReplayCallError> {
    let events = log
        .events(call)
        .await
        .map_err(|source| ReplayCallError::Store {
            call: call.clone(),
            source,
        })?;
    let expl =
        latest_explanation(&events).ok_or_else(|| ReplayCallError::NoExplanation(call.clone()))?;
    report(call, expl, params)
}

/// [`replay_call`] over an explanation already read.
pub fn report(
    call: &CallId,
    expl: &AuctionExplanation,
    params: &WhatIfParams,
) -> Result<ReplayReport, ReplayCallError> {
    let failed = |source| ReplayCallError::Replay {
        call: call.clone(),
        source,
    };
    let (replay, agrees, mismatches) = if params.is_empty() {
        let check = verify(expl).map_err(failed)?;
        let agrees = check.agrees();
        (check.replay, Some(agrees), check.mismatches)
    } else {
        let w = params.apply(expl)?;
        (replay(expl, &w).map_err(failed)?, None, Vec::new())
    };
    Ok(ReplayReport {
        call_id: call.clone(),
        logged_winner: expl.winner.clone(),
        logged_strategy: expl.strategy,
        what_if: !params.is_empty(),
        agrees,
        mismatches,
        rows: why_rows(expl, &replay),
        replay,
    })
}

/// The report as text, for `callbid replay`.
pub fn render_text(r: &ReplayReport) -> String {
    let name = |b: &Option<BuyerId>| b.as_ref().map_or("nobody".to_owned(), |b| b.to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "call {}: logged winner {}",
        r.call_id,
        name(&r.logged_winner)
    );
    match r.agrees {
        Some(true) => {
            let _ = writeln!(
                out,
                "replay agrees: same winner, same breakdowns, bit for bit"
            );
        }
        Some(false) => {
            let _ = writeln!(out, "replay DISAGREES:");
            for m in &r.mismatches {
                let _ = writeln!(out, "  - {m}");
            }
        }
        None => {
            let assumed = if r.replay.winner_assumed {
                " (its accept was not attempted in the original: assumed to succeed)"
            } else {
                ""
            };
            let _ = writeln!(out, "what-if winner: {}{assumed}", name(&r.replay.winner));
        }
    }
    for row in &r.rows {
        let _ = writeln!(out, "{}", row_text(row));
    }
    out
}

fn row_text(w: &WhyRow) -> String {
    let rank = w.rank.map_or("  -".to_owned(), |k| format!("#{k:<2}"));
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut line = format!(
        "{rank} {:<16} {:<13} bid {}",
        w.buyer,
        w.outcome,
        opt(&w.bid)
    );
    if let Some(score) = &w.score {
        let _ = write!(
            line,
            " = score {score} (geo {} × time {} × duration {}; {})",
            opt(&w.geo),
            opt(&w.time),
            opt(&w.duration),
            opt(&w.evidence)
        );
    }
    if !w.detail.is_empty() {
        let _ = write!(line, " [{}]", w.detail);
    }
    line
}
