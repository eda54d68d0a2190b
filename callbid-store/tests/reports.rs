//! Reports checked against an oracle computed in Rust from core's own
//! `CallRecord::from_events`: every filter, sort and page walk must list exactly the
//! calls the oracle lists, in the same order, and aggregates must match to the cent.
//! Runs on SQLite, and on PostgreSQL when `DATABASE_URL` is set.

use std::collections::BTreeMap;

use callbid_core::state::{CallRecord, CallStatus};
use callbid_core::{BuyerId, CampaignId, Currency, ServiceType, SourceId, Zip};
use callbid_store::{
    CallReports, GroupBy, ReportFilter, ReportQuery, SortKey, SortOrder, SqliteStore, Store,
};
use chrono::Duration;
use rust_decimal::Decimal;

mod common;
use common::*;

fn matches(f: &ReportFilter, r: &CallRecord) -> bool {
    let price = r.price.map(|m| m.amount);
    f.from.is_none_or(|t| r.received_at >= t)
        && f.to.is_none_or(|t| r.received_at < t)
        && (f.zips.is_empty() || r.zip.is_some_and(|z| f.zips.contains(&z)))
        && (f.services.is_empty() || r.service.as_ref().is_some_and(|s| f.services.contains(s)))
        && (f.buyers.is_empty() || r.buyer.as_ref().is_some_and(|b| f.buyers.contains(b)))
        && (f.statuses.is_empty() || f.statuses.contains(&r.status))
        && (f.campaigns.is_empty() || r.campaign.as_ref().is_some_and(|c| f.campaigns.contains(c)))
        && (f.sources.is_empty() || r.source.as_ref().is_some_and(|s| f.sources.contains(s)))
        && f.min_price.is_none_or(|m| price.is_some_and(|p| p >= m))
        && f.max_price.is_none_or(|m| price.is_some_and(|p| p <= m))
        && f.currency.is_none_or(|c| {
            r.price
                .or(r.revenue)
                .or(r.payout)
                .is_some_and(|m| m.currency == c)
        })
}

fn sort_value(k: SortKey, r: &CallRecord) -> Option<Decimal> {
    match k {
        SortKey::ReceivedAt => Some(Decimal::from(r.received_at.timestamp_nanos_opt().unwrap())),
        SortKey::Price => r.price.map(|m| m.amount),
        SortKey::Revenue => r.revenue.map(|m| m.amount),
        SortKey::Duration => r.duration_secs.map(Decimal::from),
        _ => unreachable!(),
    }
}

fn oracle(records: &[CallRecord], q: &ReportQuery) -> Vec<String> {
    let mut v: Vec<&CallRecord> = records.iter().filter(|r| matches(&q.filter, r)).collect();
    v.sort_by(|a, b| {
        let (va, vb) = (sort_value(q.sort, a), sort_value(q.sort, b));
        // No value sorts as the smallest: first ascending, last descending.
        let by_value = match q.order {
            SortOrder::Asc => va.cmp(&vb),
            SortOrder::Desc => vb.cmp(&va),
        };
        let by_id = match q.order {
            SortOrder::Asc => a.call_id.cmp(&b.call_id),
            SortOrder::Desc => b.call_id.cmp(&a.call_id),
        };
        by_value.then(by_id)
    });
    v.into_iter().map(|r| r.call_id.to_string()).collect()
}

async fn walk(store: &dyn CallReports, q: &ReportQuery) -> Vec<String> {
    let mut out = Vec::new();
    let mut q = q.clone();
    loop {
        let page = store.page(&q).await.unwrap();
        assert!(page.rows.len() <= q.limit as usize);
        out.extend(page.rows.iter().map(|r| r.call_id.to_string()));
        match page.next {
            // Cursors survive a round trip through text, as a dashboard would send them.
            Some(c) => q = q.after(Some(c.to_string().parse().unwrap())),
            None => break,
        }
    }
    out
}

