use std::sync::Arc;
use std::time::Duration;

use chrono::TimeZone;
use rust_decimal_macros::dec;

use super::*;
use crate::buyer::{BuyerProfile, Capabilities, PingReply};
use crate::ids::{BuyerId, CallId, ServiceType};
use crate::inprocess::{AcceptBehavior, InProcessBuyer, PingBehavior};
use crate::rules::{Cap, CapRule, CapWindow, GeoRule};
use crate::state::{CapStore, MemoryCapStore};

fn call(id: &str) -> CallContext {
    CallContext::new(
        CallId::new(id).unwrap(),
        "78701".parse().unwrap(),
        ServiceType::new("plumbing").unwrap(),
        Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap(),
    )
    .with_caller("+15125550123".parse().unwrap())
}

fn dest(n: u32) -> Destination {
    Destination::parse(&format!("+1512555{n:04}")).unwrap()
}

fn buyer(id: &str, price: rust_decimal::Decimal) -> InProcessBuyer {
    InProcessBuyer::new(BuyerId::new(id).unwrap(), Money::usd(price), dest(1))
}

fn entry(b: InProcessBuyer) -> BuyerEntry {
    BuyerEntry::new(Arc::new(b))
}

fn fixed_clock() -> Arc<dyn Clock> {
    Arc::new(FixedClock(
        Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap(),
    ))
}

#[tokio::test]
async fn highest_bid_wins_and_losers_hear_the_price() {
    let a = Arc::new(
        buyer("a", dec!(30)).with_capabilities(Capabilities::default().with_reports_loss(true)),
    );
    let auction = Auction::builder()
        .buyer(BuyerEntry::new(a.clone()))
        .buyer(entry(buyer("b", dec!(45))))
        .buyer(entry(
            buyer("c", dec!(12)).with_ping(PingBehavior::NoBid("no coverage".into())),
        ))
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    let w = out.winner().unwrap();
    assert_eq!(w.buyer.as_str(), "b");
    assert_eq!(w.score.score, dec!(22.5), "45 × prior 0.5");
    assert_eq!(
        out.record(&BuyerId::new("c").unwrap()).unwrap().reply,
        BuyerReply::NoBid {
            reason: "no coverage".into()
        }
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(a.losses(), 1);
}

#[tokio::test]
async fn excluded_buyers_are_not_pinged() {
    let ny = Arc::new(buyer("ny", dec!(90)));
    let auction = Auction::builder()
        .buyer(BuyerEntry::new(ny.clone()).with_rule(Arc::new(
            GeoRule::allow().with_states([crate::geo::UsState::parse("NY").unwrap()]),
        )))
        .buyer(entry(buyer("tx", dec!(20))))
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(out.winner().unwrap().buyer.as_str(), "tx");
    assert_eq!(ny.pings(), 0);
    let rec = out.record(&BuyerId::new("ny").unwrap()).unwrap();
    assert!(matches!(&rec.eligibility, Eligibility::Excluded { rule, .. } if rule == "geo_allow"));
    assert_eq!(rec.reply, BuyerReply::NotPinged);
}

#[tokio::test]
async fn invalid_bids_are_refused_with_reasons() {
    let expired = InProcessBuyer::new(BuyerId::new("exp").unwrap(), Money::usd(dec!(99)), dest(1));
    let auction = Auction::builder()
        .buyer(entry(buyer("zero", dec!(0))))
        .buyer(entry(buyer("neg", dec!(-5))))
        .buyer(entry(InProcessBuyer::new(
            BuyerId::new("eur").unwrap(),
            Money::new(dec!(80), Currency::EUR),
            dest(1),
        )))
        .buyer(entry(buyer("low", dec!(4))))
        .buyer(entry(
            buyer("nodest", dec!(70))
                .with_destination_in_bid(false)
                .with_capabilities(Capabilities::default()),
        ))
        .buyer(entry(expired))
        .buyer(entry(buyer("ok", dec!(10))))
        .floor(Money::usd(dec!(5)))
        .clock(fixed_clock())
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(
        out.winner().unwrap().buyer.as_str(),
        "exp",
        "no expiry set: valid"
    );
    for (id, needle) in [
        ("zero", "not positive"),
        ("neg", "not positive"),
        ("eur", "currency"),
        ("low", "floor"),
        ("nodest", "no destination"),
    ] {
        match &out.record(&BuyerId::new(id).unwrap()).unwrap().reply {
            BuyerReply::InvalidBid { reason, .. } => {
                assert!(reason.contains(needle), "{id}: {reason}")
            }
            other => panic!("{id}: {other:?}"),
        }
    }
}

#[derive(Debug)]
struct Expiring(BuyerId);
#[async_trait::async_trait]
impl crate::buyer::Buyer for Expiring {
    fn id(&self) -> &BuyerId {
        &self.0
    }
    async fn ping(
        &self,
        _: &CallContext,
        _: Deadline,
    ) -> Result<PingReply, crate::buyer::BuyerError> {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 14, 59, 59).unwrap();
        Ok(PingReply::Bid(
            Bid::new(self.0.clone(), Money::usd(dec!(50)))
                .with_destination(dest(2))
                .with_expiry(at),
        ))
    }
}

