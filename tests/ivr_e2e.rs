//! End-to-end tests of the IVR server (`examples/ivr_auction`) through callbid-twilio's
//! call simulator: signed webhooks over real HTTP on 127.0.0.1, in-process buyers with
//! fixed prices (or the seeded demo network), SQLite / in-memory stores. No internet.

use callbid_server::agent as agent_app;
use callbid_server::auth as operator_auth;
use callbid_server::dashboard;
use callbid_server::demo as mock_network;
use callbid_server::ivr as app;
use callbid_server::ivr::fallback as ivr_fallback;
use callbid_server::ivr::menu as config;
use callbid_server::serve;
use callbid_server::settle as ivr_support;
use callbid_server::sim as simulate;

use std::sync::Arc;
use std::time::Duration;

use app::{App, IvrConfig, Stores};
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use callbid::core::auction::Strategy;
use callbid::core::billing::PayoutRule;
use callbid::core::inprocess::{AcceptBehavior, InProcessBuyer, PingBehavior};
use callbid::core::rules::{Cap, CapRule, CapWindow};
use callbid::core::state::{
    AppendOutcome, AreaKey, CallEvent, CallEventKind, CallLog, CallRecord, CallStatus, CapStore,
    DurationHistory, HistoryKey, MemoryCallLog, MemoryCapStore, MemoryDurationHistory,
    MemoryRoutingStore,
};
use callbid::core::{BuyerEntry, BuyerErrorKind, BuyerId, CallId, Destination, Money, StateError};
use callbid::store::Store;
use callbid_twilio::signature::{RequestValidator, WebhookVerifier, SIGNATURE_HEADER};
use callbid_twilio::sim::{CallScript, DialOutcome, SimError, SimEvent, Simulator, Transcript};
use callbid_twilio::webhook::DialCallStatus;
use config::{Campaigns, Menu};
use ivr_fallback::FallbackChain;
use rust_decimal::Decimal;
use tower::ServiceExt;

const TOKEN: &str = "e2e-test-auth-token";
const CALLER: &str = "+15125550123";
const TRACKING: &str = "+18005550100";

fn usd(cents: i64) -> Money {
    Money::usd(Decimal::new(cents, 2))
}

fn buyer(id: &str, cents: i64, dest: &str) -> InProcessBuyer {
    InProcessBuyer::new(
        BuyerId::new(id).unwrap(),
        usd(cents),
        Destination::parse(dest).unwrap(),
    )
    .with_min_duration(Duration::from_secs(60))
}

fn entry(b: InProcessBuyer) -> BuyerEntry {
    BuyerEntry::new(Arc::new(b))
}

fn memory_stores() -> (Stores, Arc<MemoryCallLog>, Arc<MemoryDurationHistory>) {
    let log = Arc::new(MemoryCallLog::new());
    let history = Arc::new(MemoryDurationHistory::new());
    let stores = Stores {
        log: log.clone(),
        caps: Arc::new(MemoryCapStore::new()),
        history: history.clone(),
        routing: Arc::new(MemoryRoutingStore::new()),
        agents: None,
        pools: None,
    };
    (stores, log, history)
}

fn ivr_config(base: &str, fallback: &str) -> IvrConfig {
    IvrConfig {
        public_url: base.to_owned(),
        menu: Menu::parse("1=Plumbing,2=Pest Control,3=Roofing").unwrap(),
        campaigns: Campaigns::demo(),
        fallback: FallbackChain::parse(
            fallback,
            None,
            ivr_fallback::DEFAULT_MESSAGE,
            &format!("{base}/ivr/fallback"),
        )
        .unwrap(),
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        dial_timeout: 25,
        record: true,
        greeting: "Thanks for calling the test line.".to_owned(),
        log_calls: false,
    }
}

struct Harness {
    app: Arc<App>,
    base: String,
    sim: Simulator,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Harness {
    async fn start(
        entries: Vec<BuyerEntry>,
        stores: Stores,
        fallback: &str,
        strategy: Strategy,
    ) -> Harness {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let auction = ivr_support::build_auction(
            entries,
            stores.history.clone(),
            strategy,
            Duration::from_millis(1500),
        )
        .unwrap();
        let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
        let app = App::new(ivr_config(&base, fallback), stores, auction, Some(verifier));
        let router = app::router(app.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        let sim = Simulator::new(&base, TOKEN)
            .unwrap()
            .voice_path("/voice")
            .status_callback("/ivr/status");
        Harness {
            app,
            base,
            sim,
            server,
        }
    }

    /// Call `sid` from [`CALLER`]: ZIP 78701, menu 1 (plumbing), then `dial` at the
    /// buyer's end.
    async fn plumbing_call(&self, sid: &str, dial: DialOutcome) -> Transcript {
        self.sim
            .run(script(sid).press("78701").press("1").dial(dial))
            .await
            .unwrap()
    }

    async fn record(&self, sid: &str) -> CallRecord {
        self.app
            .stores
            .log
            .record(&CallId::new(sid).unwrap())
            .await
            .unwrap()
            .expect("call logged")
    }

    async fn events(&self, sid: &str) -> Vec<CallEvent> {
        self.app
            .stores
            .log
            .events(&CallId::new(sid).unwrap())
            .await
            .unwrap()
    }

    /// Posts a signed (or forged) form webhook directly to the router.
    async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> (StatusCode, String) {
        let url = format!("{}{path}", self.base);
        let body = params
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('+', "%2B").replace(' ', "+")))
            .collect::<Vec<_>>()
            .join("&");
        let mut req =
            Request::post(path).header("content-type", "application/x-www-form-urlencoded");
        if let Some(t) = token {
            req = req.header(
                SIGNATURE_HEADER,
                RequestValidator::new(t).compute_signature(&url, params),
            );
        }
        let res = app::router(self.app.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

fn kinds(events: &[CallEvent]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.type_name()).collect()
}

fn recorded(t: &Transcript) -> bool {
    t.events
        .iter()
        .any(|(_, e)| matches!(e, SimEvent::Record { .. }))
}

fn script(sid: &str) -> CallScript {
    CallScript::new(CALLER, TRACKING).call_sid(sid)
}

#[tokio::test]
async fn accepted_call_is_dialed_completed_billed_and_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ivr.db").display());
    let store = Store::open(&url).await.unwrap();
    let h = store.handles();
    let stores = Stores {
        log: h.log.clone(),
        caps: h.caps.clone(),
        history: h.history.clone(),
        routing: h.routing.clone(),
        agents: None,
        pools: None,
    };
    let entries = vec![
        entry(buyer("acme", 4200, "+15125550199")),
        entry(buyer("beta", 3000, "sip:calls@beta.example.com")),
    ];
    let h = Harness::start(entries, stores, "voicemail,message", Strategy::HighestBid).await;
    let sid = "CA00000000000000000000000000000001";
    let t = h.plumbing_call(sid, DialOutcome::answered(3, 120)).await;

    let dials = t.dials();
    assert_eq!(dials.len(), 1, "{t:#?}");
    assert_eq!(dials[0].0, ["+15125550199".to_owned()]);
    assert_eq!(dials[0].1, DialCallStatus::Completed);
    assert!(
        t.said().iter().any(|s| s.contains("plumbing professional")),
        "{:?}",
        t.said()
    );

    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Completed, "{r:#?}");
    assert_eq!(r.buyer.as_ref().unwrap().as_str(), "acme");
    assert_eq!(r.price, Some(usd(4200)));
    assert_eq!(r.duration_secs, Some(120));
    assert_eq!(r.billable, Some(true));
    assert_eq!(r.revenue, Some(usd(4200)));
    assert_eq!(r.payout, Some(usd(2940)));
    assert_eq!(r.zip.unwrap().as_str(), "78701");
    assert_eq!(r.service.as_ref().unwrap().as_str(), "plumbing");
    assert_eq!(r.campaign.as_ref().unwrap().as_str(), "home-services");
    assert_eq!(r.source.as_ref().unwrap().as_str(), "google-ads");
    assert_eq!(r.caller.as_ref().unwrap().as_str(), CALLER);
    assert!(r.recording_url.is_some());
    assert_eq!((r.pinged, r.bids), (2, 2));
    let events = h.events(sid).await;
    assert_eq!(
        kinds(&events),
        [
            "incoming",
            "ivr_input",
            "ivr_input",
            "auction_started",
            "ping_result",
            "ping_result",
            "winner",
            "accepted",
            "auction_explained",
            "forwarded",
            // The dial result's outcome (`outcome:dial`): the first one decides.
            "ivr_input",
            "recording",
            "connected",
            "completed",
            "billing",
            // The status callback's end of the call (`status:completed`).
            "ivr_input"
        ]
    );
    // The logged inputs replay to the same decision (issue 12, item 4).
    let explanation = callbid_server::explain::latest_explanation(&events).unwrap();
    let check = callbid::core::auction::verify(explanation).unwrap();
    assert!(check.agrees(), "{:?}", check.mismatches);
    assert_eq!(check.replay.winner.as_ref().unwrap().as_str(), "acme");

