//! callbid-store benchmarks: event insert throughput, bulk import, and filtered report
//! pages / aggregates over a million synthetic calls, on SQLite (and PostgreSQL when
//! `DATABASE_URL` is set and the `postgres` feature is on).
//!
//!     cargo bench --bench store
//!     DATABASE_URL=postgres://… cargo bench --features postgres --bench store
//!
//! The million-call SQLite database is generated once (one transaction, prepared
//! statements: `SqliteStore::import_blocking`) and cached under
//! `$CARGO_TARGET_TMPDIR/callbid-store-bench/`. Set `CALLBID_BENCH_CALLS` for another
//! size. The PostgreSQL report bench copies that database into the `DATABASE_URL`
//! database when it is empty (`PgStore::copy_from_sqlite`) and reuses it when it already
//! holds exactly those calls; otherwise it says so and skips the report part.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use callbid::core::state::{CallEvent, CallEventKind};
use callbid::core::{
    BuyerId, CallId, CampaignId, Destination, Money, PhoneNumber, ServiceType, SourceId, Zip,
};
use callbid::store::{
    CallReports, GroupBy, ReportFilter, ReportQuery, SortKey, SortOrder, SqliteOptions,
    SqliteStore, Synchronous,
};
use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rust_decimal::Decimal;

const ZIPS: [&str; 8] = [
    "78701", "10001", "94103", "60601", "33101", "98101", "30301", "02108",
];
const SERVICES: [&str; 5] = ["plumbing", "pest_control", "roofing", "hvac", "electrical"];
const BUYERS: [&str; 6] = [
    "buyer-a", "buyer-b", "buyer-c", "buyer-d", "buyer-e", "buyer-f",
];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .expect("valid date")
}