#[tokio::test]
async fn expired_bids_are_refused() {
    let auction = Auction::builder()
        .buyer(BuyerEntry::new(Arc::new(Expiring(
            BuyerId::new("x").unwrap(),
        ))))
        .clock(fixed_clock())
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(out.no_buyer_reason(), Some(NoBuyerReason::NoValidBids));
}

#[tokio::test]
async fn accept_failure_cascades_to_the_next_bid() {
    let auction = Auction::builder()
        .buyer(entry(
            buyer("best", dec!(80)).with_accept(AcceptBehavior::Fail(BuyerErrorKind::Transport)),
        ))
        .buyer(entry(
            buyer("hangs", dec!(70)).with_accept(AcceptBehavior::Hang),
        ))
        .buyer(entry(buyer("next", dec!(60))))
        .deadline(Duration::from_millis(400))
        .ping_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(
        out.winner().map(|w| w.buyer.as_str()),
        Some("next"),
        "the hanging accept gets only its share of the deadline: {:?}",
        out.buyers
    );
    assert!(matches!(
        out.record(&BuyerId::new("hangs").unwrap()).unwrap().accept,
        Some(AcceptRecord::Failed {
            kind: BuyerErrorKind::Timeout,
            ..
        })
    ));
    let auction = Auction::builder()
        .buyer(entry(
            buyer("best", dec!(80)).with_accept(AcceptBehavior::Fail(BuyerErrorKind::Transport)),
        ))
        .buyer(entry(buyer("next", dec!(60))))
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(out.winner().unwrap().buyer.as_str(), "next");
    assert!(matches!(
        out.record(&BuyerId::new("best").unwrap()).unwrap().accept,
        Some(AcceptRecord::Failed {
            kind: BuyerErrorKind::Transport,
            ..
        })
    ));
}

#[tokio::test]
async fn misbehaving_buyers_do_not_hold_the_auction() {
    let auction = Auction::builder()
        .buyer(entry(buyer("hang", dec!(99)).with_ping(PingBehavior::Hang)))
        .buyer(entry(
            buyer("panic", dec!(99)).with_ping(PingBehavior::Panic),
        ))
        .buyer(entry(
            buyer("err", dec!(99)).with_ping(PingBehavior::Error(BuyerErrorKind::Transport)),
        ))
        .buyer(entry(
            buyer("slow", dec!(99)).with_latency(Duration::from_secs(60)),
        ))
        .buyer(entry(buyer("good", dec!(10))))
        .deadline(Duration::from_millis(300))
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    let out = auction.run(&call("CA1")).await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(300) + Duration::from_millis(250),
        "took {took:?}"
    );
    assert_eq!(out.winner().unwrap().buyer.as_str(), "good");
    let reply = |id: &str| {
        out.record(&BuyerId::new(id).unwrap())
            .unwrap()
            .reply
            .clone()
    };
    assert_eq!(reply("hang"), BuyerReply::TimedOut);
    assert_eq!(reply("slow"), BuyerReply::TimedOut);
    assert!(
        matches!(reply("panic"), BuyerReply::Failed { kind: BuyerErrorKind::Panicked, ref message } if message.contains("on purpose"))
    );
    assert!(matches!(
        reply("err"),
        BuyerReply::Failed {
            kind: BuyerErrorKind::Transport,
            ..
        }
    ));
}

#[tokio::test]
async fn per_buyer_timeout() {
    let auction = Auction::builder()
        .buyer(
            entry(buyer("slow", dec!(99)).with_latency(Duration::from_millis(200)))
                .with_timeout(Duration::from_millis(50)),
        )
        .buyer(entry(
            buyer("ok", dec!(10)).with_latency(Duration::from_millis(100)),
        ))
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(out.winner().unwrap().buyer.as_str(), "ok");
    assert!(out.timings.total < Duration::from_millis(1000));
}