fn filters(base: &ReportFilter) -> Vec<ReportFilter> {
    let mut v = vec![base.clone()];
    let f = |g: fn(ReportFilter) -> ReportFilter| g(base.clone());
    v.push(f(|x| x.with_status(CallStatus::Completed)));
    v.push(f(|x| {
        x.with_status(CallStatus::Missed)
            .with_status(CallStatus::Fallback)
    }));
    v.push(f(|x| x.with_zip(Zip::parse("78701").unwrap())));
    v.push(f(|x| x.with_service(ServiceType::new("roofing").unwrap())));
    v.push(f(|x| x.with_buyer(BuyerId::new("buyer-b").unwrap())));
    v.push(f(|x| x.with_campaign(CampaignId::new("camp-1").unwrap())));
    v.push(f(|x| x.with_source(SourceId::new("src-0").unwrap())));
    v.push(f(|x| {
        x.with_price(Some(Decimal::new(2000, 2)), Some(Decimal::new(4550, 2)))
    }));
    v.push(f(|x| x.with_price(Some(Decimal::new(6000, 2)), None)));
    v.push(f(|x| x.with_currency(Currency::USD)));
    v.push(f(|x| {
        x.with_range(t0() + Duration::days(1), t0() + Duration::days(3))
            .with_status(CallStatus::Completed)
            .with_zip(Zip::parse("10001").unwrap())
    }));
    v
}

async fn check_pages(store: &dyn CallReports, records: &[CallRecord], base: &ReportFilter) {
    let mut non_empty = 0;
    for f in filters(base) {
        for sort in [
            SortKey::ReceivedAt,
            SortKey::Price,
            SortKey::Revenue,
            SortKey::Duration,
        ] {
            for order in [SortOrder::Desc, SortOrder::Asc] {
                let q = ReportQuery::new(f.clone())
                    .sorted_by(sort, order)
                    .with_limit(7);
                let want = oracle(records, &q);
                let got = walk(store, &q).await;
                assert_eq!(got, want, "filter {f:?} sort {sort:?} {order:?}");
                non_empty += usize::from(!want.is_empty());
            }
        }
    }
    assert!(
        non_empty > 60,
        "the filters must select something ({non_empty})"
    );
}

/// calls, accepted, fallbacks, bids, price, revenue, payout
type Sums = (u64, u64, u64, u64, Decimal, Decimal, Decimal);

async fn check_aggregates(store: &dyn CallReports, records: &[CallRecord], base: &ReportFilter) {
    for g in [
        GroupBy::Total,
        GroupBy::Buyer,
        GroupBy::Service,
        GroupBy::Day,
        GroupBy::Status,
    ] {
        let rows = store.aggregate(base, g).await.unwrap();
        let mut want: BTreeMap<Option<String>, Sums> = BTreeMap::new();
        for r in records.iter().filter(|r| matches(base, r)) {
            let key = match g {
                GroupBy::Total => None,
                GroupBy::Buyer => r.buyer.as_ref().map(|b| b.to_string()),
                GroupBy::Service => r.service.as_ref().map(|s| s.to_string()),
                GroupBy::Day => Some(r.received_at.format("%Y-%m-%d").to_string()),
                GroupBy::Status => Some(r.status.to_string()),
                _ => unreachable!(),
            };
            let e = want.entry(key).or_default();
            e.0 += 1;
            e.1 += u64::from(r.destination.is_some());
            e.2 += u64::from(r.status == CallStatus::Fallback);
            e.3 += u64::from(r.price.is_some());
            e.4 += r.price.map_or(Decimal::ZERO, |m| m.amount);
            e.5 += r.revenue.map_or(Decimal::ZERO, |m| m.amount);
            e.6 += r.payout.map_or(Decimal::ZERO, |m| m.amount);
        }
        assert_eq!(rows.len(), want.len(), "{g:?} groups");
        let total_calls: u64 = rows.iter().map(|r| r.calls).sum();
        assert_eq!(
            total_calls,
            records.iter().filter(|r| matches(base, r)).count() as u64
        );
        for row in &rows {
            let w = want
                .get(&row.group)
                .unwrap_or_else(|| panic!("unexpected group {row:?}"));
            assert_eq!(
                (row.calls, row.accepted, row.fallbacks, row.bids),
                (w.0, w.1, w.2, w.3),
                "{g:?} {:?}",
                row.group
            );
            assert_eq!(row.revenue, w.5.normalize(), "{g:?} revenue");
            assert_eq!(row.payout, w.6.normalize(), "{g:?} payout");
            assert_eq!(row.margin, (w.5 - w.6).normalize());
            let avg = (w.3 > 0).then(|| {
                (w.4 / Decimal::from(w.3))
                    .round_dp_with_strategy(6, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
                    .normalize()
            });
            assert_eq!(row.average_bid, avg, "{g:?} average bid");
            let rate = (Decimal::from(w.1) / Decimal::from(w.0))
                .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            assert_eq!(row.accept_rate, rate);
        }
    }
}

async fn load(store: &Store, calls: &[Vec<callbid_core::state::CallEvent>]) {
    for e in calls.iter().flatten() {
        store.append_event(e).await.unwrap();
    }
}

#[tokio::test]
async fn sqlite_reports_match_the_oracle() {
    let calls = synthetic_calls("r", 400, 7);
    let records = records_of(&calls);
    assert!(statuses_covered(&records));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("r.db").to_str().unwrap())
        .await
        .unwrap();
    load(&store, &calls).await;
    check_pages(&store, &records, &ReportFilter::new()).await;
    check_aggregates(&store, &records, &ReportFilter::new()).await;
    let f = ReportFilter::new().with_status(CallStatus::Completed);
    check_aggregates(&store, &records, &f).await;
}

