//! Replay agrees with the original auction (issue 12, item 4): 10,000 simulated auctions,
//! 2,500 under each strategy (the seeded weighted one included), with random buyers that
//! bid, decline, fail, bid in the wrong currency, bid below the floor or above a rule's
//! ceiling, lack an accept step, fail their accept, and carry random duration history,
//! zones, priorities and weights, and random conversion outcomes (postbacks and
//! transcripts), under random scoring weights, with the quality factor and the
//! exploration bonus on or off. Each auction's
//! explanation goes through JSON (as the call log stores it) and is replayed; the replay
//! must confirm the same winner and the same breakdowns, bit for bit.

use std::sync::Arc;
use std::time::Duration;

use callbid::core::auction::{
    replay, verify, Auction, AuctionExplanation, BuyerReply, FixedClock, Strategy, WhatIf,
};
use callbid::core::inprocess::{AcceptBehavior, InProcessBuyer, PingBehavior};
use callbid::core::rules::BidBoundsRule;
use callbid::core::scoring::{GeoKey, ScoringConfig, ScoringEngine};
use callbid::core::state::{
    history_keys, DurationHistory, MemoryDurationHistory, MemoryQualityHistory, QualityHistory,
    QualityObservation,
};
use callbid::core::*;
use chrono::TimeZone;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

const PER_STRATEGY: usize = 2_500;
const ZONES: [chrono_tz::Tz; 3] = [
    chrono_tz::America::Chicago,
    chrono_tz::America::New_York,
    chrono_tz::America::Los_Angeles,
];
const CALLERS: [(&str, &str); 3] = [
    ("78701", "+15125550123"),
    ("10001", "+12125550123"),
    ("94103", "+14155550123"),
];

fn call(rng: &mut ChaCha8Rng, n: usize) -> CallContext {
    let (zip, caller) = CALLERS[rng.random_range(0..CALLERS.len())];
    let at = chrono::Utc.with_ymd_and_hms(2026, 11, 16, 0, 0, 0).unwrap()
        + chrono::Duration::minutes(rng.random_range(0..7 * 24 * 60));
    let c = CallContext::new(
        CallId::new(format!("CA{n:08}")).unwrap(),
        zip.parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        at,
    );
    match rng.random_bool(0.9) {
        true => c.with_caller(caller.parse().unwrap()),
        false => c,
    }
}

fn scoring(rng: &mut ChaCha8Rng) -> ScoringConfig {
    let mut cfg = ScoringConfig::default();
    if rng.random_bool(0.5) {
        for h in 0..24u8 {
            if rng.random_bool(0.3) {
                cfg.hour_weights
                    .insert(h, Decimal::new(rng.random_range(50..200), 2));
            }
        }
        cfg.geo_weights.insert(
            GeoKey::State("TX".parse().unwrap()),
            Decimal::new(rng.random_range(50..200), 2),
        );
        cfg.geo_weights.insert(
            GeoKey::AreaCode(212),
            Decimal::new(rng.random_range(50..200), 2),
        );
    }
    if rng.random_bool(0.1) {
        cfg.use_duration_history = false;
    }
    if rng.random_bool(0.4) {
        cfg.use_quality = true;
        cfg.quality_prior = Decimal::new(rng.random_range(10..90), 2);
    }
    if rng.random_bool(0.4) {
        cfg.exploration = Decimal::new(rng.random_range(1..300), 2);
    }
    cfg
}

fn ping(rng: &mut ChaCha8Rng) -> PingBehavior {
    let cents = rng.random_range(-200i64..9_000);
    match rng.random_range(0..10) {
        0 => PingBehavior::NoBid("no capacity".into()),
        1 => PingBehavior::Error(BuyerErrorKind::Transport),
        2 => PingBehavior::Bid(Money::new(Decimal::new(cents, 2), Currency::EUR)),
        _ => PingBehavior::Bid(Money::usd(Decimal::new(cents, 2))),
    }
}

/// Histories the scoring engine reads: durations and outcomes (conversions).
struct Histories {
    duration: Arc<MemoryDurationHistory>,
    quality: Arc<MemoryQualityHistory>,
}

