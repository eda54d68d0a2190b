//! Publisher postbacks end to end: the enqueuing call log on a real store, the delivery
//! worker, and a local receiver (axum on 127.0.0.1:0) that fails (500), stalls past the
//! per-attempt timeout, and recovers (200). Also: a restart picks up a pending delivery,
//! a duplicate billing sends nothing twice, and two workers on one store (SQLite file;
//! PostgreSQL when `DATABASE_URL` is set) never send the same delivery twice.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use callbid_core::state::{
    Backoff, CallEvent, CallEventKind, CallLog, DeliveryState, PostbackDelivery, PostbackOutbox,
};
use callbid_core::{CallId, Money, SourceId};
use callbid_server::postback::worker::PostbackWorker;
use callbid_server::postback::{
    sign, verify, Endpoint, PostbackConfig, PostbackLog, Secret, UrlTemplate,
};
use callbid_store::Store;
use chrono::Utc;
use rust_decimal::Decimal;

const SECRET: &[u8] = b"publisher-secret-0123456789";

#[derive(Debug, Clone)]
enum Step {
    Fail,
    Stall(Duration),
    Ok,
}

#[derive(Debug, Clone)]
struct Hit {
    at: Instant,
    path: String,
    url: String,
    timestamp: String,
    signature: String,
    key: String,
    answered_ok: bool,
}

#[derive(Debug, Default)]
struct Receiver {
    /// Per path: what the n-th request gets (the last step repeats).
    script: HashMap<String, Vec<Step>>,
    hits: Vec<Hit>,
    base: String,
}

type Shared = Arc<Mutex<Receiver>>;

async fn handle(State(r): State<Shared>, uri: Uri, headers: HeaderMap) -> StatusCode {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let path = uri.path().to_owned();
    let (step, base) = {
        let g = r.lock().unwrap();
        let n = g.hits.iter().filter(|x| x.path == path).count();
        let script = g.script.get(&path).cloned().unwrap_or(vec![Step::Ok]);
        let step = script.get(n).or(script.last()).cloned().unwrap_or(Step::Ok);
        (step, g.base.clone())
    };
    let mut hit = Hit {
        at: Instant::now(),
        path: path.clone(),
        url: format!("{base}{uri}"),
        timestamp: h(sign::TIMESTAMP_HEADER),
        signature: h(sign::SIGNATURE_HEADER),
        key: h(sign::IDEMPOTENCY_HEADER),
        answered_ok: false,
    };
    let status = match step {
        Step::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Step::Stall(d) => {
            r.lock().unwrap().hits.push(hit);
            tokio::time::sleep(d).await;
            return StatusCode::OK; // too late: the sender gave up on it
        }
        Step::Ok => StatusCode::OK,
    };
    hit.answered_ok = status == StatusCode::OK;
    r.lock().unwrap().hits.push(hit);
    status
}

async fn receiver(script: &[(&str, Vec<Step>)]) -> (Shared, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(Receiver {
        script: script
            .iter()
            .map(|(p, s)| (format!("/{p}"), s.clone()))
            .collect(),
        hits: Vec::new(),
        base: base.clone(),
    }));
    let app = Router::new()
        .route("/{*path}", get(handle))
        .with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, base)
}

fn config(base: &str, paths: &[(&str, &str)]) -> Arc<PostbackConfig> {
    let mut endpoints = BTreeMap::new();
    for (publisher, path) in paths {
        let url = UrlTemplate::parse(&format!(
            "{base}/{path}?click={{call_id}}&payout={{payout}}&dur={{duration}}&src={{source}}"
        ))
        .unwrap();
        endpoints.insert(
            (*publisher).to_owned(),
            Endpoint::new(url, Secret::new(SECRET)),
        );
    }
    let mut c = PostbackConfig::new(endpoints);
    c.backoff = Backoff::new(Duration::from_millis(200), Duration::from_millis(400), 5);
    c.timeout = Duration::from_millis(400);
    c.delay = Duration::ZERO;
    c.poll = Duration::from_millis(20);
    c.batch = 4;
    Arc::new(c)
}