#[tokio::test]
async fn first_accept_takes_the_first_valid_answer_and_cancels_the_rest() {
    let auction = Auction::builder()
        .buyer(entry(
            buyer("rich-but-slow", dec!(99)).with_latency(Duration::from_millis(500)),
        ))
        .buyer(entry(
            buyer("fast", dec!(10)).with_latency(Duration::from_millis(10)),
        ))
        .buyer(entry(buyer("invalid-faster", dec!(0))))
        .strategy(Strategy::FirstAccept)
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(out.winner().unwrap().buyer.as_str(), "fast");
    assert_eq!(
        out.record(&BuyerId::new("rich-but-slow").unwrap())
            .unwrap()
            .reply,
        BuyerReply::Cancelled
    );
    assert!(out.timings.total < Duration::from_millis(400));
}

#[tokio::test]
async fn priority_weighted_is_reproducible_and_respects_priority() {
    let build =
        |seed| {
            Auction::builder()
                .buyer(entry(buyer("p1-a", dec!(5))).with_profile(
                    BuyerProfile::new(BuyerId::new("p1-a").unwrap()).with_priority(1, 3),
                ))
                .buyer(entry(buyer("p1-b", dec!(6))).with_profile(
                    BuyerProfile::new(BuyerId::new("p1-b").unwrap()).with_priority(1, 1),
                ))
                .buyer(entry(buyer("p2", dec!(90))).with_profile(
                    BuyerProfile::new(BuyerId::new("p2").unwrap()).with_priority(2, 1),
                ))
                .strategy(Strategy::PriorityWeighted { seed })
                .build()
                .unwrap()
        };
    let mut wins = std::collections::BTreeMap::new();
    for i in 0..400 {
        let c = call(&format!("CA{i}"));
        let w1 = build(7).run(&c).await.winner().unwrap().buyer.clone();
        let w2 = build(7).run(&c).await.winner().unwrap().buyer.clone();
        assert_eq!(w1, w2, "same seed and call, same winner");
        *wins.entry(w1.to_string()).or_insert(0) += 1;
    }
    assert_eq!(
        wins.get("p2"),
        None,
        "priority 2 only when priority 1 cannot take it"
    );
    let a = wins["p1-a"];
    assert!(
        (250..350).contains(&a),
        "weight 3:1 should give ~300 of 400, got {a}"
    );
}

#[tokio::test]
async fn no_buyer_reasons() {
    let none = Auction::builder().build().unwrap();
    assert_eq!(
        none.run(&call("CA1")).await.no_buyer_reason(),
        Some(NoBuyerReason::NoEligibleBuyers)
    );
    let nobid = Auction::builder()
        .buyer(entry(
            buyer("a", dec!(1)).with_ping(PingBehavior::NoBid("x".into())),
        ))
        .build()
        .unwrap();
    assert_eq!(
        nobid.run(&call("CA1")).await.no_buyer_reason(),
        Some(NoBuyerReason::NoBids)
    );
    let fails = Auction::builder()
        .buyer(entry(
            buyer("a", dec!(1)).with_accept(AcceptBehavior::Fail(BuyerErrorKind::Rejected)),
        ))
        .build()
        .unwrap();
    assert_eq!(
        fails.run(&call("CA1")).await.no_buyer_reason(),
        Some(NoBuyerReason::AllAcceptsFailed)
    );
}

#[tokio::test]
async fn events_stream_as_they_happen() {
    let auction = Auction::builder()
        .buyer(entry(buyer("a", dec!(30))))
        .buyer(entry(
            buyer("b", dec!(20)).with_ping(PingBehavior::Error(BuyerErrorKind::Timeout)),
        ))
        .build()
        .unwrap();
    let mut rx = auction.subscribe();
    auction.run(&call("CA1")).await;
    let mut kinds = Vec::new();
    while let Ok(e) = rx.try_recv() {
        kinds.push(match e.kind {
            AuctionEventKind::Started { .. } => "started",
            AuctionEventKind::BidReceived { .. } => "bid",
            AuctionEventKind::BuyerFailed { .. } => "failed",
            AuctionEventKind::Won { .. } => "won",
            _ => "other",
        });
    }
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"won"));
    assert!(kinds.contains(&"bid") && kinds.contains(&"failed"));
}