async fn entry(rng: &mut ChaCha8Rng, i: usize, c: &CallContext, hs: &Histories) -> BuyerEntry {
    let h = &hs.duration;
    let id = BuyerId::new(format!("buyer-{i:02}")).unwrap();
    let profile = BuyerProfile::new(id.clone())
        .with_time_zone(ZONES[rng.random_range(0..ZONES.len())])
        .with_priority(rng.random_range(1..4), rng.random_range(0..6));
    for _ in 0..rng.random_range(0..25) {
        let billable = rng.random_bool(0.6);
        h.record(&history_keys(&id, c, profile.time_zone), billable)
            .await
            .unwrap();
    }
    // Past calls' outcomes, each one call: a postback or a transcript, converted or not.
    for k in 0..rng.random_range(0..15) {
        let past = CallId::new(format!("{}-{id}-{k}", c.call_id)).unwrap();
        let obs = match rng.random_bool(0.5) {
            true => QualityObservation::postback(rng.random_bool(0.5)),
            false => QualityObservation::transcript(rng.random_bool(0.5)),
        };
        let keys = history_keys(&id, c, profile.time_zone);
        hs.quality.record(&past, &keys, obs).await.unwrap();
    }
    let dest = Destination::parse(&format!("+1512555{i:04}")).unwrap();
    let accept = match rng.random_bool(0.25) {
        true => AcceptBehavior::Fail(BuyerErrorKind::Rejected),
        false => AcceptBehavior::Accept,
    };
    let caps = Capabilities::default().with_has_accept(rng.random_bool(0.8));
    let buyer = InProcessBuyer::new(id, Money::usd(Decimal::ONE), dest)
        .with_ping(ping(rng))
        .with_accept(accept)
        .with_destination_in_bid(rng.random_bool(0.7))
        .with_capabilities(caps);
    let mut e = BuyerEntry::new(Arc::new(buyer)).with_profile(profile);
    if rng.random_bool(0.2) {
        let ceiling = Money::usd(Decimal::new(rng.random_range(1_000..6_000), 2));
        e = e.with_rule(Arc::new(BidBoundsRule::new(None, Some(ceiling)).unwrap()));
    }
    e
}

async fn auction(rng: &mut ChaCha8Rng, c: &CallContext, strategy: Strategy) -> Auction {
    let hs = Histories {
        duration: Arc::new(MemoryDurationHistory::new()),
        quality: Arc::new(MemoryQualityHistory::new()),
    };
    let mut entries = Vec::new();
    for i in 0..rng.random_range(0..9) {
        entries.push(entry(rng, i, c, &hs).await);
    }
    let scorer = ScoringEngine::new(hs.duration, scoring(rng))
        .unwrap()
        .with_quality_history(hs.quality);
    let mut b = Auction::builder()
        .buyers(entries)
        .scorer(Arc::new(scorer))
        .strategy(strategy)
        .report_losses(false)
        .clock(Arc::new(FixedClock(c.received_at)))
        .deadline(Duration::from_secs(5));
    if rng.random_bool(0.3) {
        b = b.floor(Money::usd(Decimal::new(rng.random_range(500..4_000), 2)));
    }
    b.build().unwrap()
}

/// One strategy's share of the 10,000; returns how many were sold.
fn run_strategy(strategy: Strategy, seed: u64) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut sold = 0;
        for n in 0..PER_STRATEGY {
            let c = call(&mut rng, n);
            let a = auction(&mut rng, &c, strategy).await;
            let outcome = a.run(&c).await;
            let json = serde_json::to_string(&a.explain(&c, &outcome)).unwrap();
            let logged: AuctionExplanation = serde_json::from_str(&json).unwrap();
            let check = verify(&logged).unwrap();
            assert!(
                check.agrees(),
                "{strategy:?} auction {n}: {:?}\n{json}",
                check.mismatches
            );
            assert_eq!(
                check.replay.winner.as_ref(),
                outcome.winner().map(|w| &w.buyer)
            );
            sold += usize::from(outcome.winner().is_some());
        }
        sold
    })
}

#[test]
fn replay_agrees_on_10000_simulated_auctions_under_every_strategy() {
    let strategies = [
        Strategy::HighestScore,
        Strategy::HighestBid,
        Strategy::PriorityWeighted { seed: 0xC0FFEE },
        Strategy::FirstAccept,
    ];
    for (i, s) in strategies.into_iter().enumerate() {
        let sold = run_strategy(s, 1_000 + i as u64);
        // The simulation exercises both outcomes: sold and unsold auctions.
        assert!(
            sold > PER_STRATEGY / 4 && sold < PER_STRATEGY,
            "{s:?}: {sold} sold"
        );
    }
}