#[tokio::test]
async fn sqlite_bulk_import_equals_appends() {
    let calls = synthetic_calls("imp", 150, 3);
    let a = SqliteStore::open_in_memory().unwrap();
    let n = a.import_blocking(calls.iter().flatten().cloned()).unwrap();
    assert_eq!(n as usize, calls.iter().map(Vec::len).sum::<usize>());
    // Importing again records nothing new.
    assert_eq!(
        a.import_blocking(calls.iter().flatten().cloned()).unwrap(),
        0
    );
    // Interleaved (non-contiguous) events of many calls derive the same records.
    let b = SqliteStore::open_in_memory().unwrap();
    let longest = calls.iter().map(Vec::len).max().unwrap();
    let interleaved =
        (0..longest).flat_map(|i| calls.iter().filter_map(move |c| c.get(i).cloned()));
    b.import_blocking(interleaved).unwrap();
    let q = ReportQuery::default().with_limit(1000);
    assert_eq!(
        b.page(&q).await.unwrap().rows,
        a.page(&q).await.unwrap().rows
    );
    let rows = a.page(&q).await.unwrap().rows;
    let mut want = records_of(&calls);
    want.sort_by(|x, y| {
        y.received_at
            .cmp(&x.received_at)
            .then(y.call_id.cmp(&x.call_id))
    });
    assert_eq!(rows, want);
}

