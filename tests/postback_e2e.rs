//! Publisher postbacks through the whole IVR: a simulated call (signed webhooks over real
//! HTTP on 127.0.0.1) is auctioned, bridged and settled as billable; the settlement's
//! call log (`PostbackLog` over a SQLite store) has enqueued the postback; the delivery
//! worker sends it to a local receiver, once, signed, with the call's payout, duration
//! and source. A second, short call is not billable and sends nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use callbid::core::auction::Strategy;
use callbid::core::billing::PayoutRule;
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::state::{DeliveryState, PostbackOutbox};
use callbid::core::{BuyerEntry, BuyerId, CallId, Destination, Money};
use callbid::store::Store;
use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::{self as app, App, IvrConfig, Stores};
use callbid_server::postback::worker::PostbackWorker;
use callbid_server::postback::UrlTemplate;
use callbid_server::postback::{sign, verify, Endpoint, PostbackConfig, PostbackLog, Secret};
use callbid_twilio::signature::WebhookVerifier;
use callbid_twilio::sim::{CallScript, DialOutcome, Simulator};
use chrono::Utc;
use rust_decimal::Decimal;

const TOKEN: &str = "postback-e2e-auth-token";
const SECRET: &[u8] = b"google-ads-postback-secret";

type Hits = Arc<Mutex<Vec<(String, HeaderMap)>>>;

async fn receiver() -> (Hits, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits: Hits = Arc::default();
    let b = base.clone();
    let handler = move |State(h): State<Hits>, uri: Uri, headers: HeaderMap| {
        let b = b.clone();
        async move {
            h.lock().unwrap().push((format!("{b}{uri}"), headers));
            StatusCode::NO_CONTENT
        }
    };
    let app = Router::new()
        .route("/pb", get(handler))
        .with_state(hits.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (hits, base)
}

fn ivr_config(base: &str) -> IvrConfig {
    IvrConfig {
        public_url: base.to_owned(),
        menu: Menu::parse("1=Plumbing,2=Pest Control").unwrap(),
        campaigns: Campaigns::demo(),
        fallback: FallbackChain::parse(
            "voicemail,message",
            None,
            DEFAULT_MESSAGE,
            &format!("{base}/ivr/fallback"),
        )
        .unwrap(),
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        dial_timeout: 25,
        record: false,
        greeting: "Thanks for calling.".to_owned(),
        log_calls: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billable_ivr_call_notifies_its_source_once() {
    let (hits, rbase) = receiver().await;
    let url = UrlTemplate::parse(&format!(
        "{rbase}/pb?click={{call_id}}&payout={{payout}}&dur={{duration}}&src={{source}}"
    ))
    .unwrap();
    let mut endpoints = BTreeMap::new();
    endpoints.insert(
        "google-ads".to_owned(),
        Endpoint::new(url, Secret::new(SECRET)),
    );
    let mut cfg = PostbackConfig::new(endpoints);
    cfg.delay = Duration::ZERO;
    let cfg = Arc::new(cfg);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("sqlite://{}", dir.path().join("ivr.db").display()))
        .await
        .unwrap();
    let h = store.handles();
    let outbox: Arc<dyn PostbackOutbox> = Arc::new(store.clone());
    let stores = Stores {
        log: Arc::new(PostbackLog::new(h.log.clone(), outbox.clone(), cfg.clone())),
        caps: h.caps.clone(),
        history: h.history.clone(),
        routing: h.routing.clone(),
        agents: None,
        pools: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let buyer = InProcessBuyer::new(
        BuyerId::new("acme").unwrap(),
        Money::usd(Decimal::new(4200, 2)),
        Destination::parse("+15125550199").unwrap(),
    )
    .with_min_duration(Duration::from_secs(60));
    let auction = callbid_server::settle::build_auction(
        vec![BuyerEntry::new(Arc::new(buyer))],
        stores.history.clone(),
        Strategy::HighestBid,
        Duration::from_millis(1500),
    )
    .unwrap();
    let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
    let ivr = App::new(ivr_config(&base), stores, auction, Some(verifier));
    let router = app::router(ivr.clone());
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path("/voice")
        .status_callback("/ivr/status");
    // From the demo tracking number of source google-ads: 120 s, billable; then 20 s.
    let billable = "CA0000000000000000000000000000pb01";
    let short = "CA0000000000000000000000000000pb02";
    for (sid, secs) in [(billable, 120), (short, 20)] {
        let script = CallScript::new("+15125550123", "+18005550100")
            .call_sid(sid)
            .press("78701")
            .press("1")
            .dial(DialOutcome::answered(2, secs));
        sim.run(script).await.unwrap();
    }
    let call = CallId::new(billable).unwrap();
    let record = h.log.record(&call).await.unwrap().unwrap();
    assert_eq!(record.billable, Some(true), "{record:#?}");
    let pending = outbox.postbacks(&call).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "enqueued with the settlement: {pending:?}"
    );
    assert_eq!(pending[0].publisher, "google-ads");
    assert!(outbox
        .postbacks(&CallId::new(short).unwrap())
        .await
        .unwrap()
        .is_empty());

    let task = PostbackWorker::new(cfg.clone(), outbox.clone(), h.log.clone())
        .unwrap()
        .spawn();
    let end = Instant::now() + Duration::from_secs(10);
    while outbox.postbacks(&call).await.unwrap()[0].state != DeliveryState::Delivered {
        assert!(Instant::now() < end, "not delivered in 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.stop().await;
    server.abort();

    let hits = hits.lock().unwrap().clone();
    assert_eq!(hits.len(), 1, "{hits:?}");
    let (url, headers) = &hits[0];
    assert!(
        url.ends_with(&format!(
            "/pb?click={billable}&payout=29.40&dur=120&src=google-ads"
        )),
        "{url}"
    );
    let header = |k: &str| headers.get(k).unwrap().to_str().unwrap().to_owned();
    assert_eq!(
        header(sign::IDEMPOTENCY_HEADER),
        format!("callbid-postback:{billable}:google-ads")
    );
    verify(
        SECRET,
        "GET",
        url,
        b"",
        &header(sign::TIMESTAMP_HEADER),
        &header(sign::SIGNATURE_HEADER),
        Utc::now(),
        Duration::from_secs(300),
    )
    .unwrap();
    let d = &outbox.postbacks(&call).await.unwrap()[0];
    assert_eq!((d.attempts, d.last_status), (1, Some(204)));
}
