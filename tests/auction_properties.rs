//! Property and concurrency tests of the auction (umbrella crate, feature `core`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callbid::core::auction::{Auction, BuyerReply, FixedClock, Strategy};
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::rules::{Cap, CapRule, CapWindow};
use callbid::core::scoring::{ScoringConfig, ScoringEngine};
use callbid::core::state::{
    history_keys, CapStore, DurationHistory, MemoryCapStore, MemoryDurationHistory,
};
use callbid::core::*;
use chrono::TimeZone;
use proptest::prelude::*;
use proptest::strategy::Strategy as _;
use rust_decimal::Decimal;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn call(id: &str, zip: &str, caller: &str, hour: u32) -> CallContext {
    CallContext::new(
        CallId::new(id).unwrap(),
        zip.parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc
            .with_ymd_and_hms(2026, 11, 20, hour, 0, 0)
            .unwrap(),
    )
    .with_caller(caller.parse().unwrap())
}

/// A random buyer: price in cents (may be ≤ 0: invalid), history (calls, billable).
fn buyer_strategy() -> impl proptest::strategy::Strategy<Value = (i64, u8, u8)> {
    (-500i64..20_000, 0u8..40, 0u8..40).prop_map(|(p, n, b)| (p, n, b.min(n)))
}

async fn build(buyers: &[(i64, u8, u8)], c: &CallContext, strategy: Strategy) -> Auction {
    let history = Arc::new(MemoryDurationHistory::new());
    let mut entries = Vec::new();
    for (i, (cents, n, b)) in buyers.iter().enumerate() {
        let id = BuyerId::new(format!("buyer-{i:02}")).unwrap();
        let profile = BuyerProfile::new(id.clone()).with_time_zone(chrono_tz::America::Chicago);
        for k in 0..*n {
            history
                .record(&history_keys(&id, c, profile.time_zone), k < *b)
                .await
                .unwrap();
        }
        let dest = Destination::parse(&format!("+1512555{:04}", i)).unwrap();
        let ib = InProcessBuyer::new(id, Money::usd(Decimal::new(*cents, 2)), dest);
        entries.push(BuyerEntry::new(Arc::new(ib)).with_profile(profile));
    }
    let scorer = ScoringEngine::new(history, ScoringConfig::default()).unwrap();
    Auction::builder()
        .buyers(entries)
        .scorer(Arc::new(scorer))
        .strategy(strategy)
        .clock(Arc::new(FixedClock(c.received_at)))
        .deadline(Duration::from_secs(5))
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn highest_score_winner_has_the_highest_score(buyers in proptest::collection::vec(buyer_strategy(), 1..12), hour in 0u32..24) {
        rt().block_on(async {
            let c = call("CA-prop", "78701", "+15125550123", hour);
            let out = build(&buyers, &c, Strategy::HighestScore).await.run(&c).await;
            let valid: Vec<Decimal> = out.buyers.iter()
                .filter(|r| matches!(r.reply, BuyerReply::Bid { .. }))
                .map(|r| r.score.as_ref().unwrap().score)
                .collect();
            match out.winner() {
                Some(w) => {
                    let best = valid.iter().max().copied().unwrap();
                    prop_assert_eq!(w.score.score, best);
                    prop_assert!(w.bid.price.is_positive());
                }
                None => prop_assert!(valid.is_empty(), "valid bids but no winner: {:?}", out.no_buyer_reason()),
            }
            Ok(())
        })?;
    }

    #[test]
    fn identical_inputs_give_identical_outcomes(
        buyers in proptest::collection::vec(buyer_strategy(), 1..10),
        seed in any::<u64>(),
        which in 0usize..3,
    ) {
        rt().block_on(async {
            let strategy = [Strategy::HighestScore, Strategy::HighestBid, Strategy::PriorityWeighted { seed }][which];
            let c = call("CA-det", "10001", "+12125550123", 14);
            let a = build(&buyers, &c, strategy).await.run(&c).await.decision();
            let b = build(&buyers, &c, strategy).await.run(&c).await.decision();
            prop_assert_eq!(a, b);
            Ok(())
        })?;
    }
}

fn capped_auction(store: Arc<dyn CapStore>, caps: Vec<Cap>) -> Auction {
    let id = BuyerId::new("capped").unwrap();
    let b = InProcessBuyer::new(
        id.clone(),
        Money::usd(Decimal::from(25)),
        Destination::parse("+15125550100").unwrap(),
    );
    let rule = CapRule::new(store, caps).unwrap();
    Auction::builder()
        .buyer(BuyerEntry::new(Arc::new(b)).with_rule(Arc::new(rule)))
        .deadline(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_cap_of_100_gives_exactly_100_wins_in_1000_concurrent_auctions() {
    let store: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
    let auction = capped_auction(store, vec![Cap::count(CapWindow::Daily, 100)]);
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let a = auction.clone();
            tokio::spawn(async move {
                a.run(&call(&format!("CA{i}"), "78701", "+15125550123", 15))
                    .await
                    .winner()
                    .is_some()
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 100);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn a_concurrency_cap_is_never_exceeded(limit in 1u64..6, calls in 10usize..60, hold_ms in proptest::collection::vec(0u64..15, 60)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async {
            let store: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
            let auction = capped_auction(store, vec![Cap::count(CapWindow::Concurrent, limit)]);
            let live = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..calls).map(|i| {
                let (a, live, peak) = (auction.clone(), live.clone(), peak.clone());
                let hold = Duration::from_millis(hold_ms[i % hold_ms.len()]);
                tokio::spawn(async move {
                    let out = a.run(&call(&format!("CA{i}"), "78701", "+15125550123", 15)).await;
                    if let Some(w) = out.winner() {
                        let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(hold).await;
                        live.fetch_sub(1, Ordering::SeqCst);
                        for h in w.holds.iter().filter(|h| h.live) {
                            h.release().await.unwrap();
                        }
                        true
                    } else {
                        false
                    }
                })
            }).collect();
            let mut wins = 0usize;
            for t in tasks {
                if t.await.unwrap() { wins += 1; }
            }
            prop_assert!(peak.load(Ordering::SeqCst) as u64 <= limit, "peak {} > limit {limit}", peak.load(Ordering::SeqCst));
            prop_assert!(wins as u64 >= limit.min(calls as u64), "at least the first {limit} calls win");
            Ok(())
        })?;
    }
}
