//! Deadline tests: buyers that sleep forever, panic or error never hold the auction
//! past its deadline (asserted generously here; measured precisely in benches).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use callbid::core::auction::{Auction, BuyerReply, Strategy};
use callbid::core::inprocess::{InProcessBuyer, PingBehavior};
use callbid::core::*;
use rust_decimal::Decimal;

#[derive(Debug)]
struct Sleeper(BuyerId);

#[async_trait]
impl Buyer for Sleeper {
    fn id(&self) -> &BuyerId {
        &self.0
    }
    async fn ping(&self, _: &CallContext, _: Deadline) -> Result<PingReply, BuyerError> {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok(PingReply::NoBid {
            reason: "woke up".into(),
        })
    }
}

fn call() -> CallContext {
    CallContext::new(
        CallId::new("CA-deadline").unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        chrono::Utc::now(),
    )
}

fn entries(n: usize, behavior: impl Fn(usize) -> Option<PingBehavior>) -> Vec<BuyerEntry> {
    (0..n)
        .map(|i| {
            let id = BuyerId::new(format!("b{i}")).unwrap();
            match behavior(i) {
                None => BuyerEntry::new(Arc::new(Sleeper(id))),
                Some(b) => BuyerEntry::new(Arc::new(
                    InProcessBuyer::new(
                        id,
                        Money::usd(Decimal::from(10 + i as i64)),
                        Destination::parse("+15125550100").unwrap(),
                    )
                    .with_ping(b),
                )),
            }
        })
        .collect()
}

async fn timed(auction: &Auction) -> (Duration, callbid::core::auction::AuctionOutcome) {
    let t = Instant::now();
    let out = auction.run(&call()).await;
    (t.elapsed(), out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_panicking_and_failing_buyers_cannot_hold_the_auction() {
    let deadline = Duration::from_millis(400);
    let auction = Auction::builder()
        .buyers(entries(64, |i| match i % 4 {
            0 => None,
            1 => Some(PingBehavior::Panic),
            2 => Some(PingBehavior::Error(BuyerErrorKind::Transport)),
            _ => Some(PingBehavior::Hang),
        }))
        .deadline(deadline)
        .build()
        .unwrap();
    let (took, out) = timed(&auction).await;
    assert!(
        took < deadline + Duration::from_millis(300),
        "took {took:?}"
    );
    assert_eq!(
        out.no_buyer_reason(),
        Some(callbid::core::auction::NoBuyerReason::NoBids)
    );
    let timed_out = out
        .buyers
        .iter()
        .filter(|r| r.reply == BuyerReply::TimedOut)
        .count();
    let panicked = out
        .buyers
        .iter()
        .filter(|r| {
            matches!(
                r.reply,
                BuyerReply::Failed {
                    kind: BuyerErrorKind::Panicked,
                    ..
                }
            )
        })
        .count();
    let failed = out
        .buyers
        .iter()
        .filter(|r| {
            matches!(
                r.reply,
                BuyerReply::Failed {
                    kind: BuyerErrorKind::Transport,
                    ..
                }
            )
        })
        .count();
    assert_eq!((timed_out, panicked, failed), (32, 16, 16));
}

#[tokio::test]
async fn a_good_bid_still_wins_among_sleepers_and_the_wait_ends_at_the_ping_deadline() {
    for strategy in [
        Strategy::HighestScore,
        Strategy::HighestBid,
        Strategy::PriorityWeighted { seed: 3 },
    ] {
        let auction = Auction::builder()
            .buyers(entries(8, |i| {
                if i == 5 {
                    Some(PingBehavior::Bid(Money::usd(Decimal::from(42))))
                } else {
                    None
                }
            }))
            .deadline(Duration::from_millis(500))
            .ping_timeout(Duration::from_millis(200))
            .strategy(strategy)
            .build()
            .unwrap();
        let (took, out) = timed(&auction).await;
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(600),
            "{strategy:?} took {took:?}"
        );
        assert_eq!(out.winner().unwrap().buyer.as_str(), "b5");
    }
}

#[tokio::test]
async fn first_accept_does_not_wait_for_sleepers() {
    let auction = Auction::builder()
        .buyers(entries(8, |i| {
            if i == 2 {
                Some(PingBehavior::Bid(Money::usd(Decimal::from(9))))
            } else {
                None
            }
        }))
        .deadline(Duration::from_secs(5))
        .strategy(Strategy::FirstAccept)
        .build()
        .unwrap();
    let (took, out) = timed(&auction).await;
    assert!(took < Duration::from_millis(500), "took {took:?}");
    assert_eq!(out.winner().unwrap().buyer.as_str(), "b2");
    assert_eq!(
        out.buyers
            .iter()
            .filter(|r| r.reply == BuyerReply::Cancelled)
            .count(),
        7
    );
}