#[tokio::test]
async fn money_is_exact_in_filters_and_sums() {
    use callbid_core::state::{CallEvent, CallEventKind};
    use callbid_core::{CallId, Money};
    let s = Store::open("sqlite::memory:").await.unwrap();
    // 0.1 + 0.2 must be 0.3, and 10.005 must pass a max_price of 10.005 exactly.
    for (i, amount) in [
        Decimal::new(1, 1),
        Decimal::new(2, 1),
        Decimal::new(10005, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let call = CallId::new(format!("CA{i}")).unwrap();
        let m = Money::usd(amount);
        for (k, kind) in [
            (
                "winner",
                CallEventKind::Winner {
                    buyer: BuyerId::new("b").unwrap(),
                    price: m,
                    score: amount,
                },
            ),
            (
                "billing",
                CallEventKind::Billing {
                    billable: true,
                    revenue: m,
                    payout: m,
                },
            ),
        ] {
            s.append_event(&CallEvent::new(call.clone(), t0(), k, kind))
                .await
                .unwrap();
        }
    }
    let f = ReportFilter::from_pairs([("max_price", "0.3")]).unwrap();
    let total = &s.aggregate(&f, GroupBy::Total).await.unwrap()[0];
    assert_eq!(total.revenue.to_string(), "0.3");
    assert_eq!(total.currency, Some(Currency::USD));
    let f = ReportFilter::from_pairs([("min_price", "10.005"), ("max_price", "10.005")]).unwrap();
    assert_eq!(s.page(&ReportQuery::new(f)).await.unwrap().rows.len(), 1);
}

#[tokio::test]
async fn mixed_currencies_are_refused_not_summed() {
    use callbid_core::state::{CallEvent, CallEventKind};
    use callbid_core::{CallId, Money};
    let s = Store::open("sqlite::memory:").await.unwrap();
    for (id, cur) in [("A", Currency::USD), ("B", Currency::CAD)] {
        let m = Money::new(Decimal::ONE, cur);
        s.append_event(&CallEvent::new(
            CallId::new(id).unwrap(),
            t0(),
            "billing",
            CallEventKind::Billing {
                billable: true,
                revenue: m,
                payout: m,
            },
        ))
        .await
        .unwrap();
    }
    let e = s
        .aggregate(&ReportFilter::new(), GroupBy::Total)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("currency"), "{e}");
    let usd = ReportFilter::new().with_currency(Currency::USD);
    assert_eq!(s.aggregate(&usd, GroupBy::Total).await.unwrap()[0].calls, 1);
}

#[tokio::test]
async fn filtered_pages_use_an_index() {
    // The planner must answer a filtered newest-first page from an index range, not a
    // scan followed by a sort of every matching row.
    let s = SqliteStore::open_in_memory().unwrap();
    for (pairs, index) in [
        (vec![("status", "completed")], "calls_by_status"),
        (
            vec![("buyer", "b"), ("from", "2026-11-01"), ("to", "2026-11-02")],
            "calls_by_buyer",
        ),
        (vec![("zip", "78701")], "calls_by_zip"),
        (vec![("service", "plumbing")], "calls_by_service"),
        (vec![("campaign", "c")], "calls_by_campaign"),
        (vec![("from", "2026-11-01")], "calls_by_time"),
    ] {
        let q = ReportQuery::new(ReportFilter::from_pairs(pairs).unwrap());
        let plan = s.explain_page(&q).await.unwrap();
        assert!(plan.contains(index), "{index}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{index}: {plan}");
    }
    // Sorted by price, both directions, with and without a buyer.
    for order in [SortOrder::Desc, SortOrder::Asc] {
        for (pairs, index) in [
            (
                vec![("buyer", "b"), ("zip", "78701")],
                "calls_by_buyer_price",
            ),
            (vec![], "calls_by_price"),
        ] {
            let q = ReportQuery::new(ReportFilter::from_pairs(pairs).unwrap())
                .sorted_by(SortKey::Price, order)
                .after(Some("price:100:CA1".parse().unwrap()));
            let plan = s.explain_page(&q).await.unwrap();
            assert!(plan.contains(index), "{index} {order:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{index} {order:?}: {plan}");
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;

    #[tokio::test]
    async fn postgres_reports_match_the_oracle() {
        let Some(url) = database_url("postgres_reports") else {
            return;
        };
        let url = fresh_pg_database(&url, "reports").await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), "postgres");
        let calls = synthetic_calls("r", 400, 7);
        let records = records_of(&calls);
        load(&store, &calls).await;
        check_pages(&store, &records, &ReportFilter::new()).await;
        check_aggregates(&store, &records, &ReportFilter::new()).await;
        // The same data gives the same pages on SQLite (identical ordering rules).
        let sqlite = Store::open("sqlite::memory:").await.unwrap();
        load(&sqlite, &calls).await;
        let q = ReportQuery::default()
            .sorted_by(SortKey::Price, SortOrder::Asc)
            .with_limit(13);
        assert_eq!(walk(&store, &q).await, walk(&sqlite, &q).await);
    }
}