/// Logs a billable call from `source` through `log` (the incoming event, the talk time,
/// then the billing).
async fn bill(log: &dyn CallLog, call: &str, source: &str) -> CallId {
    let id = CallId::new(call).unwrap();
    let ev = |key: &str, kind| CallEvent::new(id.clone(), Utc::now(), key, kind);
    let incoming = CallEventKind::Incoming {
        caller: None,
        dialed: None,
        campaign: None,
        source: Some(SourceId::new(source).unwrap()),
    };
    log.append(&ev("incoming", incoming)).await.unwrap();
    let done = CallEventKind::Completed { duration_secs: 95 };
    log.append(&ev("completed", done)).await.unwrap();
    log.append(&ev("billing", billing())).await.unwrap();
    id
}

fn billing() -> CallEventKind {
    CallEventKind::Billing {
        billable: true,
        revenue: Money::usd(Decimal::new(2500, 2)),
        payout: Money::usd(Decimal::new(1750, 2)),
    }
}

fn wrap(store: &Store, config: &Arc<PostbackConfig>) -> PostbackLog {
    PostbackLog::new(
        store.handles().log.clone(),
        Arc::new(store.clone()),
        config.clone(),
    )
}

fn worker(store: &Store, config: &Arc<PostbackConfig>) -> PostbackWorker {
    PostbackWorker::new(config.clone(), Arc::new(store.clone()), store.handles().log).unwrap()
}

