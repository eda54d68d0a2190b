//! PostgreSQL hardening: bulk import at scale, byte-order groups on any collation,
//! pool timeouts, and pruning of expired reservations. Needs `DATABASE_URL` (required
//! when `CI=true`), except the connect-timeout test, which needs no server.
#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use callbid_core::state::{
    CallEvent, CallEventKind, CallLog, CapStore, CounterIncrement, ReservationId,
    ReservationRequest, ReserveOutcome,
};
use callbid_core::{BuyerId, CallId, CampaignId, Money};
use callbid_store::{CallReports, GroupBy, PgOptions, PgStore, ReportFilter, SqliteStore};
use chrono::{DateTime, Utc};
use common::*;
use rust_decimal::Decimal;

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// Takes counter `key`'s row lock (the one reserve takes to add to it) in a transaction
/// of `c`, creating the row; the lock is held until the transaction ends.
async fn hold_counter_lock<'a>(
    c: &'a mut tokio_postgres::Client,
    key: &str,
) -> tokio_postgres::Transaction<'a> {
    c.execute(
        "INSERT INTO cap_counters (counter, used) VALUES ($1, 0)",
        &[&key],
    )
    .await
    .unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM cap_counters WHERE counter = $1 FOR UPDATE",
        &[&key],
    )
    .await
    .unwrap();
    tx
}

async fn count(c: &tokio_postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_scales_past_the_lock_table() {
    let Some(url) = database_url("pg_import_scale") else {
        return;
    };
    let url = fresh_pg_database(&url, "import_scale").await;
    let c = raw(&url).await;
    // The shared lock table has max_locks_per_transaction × (max_connections +
    // max_prepared_transactions) slots; one advisory lock per call overflowed it.
    let setting = |name: &'static str| {
        let c = &c;
        async move {
            let v: String = c
                .query_one(&format!("SHOW {name}"), &[])
                .await
                .unwrap()
                .get(0);
            v.parse::<usize>().unwrap()
        }
    };
    let slots = setting("max_locks_per_transaction").await
        * (setting("max_connections").await + setting("max_prepared_transactions").await);
    let n = 20_000usize.max(slots + 2_000);
    let calls = synthetic_calls("big", n, 11);
    let events: usize = calls.iter().map(Vec::len).sum();
    let pg = PgStore::connect(&url).await.unwrap();
    let started = std::time::Instant::now();
    let new = pg
        .import(calls.iter().flatten().cloned().collect::<Vec<_>>())
        .await
        .unwrap();
    eprintln!(
        "imported {n} calls ({events} events, lock table {slots} slots) in {:?}",
        started.elapsed()
    );
    assert_eq!(new as usize, events);
    assert_eq!(count(&c, "SELECT COUNT(*) FROM calls").await as usize, n);
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM call_events").await as usize,
        events
    );
    let total = &pg
        .aggregate(&ReportFilter::new(), GroupBy::Total)
        .await
        .unwrap()[0];
    assert_eq!(total.calls as usize, n);
    // Every call's row is its events folded in order, across chunk boundaries.
    let stored: std::collections::HashMap<String, callbid_core::state::CallRecord> = c
        .query("SELECT call_id, record FROM calls", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let json: &str = r.get(1);
            (r.get(0), serde_json::from_str(json).unwrap())
        })
        .collect();
    for want in records_of(&calls) {
        assert_eq!(stored.get(want.call_id.as_str()), Some(&want));
    }
    // Importing again records nothing new.
    let again: Vec<CallEvent> = calls[..200].iter().flatten().cloned().collect();
    assert_eq!(pg.import(again).await.unwrap(), 0);
}

fn ev(call: &str, key: &str, at: DateTime<Utc>, kind: CallEventKind) -> CallEvent {
    CallEvent::new(CallId::new(call).unwrap(), at, key, kind)
}

/// Calls whose buyers and campaigns differ in case and punctuation, where byte order
/// (SQLite, `COLLATE "C"`) and a linguistic collation (en-US) disagree.
fn mixed_case_calls() -> Vec<CallEvent> {
    let names = [
        "buyer-B", "buyer-a", "Zeta", "alpha", "_under", "buyer-b", "Buyer-a", "9lives", "~tilde",
    ];
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        for j in 0..=i % 2 {
            let call = format!("CA-{i}-{j}");
            let at = t0() + chrono::Duration::minutes(i as i64);
            out.push(ev(
                &call,
                "incoming",
                at,
                CallEventKind::Incoming {
                    caller: None,
                    dialed: None,
                    campaign: Some(CampaignId::new(format!("{name}-camp")).unwrap()),
                    source: None,
                },
            ));
            let price = Money::usd(Decimal::new(1000 + i as i64, 2));
            out.push(ev(
                &call,
                "winner",
                at,
                CallEventKind::Winner {
                    buyer: BuyerId::new(*name).unwrap(),
                    price,
                    score: price.amount,
                },
            ));
        }
    }
    // A call without a buyer or campaign: its group is None, first on both backends.
    out.push(ev(
        "CA-none",
        "incoming",
        t0(),
        CallEventKind::Incoming {
            caller: None,
            dialed: None,
            campaign: None,
            source: None,
        },
    ));
    out
}

