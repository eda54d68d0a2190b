//! Number pools end to end (issue 9, seed 003): a page leases a tracking number through
//! the public lease API, a call to that number arrives, and the IVR attributes it to the
//! visitor, listing, publisher and UTM before the auction, which sees them in the call's
//! context; the call log keeps the attribution. Signed webhooks over real HTTP on
//! 127.0.0.1, driven by the call simulator, with the in-memory pool store.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use callbid::core::auction::Strategy;
use callbid::core::pool::{MemoryNumberPoolStore, NumberPoolStore};
use callbid::core::state::{
    CallEventKind, CallLog, MemoryCallLog, MemoryCapStore, MemoryDurationHistory,
    MemoryRoutingStore,
};
use callbid::core::{
    Bid, Buyer, BuyerEntry, BuyerError, BuyerId, CallContext, CallId, Deadline, Destination, Money,
    PingReply,
};
use callbid_server::ivr::{self as app, App, Stores};
use callbid_server::pool::{self, PoolApp, PoolLimits};
use callbid_server::settle::build_auction;
use callbid_twilio::signature::WebhookVerifier;
use callbid_twilio::sim::{CallScript, DialOutcome, Simulator};
use common::ivr::ivr_config;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const TOKEN: &str = "number-pool-e2e";
const POOL: &str = r#"
[[pool]]
id = "cars"
mode = "visitor_listing"
lease_secs = 600
heartbeat_secs = 60
exhaustion = "overflow"
overflow_number = "+15125550199"
campaign = "cars-dealers"
publisher = "cars-site"
numbers = ["+15125550101", "+15125550102"]
"#;

/// A buyer that bids and remembers the context of every ping.
#[derive(Debug)]
struct Recording {
    id: BuyerId,
    seen: Mutex<Vec<CallContext>>,
}

#[async_trait]
impl Buyer for Recording {
    fn id(&self) -> &BuyerId {
        &self.id
    }
    async fn ping(&self, call: &CallContext, _: Deadline) -> Result<PingReply, BuyerError> {
        if let Ok(mut s) = self.seen.lock() {
            s.push(call.clone());
        }
        let bid = Bid::new(self.id.clone(), Money::usd(Decimal::new(2500, 2)))
            .with_destination(Destination::parse("+15125550777").unwrap());
        Ok(PingReply::Bid(bid))
    }
}

struct Harness {
    base: String,
    log: Arc<MemoryCallLog>,
    buyer: Arc<Recording>,
    sim: Simulator,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn start() -> Harness {
    start_with(PoolLimits::default()).await
}

async fn start_with(limits: PoolLimits) -> Harness {
    let store: Arc<dyn NumberPoolStore> = Arc::new(MemoryNumberPoolStore::new());
    let specs = pool::spec::parse(POOL, "pools.toml").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let pools = PoolApp::new(store, specs, limits, Some(&base))
        .await
        .unwrap();
    let buyer = Arc::new(Recording {
        id: BuyerId::new("acme").unwrap(),
        seen: Mutex::new(Vec::new()),
    });
    let history = Arc::new(MemoryDurationHistory::new());
    let auction = build_auction(
        vec![BuyerEntry::new(buyer.clone())],
        history.clone(),
        Strategy::HighestBid,
        Duration::from_millis(1000),
    )
    .unwrap();
    let log = Arc::new(MemoryCallLog::new());
    let config = ivr_config(&base, "1=Plumbing", "message", None);
    let stores = Stores {
        log: log.clone(),
        caps: Arc::new(MemoryCapStore::new()),
        history,
        routing: Arc::new(MemoryRoutingStore::new()),
        agents: None,
        pools: Some(pools.clone()),
    };
    let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
    let app: Arc<App> = App::new(config, stores, auction, Some(verifier));
    let router = app::router(app)
        .merge(pool::router(pools.clone()))
        .merge(pool::operator_router(pools, log.clone()));
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path("/voice")
        .status_callback("/ivr/status");
    Harness {
        base,
        log,
        buyer,
        sim,
        http: reqwest::Client::new(),
        server,
    }
}

impl Harness {
    async fn lease(&self, body: Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/pool/cars/lease", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn call(&self, sid: &str, to: &str) {
        let script = CallScript::new("+15125550123", to)
            .call_sid(sid)
            .press("78701")
            .press("1")
            .dial(DialOutcome::answered(2, 90));
        self.sim.run(script).await.unwrap();
    }

