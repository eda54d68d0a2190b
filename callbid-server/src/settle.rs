//! Pieces an IVR or agent-assisted server shares: building the auction over a store's
//! duration history, writing an auction's outcome to the call log event by event,
//! settling a finished call (duration history, billing, live-call cap release), and
//! telling when Twilio's status callback says a call is over.

use std::sync::Arc;
use std::time::Duration;

use callbid_core::auction::{
    AcceptRecord, Auction, AuctionExplanation, AuctionOutcome, AuctionResult, BuyerRecord,
    BuyerReply, Eligibility, Strategy,
};
use callbid_core::billing::{settle, PayoutRule, Settlement};
use callbid_core::rules::CapRule;
use callbid_core::scoring::{ScoringConfig, ScoringEngine};
use callbid_core::state::{
    record_outcome, AppendOutcome, CallEvent, CallEventKind, CallLog, CapStore, DurationHistory,
};
use callbid_core::{
    Bid, BuyerEntry, BuyerId, BuyerProfile, CallContext, CallId, Money, ValidationError,
};
use callbid_twilio::webhook::CallStatus;
use chrono::Utc;
use rust_decimal::Decimal;

/// Builds an auction over `entries`, scoring with the duration history in `history`.
pub fn build_auction(
    entries: Vec<BuyerEntry>,
    history: Arc<dyn DurationHistory>,
    strategy: Strategy,
    deadline: Duration,
) -> anyhow::Result<Auction> {
    let scorer = ScoringEngine::new(history, ScoringConfig::default())?;
    Ok(Auction::builder()
        .buyers(entries)
        .scorer(Arc::new(scorer))
        .strategy(strategy)
        .deadline(deadline)
        .build()?)
}

/// [`build_auction`] scoring with `scoring` and the quality counts in `quality` (the
/// quality factor and exploration of issue 12, when `scoring` turns them on).
pub fn build_auction_with_quality(
    entries: Vec<BuyerEntry>,
    history: Arc<dyn DurationHistory>,
    quality: Arc<dyn callbid_core::state::QualityHistory>,
    scoring: ScoringConfig,
    strategy: Strategy,
    deadline: Duration,
) -> anyhow::Result<Auction> {
    let scorer = ScoringEngine::new(history, scoring)?.with_quality_history(quality);
    Ok(Auction::builder()
        .buyers(entries)
        .scorer(Arc::new(scorer))
        .strategy(strategy)
        .deadline(deadline)
        .build()?)
}

/// The strategy names [`parse_strategy`] accepts, as the README documents them.
pub const STRATEGY_NAMES: &str =
    "highest-score, highest-bid, priority-weighted[:SEED] or first-accept";

/// Parses a strategy name: `highest-score`, `highest-bid`, `priority-weighted[:SEED]`,
/// `first-accept` (core's [`Strategy`] variants in kebab case, `_` taken as `-`, any
/// case), and the short forms `score`, `bid` and `priority[:SEED]`. The inverse of
/// [`strategy_name`].
pub fn parse_strategy(s: &str) -> Result<Strategy, ValidationError> {
    let norm = s.trim().to_ascii_lowercase().replace('_', "-");
    let (name, seed) = match norm.split_once(':') {
        Some((n, seed)) => (n, Some(seed)),
        None => (norm.as_str(), None),
    };
    let priority = matches!(name, "priority-weighted" | "priority");
    Ok(match (name, seed) {
        ("highest-score" | "score", None) => Strategy::HighestScore,
        ("highest-bid" | "bid", None) => Strategy::HighestBid,
        ("first-accept", None) => Strategy::FirstAccept,
        (_, None) if priority => Strategy::PriorityWeighted { seed: 0 },
        (_, Some(seed)) if priority => Strategy::PriorityWeighted {
            seed: seed.parse().map_err(|_| {
                ValidationError::new("strategy", s, "priority seed must be an unsigned integer")
            })?,
        },
        _ => {
            let expected = format!("expected {STRATEGY_NAMES}");
            return Err(ValidationError::new("strategy", s, expected));
        }
    })
}

