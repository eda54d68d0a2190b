//! examples/agent_assist end to end: a signed voice webhook rings the agent, the agent's
//! form starts an auction, bids arrive, Forward (manual) or the win itself (auto)
//! updates the live call through the REST client with `<Dial>` TwiML — checked on the
//! built-in fake of Twilio's Calls endpoint, and against the Prism mock of Twilio's API
//! when `TWILIO_PRISM_API_URL` is set (`source .ci/twilio.sh`; required under CI).

use callbid_server::auth as operator_auth;

use callbid_server::agent as app;
use callbid_server::demo::fake_twilio;
use callbid_server::settle as ivr_support;

use std::sync::Arc;
use std::time::Duration;

use app::{AgentConfig, AgentTarget, Mode};
use callbid::core::auction::{Auction, Strategy};
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::rules::{Cap, CapRule, CapWindow, ServiceRule};
use callbid::core::state::{CallLog, CallStatus};
use callbid::core::{BuyerEntry, BuyerId, CallId, Destination, Money, ServiceType};
use callbid::store::Store;
use callbid::twilio::rest::Client as TwilioClient;
use callbid::twilio::signature::{RequestValidator, WebhookVerifier};
use rust_decimal::Decimal;
use serde_json::Value;

const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const REST_TOKEN: &str = "rest-token";
const WEBHOOK_TOKEN: &str = "webhook-token";

fn buyer(id: &str, cents: i64, dest: &str) -> BuyerEntry {
    BuyerEntry::new(Arc::new(InProcessBuyer::new(
        BuyerId::new(id).unwrap(),
        Money::usd(Decimal::new(cents, 2)),
        Destination::parse(dest).unwrap(),
    )))
}

struct Running {
    base: String,
    store: Store,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A temporary SQLite store.
async fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("calls.db").display());
    let store = Store::open(&url).await.unwrap();
    (dir, store)
}

/// Serves the app over `store` on a free port: webhooks signed with [`WEBHOOK_TOKEN`]
/// when `signed`, else unchecked (`--insecure-skip-signature`).
async fn serve(
    store: (tempfile::TempDir, Store),
    auction: Auction,
    twilio: TwilioClient,
    signed: bool,
    agent: &str,
    default_mode: Mode,
) -> Running {
    let open = operator_auth::OperatorAuth::open();
    serve_as(store, auction, twilio, signed, agent, default_mode, &open).await
}

/// The store's log, enqueueing a publisher postback for billable calls from source
/// `google` (no worker runs here: the test reads the outbox).
fn postback_log(store: &Store) -> Arc<dyn CallLog> {
    use callbid_server::postback::template::UrlTemplate;
    use callbid_server::postback::{Endpoint, PostbackConfig, PostbackLog, Secret};
    let url = UrlTemplate::parse("http://127.0.0.1:9/pb?click={call_id}&payout={payout}").unwrap();
    let endpoint = Endpoint::new(url, Secret::new(b"agent-desk-postback-secret".to_vec()));
    let config = PostbackConfig::new([("google".to_owned(), endpoint)].into());
    Arc::new(PostbackLog::new(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        Arc::new(config),
    ))
}

