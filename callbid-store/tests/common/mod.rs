//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// `DATABASE_URL`, or `None` with a printed skip message. With `CI=true` a missing
/// `DATABASE_URL` is a failure: CI must run the PostgreSQL tests (see `.ci/postgres.sh`).
pub fn database_url(test: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => Some(u),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but DATABASE_URL is unset: source .ci/postgres.sh before the tests"
            );
            eprintln!("skipping PostgreSQL test {test}: DATABASE_URL is not set");
            None
        }
    }
}

/// A prefix no earlier run used, so tests can share one PostgreSQL database.
pub fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{name}-{}-{nanos}", std::process::id())
}

use callbid_core::state::{CallEvent, CallEventKind, CallRecord, CallStatus};
use callbid_core::{
    BuyerId, CallId, CampaignId, Destination, Money, PhoneNumber, ServiceType, SourceId, Zip,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use rust_decimal::Decimal;

/// A deterministic pseudo-random sequence (no dependency needed).
pub struct Lcg(u64);
impl Lcg {
    pub fn new(seed: u64) -> Self {
        Lcg(seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407))
    }
    pub fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).single().unwrap()
}

pub const ZIPS: [&str; 4] = ["78701", "10001", "94103", "60601"];
pub const SERVICES: [&str; 3] = ["plumbing", "pest_control", "roofing"];
pub const BUYERS: [&str; 3] = ["buyer-a", "buyer-b", "buyer-c"];

/// Events of `n` synthetic calls covering every status, with ties in time, calls
/// without price, several days, campaigns and sources. Events of a call are contiguous.
pub fn synthetic_calls(prefix: &str, n: usize, seed: u64) -> Vec<Vec<CallEvent>> {
    let mut rng = Lcg::new(seed);
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let call = CallId::new(format!("{prefix}-CA{:05}", rng.next(100_000))).unwrap();
        let call = CallId::new(format!("{call}-{i}")).unwrap();
        // Pairs of calls share an instant, to exercise the call-id tie break.
        let at0 = t0() + Duration::minutes((i / 2) as i64 * 37);
        let at = |s: i64| at0 + Duration::seconds(s);
        let mut ev = Vec::new();
        let mut push =
            |key: &str, s: i64, kind| ev.push(CallEvent::new(call.clone(), at(s), key, kind));
        push(
            "incoming",
            0,
            CallEventKind::Incoming {
                caller: Some(
                    PhoneNumber::parse(&format!("+1512555{:04}", rng.next(10_000))).unwrap(),
                ),
                dialed: Some(PhoneNumber::parse("+18005551212").unwrap()),
                campaign: Some(CampaignId::new(format!("camp-{}", rng.next(3))).unwrap()),
                source: (rng.next(4) != 0)
                    .then(|| SourceId::new(format!("src-{}", rng.next(2))).unwrap()),
            },
        );
        let outcome = rng.next(6);
        if outcome == 5 {
            push(
                "rejected",
                2,
                CallEventKind::Rejected {
                    reason: "blocked".into(),
                },
            );
            calls.push(ev);
            continue;
        }
        let zip = Zip::parse(ZIPS[rng.next(4) as usize]).unwrap();
        let service = ServiceType::new(SERVICES[rng.next(3) as usize]).unwrap();
        push(
            "auction",
            5,
            CallEventKind::AuctionStarted {
                zip,
                service,
                eligible: 3,
                excluded: 0,
            },
        );
        let buyer = BuyerId::new(BUYERS[rng.next(3) as usize]).unwrap();
        let price = Money::usd(Decimal::new(500 + rng.next(7_000) as i64, 2));
        push(
            &format!("ping:{buyer}"),
            6,
            CallEventKind::PingResult {
                buyer: buyer.clone(),
                latency_ms: 90,
                price: Some(price),
                reason: None,
            },
        );
        let dest = Destination::Phone(PhoneNumber::parse("+15125550199").unwrap());
        match outcome {
            0..=2 => {
                push(
                    "winner",
                    7,
                    CallEventKind::Winner {
                        buyer: buyer.clone(),
                        price,
                        score: price.amount,
                    },
                );
                push(
                    "accepted",
                    7,
                    CallEventKind::Accepted {
                        buyer: buyer.clone(),
                        destination: dest.clone(),
                    },
                );
                push(
                    "forwarded",
                    8,
                    CallEventKind::Forwarded {
                        buyer: buyer.clone(),
                        destination: dest,
                    },
                );
                if outcome == 0 {
                    let d = rng.next(600);
                    push(
                        "connected",
                        10,
                        CallEventKind::Connected {
                            buyer: Some(buyer.clone()),
                        },
                    );
                    push(
                        "status:completed",
                        10 + d as i64,
                        CallEventKind::Completed { duration_secs: d },
                    );
                    let billable = d >= 90;
                    let revenue = if billable {
                        price
                    } else {
                        Money::usd(Decimal::ZERO)
                    };
                    let payout = Money::usd((revenue.amount * Decimal::new(70, 2)).round_dp(2));
                    push(
                        "billing",
                        11 + d as i64,
                        CallEventKind::Billing {
                            billable,
                            revenue,
                            payout,
                        },
                    );
                } else if outcome == 1 {
                    push(
                        "status:no-answer",
                        40,
                        CallEventKind::Missed {
                            reason: "no-answer".into(),
                        },
                    );
                }
            }
            3 => push(
                "fallback",
                9,
                CallEventKind::Fallback {
                    kind: "voicemail".into(),
                    reason: "no bids".into(),
                },
            ),
            _ => {}
        }
        calls.push(ev);
    }
    calls
}

/// The records the events derive, per core.
pub fn records_of(calls: &[Vec<CallEvent>]) -> Vec<CallRecord> {
    calls
        .iter()
        .filter_map(|e| CallRecord::from_events(e))
        .collect()
}

/// Every status appears in the synthetic data.
pub fn statuses_covered(records: &[CallRecord]) -> bool {
    CallStatus::ALL
        .iter()
        .all(|s| records.iter().any(|r| r.status == *s))
}

/// A fresh, empty PostgreSQL database next to the one `url` names; returns its URL.
#[cfg(feature = "postgres")]
pub async fn fresh_pg_database(url: &str, name: &str) -> String {
    fresh_pg_database_with(url, name, "").await
}

/// [`fresh_pg_database`] with extra `CREATE DATABASE` options (e.g. a collation).
#[cfg(feature = "postgres")]
pub async fn fresh_pg_database_with(url: &str, name: &str, options: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    let task = tokio::spawn(conn);
    let db = unique_prefix(name).replace('-', "_").to_lowercase();
    client
        .batch_execute(&format!("CREATE DATABASE {db} {options}"))
        .await
        .expect("CREATE DATABASE (the DATABASE_URL role needs CREATEDB)");
    drop(client);
    let _ = task.await;
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{db}{query}", &base[..host_end])
}