async fn logged_auction() -> AuctionExplanation {
    let c = CallContext::new(
        CallId::new("CA-whatif").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 18, 15, 0, 0)
            .unwrap(),
    )
    .with_caller("+15125550123".parse().unwrap());
    let history = Arc::new(MemoryDurationHistory::new());
    let mut entries = Vec::new();
    // "proven" bids less but its calls last; "new" bids more with no history.
    for (name, cents, billable) in [("proven", 3_000, 20), ("new", 3_600, 0)] {
        let id = BuyerId::new(name).unwrap();
        let profile = BuyerProfile::new(id.clone()).with_time_zone(chrono_tz::America::Chicago);
        for _ in 0..billable {
            history
                .record(&history_keys(&id, &c, profile.time_zone), true)
                .await
                .unwrap();
        }
        let dest = Destination::parse("+15125550100").unwrap();
        let b = InProcessBuyer::new(id, Money::usd(Decimal::new(cents, 2)), dest);
        entries.push(BuyerEntry::new(Arc::new(b)).with_profile(profile));
    }
    let a = Auction::builder()
        .buyers(entries)
        .scorer(Arc::new(
            ScoringEngine::new(history, ScoringConfig::default()).unwrap(),
        ))
        .clock(Arc::new(FixedClock(c.received_at)))
        .build()
        .unwrap();
    let out = a.run(&c).await;
    a.explain(&c, &out)
}

#[tokio::test]
async fn what_if_shows_another_strategy_floor_and_weights() {
    let logged = logged_auction().await;
    assert_eq!(logged.winner.as_ref().unwrap().as_str(), "proven");
    // Another strategy: the higher bid would have been tried first, never attempted.
    let w = WhatIf::default().with_strategy(Strategy::HighestBid);
    let r = replay(&logged, &w).unwrap();
    assert_eq!(r.winner.as_ref().unwrap().as_str(), "new");
    assert!(r.winner_assumed);
    assert_eq!(
        r.order.iter().map(|b| b.as_str()).collect::<Vec<_>>(),
        ["new", "proven"]
    );
    // Another floor: the proven buyer's 30.00 is below 31.00.
    let w = WhatIf::default().with_floor(Some(Money::usd(Decimal::new(3_100, 2))));
    let r = replay(&logged, &w).unwrap();
    assert_eq!(r.winner.as_ref().unwrap().as_str(), "new");
    let proven = &r.buyers[0];
    assert!(proven
        .invalid
        .as_deref()
        .unwrap()
        .contains("below the floor"));
    // Other weights: history off makes price alone decide.
    let mut off = ScoringConfig::default();
    off.use_duration_history = false;
    let w = WhatIf::default().with_scoring(off);
    let r = replay(&logged, &w).unwrap();
    assert_eq!(r.winner.as_ref().unwrap().as_str(), "new");
    assert_eq!(
        r.buyers[1].score.as_ref().unwrap().score,
        Decimal::new(36, 0)
    );
    // A currency mismatch in the what-if is refused, naming the field.
    let w = WhatIf::default().with_floor(Some(Money::new(Decimal::ONE, Currency::EUR)));
    assert!(replay(&logged, &w)
        .unwrap_err()
        .to_string()
        .contains("floor"));
}

#[tokio::test]
async fn a_tampered_log_is_caught() {
    let logged = logged_auction().await;
    assert!(verify(&logged).unwrap().agrees());
    // A breakdown that does not follow from its evidence.
    let mut bad = logged.clone();
    let s = bad.buyers[1].score.as_mut().unwrap();
    s.score += Decimal::new(1, 6);
    let check = verify(&bad).unwrap();
    assert!(!check.agrees());
    assert!(
        check.mismatches[0].contains("new: breakdown"),
        "{:?}",
        check.mismatches
    );
    // A logged winner the inputs do not produce.
    let mut bad = logged.clone();
    bad.winner = Some(BuyerId::new("new").unwrap());
    assert!(verify(&bad).unwrap().mismatches[0].starts_with("winner"));
    // A validity the inputs do not produce.
    let mut bad = logged;
    if let BuyerReply::Bid { bid } = bad.buyers[1].reply.clone() {
        bad.buyers[1].reply = BuyerReply::InvalidBid {
            bid,
            reason: "made up".into(),
        };
    }
    assert!(verify(&bad)
        .unwrap()
        .mismatches
        .iter()
        .any(|m| m.contains("validity")));
}