    // Twilio retries the Dial action: nothing is recorded twice, history counts once.
    let params = [
        ("AccountSid", "AC1"),
        ("CallSid", sid),
        ("From", CALLER),
        ("To", TRACKING),
        ("DialCallStatus", "completed"),
        ("DialCallDuration", "120"),
    ];
    let (status, body) = h.post("/ivr/dial-result", &params, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<Hangup />"), "{body}");
    assert_eq!(h.events(sid).await.len(), events.len());
    let key = HistoryKey {
        buyer: BuyerId::new("acme").unwrap(),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    let stats = h.app.stores.history.stats(&[key]).await.unwrap();
    assert_eq!((stats[0].calls, stats[0].billable), (1, 1));
    assert_eq!(
        h.app.live_calls(),
        0,
        "state dropped at the status callback"
    );
}

#[tokio::test]
async fn short_call_is_not_billable() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000002";
    h.sim
        .run(
            script(sid)
                .press("10001")
                .press("3")
                .dial(DialOutcome::answered(2, 45)),
        )
        .await
        .unwrap();
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.billable, Some(false));
    assert_eq!(r.revenue, Some(usd(0)));
    assert_eq!(r.payout, Some(usd(0)));
}

#[tokio::test]
async fn no_buyer_goes_to_voicemail() {
    let (stores, _, _) = memory_stores();
    let entries = vec![
        entry(
            buyer("acme", 4200, "+15125550199")
                .with_ping(PingBehavior::NoBid("no capacity".into())),
        ),
        entry(
            buyer("beta", 3000, "+15125550198")
                .with_ping(PingBehavior::Error(BuyerErrorKind::Transport)),
        ),
    ];
    let h = Harness::start(entries, stores, "voicemail,message", Strategy::HighestScore).await;
    let sid = "CA00000000000000000000000000000003";
    let t = h
        .sim
        .run(script(sid).press("78701").press("2").record_for(20))
        .await
        .unwrap();
    assert!(t.dials().is_empty(), "{t:#?}");
    assert!(recorded(&t));
    assert!(
        t.said()
            .iter()
            .any(|s| s.contains("no provider is available")),
        "{:?}",
        t.said()
    );
    assert!(
        t.said()
            .iter()
            .any(|s| s.contains("We received your message")),
        "{:?}",
        t.said()
    );
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Fallback);
    assert_eq!(r.fallback.as_deref(), Some("voicemail"));
    assert!(r.recording_url.is_some());
    assert_eq!(r.buyer, None);
    let events = h.events(sid).await;
    let reason = events.iter().find_map(|e| match &e.kind {
        CallEventKind::Fallback { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert_eq!(reason.as_deref(), Some("no buyer: no bids"));
    assert!(events.iter().any(|e| matches!(&e.kind,
        CallEventKind::PingResult { reason: Some(r), .. } if r.contains("no capacity"))));
}

#[tokio::test]
async fn invalid_zip_reprompts_twice_then_falls_back() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000004";
    let t = h
        .sim
        .run(script(sid).press("12").stay_silent().press("7870"))
        .await
        .unwrap();
    let zip_posts = t
        .requested_urls()
        .iter()
        .filter(|u| u.contains("/ivr/zip"))
        .count();
    assert_eq!(zip_posts, 3, "{:?}", t.requested_urls());
    let reprompts = t
        .said()
        .iter()
        .filter(|s| s.contains("not a valid ZIP code"))
        .count();
    // "12" is a wrong ZIP; silence is no ZIP at all, and the re-prompt says so.
    assert_eq!(reprompts, 1, "{:?}", t.said());
    let silent = t
        .said()
        .iter()
        .filter(|s| s.contains("did not hear a ZIP code"))
        .count();
    assert_eq!(silent, 1, "{:?}", t.said());
    assert_eq!(
        t.said().last().copied(),
        Some(ivr_fallback::DEFAULT_MESSAGE)
    );
    assert!(matches!(
        t.events.last(),
        Some((_, SimEvent::Hangup)) | Some((_, SimEvent::StatusCallback { .. }))
    ));
    assert!(t.dials().is_empty());
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Fallback);
    assert_eq!(r.fallback.as_deref(), Some("message"));
    let events = h.events(sid).await;
    let invalid: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            CallEventKind::IvrInput { step, value } if step == "zip_invalid" => Some(value.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(invalid, ["12", "(nothing)", "7870"]);
    assert!(events.iter().any(|e| matches!(&e.kind,
        CallEventKind::Rejected { reason } if reason == "no valid ZIP code after 3 attempts")));
    assert!(!kinds(&events).contains(&"auction_started"));
}

#[tokio::test]
async fn buyers_excluded_by_rules_are_logged_with_the_rule() {
    let (stores, _, _) = memory_stores();
    let roofing_only =
        callbid::core::rules::ServiceRule::new([
            callbid::core::ServiceType::new("roofing").unwrap()
        ]);
    let entries = vec![
        entry(buyer("roofer", 9000, "+15125550101")).with_rule(Arc::new(roofing_only)),
        entry(buyer("plumber", 3000, "+15125550102")),
    ];
    let h = Harness::start(entries, stores, "message", Strategy::HighestBid).await;
    let sid = "CA00000000000000000000000000000012";
    let t = h.plumbing_call(sid, DialOutcome::answered(1, 70)).await;
    assert_eq!(t.dials()[0].0, ["+15125550102".to_owned()]);
    let events = h.events(sid).await;
    let roofer = events.iter().find_map(|e| match &e.kind {
        CallEventKind::PingResult { buyer, reason, .. } if buyer.as_str() == "roofer" => {
            reason.clone()
        }
        _ => None,
    });
    assert!(
        roofer
            .as_deref()
            .is_some_and(|r| r.starts_with("not pinged: ")),
        "{roofer:?}"
    );
    let r = h.record(sid).await;
    assert_eq!((r.pinged, r.bids), (1, 1));
}

#[tokio::test]
async fn invalid_menu_choice_reprompts_then_routes() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000005";
    let t = h
        .sim
        .run(
            script(sid)
                .press("78701")
                .press("9")
                .press("3")
                .dial(DialOutcome::answered(1, 90)),
        )
        .await
        .unwrap();
    assert!(t
        .said()
        .iter()
        .any(|s| s.contains("not one of the choices")));
    let r = h.record(sid).await;
    assert_eq!(r.service.as_ref().unwrap().as_str(), "roofing");
    assert_eq!(r.status, CallStatus::Completed);
}

