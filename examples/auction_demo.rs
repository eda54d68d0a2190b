//! Runs real auctions against in-process buyers and prints, for each call, every
//! buyer's answer, the score breakdowns and the winner.
//!
//! `cargo run --example auction_demo` (optionally `-- --calls 8 --seed 7`).
//!
//! The buyer network here lives in the process: prices drawn per call, one buyer only
//! covering Texas, one open 08:00–20:00 Chicago time, one with a daily cap of 2, one that
//! is slow past its timeout, one that fails, and one whose accept step fails (the
//! auction cascades to the next bid). Duration history is seeded so scores differ from
//! prices: the buyer whose calls tend to last wins over a slightly higher bid.

use std::sync::Arc;
use std::time::Duration;

use callbid::core::auction::{
    AcceptRecord, Auction, BuyerReply, Eligibility, FixedClock, Strategy,
};
use callbid::core::billing::{settle, PayoutRule};
use callbid::core::inprocess::{AcceptBehavior, InProcessBuyer, PingBehavior};
use callbid::core::rules::{Cap, CapRule, CapWindow, GeoRule, HoursRule, TimeRange};
use callbid::core::scoring::{ScoringConfig, ScoringEngine};
use callbid::core::state::{history_keys, DurationHistory, MemoryCapStore, MemoryDurationHistory};
use callbid::core::*;
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use rust_decimal::Decimal;