#[tokio::test]
async fn groups_come_back_in_byte_order_whatever_the_collation() {
    let Some(url) = database_url("pg_collation") else {
        return;
    };
    // A database whose default collation is ICU en-US: `a` < `B`, punctuation first.
    let url = fresh_pg_database_with(
        &url,
        "collation",
        "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C'",
    )
    .await;
    let c = raw(&url).await;
    let linguistic: Vec<String> = c
        .query(
            "SELECT x FROM (VALUES ('buyer-B'), ('buyer-a')) v(x) ORDER BY x",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        linguistic,
        ["buyer-a", "buyer-B"],
        "the database must not sort by bytes"
    );

    let pg = PgStore::connect(&url).await.unwrap();
    let lite = SqliteStore::open_in_memory().unwrap();
    for e in mixed_case_calls() {
        pg.append(&e).await.unwrap();
        lite.append(&e).await.unwrap();
    }
    for g in [GroupBy::Buyer, GroupBy::Campaign] {
        let groups = |rows: Vec<callbid_store::AggregateRow>| {
            rows.into_iter()
                .map(|r| (r.group, r.calls))
                .collect::<Vec<_>>()
        };
        let p = groups(pg.aggregate(&ReportFilter::new(), g).await.unwrap());
        let s = groups(lite.aggregate(&ReportFilter::new(), g).await.unwrap());
        assert_eq!(p, s, "{g:?}: PostgreSQL and SQLite differ");
        let mut bytes: Vec<Option<String>> = p.iter().map(|(k, _)| k.clone()).collect();
        bytes.sort(); // None first, then byte order
        assert_eq!(p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), bytes);
        assert_eq!(p[0].0, None);
        assert_eq!(p.len(), 10, "{p:?}");
    }
}