#[tokio::test]
async fn failed_accept_moves_to_the_next_bid() {
    let (stores, _, _) = memory_stores();
    let entries = vec![
        entry(
            buyer("top", 5000, "+15125550101")
                .with_accept(AcceptBehavior::Fail(BuyerErrorKind::Rejected)),
        ),
        entry(buyer("second", 4000, "sip:inbound@second.example.com")),
    ];
    let h = Harness::start(entries, stores, "message", Strategy::HighestBid).await;
    let sid = "CA00000000000000000000000000000006";
    let t = h.plumbing_call(sid, DialOutcome::answered(2, 100)).await;
    assert_eq!(
        t.dials()[0].0,
        ["sip:inbound@second.example.com".to_owned()]
    );
    let r = h.record(sid).await;
    assert_eq!(r.buyer.as_ref().unwrap().as_str(), "second");
    assert_eq!(r.price, Some(usd(4000)));
    assert_eq!(r.revenue, Some(usd(4000)));
    assert_eq!(r.payout, Some(usd(2800)));
    let events = h.events(sid).await;
    assert!(events.iter().any(|e| matches!(&e.kind,
        CallEventKind::AcceptFailed { buyer, .. } if buyer.as_str() == "top")));
}

#[tokio::test]
async fn unanswered_buyer_is_missed_then_falls_back() {
    let (stores, _, history) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "voicemail,message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000007";
    let t = h
        .sim
        .run(
            script(sid)
                .press("78701")
                .press("1")
                .dial(DialOutcome::Busy)
                .record_for(10),
        )
        .await
        .unwrap();
    assert_eq!(t.dials()[0].1, DialCallStatus::Busy);
    assert!(recorded(&t));
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Fallback);
    assert_eq!(r.billable, None);
    let events = h.events(sid).await;
    assert!(kinds(&events).contains(&"missed"));
    let key = HistoryKey {
        buyer: BuyerId::new("acme").unwrap(),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    assert_eq!(
        history.stats(&[key]).await.unwrap()[0].calls,
        0,
        "unanswered calls are not duration history"
    );
}

#[tokio::test]
async fn live_call_slot_is_released_when_the_call_ends() {
    let caps = Arc::new(MemoryCapStore::new());
    let (mut stores, _, _) = memory_stores();
    stores.caps = caps.clone();
    let cap = CapRule::new(caps.clone(), vec![Cap::count(CapWindow::Concurrent, 1)]).unwrap();
    let entries = vec![entry(buyer("solo", 3500, "+15125550199")).with_rule(Arc::new(cap))];
    let h = Harness::start(entries, stores, "message", Strategy::HighestScore).await;
    for i in 0..3 {
        let sid = format!("CA0000000000000000000000000000010{i}");
        h.plumbing_call(&sid, DialOutcome::answered(1, 61)).await;
        let r = h.record(&sid).await;
        assert_eq!(r.status, CallStatus::Completed, "call {i}: {r:#?}");
        let live = CapRule::live_reservation_id(
            &CallId::new(&sid).unwrap(),
            &BuyerId::new("solo").unwrap(),
        );
        assert!(
            !caps.release(&live).await.unwrap(),
            "slot of call {i} still held"
        );
    }
}