fn usd(cents: i64) -> Money {
    Money::usd(Decimal::new(cents, 2))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let calls = arg("--calls", 6);
    let seed = arg("--seed", 7);
    let chicago = chrono_tz::America::Chicago;
    let id = |s: &str| BuyerId::new(s);
    let caps = Arc::new(MemoryCapStore::new());
    let history = Arc::new(MemoryDurationHistory::new());

    let mk =
        |name: &str, min: i64, max: i64, dest: &str| -> Result<InProcessBuyer, ValidationError> {
            Ok(
                InProcessBuyer::new(id(name)?, usd(min), Destination::parse(dest)?)
                    .with_ping(PingBehavior::PriceRange {
                        min: usd(min),
                        max: usd(max),
                    })
                    .with_min_duration(Duration::from_secs(90)),
            )
        };
    let entries = vec![
        BuyerEntry::new(Arc::new(mk("acme-home", 2500, 5500, "+15125550101")?))
            .with_profile(BuyerProfile::new(id("acme-home")?).with_time_zone(chicago)),
        BuyerEntry::new(Arc::new(mk(
            "lone-star-pros",
            3000,
            6000,
            "sip:inbound@lonestar.example.com",
        )?))
        .with_profile(BuyerProfile::new(id("lone-star-pros")?).with_time_zone(chicago))
        .with_rule(Arc::new(
            GeoRule::allow().with_states([UsState::parse("TX")?]),
        )),
        BuyerEntry::new(Arc::new(mk("daytime-only", 4000, 7000, "+13125550102")?))
            .with_profile(BuyerProfile::new(id("daytime-only")?).with_time_zone(chicago))
            .with_rule(Arc::new(
                HoursRule::new(None)
                    .with_weekdays(vec![TimeRange::parse("08:00-20:00")?])
                    .with_day(chrono::Weekday::Sat, vec![TimeRange::parse("09:00-13:00")?]),
            )),
        BuyerEntry::new(Arc::new(mk("capped-co", 3500, 6500, "+12125550103")?))
            .with_profile(
                BuyerProfile::new(id("capped-co")?).with_time_zone(chrono_tz::America::New_York),
            )
            .with_rule(Arc::new(CapRule::new(
                caps.clone(),
                vec![Cap::count(CapWindow::Daily, 2)],
            )?)),
        BuyerEntry::new(Arc::new(
            mk("slowpoke", 8000, 9000, "+14155550104")?.with_latency(Duration::from_millis(900)),
        ))
        .with_timeout(Duration::from_millis(400)),
        BuyerEntry::new(Arc::new(
            mk("flaky-net", 2000, 3000, "+16175550105")?
                .with_ping(PingBehavior::Error(BuyerErrorKind::Transport)),
        )),
        BuyerEntry::new(Arc::new(
            mk("no-accept", 7000, 7500, "+17135550106")?
                .with_destination_in_bid(false)
                .with_accept(AcceptBehavior::Fail(BuyerErrorKind::Rejected)),
        )),
    ];

    // Seed duration history: acme-home's calls usually last, capped-co's rarely do.
    let seed_call = |zip: &str, caller: &str| -> Result<CallContext, ValidationError> {
        Ok(CallContext::new(
            CallId::new("seed")?,
            zip.parse()?,
            ServiceType::new("plumbing")?,
            Utc.with_ymd_and_hms(2026, 11, 13, 16, 0, 0).unwrap(),
        )
        .with_caller(caller.parse()?))
    };
    for (zip, caller) in [("78701", "+15125550123"), ("10001", "+12125550123")] {
        let c = seed_call(zip, caller)?;
        for i in 0..20 {
            history
                .record(&history_keys(&id("acme-home")?, &c, chicago), i < 18)
                .await?;
            history
                .record(
                    &history_keys(&id("capped-co")?, &c, chrono_tz::America::New_York),
                    i < 4,
                )
                .await?;
        }
    }
    let scorer = Arc::new(ScoringEngine::new(
        history.clone(),
        ScoringConfig::default(),
    )?);
    // The demo's calls carry simulated times, so each auction's clock (which rules such
    // as hours and caps evaluate) is set to its call's time. A live server keeps one
    // auction with the system clock.
    let auction_at = |at: chrono::DateTime<Utc>| {
        Auction::builder()
            .buyers(entries.clone())
            .scorer(scorer.clone())
            .strategy(Strategy::HighestScore)
            .deadline(Duration::from_millis(1500))
            .ping_timeout(Duration::from_millis(600))
            .floor(usd(1000))
            .clock(Arc::new(FixedClock(at)))
            .build()
    };

    let places = [
        ("78701", "+15125550123", "plumbing"),
        ("10001", "+12125550123", "plumbing"),
        ("73301", "+15125550177", "roofing"),
        ("60601", "+13125550188", "pest control"),
        ("94105", "+14155550199", "electrician"),
        ("77002", "+17135550111", "air conditioning"),
    ];
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 15, 0, 0).unwrap();
    for i in 0..calls {
        let (zip, caller, service) = places[((i + seed) % places.len() as u64) as usize];
        let call = CallContext::new(
            CallId::new(format!("CA{:032x}", (seed << 32) + i))?,
            zip.parse()?,
            ServiceType::new(service)?,
            start + ChronoDuration::hours(i as i64 * 3),
        )
        .with_caller(caller.parse()?);
        let out = auction_at(call.received_at)?.run(&call).await;
        println!(
            "\n=== call {} | ZIP {} ({}) | {} | caller {} | {} UTC ===",
            i + 1,
            call.zip,
            call.state().map(|s| s.as_str()).unwrap_or("?"),
            call.service,
            caller,
            call.received_at.format("%a %H:%M")
        );
        for r in &out.buyers {
            let lat = r
                .latency
                .map(|l| format!("{:>6.1} ms", l.as_secs_f64() * 1000.0))
                .unwrap_or_else(|| "        ".into());
            let what = match (&r.eligibility, &r.reply) {
                (Eligibility::Excluded { rule, reason }, _) => {
                    format!("excluded by {rule}: {reason}")
                }
                (_, BuyerReply::Bid { bid }) => format!("bid {}", bid.price),
                (_, BuyerReply::InvalidBid { bid, reason }) => {
                    format!("bid {} refused: {reason}", bid.price)
                }
                (_, BuyerReply::NoBid { reason }) => format!("no bid: {reason}"),
                (_, BuyerReply::Failed { kind, message }) => format!("failed ({kind}): {message}"),
                (_, BuyerReply::TimedOut) => "timed out".into(),
                (_, other) => format!("{other:?}"),
            };
            println!("  {:<15} {lat}  {what}", r.buyer.as_str());
            if let Some(s) = &r.score {
                println!("  {:<15}            score {s}", "");
            }
            if let Some(AcceptRecord::Failed { kind, message }) = &r.accept {
                println!(
                    "  {:<15}            accept failed ({kind}): {message} -> next bid",
                    ""
                );
            }
        }
        match out.winner() {
            Some(w) => {
                let s = settle(
                    &w.bid,
                    &BuyerProfile::new(w.buyer.clone()),
                    Duration::from_secs(120),
                    &PayoutRule::PercentOfRevenue(Decimal::from(70)),
                )?;
                println!(
                    "  WINNER {} at {} -> dial {} | if the call lasts 120 s: revenue {}, payout {}, margin {} | auction took {:.1} ms",
                    w.buyer,
                    w.bid.price,
                    w.destination,
                    s.revenue,
                    s.payout,
                    s.margin,
                    out.timings.total.as_secs_f64() * 1000.0
                );
            }
            None => println!(
                "  NO BUYER ({}) -> fallback",
                out.no_buyer_reason()
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            ),
        }
    }
    Ok(())
}