#[tokio::test]
async fn connecting_to_a_silent_server_times_out() {
    // Accepts TCP connections and never answers the startup message.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let url = format!("postgres://app:s3cr/et@127.0.0.1:{port}/callbid");
    let options = PgOptions::default().with_connect_timeout(Duration::from_millis(300));
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        PgStore::connect_with(&url, options),
    )
    .await
    .expect("connect must give up by itself");
    let e = r.unwrap_err().to_string();
    assert!(e.contains("connect timeout of 300ms"), "{e}");
    assert!(!e.contains("s3cr/et"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(10));
    hold.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_a_busy_pool_times_out() {
    let Some(url) = database_url("pg_acquire_timeout") else {
        return;
    };
    // A fresh database: the shared one may carry another branch's newer schema.
    let url = common::fresh_pg_database(&url, "acquire").await;
    let key = unique_prefix("acquire");
    let options = PgOptions::default()
        .with_max_connections(1)
        .with_acquire_timeout(Duration::from_millis(300));
    let pg = PgStore::connect_with(&url, options).await.unwrap();
    // Another session holds the counter's lock, so a reservation holds the pool's only
    // connection while it waits.
    let mut other = raw(&url).await;
    let tx = hold_counter_lock(&mut other, &key).await;
    let busy = pg.clone();
    let k = key.clone();
    let blocked = tokio::spawn(async move {
        busy.reserve(&ReservationRequest {
            id: ReservationId(format!("{k}-r")),
            increments: vec![CounterIncrement {
                key: k.clone(),
                amount: Decimal::ONE,
                limit: Decimal::ONE,
            }],
            expires_at: None,
            now: Utc::now(),
            deadline: None,
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(10), pg.usage("other", Utc::now()))
        .await
        .expect("acquire must give up by itself")
        .unwrap_err()
        .to_string();
    assert!(e.contains("acquire timeout of 300ms"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    tx.rollback().await.unwrap();
    assert_eq!(blocked.await.unwrap().unwrap(), ReserveOutcome::Reserved);
}

#[tokio::test]
async fn reserve_prunes_expired_reservations() {
    let Some(url) = database_url("pg_prune") else {
        return;
    };
    let url = fresh_pg_database(&url, "prune").await;
    let c = raw(&url).await;
    let hour = chrono::Duration::hours(1);
    let t = t0();
    let req = |id: String, now, expires_at| ReservationRequest {
        id: ReservationId(id),
        increments: vec![CounterIncrement {
            key: "live".into(),
            amount: Decimal::ONE,
            limit: Decimal::from(1000),
        }],
        expires_at,
        now,
        deadline: None,
    };
    // 300 reservations that ended an hour before `t`; this handle pruned (nothing) on
    // its first reservation and then waits out its quiet interval.
    let a = PgStore::connect(&url).await.unwrap();
    for i in 0..300 {
        let r = req(format!("old{i}"), t - hour * 2, Some(t - hour));
        assert_eq!(a.reserve(&r).await.unwrap(), ReserveOutcome::Reserved);
    }
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM cap_reservations").await,
        300
    );
    // A fresh handle prunes one bounded batch per reservation while there is a backlog,
    // then stops.
    let b = PgStore::connect(&url).await.unwrap();
    b.reserve(&req("new1".into(), t, Some(t + hour)))
        .await
        .unwrap();
    assert_eq!(
        count(&c, "SELECT COUNT(*) FROM cap_reservations").await,
        300 - 256 + 1
    );
    b.reserve(&req("new2".into(), t, Some(t + hour)))
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM cap_reservations").await, 2);
    assert_eq!(count(&c, "SELECT COUNT(*) FROM cap_increments").await, 2);
    b.reserve(&req("old-again".into(), t - hour * 2, Some(t - hour)))
        .await
        .unwrap();
    b.reserve(&req("new3".into(), t, Some(t + hour)))
        .await
        .unwrap();
    assert_eq!(count(&c, "SELECT COUNT(*) FROM cap_reservations").await, 4);
    assert_eq!(b.usage("live", t).await.unwrap(), Decimal::from(3));
}

/// While another session holds a counter's lock, a reservation gives up at its deadline
/// (lock_timeout), leaves nothing behind, and succeeds once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserve_waits_no_longer_than_its_deadline() {
    let Some(url) = database_url("pg_reserve_deadline") else {
        return;
    };
    let url = common::fresh_pg_database(&url, "deadline").await;
    let key = unique_prefix("deadline");
    let pg = PgStore::connect(&url).await.unwrap();
    let mut other = raw(&url).await;
    let tx = hold_counter_lock(&mut other, &key).await;
    let req = |id: &str, wait: Duration| ReservationRequest {
        id: ReservationId(format!("{key}-{id}")),
        increments: vec![CounterIncrement {
            key: key.clone(),
            amount: Decimal::ONE,
            limit: Decimal::from(10),
        }],
        expires_at: None,
        now: Utc::now(),
        deadline: Some(std::time::Instant::now() + wait),
    };
    for ms in [0u64, 100, 400] {
        let started = std::time::Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            pg.reserve(&req(&format!("r{ms}"), Duration::from_millis(ms))),
        )
        .await
        .expect("the reservation must give up by itself");
        let waited = started.elapsed();
        assert!(r.is_err(), "{r:?}");
        assert!(waited < Duration::from_millis(ms + 2000), "{waited:?}");
    }
    assert_eq!(pg.usage(&key, Utc::now()).await.unwrap(), Decimal::ZERO);
    tx.rollback().await.unwrap();
    assert_eq!(
        pg.reserve(&req("free", Duration::from_secs(5)))
            .await
            .unwrap(),
        ReserveOutcome::Reserved
    );
}

/// A burst of concurrent appends (group-committed in shared transactions) holding one
/// event PostgreSQL refuses (a NUL byte in its key): that append fails, with the
/// step named, and every other one is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_fails_only_its_own_append() {
    let Some(url) = database_url("pg_group_commit_refused") else {
        return;
    };
    let s = PgStore::connect(&url).await.expect("connect");
    let prefix = unique_prefix("pgbad");
    let event = |call: usize, key: String| {
        CallEvent::new(
            CallId::new(format!("{prefix}-{call}")).unwrap(),
            Utc::now(),
            key,
            CallEventKind::Recording { url: "u".into() },
        )
    };
    let mut events: Vec<CallEvent> = (0..40).map(|i| event(i % 10, format!("k{i}"))).collect();
    events.insert(20, event(3, "bad\0key".to_owned()));
    let appends = events.iter().map(|e| {
        let (s, e) = (s.clone(), e.clone());
        tokio::spawn(async move { CallLog::append(&s, &e).await })
    });
    let results = futures::future::join_all(appends).await;
    for (i, r) in results.into_iter().enumerate() {
        let r = r.expect("task");
        if i == 20 {
            let err = r.expect_err("a NUL byte in a text column");
            assert!(err.to_string().contains("append"), "{err}");
        } else {
            assert!(r.is_ok(), "append {i}: {r:?}");
        }
    }
    for call in 0..10 {
        let id = CallId::new(format!("{prefix}-{call}")).unwrap();
        assert_eq!(
            CallLog::events(&s, &id).await.unwrap().len(),
            4,
            "call {call}"
        );
    }
}

/// `append_all` through the trait (as the server calls it) is one transaction on
/// PostgreSQL: a refused event in the slice leaves none of the slice recorded.
#[tokio::test]
async fn append_all_is_all_or_nothing() {
    let Some(url) = database_url("pg_append_all_atomic") else {
        return;
    };
    let s = PgStore::connect(&url).await.expect("connect");
    let call = CallId::new(unique_prefix("pgall")).unwrap();
    let event = |key: &str| {
        CallEvent::new(
            call.clone(),
            Utc::now(),
            key,
            CallEventKind::Recording { url: "u".into() },
        )
    };
    let log: &dyn CallLog = &s;
    let err = log
        .append_all(&[event("a"), event("b\0")])
        .await
        .expect_err("a NUL byte in a text column");
    assert!(err.to_string().contains("append"), "{err}");
    assert!(
        log.events(&call).await.unwrap().is_empty(),
        "nothing of the slice"
    );
    assert_eq!(log.append_all(&[event("a")]).await.unwrap().len(), 1);
}