/// Runs rounds until `done` or 10 s.
async fn rounds_until(w: &PostbackWorker, done: impl AsyncFnMut() -> bool) {
    let mut done = done;
    let end = Instant::now() + Duration::from_secs(10);
    while !done().await {
        assert!(Instant::now() < end, "not delivered within 10 s");
        w.run_once(Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delivery(store: &Store, call: &CallId) -> PostbackDelivery {
    let mut v = store.postbacks(call).await.unwrap();
    assert_eq!(v.len(), 1, "one delivery per call and publisher: {v:?}");
    v.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_stalls_recovers_and_is_delivered_once() {
    let stall = Duration::from_millis(1500);
    let (rx, base) = receiver(&[("slow", vec![Step::Fail, Step::Stall(stall), Step::Ok])]).await;
    let cfg = config(&base, &[("pub-1", "slow"), ("pub-2", "fast")]);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("pb.db").display()))
        .await
        .unwrap();
    let log = wrap(&store, &cfg);
    let call = bill(&log, "CApb1", "pub-1").await;
    let other = bill(&log, "CApb2", "pub-2").await;
    // The billing logged again, and replayed under another key: nothing new is enqueued.
    log.append(&CallEvent::new(
        call.clone(),
        Utc::now(),
        "billing",
        billing(),
    ))
    .await
    .unwrap();
    log.append(&CallEvent::new(
        call.clone(),
        Utc::now(),
        "billing:replay",
        billing(),
    ))
    .await
    .unwrap();
    let w = worker(&store, &cfg);
    let started = Instant::now();
    rounds_until(&w, async || {
        delivery(&store, &call).await.state == DeliveryState::Delivered
    })
    .await;
    // Later rounds send nothing more.
    for _ in 0..5 {
        w.run_once(Utc::now() + chrono::Duration::hours(1))
            .await
            .unwrap();
    }
    let d = delivery(&store, &call).await;
    assert_eq!(d.attempts, 3, "{d:?}");
    assert_eq!(d.last_status, Some(200));
    assert!(d.delivered_at.is_some() && d.next_attempt_at.is_none());
    assert!(d
        .url
        .as_deref()
        .unwrap()
        .contains("click=CApb1&payout=17.50&dur=95&src=pub-1"));
    let hits = rx.lock().unwrap().hits.clone();
    let slow: Vec<&Hit> = hits.iter().filter(|h| h.path == "/slow").collect();
    assert_eq!(slow.len(), 3, "500, stalled, 200: {slow:?}");
    assert_eq!(slow.iter().filter(|h| h.answered_ok).count(), 1);
    // The stall did not hold up the other publisher: its postback arrived at once.
    let fast: Vec<&Hit> = hits.iter().filter(|h| h.path == "/fast").collect();
    assert_eq!(fast.len(), 1);
    assert!(
        fast[0].at < started + Duration::from_millis(300),
        "the fast one waited"
    );
    assert_eq!(delivery(&store, &other).await.attempts, 1);
    // Backoff, counted from each attempt's start: 200 ms after the 500, 400 ms after the
    // stalled one (which ended at its 400 ms timeout).
    let gap = |a: &Hit, b: &Hit| b.at.duration_since(a.at);
    assert!(
        gap(slow[0], slow[1]) >= Duration::from_millis(200),
        "{:?}",
        gap(slow[0], slow[1])
    );
    assert!(
        gap(slow[1], slow[2]) >= Duration::from_millis(400),
        "{:?}",
        gap(slow[1], slow[2])
    );
    let shown = dashboard_postbacks(&store, "CApb1").await;
    let row = &shown["postbacks"][0];
    assert_eq!(row["publisher"], "pub-1");
    assert_eq!(row["state"], "delivered");
    assert_eq!(row["attempts"], 3);
    assert_eq!(row["last_status"], 200);
    assert!(row["delivered_at"].is_string() && row["next_attempt_at"].is_null());
    assert!(row["url"].as_str().unwrap().contains("/slow?click=CApb1"));
    // One stable key; every request verifies with the publisher's secret.
    assert!(
        slow.iter().all(|h| h.key == "callbid-postback:CApb1:pub-1"),
        "{slow:?}"
    );
    for h in &slow {
        let tol = Duration::from_secs(300);
        verify(
            SECRET,
            "GET",
            &h.url,
            b"",
            &h.timestamp,
            &h.signature,
            Utc::now(),
            tol,
        )
        .unwrap_or_else(|e| panic!("{h:?}: {e}"));
    }
}

/// The dashboard's `GET /api/calls/{id}/postbacks`: what the call detail shows.
async fn dashboard_postbacks(store: &Store, call: &str) -> serde_json::Value {
    use callbid_core::inprocess::InProcessBuyer;
    use callbid_core::state::MemoryDurationHistory;
    use callbid_core::{BuyerEntry, BuyerId, Destination};
    use tower::ServiceExt;
    let buyer = InProcessBuyer::new(
        BuyerId::new("acme").unwrap(),
        Money::usd(Decimal::new(4500, 2)),
        Destination::parse("+15125550111").unwrap(),
    );
    let auction = callbid_server::settle::build_auction(
        vec![BuyerEntry::new(Arc::new(buyer))],
        Arc::new(MemoryDurationHistory::new()),
        callbid_core::auction::Strategy::HighestScore,
        Duration::from_millis(500),
    )
    .unwrap();
    let app = callbid_server::dashboard::router(callbid_server::dashboard::DashboardState {
        store: store.clone(),
        auction,
        title: "t".into(),
    });
    let req = axum::http::Request::get(format!("/api/calls/{call}/postbacks"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_delivers_what_was_pending() {
    let (rx, base) = receiver(&[("p", vec![Step::Ok])]).await;
    let cfg = config(&base, &[("pub-1", "p")]);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("restart.db").display());
    {
        // The process bills the call and dies before any worker ran.
        let store = Store::open(&url).await.unwrap();
        bill(&wrap(&store, &cfg), "CArestart", "pub-1").await;
    }
    let store = Store::open(&url).await.unwrap();
    let call = CallId::new("CArestart").unwrap();
    assert_eq!(delivery(&store, &call).await.state, DeliveryState::Pending);
    let w = worker(&store, &cfg);
    rounds_until(&w, async || {
        delivery(&store, &call).await.state == DeliveryState::Delivered
    })
    .await;
    assert_eq!(rx.lock().unwrap().hits.len(), 1);
}

#[tokio::test]
async fn calls_without_an_endpoint_or_not_billable_send_nothing() {
    let (rx, base) = receiver(&[("p", vec![Step::Ok])]).await;
    let cfg = config(&base, &[("pub-1", "p")]);
    let store = Store::open("sqlite::memory:").await.unwrap();
    let log = wrap(&store, &cfg);
    let unknown = bill(&log, "CAunknown", "someone-else").await;
    assert!(store.postbacks(&unknown).await.unwrap().is_empty());
    let id = CallId::new("CAnotbillable").unwrap();
    let ev = |key: &str, kind| CallEvent::new(id.clone(), Utc::now(), key, kind);
    let incoming = CallEventKind::Incoming {
        caller: None,
        dialed: None,
        campaign: None,
        source: Some(SourceId::new("pub-1").unwrap()),
    };
    log.append(&ev("incoming", incoming)).await.unwrap();
    let not = CallEventKind::Billing {
        billable: false,
        revenue: Money::usd(Decimal::ZERO),
        payout: Money::usd(Decimal::ZERO),
    };
    log.append(&ev("billing", not)).await.unwrap();
    assert!(store.postbacks(&id).await.unwrap().is_empty());
    worker(&store, &cfg).run_once(Utc::now()).await.unwrap();
    assert!(rx.lock().unwrap().hits.is_empty());
}

/// `calls` billed calls, two workers (on two handles of one store) sending them at once
/// to a receiver that answers slowly: every postback arrives exactly once.
async fn two_workers_send_each_once(a: Store, b: Store, prefix: &str, calls: usize) {
    let (rx, base) =
        receiver(&[("p", vec![Step::Stall(Duration::from_millis(0)), Step::Ok])]).await;
    let cfg = config(&base, &[("pub-1", "p")]);
    let log = wrap(&a, &cfg);
    let ids: Vec<CallId> = futures::future::join_all((0..calls).map(|i| {
        bill(
            &log,
            Box::leak(format!("{prefix}{i}").into_boxed_str()),
            "pub-1",
        )
    }))
    .await;
    let (wa, wb) = (worker(&a, &cfg).spawn(), worker(&b, &cfg).spawn());
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let mut done = 0;
        for id in &ids {
            if delivery(&a, id).await.state == DeliveryState::Delivered {
                done += 1;
            }
        }
        if done == calls {
            break;
        }
        assert!(Instant::now() < end, "{done} of {calls} delivered in 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wa.stop().await;
    wb.stop().await;
    let hits = rx.lock().unwrap().hits.clone();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for h in &hits {
        *per_key.entry(h.key.clone()).or_default() += 1;
    }
    assert_eq!(per_key.len(), calls);
    assert!(per_key.values().all(|&n| n == 1), "sent twice: {per_key:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_sqlite_file_never_send_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("two.db").display());
    let (a, b) = (
        Store::open(&url).await.unwrap(),
        Store::open(&url).await.unwrap(),
    );
    two_workers_send_each_once(a, b, "CAtwo", 40).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_one_postgresql_never_send_twice() {
    let Some(url) = std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()) else {
        eprintln!("DATABASE_URL not set: skipped");
        return;
    };
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(conn);
    let db = format!("postbacks_{}_{}", std::process::id(), rand_suffix());
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    drop(client);
    let _ = task.await;
    let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
    let url = format!("{base}/{db}");
    let (a, b) = (
        Store::open(&url).await.unwrap(),
        Store::open(&url).await.unwrap(),
    );
    two_workers_send_each_once(a, b, "CApg", 60).await;
}

#[cfg(feature = "postgres")]
fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn signatures_from_sign_verify() {
    let s = sign::sign(SECRET, "1796659200", "GET", "https://p.example/x?a=1", b"");
    let now = chrono::DateTime::from_timestamp(1796659200, 0).unwrap();
    verify(
        SECRET,
        "GET",
        "https://p.example/x?a=1",
        b"",
        "1796659200",
        &s,
        now,
        Duration::from_secs(5),
    )
    .unwrap();
}