#[tokio::test]
async fn cap_refusal_at_reservation_moves_on_and_holds_are_kept() {
    let store: Arc<dyn CapStore> = Arc::new(MemoryCapStore::new());
    let cap =
        Arc::new(CapRule::new(store.clone(), vec![Cap::count(CapWindow::Concurrent, 1)]).unwrap());
    let auction = Auction::builder()
        .buyer(entry(buyer("capped", dec!(50))).with_rule(cap))
        .buyer(entry(buyer("other", dec!(10))))
        .build()
        .unwrap();
    let first = auction.run(&call("CA1")).await;
    let w = first.winner().unwrap();
    assert_eq!(w.buyer.as_str(), "capped");
    assert!(w.holds.iter().any(|h| h.live));
    let second = auction.run(&call("CA2")).await;
    assert_eq!(
        second.winner().unwrap().buyer.as_str(),
        "other",
        "the live slot is taken"
    );
    for h in &w.holds {
        h.release().await.unwrap();
    }
    assert_eq!(
        auction
            .run(&call("CA3"))
            .await
            .winner()
            .unwrap()
            .buyer
            .as_str(),
        "capped"
    );
}

#[test]
fn builder_validation() {
    let dup = Auction::builder()
        .buyer(entry(buyer("a", dec!(1))))
        .buyer(entry(buyer("a", dec!(2))))
        .build();
    assert!(matches!(dup, Err(AuctionConfigError::DuplicateBuyer(_))));
    assert!(Auction::builder().deadline(Duration::ZERO).build().is_err());
    assert!(Auction::builder()
        .deadline(Duration::from_secs(1))
        .ping_timeout(Duration::from_secs(2))
        .build()
        .is_err());
    assert!(Auction::builder()
        .floor(Money::new(dec!(1), Currency::EUR))
        .build()
        .is_err());
    let mismatch = Auction::builder()
        .buyer(
            entry(buyer("a", dec!(1))).with_profile(BuyerProfile::new(BuyerId::new("z").unwrap())),
        )
        .build();
    assert!(matches!(
        mismatch,
        Err(AuctionConfigError::ProfileMismatch { .. })
    ));
}

/// A clock that jumps 10 s after its first reading.
#[derive(Debug, Default)]
struct JumpingClock(std::sync::atomic::AtomicBool);
impl Clock for JumpingClock {
    fn now(&self) -> DateTime<Utc> {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap();
        if self.0.swap(true, std::sync::atomic::Ordering::SeqCst) {
            t0 + chrono::Duration::seconds(10)
        } else {
            t0
        }
    }
}

#[derive(Debug)]
struct ShortLived(BuyerId);
#[async_trait::async_trait]
impl crate::buyer::Buyer for ShortLived {
    fn id(&self) -> &BuyerId {
        &self.0
    }
    async fn ping(
        &self,
        _: &CallContext,
        _: Deadline,
    ) -> Result<PingReply, crate::buyer::BuyerError> {
        let at = Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 5).unwrap();
        Ok(PingReply::Bid(
            Bid::new(self.0.clone(), Money::usd(dec!(50)))
                .with_destination(dest(3))
                .with_expiry(at),
        ))
    }
}