/// A strategy's name as [`parse_strategy`] reads it back: `priority-weighted:SEED` with
/// a seed other than 0.
pub fn strategy_name(s: &Strategy) -> String {
    match s {
        Strategy::HighestScore => "highest-score".to_owned(),
        Strategy::HighestBid => "highest-bid".to_owned(),
        Strategy::PriorityWeighted { seed: 0 } => "priority-weighted".to_owned(),
        Strategy::PriorityWeighted { seed } => format!("priority-weighted:{seed}"),
        Strategy::FirstAccept => "first-accept".to_owned(),
        // A strategy added to core later: its serde name, in kebab case.
        other => serde_json::to_value(other)
            .ok()
            .and_then(|v| v["name"].as_str().map(|n| n.replace('_', "-")))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// Parses a payout rule: `70%` (percent of revenue) or `12.50` (fixed USD per billable call).
pub fn parse_payout(s: &str) -> Result<PayoutRule, ValidationError> {
    let t = s.trim();
    let rule = if let Some(p) = t.strip_suffix('%') {
        let pct: Decimal = p
            .trim()
            .parse()
            .map_err(|_| ValidationError::new("payout", s, "expected a percentage like 70%"))?;
        PayoutRule::PercentOfRevenue(pct)
    } else {
        let amount: Decimal = t.parse().map_err(|_| {
            ValidationError::new(
                "payout",
                s,
                "expected a percentage like 70% or a fixed amount like 12.50",
            )
        })?;
        PayoutRule::Fixed(Money::usd(amount))
    };
    rule.validate()?;
    Ok(rule)
}

/// Appends `kind` to the call's log under `key`; `Ok(true)` when it was new.
pub async fn log(
    log: &dyn CallLog,
    call: &CallId,
    key: impl Into<String>,
    kind: CallEventKind,
) -> Result<bool, callbid_core::StateError> {
    let e = CallEvent::new(call.clone(), Utc::now(), key, kind);
    Ok(log.append(&e).await? == AppendOutcome::Recorded)
}

/// Writes an auction's outcome to the call log: `auction_started`, one `ping_result`
/// per buyer (excluded ones with the rule that excluded them), `accept_failed` for each
/// failed accept, then `winner` and `accepted`, and last `auction_explained`: the
/// auction's full inputs ([`Auction::explain`]), from which the dashboard shows why the
/// winner won and `callbid replay` re-runs the decision. The idempotency keys are
/// `auction_started`, `ping:{buyer}`, `accept_failed:{buyer}`, `winner`, `accepted` and
/// `explanation`. (Re-running it for the same call records nothing twice.)
pub async fn log_auction(
    calls: &dyn CallLog,
    auction: &Auction,
    call: &CallContext,
    outcome: &AuctionOutcome,
) -> Result<(), callbid_core::StateError> {
    log_auction_attempt(calls, auction, call, outcome, 1).await
}

/// [`log_auction`] for the `attempt`-th auction of a call that may be auctioned more
/// than once (agent-assisted calls): the first attempt's events are exactly
/// [`log_auction`]'s; a later attempt's keys end in `:{attempt}` (`auction_started:2`,
/// `ping:{buyer}:2`, …) so that its events are recorded too, with the same kinds and
/// the same fields.
pub async fn log_auction_attempt(
    calls: &dyn CallLog,
    auction: &Auction,
    call: &CallContext,
    outcome: &AuctionOutcome,
    attempt: u32,
) -> Result<(), callbid_core::StateError> {
    crate::metrics::record_auction(outcome);
    let explanation = auction.explain(call, outcome);
    // One unit: a durable store commits the auction's events together.
    calls
        .append_all(&auction_events(
            call,
            outcome,
            explanation,
            attempt,
            Utc::now(),
        ))
        .await?;
    Ok(())
}

/// The events [`log_auction_attempt`] appends, in order; `now` stamps all but
/// `auction_started` (which carries the auction's start). `explanation` is the
/// outcome's [`Auction::explain`], logged last.
pub fn auction_events(
    call: &CallContext,
    outcome: &AuctionOutcome,
    explanation: AuctionExplanation,
    attempt: u32,
    now: chrono::DateTime<Utc>,
) -> Vec<CallEvent> {
    let key = |base: String| {
        if attempt <= 1 {
            base
        } else {
            format!("{base}:{attempt}")
        }
    };
    let event = |k: String, kind| CallEvent::new(call.call_id.clone(), now, key(k), kind);
    let mut events = Vec::with_capacity(outcome.buyers.len() + 3);
    events.push(CallEvent::new(
        call.call_id.clone(),
        outcome.timings.started_at,
        key("auction_started".to_owned()),
        started_kind(call, outcome),
    ));
    for b in &outcome.buyers {
        events.push(event(format!("ping:{}", b.buyer), ping_kind(b)));
    }
    // Failed accepts first (the cascade tried them before the winner).
    for b in &outcome.buyers {
        let reason = match &b.accept {
            Some(AcceptRecord::Refused { reason }) => format!("refused: {reason}"),
            Some(AcceptRecord::Failed { kind, message }) => format!("{kind}: {message}"),
            _ => continue,
        };
        let kind = CallEventKind::AcceptFailed {
            buyer: b.buyer.clone(),
            reason,
        };
        events.push(event(format!("accept_failed:{}", b.buyer), kind));
    }
    if let AuctionResult::Won(w) = &outcome.result {
        let winner = CallEventKind::Winner {
            buyer: w.buyer.clone(),
            price: w.bid.price,
            score: w.score.score,
        };
        events.push(event("winner".to_owned(), winner));
        let accepted = CallEventKind::Accepted {
            buyer: w.buyer.clone(),
            destination: w.destination.clone(),
        };
        events.push(event("accepted".to_owned(), accepted));
    }
    let explained = CallEventKind::AuctionExplained {
        explanation: Box::new(explanation),
    };
    events.push(event("explanation".to_owned(), explained));
    events
}

fn started_kind(call: &CallContext, outcome: &AuctionOutcome) -> CallEventKind {
    let eligible = outcome
        .buyers
        .iter()
        .filter(|b| matches!(b.eligibility, Eligibility::Eligible))
        .count();
    let excluded = outcome.buyers.len() - eligible;
    CallEventKind::AuctionStarted {
        zip: call.zip,
        service: call.service.clone(),
        eligible: u32::try_from(eligible).unwrap_or(u32::MAX),
        excluded: u32::try_from(excluded).unwrap_or(u32::MAX),
    }
}

fn ping_kind(b: &BuyerRecord) -> CallEventKind {
    let (price, reason) = match &b.reply {
        BuyerReply::NotPinged => match &b.eligibility {
            // Not pinged: record which rule excluded it, for review.
            Eligibility::Excluded { rule, reason } => {
                (None, Some(format!("not pinged: {rule}: {reason}")))
            }
            _ => (None, Some("not pinged".to_owned())),
        },
        BuyerReply::Bid { bid } => (Some(bid.price), None),
        BuyerReply::InvalidBid { bid, reason } => {
            (None, Some(format!("invalid bid {}: {reason}", bid.price)))
        }
        BuyerReply::NoBid { reason } => (None, Some(format!("no bid: {reason}"))),
        BuyerReply::Failed { kind, message } => (None, Some(format!("{kind}: {message}"))),
        BuyerReply::TimedOut => (None, Some("timeout".to_owned())),
        BuyerReply::Cancelled => (None, Some("cancelled".to_owned())),
        other => (None, Some(format!("{other:?}"))),
    };
    let latency_ms = b
        .latency
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    CallEventKind::PingResult {
        buyer: b.buyer.clone(),
        latency_ms,
        price,
        reason,
    }
}

/// The profile of `buyer` in `auction` (a default profile if the buyer is unknown).
pub fn profile_of(auction: &Auction, buyer: &BuyerId) -> BuyerProfile {
    auction
        .entries()
        .iter()
        .find(|e| &e.profile.id == buyer)
        .map_or_else(|| BuyerProfile::new(buyer.clone()), |e| e.profile.clone())
}

/// Settles a bridged call that talked for `duration` with the buyer of `bid`:
/// `connected`, `completed`, then duration history and `billing`. Returns the
/// settlement. (See [`settle_leg`].)
pub async fn settle_call(
    calls: &dyn CallLog,
    history: &dyn DurationHistory,
    call: &CallContext,
    bid: &Bid,
    profile: &BuyerProfile,
    duration: Duration,
    payout: &PayoutRule,
) -> anyhow::Result<Settlement> {
    settle_leg(calls, history, call, bid, profile, duration, payout, None).await
}

/// [`settle_call`] for one buyer leg of a call that may be bridged more than once
/// (agent-assisted calls): with `leg`, the events' idempotency keys end in `:{leg}`
/// (`connected:{leg}`, `completed:{leg}`, `billing:{leg}`).
///
/// Safe to call again for the same call (Twilio retries, or the status callback
/// finishing a settlement that failed half-way): the events are idempotent, and the
/// duration history is recorded once, right after `billing` is first recorded.
#[allow(clippy::too_many_arguments)]
pub async fn settle_leg(
    calls: &dyn CallLog,
    history: &dyn DurationHistory,
    call: &CallContext,
    bid: &Bid,
    profile: &BuyerProfile,
    duration: Duration,
    payout: &PayoutRule,
    leg: Option<&str>,
) -> anyhow::Result<Settlement> {
    let key = |base: &str| leg.map_or_else(|| base.to_owned(), |l| format!("{base}:{l}"));
    log(
        calls,
        &call.call_id,
        key("connected"),
        CallEventKind::Connected {
            buyer: Some(bid.buyer.clone()),
        },
    )
    .await?;
    let completed = CallEventKind::Completed {
        duration_secs: duration.as_secs(),
    };
    let duration = if log(calls, &call.call_id, key("completed"), completed).await? {
        duration
    } else {
        // A repeat (a retried or conflicting Dial result): the first talk time stands,
        // and the settlement is of what was recorded.
        recorded_duration(calls, &call.call_id, &key("completed"))
            .await?
            .unwrap_or(duration)
    };
    let s = settle(bid, profile, duration, payout)?;
    let billed_now = log(
        calls,
        &call.call_id,
        key("billing"),
        CallEventKind::Billing {
            billable: s.billable,
            revenue: s.revenue,
            payout: s.payout,
        },
    )
    .await?;
    // History follows the billing event, so a retried settlement counts the call once
    // (if this write fails after `billing`, the call stays out of the history).
    if billed_now {
        let min = bid.min_duration.unwrap_or(profile.default_min_duration);
        record_outcome(history, &bid.buyer, profile.time_zone, call, duration, min).await?;
    }
    Ok(s)
}

/// The talk time of the call's `completed` event under `key`, if there is one.
async fn recorded_duration(
    calls: &dyn CallLog,
    call: &CallId,
    key: &str,
) -> Result<Option<Duration>, callbid_core::StateError> {
    let events = calls.events(call).await?;
    Ok(events.iter().find_map(|e| match &e.kind {
        CallEventKind::Completed { duration_secs } if e.idempotency_key == key => {
            Some(Duration::from_secs(*duration_secs))
        }
        _ => None,
    }))
}

/// Whether a call status from Twilio's status callback is final (the call is over):
/// `completed`, `busy`, `failed`, `no-answer` or `canceled`.
pub fn call_over(status: Option<&CallStatus>) -> bool {
    matches!(
        status,
        Some(
            CallStatus::Completed
                | CallStatus::Busy
                | CallStatus::Failed
                | CallStatus::NoAnswer
                | CallStatus::Canceled
        )
    )
}

/// Releases the live-call (concurrency cap) slot `buyer` holds for the call. Idempotent.
pub async fn release_live_slot(
    caps: &dyn CapStore,
    call: &CallId,
    buyer: &BuyerId,
) -> Result<bool, callbid_core::StateError> {
    caps.release(&CapRule::live_reservation_id(call, buyer))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use callbid_core::state::{MemoryCallLog, MemoryDurationHistory};
    use callbid_core::{Money, ServiceType, Zip};

    /// A repeated settlement with another talk time returns (and bills) what was
    /// recorded the first time, so whoever logs it logs the truth.
    #[tokio::test]
    async fn a_repeated_settlement_reports_what_was_recorded() {
        let log = MemoryCallLog::new();
        let history = MemoryDurationHistory::new();
        let call = CallContext::new(
            CallId::new("CA-settle").unwrap(),
            Zip::parse("78701").unwrap(),
            ServiceType::new("plumbing").unwrap(),
            chrono::Utc::now(),
        );
        let bid = Bid::new(
            callbid_core::BuyerId::new("acme").unwrap(),
            Money::usd(Decimal::new(4200, 2)),
        )
        .with_min_duration(Duration::from_secs(60));
        let profile = BuyerProfile::new(callbid_core::BuyerId::new("acme").unwrap());
        let payout = PayoutRule::PercentOfRevenue(Decimal::from(70));
        let settle = |secs| {
            settle_call(
                &log,
                &history,
                &call,
                &bid,
                &profile,
                Duration::from_secs(secs),
                &payout,
            )
        };
        let first = settle(30).await.unwrap();
        assert!(!first.billable);
        let again = settle(200).await.unwrap();
        assert_eq!(again.duration, Duration::from_secs(30));
        assert!(!again.billable, "{again:?}");
        let r = log.record(&call.call_id).await.unwrap().unwrap();
        assert_eq!((r.duration_secs, r.billable), (Some(30), Some(false)));
    }

    /// Every value README.md's configuration table documents for `strategy` parses, and
    /// names round-trip (`strategy_name` then `parse_strategy`).
    #[test]
    fn every_documented_strategy_parses_and_names_round_trip() {
        let readme = include_str!("../../README.md");
        let row = readme
            .lines()
            .find(|l| l.starts_with("| `strategy` |"))
            .expect("README documents `strategy`");
        let doc = row.split('|').nth(3).expect("a description cell");
        let values: Vec<&str> = doc.split('`').skip(1).step_by(2).collect();
        assert!(values.len() >= 4, "{row}");
        for v in values {
            for text in [v.replace("[:SEED]", ""), v.replace("[:SEED]", ":7")] {
                let parsed = parse_strategy(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
                assert_eq!(
                    parse_strategy(&strategy_name(&parsed)),
                    Ok(parsed),
                    "{text}"
                );
            }
        }
        for s in [
            Strategy::HighestScore,
            Strategy::HighestBid,
            Strategy::PriorityWeighted { seed: 0 },
            Strategy::PriorityWeighted { seed: 42 },
            Strategy::FirstAccept,
        ] {
            assert_eq!(parse_strategy(&strategy_name(&s)), Ok(s));
        }
        assert_eq!(
            parse_strategy("PRIORITY_WEIGHTED:9"),
            Ok(Strategy::PriorityWeighted { seed: 9 })
        );
        let e = parse_strategy("loudest").unwrap_err().to_string();
        assert!(
            e.contains("priority-weighted") && e.contains("loudest"),
            "{e}"
        );
        assert!(parse_strategy("priority-weighted:x").is_err());
        assert!(parse_strategy("highest-bid:3").is_err());
    }
}