fn calls_wanted() -> u64 {
    std::env::var("CALLBID_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Cheap deterministic mixing (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The events of synthetic call `i`: ~one call every 20 s over the year from 2026-01-01,
/// ZIP/service/buyer/campaign/source/price spread evenly; outcomes: 45% completed,
/// 15% missed, 10% forwarded (live), 20% fallback, 10% rejected.
fn call_events(i: u64) -> Vec<CallEvent> {
    let r = mix(i);
    let call = CallId::new(format!("CA{i:010}")).expect("valid id");
    // Ids past one year of calls wrap around in time (they are only used by the import
    // bench, which has its own database).
    let slot = i % (365 * 86_400 / 20);
    let at0 = t0() + Duration::seconds((slot * 20 + r % 20) as i64);
    let ev = |s: i64, key: &str, kind| {
        CallEvent::new(call.clone(), at0 + Duration::seconds(s), key, kind)
    };
    let mut v = vec![ev(
        0,
        "incoming",
        CallEventKind::Incoming {
            caller: PhoneNumber::parse(&format!("+1512555{:04}", r % 10_000)).ok(),
            dialed: PhoneNumber::parse("+18005551212").ok(),
            campaign: CampaignId::new(format!("camp-{}", (r >> 8) % 10)).ok(),
            source: SourceId::new(format!("src-{}", (r >> 12) % 20)).ok(),
        },
    )];
    let outcome = (r >> 16) % 20;
    if outcome < 2 {
        v.push(ev(
            3,
            "rejected",
            CallEventKind::Rejected {
                reason: "blocked".into(),
            },
        ));
        return v;
    }
    let zip = Zip::parse(ZIPS[((r >> 20) % 8) as usize]).expect("valid zip");
    let service = ServiceType::new(SERVICES[((r >> 24) % 5) as usize]).expect("valid service");
    v.push(ev(
        8,
        "auction",
        CallEventKind::AuctionStarted {
            zip,
            service,
            eligible: 4,
            excluded: 1,
        },
    ));
    if outcome < 6 {
        v.push(ev(
            10,
            "fallback",
            CallEventKind::Fallback {
                kind: "voicemail".into(),
                reason: "no bids".into(),
            },
        ));
        return v;
    }
    let buyer = BuyerId::new(BUYERS[((r >> 28) % 6) as usize]).expect("valid buyer");
    let price = Money::usd(Decimal::new(500 + ((r >> 32) % 9_500) as i64, 2));
    let dest = Destination::Phone(PhoneNumber::parse("+15125550199").expect("valid"));
    v.push(ev(
        9,
        "winner",
        CallEventKind::Winner {
            buyer: buyer.clone(),
            price,
            score: price.amount,
        },
    ));
    v.push(ev(
        10,
        "forwarded",
        CallEventKind::Forwarded {
            buyer,
            destination: dest,
        },
    ));
    if outcome < 8 {
        return v; // still live
    }
    if outcome < 11 {
        v.push(ev(
            40,
            "status:no-answer",
            CallEventKind::Missed {
                reason: "no-answer".into(),
            },
        ));
        return v;
    }
    let d = (r >> 44) % 900;
    v.push(ev(
        11 + d as i64,
        "status:completed",
        CallEventKind::Completed { duration_secs: d },
    ));
    let billable = d >= 90;
    let revenue = if billable {
        price
    } else {
        Money::usd(Decimal::ZERO)
    };
    let payout = Money::usd((revenue.amount * Decimal::new(70, 2)).round_dp(2));
    v.push(ev(
        12 + d as i64,
        "billing",
        CallEventKind::Billing {
            billable,
            revenue,
            payout,
        },
    ));
    v
}

/// The cached million-call database (built on first use).
fn million_db(n: u64) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("callbid-store-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join(format!("calls-{n}-v1.db"));
    let done = dir.join(format!("calls-{n}-v1.done"));
    if path.exists() && done.exists() {
        return path;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open_with(
        &path,
        SqliteOptions::default().with_synchronous(Synchronous::Normal),
    )
    .expect("open bench db");
    let start = Instant::now();
    let events = store
        .import_blocking((0..n).flat_map(call_events))
        .expect("bulk load");
    eprintln!(
        "store bench: loaded {n} calls ({events} events) in {:.1}s into {}",
        start.elapsed().as_secs_f64(),
        path.display()
    );
    std::fs::write(&done, format!("{n} calls, {events} events\n")).expect("marker");
    path
}

/// The report queries measured over the million calls.
fn report_queries() -> Vec<(&'static str, ReportQuery)> {
    let week = ReportFilter::from_pairs([
        ("from", "2026-06-01"),
        ("to", "2026-06-07"),
        ("status", "completed"),
        ("service", "plumbing"),
    ])
    .expect("filter");
    let buyer_price = ReportFilter::from_pairs([
        ("buyer", "buyer-c"),
        ("min_price", "40"),
        ("max_price", "60.50"),
        ("zip", "78701,10001"),
    ])
    .expect("filter");
    let campaign =
        ReportFilter::from_pairs([("campaign", "camp-3"), ("source", "src-7")]).expect("filter");
    vec![
        (
            "week_completed_plumbing_newest",
            ReportQuery::new(week).with_limit(50),
        ),
        (
            "buyer_zip_price_range_by_price",
            ReportQuery::new(buyer_price)
                .sorted_by(SortKey::Price, SortOrder::Desc)
                .with_limit(50),
        ),
        (
            "campaign_source_newest",
            ReportQuery::new(campaign).with_limit(50),
        ),
        ("all_newest", ReportQuery::default().with_limit(50)),
    ]
}

fn bench_sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("callbid-store-bench");
    std::fs::create_dir_all(&tmp).expect("bench dir");

    // Insert throughput: one event per iteration, each its own committed transaction.
    let mut g = c.benchmark_group("store/sqlite_append_event");
    g.throughput(Throughput::Elements(1));
    for (name, sync) in [
        ("sync_full", Synchronous::Full),
        ("sync_normal", Synchronous::Normal),
    ] {
        let path = tmp.join(format!("append-{name}.db"));
        let store = SqliteStore::open_with(&path, SqliteOptions::default().with_synchronous(sync))
            .expect("open");
        let next = AtomicU64::new(mix(std::process::id() as u64) % 1_000_000_000);
        g.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let e = CallEvent::new(
                    CallId::new(format!("A{i}")).expect("id"),
                    t0(),
                    "incoming",
                    CallEventKind::Incoming {
                        caller: None,
                        dialed: None,
                        campaign: None,
                        source: None,
                    },
                );
                let store = store.clone();
                async move { store.append_event(&e).await.expect("append") }
            })
        });
    }
    g.finish();

    // Bulk import: 1 000 calls' events per transaction.
    let mut g = c.benchmark_group("store/sqlite_import");
    let path = tmp.join("import.db");
    let store = SqliteStore::open(&path).expect("open");
    let per = (0..1000)
        .map(call_events)
        .map(|v| v.len() as u64)
        .sum::<u64>();
    g.throughput(Throughput::Elements(per));
    let next = AtomicU64::new(10_000_000_000 + mix(std::process::id() as u64) % 1_000_000_000);
    g.sample_size(10);
    g.bench_function("1000_calls", |b| {
        b.iter(|| {
            let base = next.fetch_add(1000, Ordering::Relaxed);
            store
                .import_blocking((base..base + 1000).flat_map(call_events))
                .expect("import")
        })
    });
    g.finish();

    // Reports over the million calls.
    let n = calls_wanted();
    let path = million_db(n);
    let store = SqliteStore::open(&path).expect("open million");
    let mut g = c.benchmark_group(format!("store/sqlite_report_page_{n}"));
    for (name, q) in report_queries() {
        let rows = rt.block_on(store.page(&q)).expect("page").rows.len();
        eprintln!("store bench: {name} returns {rows} rows");
        g.bench_with_input(BenchmarkId::from_parameter(name), &q, |b, q| {
            b.to_async(&rt)
                .iter(|| async { store.page(q).await.expect("page") })
        });
    }
    // A deep page: the 200th page of the newest-first walk costs what the first does.
    let mut q = ReportQuery::default().with_limit(50);
    for _ in 0..200 {
        let p = rt.block_on(store.page(&q)).expect("page");
        q = q.after(p.next);
    }
    g.bench_function("all_newest_page_200", |b| {
        b.to_async(&rt)
            .iter(|| async { store.page(&q).await.expect("page") })
    });
    g.finish();

    let mut g = c.benchmark_group(format!("store/sqlite_aggregate_{n}"));
    g.sample_size(10);
    let day =
        ReportFilter::from_pairs([("from", "2026-06-01"), ("to", "2026-06-01")]).expect("filter");
    g.bench_function("by_buyer_one_day", |b| {
        b.to_async(&rt)
            .iter(|| async { store.aggregate(&day, GroupBy::Buyer).await.expect("agg") })
    });
    g.finish();
}