#[tokio::test]
async fn a_bid_that_lapses_before_its_accept_is_not_sold() {
    let auction = Auction::builder()
        .buyer(BuyerEntry::new(Arc::new(ShortLived(
            BuyerId::new("short").unwrap(),
        ))))
        .buyer(entry(buyer("steady", dec!(20))))
        .clock(Arc::new(JumpingClock::default()))
        .build()
        .unwrap();
    let out = auction.run(&call("CA1")).await;
    assert_eq!(out.winner().unwrap().buyer.as_str(), "steady");
    match &out.record(&BuyerId::new("short").unwrap()).unwrap().accept {
        Some(AcceptRecord::Refused { reason }) => assert!(reason.contains("expired"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// The accept budget (the hardening issue's item 5): a buyer that bids and then hangs,
/// or is merely slower than its share, cannot use up the auction; the next bid is sold
/// and the auction still ends by its deadline.
#[tokio::test]
async fn accept_budget_leaves_time_for_the_next_candidates() {
    let deadline = Duration::from_millis(600);
    for (name, behaviour, want) in [
        ("hang", AcceptBehavior::Hang, "second"),
        // Slower than half the accept window, faster than all of it: cut at its share.
        (
            "slow",
            AcceptBehavior::Slow(Duration::from_millis(450)),
            "second",
        ),
        // Within its share: it wins.
        (
            "quick",
            AcceptBehavior::Slow(Duration::from_millis(50)),
            "first",
        ),
    ] {
        for strategy in [Strategy::HighestBid, Strategy::FirstAccept] {
            let first = buyer("first", dec!(90)).with_accept(behaviour.clone());
            let second = buyer("second", dec!(60));
            let second = match strategy {
                // FirstAccept tries bids in arrival order: make the hostile one first.
                Strategy::FirstAccept => second.with_latency(Duration::from_millis(20)),
                _ => second,
            };
            let auction = Auction::builder()
                .buyer(entry(first))
                .buyer(entry(second))
                .buyer(entry(
                    buyer("third", dec!(50)).with_latency(Duration::from_millis(30)),
                ))
                .strategy(strategy)
                .deadline(deadline)
                .build()
                .unwrap();
            let t = tokio::time::Instant::now();
            let out = auction.run(&call("CA-budget")).await;
            let took = t.elapsed();
            assert_eq!(
                out.winner().map(|w| w.buyer.as_str()),
                Some(want),
                "{name} {strategy:?}: {:?}",
                out.buyers
            );
            assert!(took <= deadline, "{name} {strategy:?}: took {took:?}");
        }
    }
}

/// Several hanging accepts in a row: each gets half of what is left, the last good bid
/// still gets a share, and the auction ends before the deadline minus the margin.
#[tokio::test]
async fn a_run_of_hanging_accepts_still_sells_the_last_bid() {
    let deadline = Duration::from_millis(800);
    let mut b = Auction::builder();
    for (i, p) in [dec!(95), dec!(90), dec!(85)].into_iter().enumerate() {
        b = b.buyer(entry(
            buyer(&format!("hang{i}"), p).with_accept(AcceptBehavior::Hang),
        ));
    }
    let auction = b
        .buyer(entry(buyer("good", dec!(10))))
        .strategy(Strategy::HighestBid)
        .deadline(deadline)
        .accept_margin(Duration::from_millis(20))
        .build()
        .unwrap();
    let t = tokio::time::Instant::now();
    let out = auction.run(&call("CA-hangs")).await;
    assert_eq!(out.winner().map(|w| w.buyer.as_str()), Some("good"));
    assert!(t.elapsed() < deadline, "took {:?}", t.elapsed());
}

#[test]
fn accept_budget_configuration_is_validated() {
    let err = Auction::builder().accept_share(0.0).build().unwrap_err();
    assert!(err.to_string().contains("accept_share"), "{err}");
    let err = Auction::builder().accept_share(1.5).build().unwrap_err();
    assert!(err.to_string().contains("accept_share"), "{err}");
    let err = Auction::builder()
        .accept_share(f64::NAN)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("NaN"), "{err}");
    let err = Auction::builder()
        .deadline(Duration::from_millis(10))
        .accept_margin(Duration::from_millis(10))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("accept_margin"), "{err}");
    assert!(Auction::builder().accept_share(1.0).build().is_ok());
}

/// A scorer that implements only `score` (the trait's default `score_in_place`), over
/// the engine, optionally dropping the last breakdown.
#[derive(Debug, Default)]
struct ScoreOnly {
    engine: ScoringEngine,
    drop_last: bool,
}

#[async_trait::async_trait]
impl Scorer for ScoreOnly {
    async fn score(
        &self,
        call: &CallContext,
        bids: &[(&BuyerProfile, &Bid)],
    ) -> Result<Vec<ScoreBreakdown>, crate::error::StateError> {
        let mut v = self.engine.score(call, bids).await?;
        if self.drop_last {
            v.pop();
        }
        Ok(v)
    }
}

/// Buyers a (30), b (45) and c (12) in Chicago, on the fixed clock.
fn three_bidders() -> AuctionBuilder {
    let entries = [("a", dec!(30)), ("b", dec!(45)), ("c", dec!(12))].map(|(id, price)| {
        let p = BuyerProfile::new(BuyerId::new(id).unwrap())
            .with_time_zone(chrono_tz::America::Chicago);
        BuyerEntry::new(Arc::new(buyer(id, price))).with_profile(p)
    });
    Auction::builder().buyers(entries).clock(fixed_clock())
}

#[tokio::test]
async fn a_scorer_with_only_score_writes_the_same_breakdowns_into_the_records() {
    let engine_run = three_bidders().build().unwrap().run(&call("CA1")).await;
    let scorer = Arc::new(ScoreOnly::default());
    let out = three_bidders().scorer(scorer).build().unwrap();
    let out = out.run(&call("CA1")).await;
    assert_eq!(out.decision(), engine_run.decision());
    assert!(out.buyers.iter().all(|r| r.score.is_some()));
}

#[tokio::test]
async fn a_scorer_answering_the_wrong_count_scores_nothing_and_price_decides() {
    let scorer = ScoreOnly {
        drop_last: true,
        ..Default::default()
    };
    let auction = three_bidders().scorer(Arc::new(scorer)).build().unwrap();
    let out = auction.run(&call("CA1")).await;
    assert!(out.buyers.iter().all(|r| r.score.is_none()));
    assert_eq!(out.winner().unwrap().buyer.as_str(), "b");
}