#[cfg(feature = "postgres")]
mod pg_copy {
    use super::*;
    use callbid_core::state::{
        CallLog, CapStore, CounterIncrement, ReservationId, ReservationRequest,
    };
    use callbid_store::PgStore;

    #[tokio::test]
    async fn copy_from_sqlite_moves_everything_once() {
        let Some(url) = database_url("copy_from_sqlite") else {
            return;
        };
        let url = fresh_pg_database(&url, "copy").await;
        let sqlite = SqliteStore::open_in_memory().unwrap();
        let calls = synthetic_calls("cp", 120, 5);
        sqlite
            .import_blocking(calls.iter().flatten().cloned())
            .unwrap();
        let req = ReservationRequest {
            id: ReservationId("r1".into()),
            increments: vec![CounterIncrement {
                key: "buyer-a|daily".into(),
                amount: Decimal::new(1234, 2),
                limit: Decimal::from(100),
            }],
            expires_at: None,
            now: t0(),
            deadline: None,
        };
        sqlite.reserve(&req).await.unwrap();

        let pg = PgStore::connect(&url).await.unwrap();
        let stats = pg.copy_from_sqlite(&sqlite).await.unwrap();
        assert_eq!(stats.calls, 120);
        assert_eq!(
            stats.events as usize,
            calls.iter().map(Vec::len).sum::<usize>()
        );
        assert_eq!(stats.reservations, 1);
        assert_eq!(
            pg.usage("buyer-a|daily", t0()).await.unwrap(),
            Decimal::new(1234, 2)
        );
        let q = ReportQuery::default().with_limit(50);
        assert_eq!(walk(&pg, &q).await, walk(&sqlite, &q).await);
        for c in &calls {
            assert_eq!(&pg.events(&c[0].call_id).await.unwrap(), c);
        }
        // A second copy is refused: the target is no longer empty.
        let e = pg.copy_from_sqlite(&sqlite).await.unwrap_err().to_string();
        assert!(e.contains("not empty"), "{e}");
    }
}

#[cfg(feature = "postgres")]
mod pg_import {
    use super::*;
    use callbid_core::state::CallLog;
    use callbid_store::PgStore;

    #[tokio::test]
    async fn postgres_bulk_import_equals_appends() {
        let Some(url) = database_url("postgres_import") else {
            return;
        };
        let url = fresh_pg_database(&url, "import").await;
        let pg = PgStore::connect(&url).await.unwrap();
        let calls = synthetic_calls("pi", 80, 9);
        let n = pg
            .import(calls.iter().flatten().cloned().collect::<Vec<_>>())
            .await
            .unwrap();
        assert_eq!(n as usize, calls.iter().map(Vec::len).sum::<usize>());
        assert_eq!(
            pg.import(calls.iter().flatten().cloned().collect::<Vec<_>>())
                .await
                .unwrap(),
            0
        );
        for c in &calls {
            let want = callbid_core::state::CallRecord::from_events(c);
            assert_eq!(pg.record(&c[0].call_id).await.unwrap(), want);
        }
        // Interleaved events of many calls, split over several import rounds, derive
        // the same records.
        let url = fresh_pg_database(&database_url("postgres_import").unwrap(), "import2").await;
        let pg2 = PgStore::connect(&url).await.unwrap();
        let calls = synthetic_calls("pj", 600, 4);
        let longest = calls.iter().map(Vec::len).max().unwrap();
        let interleaved: Vec<_> = (0..longest)
            .flat_map(|i| calls.iter().filter_map(move |c| c.get(i).cloned()))
            .collect();
        assert!(interleaved.len() > 2_000);
        pg2.import(interleaved).await.unwrap();
        for c in calls.iter().step_by(7) {
            let want = callbid_core::state::CallRecord::from_events(c);
            assert_eq!(pg2.record(&c[0].call_id).await.unwrap(), want);
        }
    }
}