    async fn attributed(
        &self,
        sid: &str,
    ) -> Option<(String, std::collections::BTreeMap<String, String>)> {
        let events = self.log.events(&CallId::new(sid).unwrap()).await.unwrap();
        events.into_iter().find_map(|e| match e.kind {
            CallEventKind::Attributed {
                attribution,
                attributes,
                ..
            } => Some((attribution, attributes)),
            _ => None,
        })
    }
}

#[tokio::test]
async fn a_call_on_a_leased_number_reaches_the_auction_with_the_listing_and_utm() {
    let h = start().await;
    let (status, leased) = h
        .lease(json!({
            "visitor": "v-123",
            "listing": "listing-42",
            "page": "https://cars.example.com/l/42",
            "referrer": "https://www.google.com/",
            "utm": {"source": "google", "medium": "cpc", "campaign": "spring"},
        }))
        .await;
    assert_eq!(status, 200, "{leased}");
    assert_eq!(leased["outcome"], "leased");
    let number = leased["number"].as_str().unwrap().to_owned();
    // The same visitor and listing again (a reload): the same lease and number.
    let (_, again) = h
        .lease(json!({"visitor": "v-123", "listing": "listing-42"}))
        .await;
    assert_eq!(again["number"], number.as_str());
    assert_eq!(again["lease"], leased["lease"]);

    h.call("CA00000000000000000000000000009001", &number).await;
    let seen = h.buyer.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let ctx = &seen[0];
    assert_eq!(
        ctx.attributes.get("listing").map(String::as_str),
        Some("listing-42")
    );
    assert_eq!(
        ctx.attributes.get("visitor").map(String::as_str),
        Some("v-123")
    );
    assert_eq!(
        ctx.attributes.get("utm_source").map(String::as_str),
        Some("google")
    );
    assert_eq!(
        ctx.attributes.get("utm_campaign").map(String::as_str),
        Some("spring")
    );
    assert_eq!(
        ctx.attributes.get("attribution").map(String::as_str),
        Some("attributed")
    );
    assert_eq!(
        ctx.campaign.as_ref().map(|c| c.as_str()),
        Some("cars-dealers")
    );
    assert_eq!(ctx.source.as_ref().map(|s| s.as_str()), Some("cars-site"));

    let (kind, attrs) = h
        .attributed("CA00000000000000000000000000009001")
        .await
        .expect("an attributed event");
    assert_eq!(kind, "attributed");
    assert_eq!(
        attrs.get("landing_page").map(String::as_str),
        Some("https://cars.example.com/l/42")
    );

    // The per-listing report: listing-42 seen once and called (90 s, billable at
    // $25.00); listing-43 seen and not called.
    let (s, _) = h
        .lease(json!({"visitor": "v-9", "listing": "listing-43", "utm": {"source": "bing"}}))
        .await;
    assert_eq!(s, 200);
    let report: Value = h
        .http
        .get(format!("{}/pool/api/report?pool=cars&hours=1", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = report["report"]["listings"].as_array().unwrap().clone();
    let row = |key: &str| {
        rows.iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no row {key}: {report}"))
    };
    let l42 = row("listing-42");
    assert_eq!(
        (
            &l42["views"],
            &l42["calls"],
            &l42["not_called"],
            &l42["connected"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(1)),
        "{report}"
    );
    assert_eq!(l42["duration_secs"], 90, "{report}");
    assert_eq!(l42["billable"], 1, "{report}");
    assert_eq!(l42["revenue"], "25.00", "{report}");
    let l43 = row("listing-43");
    assert_eq!(
        (&l43["views"], &l43["not_called"]),
        (&json!(1), &json!(1)),
        "{report}"
    );
    let sources = report["report"]["sources"].to_string();
    assert!(
        sources.contains("\"google\"") && sources.contains("\"bing\""),
        "{report}"
    );
    assert_eq!(
        report["report"]["publishers"][0]["key"], "cars-site",
        "{report}"
    );
}

#[tokio::test]
async fn overflow_and_unknown_numbers_are_told_apart() {
    let h = start().await;
    // Two numbers: the third listing gets the overflow number.
    for (i, l) in ["a", "b", "c"].iter().enumerate() {
        let (s, v) = h
            .lease(json!({"visitor": format!("v{i}"), "listing": l}))
            .await;
        assert_eq!(s, 200, "{v}");
        if *l == "c" {
            assert_eq!(v["outcome"], "overflow", "{v}");
            assert_eq!(v["number"], "+15125550199");
        }
    }
    h.call("CA00000000000000000000000000009002", "+15125550199")
        .await;
    let (kind, _) = h
        .attributed("CA00000000000000000000000000009002")
        .await
        .unwrap();
    assert_eq!(kind, "overflow");
    // Pool health: two numbers leased, one request overflowed, one overflow call.
    let health: Value = h
        .http
        .get(format!("{}/pool/api/health?hours=1", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let p = &health["pools"][0];
    assert_eq!(p["pool"], "cars", "{health}");
    assert_eq!(p["health"]["leased"], 2, "{health}");
    assert_eq!(p["health"]["lease_overflows"], 1, "{health}");
    assert_eq!(p["health"]["calls"]["overflow"], 1, "{health}");
    assert_eq!(p["lease_overflow_permille"], 333, "{health}");
    let bad = h
        .http
        .get(format!("{}/pool/api/health?hours=0", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    // A number in no pool: no attribution at all, the static tracking table applies.
    h.call("CA00000000000000000000000000009003", "+18005550100")
        .await;
    assert!(h
        .attributed("CA00000000000000000000000000009003")
        .await
        .is_none());
}

#[tokio::test]
async fn the_lease_api_names_bad_input_and_refuses_foreign_origins() {
    let h = start().await;
    for (body, field) in [
        (json!({"listing": "x"}), "visitor"),
        (json!({"visitor": "v 1", "listing": "x"}), "visitor"),
        (json!({"visitor": "v1"}), "listing"),
        (
            json!({"visitor": "v1", "listing": "x", "colour": "red"}),
            "body",
        ),
    ] {
        let (s, v) = h.lease(body.clone()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let res = h
        .http
        .post(format!("{}/pool/cars/lease", h.base))
        .header("origin", "https://evil.example")
        .json(&json!({"visitor": "v1", "listing": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = h
        .http
        .post(format!("{}/pool/nope/lease", h.base))
        .json(&json!({"visitor": "v1", "listing": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let js = h
        .http
        .get(format!("{}/pool/callbid-dni.js", h.base))
        .send()
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("data-callbid-listing"));
}

#[tokio::test]
async fn past_the_rate_limit_a_visitor_gets_429_with_retry_after() {
    let mut limits = PoolLimits::default();
    limits.visitor_per_minute = 2;
    let h = start_with(limits).await;
    for _ in 0..2 {
        let (s, v) = h.lease(json!({"visitor": "busy", "listing": "a"})).await;
        assert_eq!(s, 200, "{v}");
    }
    let res = h
        .http
        .post(format!("{}/pool/cars/lease", h.base))
        .json(&json!({"visitor": "busy", "listing": "a"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
    let v: Value = res.json().await.unwrap();
    assert_eq!(
        (v["field"].as_str(), v["value"].as_str()),
        (Some("visitor"), Some("busy"))
    );
    // Another visitor is not limited by the first one's requests.
    let (s, _) = h.lease(json!({"visitor": "calm", "listing": "a"})).await;
    assert_eq!(s, 200);
}

/// A menu choice that arrives after the status callback said the caller left (late or
/// reordered webhooks) starts no auction: the answer is `<Hangup/>` and no buyer is
/// pinged.
#[tokio::test]
async fn a_menu_choice_after_the_caller_left_runs_no_auction() {
    let h = start().await;
    let sid = "CA00000000000000000000000000009010";
    let signer = callbid_twilio::signature::RequestValidator::new(TOKEN);
    let post = |path: &'static str, extra: Vec<(&'static str, &'static str)>| {
        let url = format!("{}{path}", h.base);
        let mut params: Vec<(&str, &str)> = vec![
            ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("CallSid", sid),
            ("From", "+15125550123"),
            ("To", "+18005550100"),
            ("Direction", "inbound"),
        ];
        params.extend(extra);
        params.sort();
        let sig = signer.compute_signature(&url, &params);
        let req = h
            .http
            .post(url)
            .header("X-Twilio-Signature", sig)
            .form(&params);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (s, _) = post("/voice", vec![("CallStatus", "ringing")]).await;
    assert_eq!(s, 200);
    let (s, _) = post(
        "/ivr/status",
        vec![("CallStatus", "completed"), ("CallDuration", "12")],
    )
    .await;
    assert_eq!(s, 204);
    let (s, twiml) = post(
        "/ivr/service?zip=78701&attempt=1",
        vec![("CallStatus", "in-progress"), ("Digits", "1")],
    )
    .await;
    assert_eq!(s, 200);
    assert!(twiml.contains("<Hangup"), "{twiml}");
    assert!(!twiml.contains("<Dial"), "{twiml}");
    assert!(
        h.buyer.seen.lock().unwrap().is_empty(),
        "a buyer was pinged"
    );
}