#[tokio::test]
async fn forged_or_missing_signature_is_refused_with_403() {
    let (stores, log, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let forger = Simulator::new(&h.base, "not-the-token").unwrap();
    let sid = "CA00000000000000000000000000000008";
    match forger.run(script(sid)).await {
        Err(SimError::Http { status, .. }) => assert_eq!(status, 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let params = [
        ("AccountSid", "AC1"),
        ("CallSid", sid),
        ("From", CALLER),
        ("To", TRACKING),
    ];
    let (status, _) = h.post("/voice", &params, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h.post("/ivr/status", &params, Some("wrong")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        log.records().unwrap().is_empty(),
        "nothing logged for forged requests"
    );
    // The same request correctly signed is accepted.
    let (status, body) = h.post("/voice", &params, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("<Gather"), "{body}");
}

/// A call log whose appends fail (a database that went away).
#[derive(Debug)]
struct FailingLog;

#[async_trait]
impl CallLog for FailingLog {
    async fn append(&self, _: &CallEvent) -> Result<AppendOutcome, StateError> {
        Err(StateError::Unavailable {
            store: "test",
            operation: "append",
            message: "disk unplugged".into(),
        })
    }
    async fn events(&self, _: &CallId) -> Result<Vec<CallEvent>, StateError> {
        Err(StateError::Unavailable {
            store: "test",
            operation: "events",
            message: "disk unplugged".into(),
        })
    }
    async fn record(&self, _: &CallId) -> Result<Option<CallRecord>, StateError> {
        Err(StateError::Unavailable {
            store: "test",
            operation: "record",
            message: "disk unplugged".into(),
        })
    }
}

/// A call log whose code panics when an auction is logged.
#[derive(Debug, Default)]
struct PanickyLog(MemoryCallLog);

#[async_trait]
impl CallLog for PanickyLog {
    async fn append(&self, e: &CallEvent) -> Result<AppendOutcome, StateError> {
        if matches!(e.kind, CallEventKind::AuctionStarted { .. }) {
            panic!("bug while logging the auction");
        }
        self.0.append(e).await
    }
    async fn events(&self, c: &CallId) -> Result<Vec<CallEvent>, StateError> {
        self.0.events(c).await
    }
    async fn record(&self, c: &CallId) -> Result<Option<CallRecord>, StateError> {
        self.0.record(c).await
    }
}

#[tokio::test]
async fn a_failing_store_still_answers_fallback_twiml() {
    let (mut stores, _, _) = memory_stores();
    stores.log = Arc::new(FailingLog);
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "voicemail,message",
        Strategy::HighestScore,
    )
    .await;
    let params = [
        ("AccountSid", "AC1"),
        ("CallSid", "CA9"),
        ("From", CALLER),
        ("To", TRACKING),
    ];
    let (status, body) = h.post("/voice", &params, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("something went wrong"), "{body}");
    assert!(
        body.contains(&format!(
            "<Record action=\"{}/ivr/fallback/voicemail?step=0\"",
            h.base
        )),
        "{body}"
    );
    // The caller is never left in silence: the whole simulated call completes.
    let no_callbacks = Simulator::new(&h.base, TOKEN).unwrap();
    let t = no_callbacks
        .run(script("CA00000000000000000000000000000009").record_for(5))
        .await
        .unwrap();
    assert!(t.said().iter().any(|s| s.contains("something went wrong")));
    assert!(
        t.said().last().is_some_and(|s| s.contains("Goodbye")),
        "{:?}",
        t.said()
    );
    // Callbacks report the failure so Twilio can retry them.
    let (status, _) = h
        .post(
            "/ivr/status",
            &[
                ("AccountSid", "AC1"),
                ("CallSid", "CA9"),
                ("CallStatus", "completed"),
            ],
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_panic_inside_a_handler_answers_fallback_twiml() {
    let log = Arc::new(PanickyLog::default());
    let (mut stores, _, _) = memory_stores();
    stores.log = log.clone();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000010";
    let t = h
        .sim
        .run(script(sid).press("78701").press("1"))
        .await
        .unwrap();
    assert!(t.dials().is_empty());
    assert!(
        t.said().iter().any(|s| s.contains("something went wrong")),
        "{:?}",
        t.said()
    );
    assert!(
        t.events.iter().any(|(_, e)| matches!(e, SimEvent::Hangup)),
        "{t:#?}"
    );
    let r = log
        .record(&CallId::new(sid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, CallStatus::Fallback);
    assert_eq!(r.fallback.as_deref(), Some("message"));
}

#[tokio::test]
async fn bad_webhook_fields_get_fallback_naming_the_field() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    // Signed, but the query names no valid ZIP: the caller gets the fallback message.
    let params = [
        ("AccountSid", "AC1"),
        ("CallSid", "CA11"),
        ("From", CALLER),
        ("Digits", "1"),
    ];
    let (status, body) = h
        .post("/ivr/service?zip=ABCDE&attempt=1", &params, Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("<Hangup /></Response>"), "{body}");
    let events = h.events("CA11").await;
    let reason = events.iter().find_map(|e| match &e.kind {
        CallEventKind::Fallback { reason, .. } => Some(reason.clone()),
        _ => None,
    });
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("zip") && r.contains("ABCDE")),
        "{reason:?}"
    );
}

#[tokio::test]
async fn simulation_over_the_demo_network_summarizes_from_the_log() {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let sh = store.handles();
    let loader = callbid::buyers::BuyersLoader::new(sh.caps.clone(), sh.seen.clone());
    let (net, entries) = mock_network::start_demo(loader, 4, 11).await.unwrap();
    let stores = Stores {
        log: sh.log.clone(),
        caps: sh.caps.clone(),
        history: sh.history.clone(),
        routing: sh.routing.clone(),
        agents: None,
        pools: None,
    };
    let h = Harness::start(entries, stores, "voicemail,message", Strategy::HighestScore).await;
    let opts = simulate::SimOptions {
        calls: 12,
        concurrency: 6,
        seed: 5,
        base_url: h.base.clone(),
        auth_token: TOKEN.to_owned(),
        tracking_numbers: Campaigns::demo().numbers().cloned().collect(),
        menu_keys: vec!['1', '2', '3'],
        progress: false,
    };
    let report = simulate::run(&h.app, &opts).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.records.len(), 12);
    assert!(report.latencies.len() <= 12 && !report.latencies.is_empty());
    let won = report
        .records
        .iter()
        .filter(|r| r.destination.is_some())
        .count();
    assert!(won > 0, "the demo network sells some calls");
    for r in &report.records {
        // Every call ends in a definite state: completed, missed or a fallback.
        assert!(
            matches!(
                r.status,
                CallStatus::Completed | CallStatus::Missed | CallStatus::Fallback
            ),
            "{r:#?}"
        );
        if r.billable == Some(true) {
            assert_eq!(
                r.payout.unwrap().amount,
                (r.revenue.unwrap().amount * Decimal::new(7, 1)).round_dp_with_strategy(
                    2,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero
                )
            );
        }
    }
    let text = simulate::summary(&report, &opts, "70%").unwrap();
    assert!(
        text.contains("calls logged") && text.contains("auction latency p99"),
        "{text}"
    );
    net.stop();
}

/// The accepted-call flow on PostgreSQL (`DATABASE_URL`; required when `CI=true`).
#[cfg(feature = "postgres")]
#[cfg_attr(
    callbid_no_postgres,
    ignore = "needs PostgreSQL: DATABASE_URL was not set when the tests were built (source .ci/postgres.sh)"
)]
#[tokio::test]
async fn accepted_call_on_postgresql() {
    let url = match std::env::var("DATABASE_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but DATABASE_URL is unset: source .ci/postgres.sh"
            );
            eprintln!("skipping accepted_call_on_postgresql: DATABASE_URL is not set");
            return;
        }
    };
    // A database of its own: the shared one may carry another build's schema.
    let url = fresh_pg_database(&url, "ivr_e2e").await;
    let store = Store::open(&url).await.unwrap();
    let sh = store.handles();
    let stores = Stores {
        log: sh.log.clone(),
        caps: sh.caps.clone(),
        history: sh.history.clone(),
        routing: sh.routing.clone(),
        agents: None,
        pools: None,
    };
    // Unique ids: the database is shared with other tests and earlier runs.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let buyer_id = format!("pg-acme-{nanos}");
    let h = Harness::start(
        vec![entry(buyer(&buyer_id, 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = format!("CA{:032x}", nanos);
    h.plumbing_call(&sid, DialOutcome::answered(3, 120)).await;
    let r = h.record(&sid).await;
    assert_eq!(r.status, CallStatus::Completed);
    assert_eq!(r.buyer.as_ref().unwrap().as_str(), buyer_id);
    assert_eq!(
        (r.billable, r.revenue, r.payout),
        (Some(true), Some(usd(4200)), Some(usd(2940)))
    );
    let key = HistoryKey {
        buyer: BuyerId::new(&buyer_id).unwrap(),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    assert_eq!(
        h.app.stores.history.stats(&[key]).await.unwrap()[0].calls,
        1
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_webhooks_finish_and_log_everything() {
    let (stores, log, _) = memory_stores();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let slow = buyer("slow", 4200, "+15125550199").with_latency(Duration::from_millis(400));
    let auction = ivr_support::build_auction(
        vec![entry(slow)],
        stores.history.clone(),
        Strategy::HighestScore,
        Duration::from_millis(1500),
    )
    .unwrap();
    let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
    let app = App::new(
        ivr_config(&base, "message"),
        stores,
        auction,
        Some(verifier),
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve::serve_gracefully(
        listener,
        app::router(app.clone()),
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let sim = Simulator::new(&base, TOKEN).unwrap();
    let sid = "CA00000000000000000000000000000013";
    let call = tokio::spawn(async move {
        sim.run(
            script(sid)
                .press("78701")
                .press("1")
                .dial(DialOutcome::answered(1, 90)),
        )
        .await
    });
    // Wait until the service step is in flight (its auction takes 400 ms), then stop.
    let id = CallId::new(sid).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = log.events(&id).await.unwrap();
        if kinds(&events).iter().filter(|k| **k == "ivr_input").count() == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "service step never started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop_tx.send(()).unwrap();
    let drained = tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    assert!(
        drained,
        "the in-flight request finished before the server stopped"
    );
    // Everything the in-flight webhook did is in the log.
    let events = log.events(&id).await.unwrap();
    let k = kinds(&events);
    for expected in [
        "auction_started",
        "ping_result",
        "winner",
        "accepted",
        "forwarded",
    ] {
        assert!(k.contains(&expected), "{expected} missing from {k:?}");
    }
    // The server is gone: the caller's next webhook cannot be delivered.
    assert!(call.await.unwrap().is_err());
}

#[tokio::test]
async fn callbacks_are_idempotent_and_abandoned_calls_are_missed() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000014";
    let base = [
        ("AccountSid", "AC1"),
        ("CallSid", sid),
        ("From", CALLER),
        ("To", TRACKING),
    ];
    let (status, _) = h.post("/voice", &base, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    // The caller hangs up at the ZIP prompt; Twilio delivers the status callback twice.
    let mut done = base.to_vec();
    done.extend([("CallStatus", "completed"), ("CallDuration", "9")]);
    for _ in 0..2 {
        let (status, body) = h.post("/ivr/status", &done, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Missed);
    let events = h.events(sid).await;
    assert_eq!(kinds(&events), ["incoming", "missed"]);
    assert!(matches!(&events[1].kind,
        CallEventKind::Missed { reason } if reason.contains("during the IVR")));
    // A recording callback delivered twice is one event.
    let rec = [
        ("AccountSid", "AC1"),
        ("CallSid", sid),
        ("RecordingSid", "RE1"),
        (
            "RecordingUrl",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE1",
        ),
        ("RecordingStatus", "completed"),
        ("RecordingDuration", "12"),
    ];
    for _ in 0..2 {
        let (status, body) = h.post("/ivr/recording", &rec, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert_eq!(
        kinds(&h.events(sid).await),
        ["incoming", "missed", "recording"]
    );
    // A status value that cannot be one of Twilio's (not even a new one: `!`) is
    // refused naming it (400: retrying cannot help).
    let mut bad = base.to_vec();
    bad.push(("CallStatus", "exploded!"));
    let (status, body) = h.post("/ivr/status", &bad, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("exploded!"), "{body}");
    // The same malformed field on a TwiML route still gets fallback TwiML.
    let (status, body) = h.post("/voice", &bad, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.ends_with("<Hangup /></Response>"), "{body}");
}

#[tokio::test]
async fn no_eligible_buyer_is_rejected_then_falls_back() {
    let (stores, _, _) = memory_stores();
    let roofing_only =
        callbid::core::rules::ServiceRule::new([
            callbid::core::ServiceType::new("roofing").unwrap()
        ]);
    let entries =
        vec![entry(buyer("roofer", 9000, "+15125550101")).with_rule(Arc::new(roofing_only))];
    let h = Harness::start(entries, stores, "message", Strategy::HighestScore).await;
    let sid = "CA00000000000000000000000000000015";
    let t = h
        .sim
        .run(script(sid).press("78701").press("1"))
        .await
        .unwrap();
    assert!(t.dials().is_empty());
    let events = h.events(sid).await;
    let k = kinds(&events);
    let rejected = k
        .iter()
        .position(|k| *k == "rejected")
        .expect("rejected logged");
    let fallback = k
        .iter()
        .position(|k| *k == "fallback")
        .expect("fallback logged");
    assert!(rejected < fallback, "{k:?}");
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Fallback);
    assert_eq!((r.pinged, r.bids), (0, 0));
}

/// A call log whose `billing` appends fail while `down` is set (the database went away
/// right after the bridge).
#[derive(Debug, Default)]
struct BillingDownLog {
    log: MemoryCallLog,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl CallLog for BillingDownLog {
    async fn append(&self, e: &CallEvent) -> Result<AppendOutcome, StateError> {
        let down = self.down.load(std::sync::atomic::Ordering::SeqCst);
        if down && matches!(e.kind, CallEventKind::Billing { .. }) {
            return Err(StateError::Unavailable {
                store: "test",
                operation: "append",
                message: "disk unplugged".into(),
            });
        }
        self.log.append(e).await
    }
    async fn events(&self, c: &CallId) -> Result<Vec<CallEvent>, StateError> {
        self.log.events(c).await
    }
    async fn record(&self, c: &CallId) -> Result<Option<CallRecord>, StateError> {
        self.log.record(c).await
    }
}

#[tokio::test]
async fn failed_settlement_says_goodbye_and_the_status_callback_settles_later() {
    let (mut stores, _, history) = memory_stores();
    let log = Arc::new(BillingDownLog::default());
    log.down.store(true, std::sync::atomic::Ordering::SeqCst);
    stores.log = log.clone();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "voicemail,message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000077";
    // Status callbacks are posted by hand below.
    let sim = Simulator::new(&h.base, TOKEN).unwrap().voice_path("/voice");
    let t = sim
        .run(
            script(sid)
                .press("78701")
                .press("1")
                .dial(DialOutcome::answered(2, 120)),
        )
        .await
        .unwrap();
    // The caller was served: goodbye, never the fallback chain.
    assert!(
        t.said().last().is_some_and(|s| s.contains("Goodbye")),
        "{:?}",
        t.said()
    );
    assert!(!recorded(&t), "{t:#?}");
    let r = h.record(sid).await;
    assert_eq!(r.status, CallStatus::Completed, "{r:#?}");
    assert_eq!(r.billable, None);
    assert!(!kinds(&h.events(sid).await).contains(&"fallback"));

    // The status callback cannot settle either while the store is down: 500, so
    // Twilio retries it.
    let params = [
        ("AccountSid", "AC1"),
        ("CallSid", sid),
        ("CallStatus", "completed"),
        ("CallDuration", "130"),
    ];
    let (status, _) = h.post("/ivr/status", &params, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // The store is back; Twilio's retry settles the call.
    log.down.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = h.post("/ivr/status", &params, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let r = h.record(sid).await;
    assert_eq!(r.billable, Some(true), "{r:#?}");
    assert_eq!(r.revenue, Some(usd(4200)));
    // A second retry records nothing twice; history counts the call once.
    let (status, _) = h.post("/ivr/status", &params, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = h.events(sid).await;
    assert_eq!(
        kinds(&events).iter().filter(|k| **k == "billing").count(),
        1
    );
    assert_eq!(
        kinds(&events).iter().filter(|k| **k == "completed").count(),
        1
    );
    let key = HistoryKey {
        buyer: BuyerId::new("acme").unwrap(),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    let stats = history.stats(&[key]).await.unwrap();
    assert_eq!((stats[0].calls, stats[0].billable), (1, 1));
}

/// Buyers that exercise every auction event: one excluded by a rule, one that declines,
/// one whose accept fails (the cascade moves on) and the winner.
fn every_reply() -> Vec<BuyerEntry> {
    let roofing_only =
        callbid::core::rules::ServiceRule::new([
            callbid::core::ServiceType::new("roofing").unwrap()
        ]);
    vec![
        entry(buyer("roofer", 9000, "+15125550101")).with_rule(Arc::new(roofing_only)),
        entry(
            buyer("top", 5000, "+15125550102")
                .with_accept(AcceptBehavior::Fail(BuyerErrorKind::Rejected)),
        ),
        entry(
            buyer("shy", 4500, "+15125550103")
                .with_ping(PingBehavior::NoBid("no capacity today".into())),
        ),
        entry(buyer("second", 4000, "sip:inbound@second.example.com")),
    ]
}

/// A call's auction events as the store keeps them: kind, idempotency key and every
/// field (latencies zeroed: they differ from run to run).
fn auction_events(events: &[CallEvent]) -> Vec<(&'static str, String, serde_json::Value)> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                CallEventKind::AuctionStarted { .. }
                    | CallEventKind::PingResult { .. }
                    | CallEventKind::AcceptFailed { .. }
                    | CallEventKind::Winner { .. }
                    | CallEventKind::Accepted { .. }
            )
        })
        .map(|e| {
            let mut fields = serde_json::to_value(&e.kind).unwrap();
            if let Some(ms) = fields.get_mut("latency_ms") {
                *ms = 0.into();
            }
            (e.kind.type_name(), e.idempotency_key.clone(), fields)
        })
        .collect()
}

#[tokio::test]
async fn agent_assist_logs_an_auction_exactly_like_the_ivr() {
    // The IVR: a call through the simulator.
    let (stores, _, _) = memory_stores();
    let h = Harness::start(every_reply(), stores, "message", Strategy::HighestBid).await;
    let sid = "CA000000000000000000000000000000a9";
    h.plumbing_call(sid, DialOutcome::answered(1, 70)).await;
    let ivr = auction_events(&h.events(sid).await);

    // The agent desk: the same buyers, the same call, through the agent's form.
    let store = Store::open("sqlite::memory:").await.unwrap();
    let auction = ivr_support::build_auction(
        every_reply(),
        store.handles().history.clone(),
        Strategy::HighestBid,
        Duration::from_millis(1500),
    )
    .unwrap();
    let twilio = callbid::twilio::rest::Client::builder("AC0123456789abcdef0123456789abcdef")
        .auth_token("unused: the call is never forwarded")
        .api_base_url("http://127.0.0.1:9")
        .build()
        .unwrap();
    let agent = agent_app::router(agent_app::AgentConfig {
        store: store.clone(),
        auction,
        history: store.handles().history.clone(),
        payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
        twilio,
        verifier: None,
        public_url: None,
        agent: agent_app::AgentTarget::parse("client:alice").unwrap(),
        default_mode: agent_app::Mode::Manual,
        title: "Agent desk".into(),
        settle_log: None,
    });
    // The call rings the agent first: the agent API auctions only calls it knows are live.
    let voice = "CallSid=CA000000000000000000000000000000a9&AccountSid=AC0123456789abcdef0123456789abcdef&From=%2B15125550123&To=%2B18005550100&CallStatus=ringing";
    let res = agent
        .clone()
        .oneshot(
            Request::post("/twilio/voice")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(voice))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let form = "call_sid=CA000000000000000000000000000000a9&zip=78701&service=plumbing";
    let res = agent
        .clone()
        .oneshot(
            Request::post("/agent/api/auctions")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let res = agent
            .clone()
            .oneshot(
                Request::get(format!("/agent/api/auctions/{sid}-1"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let session: serde_json::Value = serde_json::from_slice(&body).unwrap();
        if session["status"] != "running" {
            assert_eq!(session["status"], "won", "{session}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{session}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let call = CallId::new(sid).unwrap();
    let agent_events = auction_events(&CallLog::events(&store, &call).await.unwrap());

    // Every kind is there, and the two servers wrote the same events, field for field.
    let types: Vec<&str> = ivr.iter().map(|(t, _, _)| *t).collect();
    assert_eq!(
        types,
        [
            "auction_started",
            "ping_result",
            "ping_result",
            "ping_result",
            "ping_result",
            "accept_failed",
            "winner",
            "accepted"
        ],
        "{ivr:#?}"
    );
    assert_eq!(agent_events, ivr);
    // So the dashboard's row of the call agrees too.
    let (a, i) = (
        CallLog::record(&store, &call).await.unwrap().unwrap(),
        h.record(sid).await,
    );
    assert_eq!(
        (a.pinged, a.bids, a.buyer, a.price, a.zip, a.service),
        (i.pinged, i.bids, i.buyer, i.price, i.zip, i.service)
    );
}

// ---------------------------------------------------------------------------------------
// Operator access: the dashboard behind --dashboard-token, the webhooks behind signatures.

const OPERATOR_TOKEN: &str = "operator-secret-6f1c2a";

/// The IVR server as `main.rs` composes it: webhooks, plus the dashboard behind `auth`.
async fn start_protected(auth: &operator_auth::OperatorAuth) -> (Harness, Store) {
    let store = Store::open("sqlite::memory:").await.unwrap();
    let handles = store.handles();
    let stores = Stores {
        log: handles.log.clone(),
        caps: handles.caps.clone(),
        history: handles.history.clone(),
        routing: handles.routing.clone(),
        agents: None,
        pools: None,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let auction = ivr_support::build_auction(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores.history.clone(),
        Strategy::HighestBid,
        Duration::from_millis(1500),
    )
    .unwrap();
    let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
    let mut cfg = ivr_config(&base, "message");
    cfg.log_calls = false;
    let app = App::new(cfg, stores, auction.clone(), Some(verifier));
    let dash = dashboard::router(dashboard::DashboardState {
        store: store.clone(),
        auction,
        title: "callbid IVR".to_owned(),
    });
    let router = app::router(app.clone()).merge(operator_auth::protect(dash, auth));
    let server = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path("/voice")
        .status_callback("/ivr/status");
    (
        Harness {
            app,
            base,
            sim,
            server,
        },
        store,
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn dashboard_needs_the_operator_token_and_webhooks_need_signatures() {
    let auth = operator_auth::OperatorAuth::with_token(OPERATOR_TOKEN);
    let (h, _store) = start_protected(&auth).await;
    let http = no_redirects();
    let base = h.base.clone();

    // Twilio's webhooks carry no operator token: they work, signature-checked.
    let sid = "CA000000000000000000000000000000d1";
    h.plumbing_call(sid, DialOutcome::answered(1, 90)).await;
    assert_eq!(h.record(sid).await.status, CallStatus::Completed);
    let forger = Simulator::new(&base, "not-the-token").unwrap();
    let forged = forger
        .run(script("CA000000000000000000000000000000d2").press("78701"))
        .await;
    assert!(forged.is_err(), "a forged webhook was accepted: {forged:?}");
    // A bearer operator token is no substitute for a Twilio signature.
    let res = http
        .post(format!("{base}/voice"))
        .bearer_auth(OPERATOR_TOKEN)
        .form(&[("CallSid", "CA000000000000000000000000000000d3")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // No token: pages redirect to the login, API routes answer 401 JSON.
    for page in ["/", "/dashboard", "/dashboard/assets/dashboard.js"] {
        let res = http.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(res.status(), 303, "{page}");
        let to = res.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(to, format!("/login?next={page}"));
    }
    for api in [
        "/api/meta",
        "/api/calls",
        &format!("/api/calls/{sid}"),
        "/api/summary",
        "/api/export.csv",
        "/api/export.xlsx",
        "/api/auctions/stream",
    ] {
        let res = http.get(format!("{base}{api}")).send().await.unwrap();
        assert_eq!(res.status(), 401, "{api}");
        assert!(res.headers().contains_key("www-authenticate"), "{api}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["login"], "/login", "{api}: {body}");
        assert!(!body.to_string().contains(CALLER), "{api} leaks: {body}");
    }
    // A wrong bearer token or a forged cookie is no better.
    let res = http
        .get(format!("{base}/api/calls"))
        .bearer_auth("operator-secret-6f1c2b")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = http
        .get(format!("{base}/api/calls"))
        .header("cookie", format!("callbid_session={OPERATOR_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "the raw token is not a session");

    // The bearer token opens the API.
    let res = http
        .get(format!("{base}/api/calls"))
        .bearer_auth(OPERATOR_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["rows"][0]["caller"], CALLER, "{body}");

    // The login form; a wrong token is 401 with the form again.
    let res = http
        .get(format!("{base}/login?next=%2Fdashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("name=\"token\"") && page.contains("value=\"/dashboard\""),
        "{page}"
    );
    let res = http
        .post(format!("{base}/login"))
        .form(&[("token", "wrong"), ("next", "/dashboard")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Wrong operator token") && page.contains("<form"),
        "{page}"
    );

    // The right token: a session cookie (not the token), then the dashboard.
    let res = http
        .post(format!("{base}/login"))
        .form(&[("token", OPERATOR_TOKEN), ("next", "/dashboard")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/dashboard");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(
        !set.contains(OPERATOR_TOKEN),
        "the cookie holds the token: {set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    assert!(
        cookie.starts_with("callbid_session=") && cookie.len() > 40,
        "{cookie}"
    );

    let res = http
        .get(format!("{base}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("callbid IVR"));
    let res = http
        .get(format!("{base}/api/export.csv"))
        .header("cookie", format!("theme=dark; {cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains(sid));
    let res = http
        .get(format!("{base}/api/auctions/stream"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    drop(res);
    // Logged in, /login goes straight on; the login never redirects off the site.
    let res = http
        .get(format!("{base}/login?next=%2Fdashboard"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/dashboard");
    let res = http
        .post(format!("{base}/login"))
        .form(&[("token", OPERATOR_TOKEN), ("next", "//evil.example/")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["location"], "/");

    // Another instance with the same token accepts the session (its key is derived
    // from the token); a server with another token does not.
    let same = operator_auth::OperatorAuth::with_token(OPERATOR_TOKEN);
    let (h2, _s2) = start_protected(&same).await;
    let res = http
        .get(format!("{}/api/calls", h2.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let other = operator_auth::OperatorAuth::with_token("another-operator-token-0123456789abcdef");
    let (h3, _s3) = start_protected(&other).await;
    let res = http
        .get(format!("{}/api/calls", h3.base))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    // Logging out clears the cookie.
    let res = http
        .post(format!("{base}/logout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
}

#[tokio::test]
async fn without_a_token_the_loopback_dashboard_stays_open() {
    let auth =
        operator_auth::check_exposure("127.0.0.1:3000".parse().unwrap(), None, false).unwrap();
    assert!(!auth.token_required());
    let (h, _store) = start_protected(&auth).await;
    let http = no_redirects();
    for path in ["/", "/api/calls", "/api/export.csv"] {
        let res = http.get(format!("{}{path}", h.base)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    // /login has nothing to do: it leads to the dashboard.
    let res = http.get(format!("{}/login", h.base)).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
}

#[test]
fn a_public_listen_address_without_a_token_is_refused() {
    use operator_auth::{check_exposure, ExposureError};
    for listen in ["0.0.0.0:3000", "[::]:3000", "192.0.2.10:3000"] {
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        for token in [None, Some(""), Some("   ")] {
            let e = check_exposure(addr, token, false).unwrap_err();
            assert_eq!(e, ExposureError::OpenOnPublicAddress { listen: addr });
            let msg = e.to_string();
            assert!(
                msg.contains("--dashboard-token")
                    && msg.contains("CALLBID_DASHBOARD_TOKEN")
                    && msg.contains(&addr.to_string())
                    && msg.contains("--insecure-open-dashboard"),
                "{msg}"
            );
        }
        assert!(
            check_exposure(addr, Some("s3cret-token-of-at-least-32-characters"), false)
                .unwrap()
                .token_required()
        );
        assert!(matches!(
            check_exposure(addr, Some("s3cret-token"), false),
            Err(ExposureError::ShortToken { length: 12, .. })
        ));
        // The explicit opt-out serves it open.
        assert!(!check_exposure(addr, None, true).unwrap().token_required());
    }
    for listen in [
        "127.0.0.1:3000",
        "127.0.0.2:0",
        "[::1]:3000",
        "[::ffff:127.0.0.1]:3000",
    ] {
        let addr: std::net::SocketAddr = listen.parse().unwrap();
        assert!(
            !check_exposure(addr, None, false).unwrap().token_required(),
            "{listen}"
        );
        assert!(check_exposure(addr, Some("t"), false)
            .unwrap()
            .token_required());
    }
}

/// A fresh, empty PostgreSQL database next to the one `url` names; returns its URL (the
/// same helper as callbid-store's tests).
#[cfg(feature = "postgres")]
async fn fresh_pg_database(url: &str, name: &str) -> String {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to DATABASE_URL");
    let task = tokio::spawn(conn);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let db = format!("{name}_{}_{nanos}", std::process::id());
    client
        .batch_execute(&format!("CREATE DATABASE {db}"))
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

/// A body over 64 KiB is refused with 413 before the signature is checked or anything
/// is read as a webhook, on TwiML and callback routes alike; an unsigned one of normal
/// size is 403 (never 200 with fallback TwiML).
#[tokio::test]
async fn oversized_bodies_are_413_and_unsigned_ones_403() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let http = reqwest::Client::new();
    let big = format!(
        "CallSid=CA1&From=%2B15125550123&Pad={}",
        "x".repeat(70 * 1024)
    );
    for path in ["/voice", "/ivr/zip", "/ivr/status"] {
        let r = http
            .post(format!("{}{path}", h.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
        let r = http
            .post(format!("{}{path}", h.base))
            .form(&[("CallSid", "CA1"), ("From", "+15125550123")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
}

/// With signatures off (`insecure_skip_signature`), the README's curl walkthrough works:
/// a missing optional field (`AccountSid`, `To`) does not fail the call; a missing
/// required one (`CallSid`) is a 400 naming it on a callback route, and fallback TwiML
/// (never dead air) on a TwiML route.
#[tokio::test]
async fn curl_without_optional_fields_is_served_and_missing_callsid_is_named() {
    let (stores, log, _) = memory_stores();
    let base = "http://127.0.0.1:9";
    let auction = ivr_support::build_auction(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores.history.clone(),
        Strategy::HighestScore,
        Duration::from_millis(1500),
    )
    .unwrap();
    let app = App::new(ivr_config(base, "message"), stores, auction, None);
    let post = |path: &'static str, body: &'static str| {
        let router = app::router(app.clone());
        async move {
            let res = router
                .oneshot(
                    Request::post(path)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(Body::from(body))
                        .unwrap(),
                )
                .await
                .unwrap();
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let sid = "CA123";
    let (st, twiml) = post("/voice", "CallSid=CA123&From=%2B15125550123").await;
    assert_eq!(st, StatusCode::OK);
    assert!(twiml.contains("<Gather"), "{twiml}");
    assert!(!twiml.contains("something went wrong"), "{twiml}");
    let (st, twiml) = post("/ivr/zip?attempt=1", "CallSid=CA123&Digits=78701").await;
    assert_eq!(st, StatusCode::OK);
    assert!(twiml.contains("/ivr/service?zip=78701"), "{twiml}");
    assert!(log
        .record(&CallId::new(sid).unwrap())
        .await
        .unwrap()
        .is_some());
    let (st, body) = post("/ivr/status", "CallStatus=completed&CallDuration=3").await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(body.contains("CallSid"), "{body}");
    let (st, twiml) = post("/voice", "From=%2B15125550123").await;
    assert_eq!(st, StatusCode::OK);
    assert!(twiml.contains("<Say"), "fallback TwiML: {twiml}");
}

/// Twilio's withheld-caller stand-ins (`+266696687` is "ANONYMOUS" on a keypad) are no
/// caller ID: two withheld callers two hours apart both reach a buyer with a 30-day
/// duplicate-caller window, and the call log shows no caller (the dashboard says
/// "withheld"). A real repeat caller is still refused.
#[tokio::test]
async fn withheld_callers_are_never_duplicates() {
    use callbid::core::rules::DuplicateCallerRule;
    use callbid::core::state::MemorySeenCallers;
    let seen = Arc::new(MemorySeenCallers::new());
    let acme = BuyerEntry::new(Arc::new(buyer("acme", 4200, "+15125550199")))
        .with_rule(Arc::new(DuplicateCallerRule::days(seen.clone(), 30)));
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![acme],
        stores,
        "voicemail,message",
        Strategy::HighestBid,
    )
    .await;
    for (i, from) in ["+266696687", "Anonymous", "+266696687"]
        .into_iter()
        .enumerate()
    {
        let sid = format!("CA0000000000000000000000000000w{i:03}");
        let script = CallScript::new(from, TRACKING).call_sid(&sid);
        let t = h
            .sim
            .run(
                script
                    .press("78701")
                    .press("1")
                    .dial(DialOutcome::answered(2, 90)),
            )
            .await
            .unwrap();
        assert_eq!(
            t.dials().len(),
            1,
            "withheld caller {i} ({from}) was not sold: {t:#?}"
        );
        let r = h.record(&sid).await;
        assert_eq!(r.status, CallStatus::Completed, "{r:#?}");
        assert!(
            r.caller.is_none(),
            "withheld caller logged as {:?}",
            r.caller
        );
    }
    // The same real number twice: the second is refused by the window.
    for (i, expect_dial) in [(0, true), (1, false)] {
        let sid = format!("CA0000000000000000000000000000r{i:03}");
        let t = h
            .sim
            .run(
                script(&sid)
                    .press("78701")
                    .press("1")
                    .dial(DialOutcome::answered(2, 90)),
            )
            .await
            .unwrap();
        assert_eq!(
            !t.dials().is_empty(),
            expect_dial,
            "real caller, call {i}: {t:#?}"
        );
    }
}

fn service_params(sid: &str) -> Vec<(&'static str, &'static str)> {
    let sid: &'static str = Box::leak(sid.to_owned().into_boxed_str());
    vec![
        ("CallSid", sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", CALLER),
        ("To", TRACKING),
        ("Digits", "1"),
    ]
}

/// Twilio retries `/ivr/service` while the first request's auction still runs: the retry
/// waits for the first request's decision and answers the same TwiML; one auction, one
/// ping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_during_the_auction_answers_the_same_dial() {
    let (stores, _, _) = memory_stores();
    let slow =
        Arc::new(buyer("slow", 4200, "+15125550199").with_latency(Duration::from_millis(300)));
    let h = Harness::start(
        vec![BuyerEntry::new(slow.clone())],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000f01";
    let p = service_params(sid);
    let voice: Vec<_> = p.iter().filter(|(k, _)| *k != "Digits").copied().collect();
    assert_eq!(
        h.post("/voice", &voice, Some(TOKEN)).await.0,
        StatusCode::OK
    );
    let path = "/ivr/service?zip=78701&attempt=1";
    let (first, retry) = tokio::join!(h.post(path, &p, Some(TOKEN)), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        h.post(path, &p, Some(TOKEN)).await
    });
    assert_eq!(first.0, StatusCode::OK);
    assert!(first.1.contains("<Dial"), "{}", first.1);
    assert_eq!(first, retry, "the retry answers the first request's TwiML");
    // A late retry, after the decision.
    assert_eq!(h.post(path, &p, Some(TOKEN)).await, first);
    assert_eq!(slow.pings(), 1, "one auction pings the buyer once");
    let auctions = kinds(&h.events(sid).await)
        .into_iter()
        .filter(|k| *k == "auction_started")
        .count();
    assert_eq!(auctions, 1);
}

/// The request that routed a call died after forwarding it (its events are in the log)
/// but before its decision was stored; its lease lapsed. The retry takes the step over and
/// answers the dial the log says was made, without a second auction.
#[tokio::test]
async fn a_retry_after_the_router_died_answers_its_dial_from_the_log() {
    use callbid::core::state::CallEvent as Ev;
    let (stores, log, _) = memory_stores();
    let routing = stores.routing.clone();
    let b = Arc::new(buyer("fresh", 9900, "+15125550177"));
    let h = Harness::start(
        vec![BuyerEntry::new(b.clone())],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let sid = "CA00000000000000000000000000000f02";
    let call = CallId::new(sid).unwrap();
    let at = chrono::Utc::now() - chrono::Duration::seconds(30);
    let dead = routing
        .claim_route(
            &call,
            "service:1",
            "dead-instance",
            at,
            at + chrono::Duration::seconds(10),
        )
        .await
        .unwrap();
    assert!(matches!(
        dead,
        callbid::core::state::RouteClaim::Claimed { .. }
    ));
    let events = [
        Ev::new(
            call.clone(),
            at,
            "incoming",
            CallEventKind::Incoming {
                caller: Some(callbid::core::PhoneNumber::parse(CALLER).unwrap()),
                dialed: Some(callbid::core::PhoneNumber::parse(TRACKING).unwrap()),
                campaign: None,
                source: None,
            },
        ),
        Ev::new(
            call.clone(),
            at,
            "auction_started",
            CallEventKind::AuctionStarted {
                zip: callbid::core::Zip::parse("78701").unwrap(),
                service: callbid::core::ServiceType::new("plumbing").unwrap(),
                eligible: 1,
                excluded: 0,
            },
        ),
        Ev::new(
            call.clone(),
            at,
            "winner",
            CallEventKind::Winner {
                buyer: BuyerId::new("earlier").unwrap(),
                price: usd(4100),
                score: Decimal::from(41),
            },
        ),
        Ev::new(
            call.clone(),
            at,
            "forwarded",
            CallEventKind::Forwarded {
                buyer: BuyerId::new("earlier").unwrap(),
                destination: Destination::parse("+15125550142").unwrap(),
            },
        ),
    ];
    for e in &events {
        log.append(e).await.unwrap();
    }
    let (status, body) = h
        .post(
            "/ivr/service?zip=78701&attempt=1",
            &service_params(sid),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("+15125550142"),
        "the dead router's dial: {body}"
    );
    assert_eq!(b.pings(), 0, "no second auction");
    assert_eq!(
        routing
            .route_decision(&call, "service:1")
            .await
            .unwrap()
            .as_deref(),
        Some(body.as_str()),
        "the answer is now the stored decision"
    );
}

/// A `/voice`-only flood (calls that never send a status callback) keeps at most
/// `MAX_LIVE_CALLS` calls in memory; the oldest are forgotten first and still served
/// from the call log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voice_flood_keeps_bounded_memory() {
    let (stores, _, _) = memory_stores();
    let h = Harness::start(
        vec![entry(buyer("acme", 4200, "+15125550199"))],
        stores,
        "message",
        Strategy::HighestScore,
    )
    .await;
    let over = app::MAX_LIVE_CALLS + 50;
    for i in 0..over {
        let sid = format!("CA{i:032x}");
        let p = [
            ("CallSid", sid.as_str()),
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("From", CALLER),
            ("To", TRACKING),
        ];
        let (status, _) = h.post("/voice", &p, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(h.app.live_calls(), app::MAX_LIVE_CALLS);
    // The first (forgotten) call still completes its IVR and is routed.
    let first = format!("CA{:032x}", 0);
    let p = service_params(&first);
    let zip: Vec<_> = p
        .iter()
        .map(|(k, v)| {
            if *k == "Digits" {
                (*k, "78701")
            } else {
                (*k, *v)
            }
        })
        .collect();
    assert_eq!(
        h.post("/ivr/zip", &zip, Some(TOKEN)).await.0,
        StatusCode::OK
    );
    let (status, body) = h
        .post("/ivr/service?zip=78701&attempt=1", &p, Some(TOKEN))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("+15125550199"), "{body}");
}

/// `GET /metrics` after a sold call and an unsold one: Prometheus text with auctions by
/// result, pings per buyer with latency histograms, accept failures, fallbacks, webhook
/// latency per route template and call-log append latency; behind the operator token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_cover_auctions_buyers_fallbacks_webhooks_and_the_log() {
    let handle = callbid_server::metrics::prometheus().expect("the recorder installs");
    let (stores, _, _) = memory_stores();
    let entries = vec![
        entry(
            buyer("m-top", 5000, "+15125550101")
                .with_accept(AcceptBehavior::Fail(BuyerErrorKind::Rejected)),
        ),
        entry(buyer("m-second", 4000, "+15125550102")),
    ];
    let h = Harness::start(entries, stores, "voicemail,message", Strategy::HighestBid).await;
    h.plumbing_call(
        "CA000000000000000000000000000000e1",
        DialOutcome::answered(1, 90),
    )
    .await;
    let (stores, _, _) = memory_stores();
    let nobody = Harness::start(
        vec![entry(
            buyer("m-none", 4200, "+15125550199").with_ping(PingBehavior::NoBid("full".into())),
        )],
        stores,
        "voicemail,message",
        Strategy::HighestScore,
    )
    .await;
    nobody
        .sim
        .run(
            script("CA000000000000000000000000000000e2")
                .press("78701")
                .press("1")
                .record_for(5),
        )
        .await
        .unwrap();

    let auth = operator_auth::OperatorAuth::with_token("metrics-test-token-0123456789abcdef");
    let router = callbid_server::router(callbid_server::Mounts::new(auth).with_metrics(handle));
    let get = |bearer: Option<&str>| {
        let mut req = Request::get("/metrics");
        if let Some(t) = bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        router.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    assert_eq!(get(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let res = get(Some("metrics-test-token-0123456789abcdef"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(
        axum::body::to_bytes(res.into_body(), 1 << 22)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for want in [
        "callbid_auctions_total{result=\"won\"",
        "callbid_auctions_total{result=\"no_buyer\",reason=\"no bids\"}",
        "callbid_pings_total{buyer=\"m-second\",reply=\"bid\"}",
        "callbid_pings_total{buyer=\"m-none\",reply=\"no_bid\"}",
        "callbid_ping_duration_seconds_bucket{buyer=\"m-top\",le=\"0.001\"}",
        "callbid_accept_failures_total{buyer=\"m-top\",kind=\"rejected\"}",
        "callbid_fallbacks_total{kind=\"voicemail\"}",
        "callbid_webhook_duration_seconds_bucket{route=\"/ivr/service\",status=\"200\"",
        "callbid_webhook_duration_seconds_count{route=\"/ivr/status\",status=\"204\"}",
        "callbid_call_log_append_duration_seconds_count{outcome=\"ok\"}",
        "callbid_auction_duration_seconds_sum",
    ] {
        assert!(text.contains(want), "missing {want} in:\n{text}");
    }
}