#[cfg(feature = "postgres")]
fn bench_postgres(c: &mut Criterion) {
    use callbid::store::PgStore;
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!("store bench: DATABASE_URL not set, skipping PostgreSQL");
        return;
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pg = rt.block_on(PgStore::connect(&url)).expect("connect");

    // Reports first, so a fresh database is still empty for the copy.
    let n = calls_wanted();
    let year =
        ReportFilter::from_pairs([("from", "2026-01-01"), ("to", "2027-01-01")]).expect("filter");
    let have = rt
        .block_on(pg.aggregate(&year, GroupBy::Total))
        .expect("count")
        .first()
        .map_or(0, |r| r.calls);
    let ready = if have == n {
        true
    } else if have == 0 {
        let sqlite = SqliteStore::open(million_db(n)).expect("open million");
        let start = Instant::now();
        match rt.block_on(pg.copy_from_sqlite(&sqlite)) {
            Ok(s) => {
                eprintln!(
                    "store bench: copied {} calls / {} events to PostgreSQL in {:.1}s",
                    s.calls,
                    s.events,
                    start.elapsed().as_secs_f64()
                );
                rt.block_on(pg.analyze()).expect("analyze");
                true
            }
            Err(e) => {
                eprintln!("store bench: skipping PostgreSQL reports: {e}");
                false
            }
        }
    } else {
        eprintln!(
            "store bench: skipping PostgreSQL reports: the database holds {have} calls of the \
             bench period, not {n}; point DATABASE_URL at an empty database"
        );
        false
    };
    if ready {
        let mut g = c.benchmark_group(format!("store/postgres_report_page_{n}"));
        for (name, q) in report_queries() {
            g.bench_with_input(BenchmarkId::from_parameter(name), &q, |b, q| {
                b.to_async(&rt)
                    .iter(|| async { pg.page(q).await.expect("page") })
            });
        }
        g.finish();
    }

    // Insert throughput (calls dated 2030, outside the report period).
    let mut g = c.benchmark_group("store/postgres_append_event");
    g.throughput(Throughput::Elements(1));
    let next = AtomicU64::new(mix(std::process::id() as u64 + 7) % 1_000_000_000);
    let later = Utc
        .with_ymd_and_hms(2030, 1, 1, 0, 0, 0)
        .single()
        .expect("date");
    g.bench_function("one", |b| {
        b.to_async(&rt).iter(|| {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let e = CallEvent::new(
                CallId::new(format!("bench-A{i}")).expect("id"),
                later,
                "incoming",
                CallEventKind::Incoming {
                    caller: None,
                    dialed: None,
                    campaign: None,
                    source: None,
                },
            );
            let pg = pg.clone();
            async move { pg.append_event(&e).await.expect("append") }
        })
    });
    g.finish();
}

#[cfg(not(feature = "postgres"))]
fn bench_postgres(_c: &mut Criterion) {
    if std::env::var("DATABASE_URL").is_ok() {
        eprintln!("store bench: built without the `postgres` feature, skipping PostgreSQL");
    }
}

criterion_group!(benches, bench_sqlite, bench_postgres);
criterion_main!(benches);