/// [`serve`] with the operator routes behind `operator`.
async fn serve_as(
    (dir, store): (tempfile::TempDir, Store),
    auction: Auction,
    twilio: TwilioClient,
    signed: bool,
    agent: &str,
    default_mode: Mode,
    operator: &operator_auth::OperatorAuth,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = app::router_with(
        AgentConfig {
            store: store.clone(),
            auction,
            history: store.handles().history.clone(),
            payout: ivr_support::parse_payout("70%").unwrap(),
            twilio,
            verifier: signed.then(|| WebhookVerifier::new(base.as_str(), WEBHOOK_TOKEN).unwrap()),
            public_url: signed.then(|| base.clone()),
            agent: AgentTarget::parse(agent).unwrap(),
            default_mode,
            title: "Agent <desk> & 'co'".into(),
            settle_log: Some(postback_log(&store)),
        },
        operator,
    );
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Running {
        base,
        store,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

/// Serves the app as the server builds it (the auction scored over the store's duration
/// history; here the highest bid wins) with signed webhooks, agent `client:alice` and
/// manual mode. `buyers` gets the store, for cap rules over its caps.
async fn start_with(
    twilio: TwilioClient,
    buyers: impl FnOnce(&Store) -> Vec<BuyerEntry>,
) -> Running {
    let (dir, store) = temp_store().await;
    let auction = ivr_support::build_auction(
        buyers(&store),
        store.handles().history.clone(),
        Strategy::HighestBid,
        Duration::from_secs(2),
    )
    .unwrap();
    serve(
        (dir, store),
        auction,
        twilio,
        true,
        "client:alice",
        Mode::Manual,
    )
    .await
}

/// Three in-process buyers; the best (bolt, $35.00) answers on a SIP URI when
/// `sip_winner`, else on a DID.
async fn start(twilio: TwilioClient, sip_winner: bool) -> Running {
    let best = if sip_winner {
        "sip:intake@bolt.example.com"
    } else {
        "+15125550177"
    };
    start_with(twilio, |_| {
        vec![
            buyer("acme", 2000, "+15125550111"),
            buyer("bolt", 3500, best),
            buyer("cedar", 3000, "+15125550133"),
        ]
    })
    .await
}

impl Running {
    /// POSTs a webhook signed like Twilio signs it (or unsigned).
    async fn webhook(&self, path: &str, params: &[(&str, &str)], sign: bool) -> (u16, String) {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.post(&url).form(params);
        if sign {
            let sig = RequestValidator::new(WEBHOOK_TOKEN).compute_signature(&url, params);
            req = req.header("X-Twilio-Signature", sig);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.text().await.unwrap())
    }

    async fn post_form(&self, path: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .form(params)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// Polls an auction until its status is one of `want` (5 s).
    async fn wait_status(&self, id: &str, want: &[&str]) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (st, s) = self.get(&format!("/agent/api/auctions/{id}")).await;
            assert_eq!(st, 200, "{s}");
            if want.iter().any(|w| s["status"] == *w) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "auction {id} stuck: {s}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Starts an auction for call `sid` (ZIP 78701, the form's default mode) and waits
    /// until it has a result.
    async fn start_auction(&self, sid: &str, service: &str) -> Value {
        let (st, s) = self
            .post_form(
                "/agent/api/auctions",
                &[("call_sid", sid), ("zip", "78701"), ("service", service)],
            )
            .await;
        assert_eq!(st, 202, "{s}");
        self.wait_status(s["id"].as_str().unwrap(), &["won", "no_buyer"])
            .await
    }

    /// Rings the agent with call `sid`, then [`Running::start_auction`].
    async fn auction(&self, sid: &str, service: &str) -> Value {
        let (st, body) = self
            .webhook("/twilio/voice", &voice_params(sid), true)
            .await;
        assert_eq!(st, 200, "{body}");
        self.start_auction(sid, service).await
    }

    async fn event_types(&self, sid: &str) -> Vec<String> {
        CallLog::events(&self.store, &CallId::new(sid).unwrap())
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind.type_name().to_string())
            .collect()
    }
}

fn voice_params(sid: &str) -> Vec<(&str, &str)> {
    vec![
        ("CallSid", sid),
        ("AccountSid", ACCOUNT),
        ("From", "+15125550123"),
        ("To", "+18005550100"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
    ]
}

async fn fake() -> (fake_twilio::FakeTwilio, TwilioClient) {
    let fake = fake_twilio::FakeTwilio::start("127.0.0.1:0".parse().unwrap(), ACCOUNT, REST_TOKEN)
        .await
        .unwrap();
    let client = TwilioClient::builder(ACCOUNT)
        .auth_token(REST_TOKEN)
        .api_base_url(fake.base_url.clone())
        .build()
        .unwrap();
    (fake, client)
}

#[tokio::test]
async fn manual_forward_updates_the_live_call_with_dial_twiml() {
    let (fake, client) = fake().await;
    let r = start(client, false).await;
    let sid = "CA00000000000000000000000000000a01";

    // The voice webhook: unsigned is refused, signed rings the agent.
    let (st, _) = r.webhook("/twilio/voice", &voice_params(sid), false).await;
    assert_eq!(st, 403);
    let (st, twiml) = r.webhook("/twilio/voice", &voice_params(sid), true).await;
    assert_eq!(st, 200, "{twiml}");
    assert!(
        twiml.contains(r#"<Dial timeout="30"><Client>alice</Client></Dial>"#),
        "{twiml}"
    );
    let (_, live) = r.get("/agent/api/live-calls").await;
    assert_eq!(live[0]["call_sid"], sid);
    assert_eq!(live[0]["from"], "+15125550123");

    // The form is validated field by field.
    for (params, field, value) in [
        (
            vec![
                ("call_sid", "CA12"),
                ("zip", "78701"),
                ("service", "plumbing"),
            ],
            "call_sid",
            "CA12",
        ),
        (
            vec![("call_sid", sid), ("zip", "7870"), ("service", "plumbing")],
            "zip",
            "7870",
        ),
        (
            vec![
                ("call_sid", sid),
                ("zip", "78701"),
                ("service", "plumb ing!"),
            ],
            "service",
            "plumb ing!",
        ),
        (
            vec![
                ("call_sid", sid),
                ("zip", "78701"),
                ("service", "plumbing"),
                ("mode", "sometimes"),
            ],
            "mode",
            "sometimes",
        ),
        (vec![("call_sid", sid), ("zip", "78701")], "service", ""),
    ] {
        let (st, body) = r.post_form("/agent/api/auctions", &params).await;
        assert_eq!(st, 400, "{params:?}: {body}");
        assert_eq!(body["field"], field, "{body}");
        assert_eq!(body["value"], value, "{body}");
    }

    // Start the auction (manual).
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[
                ("call_sid", sid),
                ("zip", "78701"),
                ("service", "plumbing"),
                ("campaign", "fall-promo"),
                ("source", "google"),
                ("mode", "manual"),
            ],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(id, format!("{sid}-1"));
    let s = r.wait_status(&id, &["won", "no_buyer"]).await;
    assert_eq!(s["status"], "won", "{s}");
    assert_eq!(s["winner"]["buyer"], "bolt");
    assert_eq!(s["winner"]["price"], "35.00");
    assert_eq!(s["winner"]["destination"], "+15125550177");
    let mut bidders: Vec<&str> = s["bids"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["reply"] == "bid")
        .map(|b| b["buyer"].as_str().unwrap())
        .collect();
    bidders.sort();
    assert_eq!(bidders, ["acme", "bolt", "cedar"]);

    // Manual: nothing is bridged until Forward; a second auction for the call is refused
    // only while one is running or forwarded.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    // Forward: one Calls update of the live call with exactly this TwiML.
    let (st, s) = r
        .post_form(&format!("/agent/api/auctions/{id}/forward"), &[])
        .await;
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["status"], "forwarded");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(
        reqs[0].path,
        format!("/2010-04-01/Accounts/{ACCOUNT}/Calls/{sid}.json")
    );
    let want = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="{}/twilio/dial-status" answerOnBridge="true" timeout="30"><Number>+15125550177</Number></Dial></Response>"#,
        r.base
    );
    assert_eq!(reqs[0].param("Twiml"), Some(want.as_str()));
    assert_eq!(reqs[0].form.len(), 1, "only Twiml is sent: {reqs:?}");

    // Forwarding twice is refused; so is another auction for a forwarded call.
    let (st, body) = r
        .post_form(&format!("/agent/api/auctions/{id}/forward"), &[])
        .await;
    assert_eq!(st, 409, "{body}");
    let (st, body) = r
        .post_form(
            "/agent/api/auctions",
            &[("call_sid", sid), ("zip", "78701"), ("service", "plumbing")],
        )
        .await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(fake.requests().len(), 1);

    // The buyer leg ends: the call log has the whole story.
    let dial = [
        ("CallSid", sid),
        ("AccountSid", ACCOUNT),
        ("DialCallSid", "CA00000000000000000000000000000b01"),
        ("DialCallStatus", "completed"),
        ("DialCallDuration", "127"),
    ];
    let (st, body) = r.webhook("/twilio/dial-status", &dial, true).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("<Hangup />"));
    let rec = CallLog::record(&r.store, &CallId::new(sid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, CallStatus::Completed);
    assert_eq!(rec.buyer.as_ref().map(|b| b.as_str()), Some("bolt"));
    assert_eq!(rec.price, Some(Money::usd(Decimal::new(3500, 2))));
    assert_eq!(rec.duration_secs, Some(127));
    // Settled: billed at the winning bid, publisher paid 70%.
    assert_eq!(rec.billable, Some(true));
    assert_eq!(rec.revenue, Some(Money::usd(Decimal::new(3500, 2))));
    assert_eq!(rec.payout, Some(Money::usd(Decimal::new(2450, 2))));
    assert_eq!(
        rec.campaign.as_ref().map(|c| c.as_str()),
        Some("fall-promo")
    );
    assert_eq!(rec.source.as_ref().map(|c| c.as_str()), Some("google"));
    assert_eq!(
        rec.zip.map(|z| z.as_str().to_string()).as_deref(),
        Some("78701")
    );
    assert_eq!(rec.bids, 3);
    let types = r.event_types(sid).await;
    for t in [
        "incoming",
        "auction_started",
        "ping_result",
        "winner",
        "accepted",
        "forwarded",
        "connected",
        "completed",
        "billing",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    assert_eq!(types.iter().filter(|t| *t == "ping_result").count(), 3);
    // The billable settlement enqueued the publisher's postback (issue 12, item 5).
    let postbacks =
        callbid::core::state::PostbackOutbox::postbacks(&r.store, &CallId::new(sid).unwrap())
            .await
            .unwrap();
    assert_eq!(postbacks.len(), 1, "{postbacks:?}");
    assert_eq!(postbacks[0].publisher, "google");

    // The operator dashboard is served by the same app and lists the call.
    let (st, page) = r.get("/api/calls?status=completed").await;
    assert_eq!(st, 200);
    assert_eq!(page["rows"][0]["call_id"], sid);
    // The agent's page shows the title as text.
    let page = r
        .http
        .get(format!("{}/agent", r.base))
        .send()
        .await
        .unwrap();
    let page = page.text().await.unwrap();
    assert!(
        page.contains("<title>Agent &lt;desk&gt; &amp; &apos;co&apos; · agent</title>"),
        "{page}"
    );
}

#[tokio::test]
async fn auto_mode_bridges_at_once_and_twilio_errors_are_reported() {
    let (fake, client) = fake().await;
    let r = start(client, true).await;
    let sid = "CA00000000000000000000000000000a02";
    let (st, _) = r.webhook("/twilio/voice", &voice_params(sid), true).await;
    assert_eq!(st, 200);

    // Twilio refuses the first update: the auction shows the error and can be retried.
    fake.fail_next(fake_twilio::InjectedError {
        status: 400,
        code: 21220,
        message: "Call is not in-progress. Cannot redirect.".into(),
    });
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[
                ("call_sid", sid),
                ("zip", "10001"),
                ("service", "roofing"),
                ("mode", "auto"),
            ],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    let s = r.wait_status(&id, &["forward_failed", "forwarded"]).await;
    assert_eq!(s["status"], "forward_failed", "{s}");
    let err = s["error"].as_str().unwrap();
    assert!(
        err.contains("21220") && err.contains("Cannot redirect"),
        "{err}"
    );
    assert!(!r.event_types(sid).await.iter().any(|t| t == "forwarded"));

    // Retry by hand: a SIP winner is dialled with <Sip>.
    let (st, s) = r
        .post_form(&format!("/agent/api/auctions/{id}/forward"), &[])
        .await;
    assert_eq!(st, 200, "{s}");
    assert_eq!(s["status"], "forwarded");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let want = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial action="{}/twilio/dial-status" answerOnBridge="true" timeout="30"><Sip>sip:intake@bolt.example.com</Sip></Dial></Response>"#,
        r.base
    );
    for req in &reqs {
        assert_eq!(req.call_sid, sid);
        assert_eq!(req.param("Twiml"), Some(want.as_str()));
    }

    // The buyer did not answer: missed.
    let dial = [
        ("CallSid", sid),
        ("AccountSid", ACCOUNT),
        ("DialCallSid", "CA00000000000000000000000000000b02"),
        ("DialCallStatus", "no-answer"),
        ("DialCallDuration", "0"),
    ];
    let (st, body) = r.webhook("/twilio/dial-status", &dial, true).await;
    assert_eq!(st, 200);
    // The caller hears why before the hangup.
    assert!(body.contains("<Say>"), "{body}");
    assert!(body.contains("<Hangup />"), "{body}");
    let rec = CallLog::record(&r.store, &CallId::new(sid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, CallStatus::Missed);
}

#[tokio::test]
async fn no_buyer_keeps_the_caller_with_the_agent_and_is_logged() {
    let (fake, client) = fake().await;
    // The only bid is under the floor: it is refused and nobody buys.
    let auction = Auction::builder()
        .buyer(buyer("acme", 500, "+15125550111"))
        .floor(Money::usd(Decimal::new(1000, 2)))
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = serve(
        temp_store().await,
        auction,
        client,
        false,
        "+15125550100",
        Mode::Auto,
    )
    .await;
    let sid = "CA00000000000000000000000000000a03";
    // Without a verifier (--insecure-skip-signature) unsigned webhooks are accepted.
    let (st, twiml) = r.webhook("/twilio/voice", &voice_params(sid), false).await;
    assert_eq!(st, 200);
    assert!(twiml.contains("<Number>+15125550100</Number>"), "{twiml}");
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[("call_sid", sid), ("zip", "78701"), ("service", "plumbing")],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    assert_eq!(s["mode"], "auto", "the configured default mode applies");
    let s = r
        .wait_status(s["id"].as_str().unwrap(), &["no_buyer", "won", "forwarded"])
        .await;
    assert_eq!(s["status"], "no_buyer", "{s}");
    assert_eq!(s["bids"][0]["reply"], "invalid_bid");
    let (st, _) = r
        .post_form(&format!("/agent/api/auctions/{sid}-1/forward"), &[])
        .await;
    assert_eq!(st, 409);
    assert!(fake.requests().is_empty());
    let rec = CallLog::record(&r.store, &CallId::new(sid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.status, CallStatus::Fallback);
    assert_eq!(rec.fallback.as_deref(), Some("agent"));
    // A retry after no buyer is a new attempt.
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[("call_sid", sid), ("zip", "78701"), ("service", "plumbing")],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    assert_eq!(s["attempt"], 2);
}

#[cfg_attr(
    callbid_no_prism,
    ignore = "needs the Prism mock of Twilio's API: TWILIO_PRISM_API_URL was not set when the tests were built (source .ci/twilio.sh)"
)]
#[tokio::test]
async fn forward_is_a_valid_calls_update_for_twilios_openapi_mock() {
    let Some(api) = std::env::var("TWILIO_PRISM_API_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        let why = "TWILIO_PRISM_API_URL not set (source .ci/twilio.sh)";
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the Prism mock is unavailable: {why}");
        }
        eprintln!("skipping: {why}");
        return;
    };
    let client = TwilioClient::builder(ACCOUNT)
        .auth_token(REST_TOKEN)
        .api_base_url(api)
        .build()
        .unwrap();
    let r = start(client, false).await;
    let sid = "CA00000000000000000000000000000a04";
    let (st, _) = r.webhook("/twilio/voice", &voice_params(sid), true).await;
    assert_eq!(st, 200);
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[("call_sid", sid), ("zip", "78701"), ("service", "plumbing")],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    let id = s["id"].as_str().unwrap().to_string();
    r.wait_status(&id, &["won"]).await;
    // Prism validates the request against Twilio's OpenAPI description (path, SID
    // patterns, form fields) and answers 422 when it does not conform.
    let (st, s) = r
        .post_form(&format!("/agent/api/auctions/{id}/forward"), &[])
        .await;
    assert_eq!(st, 200, "Prism refused the Calls update: {s}");
    assert_eq!(s["status"], "forwarded");
}

/// The app with one buyer, `solo`: it buys only plumbing and takes one live call at a
/// time (a concurrency cap over the store's caps), so a live-call slot that is not
/// given back makes the next auction find no buyer.
async fn start_capped(twilio: TwilioClient) -> Running {
    start_with(twilio, |store| {
        let one_at_a_time = CapRule::new(
            store.handles().caps.clone(),
            vec![Cap::count(CapWindow::Concurrent, 1)],
        )
        .unwrap();
        let plumbing_only = ServiceRule::new([ServiceType::new("plumbing").unwrap()]);
        vec![buyer("solo", 3000, "+15125550188")
            .with_rule(Arc::new(plumbing_only))
            .with_rule(Arc::new(one_at_a_time))]
    })
    .await
}

#[tokio::test]
async fn a_win_never_forwarded_gives_its_live_slot_back_when_the_call_ends() {
    let (fake, client) = fake().await;
    let r = start_capped(client).await;
    let (a, b) = (
        "CA00000000000000000000000000000c01",
        "CA00000000000000000000000000000c02",
    );
    let s = r.auction(a, "plumbing").await;
    assert_eq!(s["status"], "won", "{s}");
    // The agent never forwards call A: while it lasts, solo's one live slot is taken.
    let s = r.auction(b, "plumbing").await;
    assert_eq!(s["status"], "no_buyer", "{s}");

    // Call A ends (the number's call status callback): its win is over.
    let mut ended = voice_params(a);
    ended.retain(|(k, _)| *k != "CallStatus");
    ended.push(("CallStatus", "completed"));
    ended.push(("CallDuration", "48"));
    let (st, body) = r.webhook("/twilio/status", &ended, false).await;
    assert_eq!(st, 403, "signed like every webhook: {body}");
    let (st, body) = r.webhook("/twilio/status", &ended, true).await;
    assert_eq!(st, 204, "{body}");
    let (_, s) = r.get(&format!("/agent/api/auctions/{a}-1")).await;
    assert_eq!(s["status"], "ended", "{s}");
    let (st, body) = r
        .post_form(&format!("/agent/api/auctions/{a}-1/forward"), &[])
        .await;
    assert_eq!(st, 409, "an ended call is not forwarded: {body}");
    let (_, live) = r.get("/agent/api/live-calls").await;
    assert!(
        live.as_array().unwrap().iter().all(|c| c["call_sid"] != a),
        "{live}"
    );

    // The slot is free again: call B's next auction sells.
    let s = r.start_auction(b, "plumbing").await;
    assert_eq!(s["id"], format!("{b}-2"));
    assert_eq!(s["status"], "won", "{s}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_new_auction_for_the_call_gives_the_replaced_win_back() {
    let (fake, client) = fake().await;
    let r = start_capped(client).await;
    let (a, b) = (
        "CA00000000000000000000000000000d01",
        "CA00000000000000000000000000000d02",
    );
    let s = r.auction(a, "plumbing").await;
    assert_eq!(s["status"], "won", "{s}");
    // The caller wants roofing after all: a new auction for the same call, which solo
    // does not buy. The plumbing win it replaces can no longer be forwarded.
    let s = r.start_auction(a, "roofing").await;
    assert_eq!(s["id"], format!("{a}-2"));
    assert_eq!(s["status"], "no_buyer", "{s}");
    let (_, s) = r.get(&format!("/agent/api/auctions/{a}-1")).await;
    assert_eq!(s["status"], "superseded", "{s}");
    // Both auctions of the call are in its log (the second one's keys end in `:2`).
    let types = r.event_types(a).await;
    let count = |t: &str| types.iter().filter(|x| *x == t).count();
    assert_eq!(
        (count("auction_started"), count("ping_result")),
        (2, 2),
        "{types:?}"
    );
    let (st, body) = r
        .post_form(&format!("/agent/api/auctions/{a}-1/forward"), &[])
        .await;
    assert_eq!(st, 409, "{body}");

    // Its live slot went back with it: another call sells to solo.
    let s = r.auction(b, "plumbing").await;
    assert_eq!(s["status"], "won", "{s}");
    assert!(fake.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// Operator access: the agent desk and API behind --dashboard-token.

#[tokio::test]
async fn agent_api_needs_the_operator_token_and_webhooks_do_not() {
    const OPERATOR: &str = "agent-operator-token-91d0";
    let (fake, client) = fake().await;
    let (dir, store) = temp_store().await;
    let auction = ivr_support::build_auction(
        vec![buyer("bolt", 3500, "+15125550177")],
        store.handles().history.clone(),
        Strategy::HighestBid,
        Duration::from_secs(2),
    )
    .unwrap();
    let auth = operator_auth::OperatorAuth::with_token(OPERATOR);
    let mut r = serve_as(
        (dir, store),
        auction,
        client,
        true,
        "client:alice",
        Mode::Manual,
        &auth,
    )
    .await;
    let anon = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = r.base.clone();
    let sid = "CA00000000000000000000000000000e01";

    // Twilio needs no operator token: a signed voice webhook rings the agent, an
    // unsigned one is still refused.
    let url = format!("{base}/twilio/voice");
    let params = voice_params(sid);
    let sig = RequestValidator::new(WEBHOOK_TOKEN).compute_signature(&url, &params);
    let res = anon
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = anon
        .post(&url)
        .bearer_auth(OPERATOR)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        403,
        "the operator token is no Twilio signature"
    );

    // Without the token: the desk redirects to the login, its API answers 401 and
    // starts nothing, forwards nothing.
    let res = anon.get(format!("{base}/agent")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?next=/agent");
    for path in ["/agent/api/config", "/agent/api/live-calls", "/api/calls"] {
        let res = anon.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status(), 401, "{path}");
    }
    let res = anon
        .post(format!("{base}/agent/api/auctions"))
        .form(&[("call_sid", sid), ("zip", "78701"), ("service", "plumbing")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        !r.event_types(sid)
            .await
            .contains(&"auction_started".to_string()),
        "an unauthenticated request started an auction"
    );

    // With the bearer token the API works: start an auction, it is won.
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {OPERATOR}").parse().unwrap(),
    );
    r.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let s = r.start_auction(sid, "plumbing").await;
    assert_eq!(s["status"], "won", "{s}");
    let id = s["id"].as_str().unwrap().to_owned();

    // Forward without the token is refused and reaches no Twilio API.
    let res = anon
        .post(format!("{base}/agent/api/auctions/{id}/forward"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());

    // A browser logs in and forwards with its SameSite=Strict session cookie.
    let res = anon
        .post(format!("{base}/login"))
        .form(&[("token", OPERATOR), ("next", "/agent")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/agent");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("SameSite=Strict") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    let res = anon
        .get(format!("{base}/agent"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = anon
        .post(format!("{base}/agent/api/auctions/{id}/forward"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "forwarded", "{body}");
    assert_eq!(fake.requests().len(), 1);
    fake.stop();
}

/// The agent API auctions only calls the server knows are live: a well-formed CallSid
/// that never called is 404, and so is a call whose status callback said it ended. A
/// retry with campaign and source left empty runs (and is logged) with the call's
/// earlier campaign and source, never the first campaign next to other fields.
#[tokio::test]
async fn only_live_calls_are_auctioned_and_retries_keep_their_tracking() {
    let (_fake, client) = fake().await;
    let auction = Auction::builder()
        .buyer(buyer("acme", 500, "+15125550111"))
        .floor(Money::usd(Decimal::new(1000, 2)))
        .deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let r = serve(
        temp_store().await,
        auction,
        client,
        false,
        "+15125550100",
        Mode::Manual,
    )
    .await;
    let never = "CA00000000000000000000000000000d01";
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[
                ("call_sid", never),
                ("zip", "78701"),
                ("service", "plumbing"),
            ],
        )
        .await;
    assert_eq!(st, 404, "{s}");
    assert_eq!(s["field"], "call_sid");
    assert_eq!(s["value"], never);

    let sid = "CA00000000000000000000000000000d02";
    let (st, _) = r.webhook("/twilio/voice", &voice_params(sid), false).await;
    assert_eq!(st, 200);
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[
                ("call_sid", sid),
                ("zip", "78701"),
                ("service", "plumbing"),
                ("campaign", "spring-promo"),
                ("source", "facebook"),
            ],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    r.wait_status(s["id"].as_str().unwrap(), &["no_buyer", "won"])
        .await;
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[
                ("call_sid", sid),
                ("zip", "73301"),
                ("service", "roofing"),
                ("campaign", ""),
                ("source", ""),
            ],
        )
        .await;
    assert_eq!(st, 202, "{s}");
    assert_eq!(s["attempt"], 2);
    assert_eq!(s["campaign"], "spring-promo", "{s}");
    assert_eq!(s["source"], "facebook", "{s}");
    r.wait_status(s["id"].as_str().unwrap(), &["no_buyer", "won"])
        .await;
    let rec = CallLog::record(&r.store, &CallId::new(sid).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.service.as_ref().map(|s| s.as_str()), Some("roofing"));
    assert_eq!(
        rec.campaign.as_ref().map(|c| c.as_str()),
        Some("spring-promo")
    );

    // The call ends: no more auctions for it.
    let mut ended = voice_params(sid);
    ended.retain(|(k, _)| *k != "CallStatus");
    ended.push(("CallStatus", "completed"));
    ended.push(("CallDuration", "48"));
    let (st, _) = r.webhook("/twilio/status", &ended, false).await;
    assert!(st < 300, "{st}");
    let (st, s) = r
        .post_form(
            "/agent/api/auctions",
            &[("call_sid", sid), ("zip", "78701"), ("service", "plumbing")],
        )
        .await;
    assert_eq!(st, 404, "{s}");
    assert!(s["error"].as_str().unwrap().contains("ended"), "{s}");
}
