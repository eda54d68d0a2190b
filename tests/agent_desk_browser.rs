//! The agent-pool desk (issue 10): live offers over SSE, Accept in the browser, the
//! first click wins the offer's compare-and-set, and the caller's call is moved to the
//! winner with the Twilio REST client (callbid-server's in-process fake of Twilio's
//! Calls update endpoint records it). The call itself is driven by signed webhooks over
//! real HTTP on 127.0.0.1; the desk is driven by its JSON API and, in the browser test,
//! by two real headless Chromium sessions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use callbid::core::agents::{
    Agent, AgentId, AgentPool, AgentPoolId, AgentStore, OfferId, OfferState, PresenceChange, Reach,
};
use callbid::core::auction::Strategy;
use callbid::core::{BuyerId, Money};
use callbid::store::Store;
use callbid_server::dashboard;
use callbid_server::demo::fake_twilio::FakeTwilio;
use callbid_server::ivr::{self as app, desk, AgentOffers, App, Stores};
use callbid_server::settle::build_auction;
use callbid_twilio::signature::{RequestValidator, WebhookVerifier};
use chrono::Utc;
use common::browser::*;
use common::ivr::ivr_config;
use rust_decimal::Decimal;
use serde_json::{json, Value};

const TOKEN: &str = "agent-desk-token";
const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
const AGENT1: &str = "+15125550001";
const AGENT2: &str = "+15125550002";
const IN_HOUSE: &str = "+15125550999";
const CALLER: &str = "+15125550123";

struct Desk {
    base: String,
    store: Arc<dyn AgentStore>,
    _dir: tempfile::TempDir,
    pool: AgentPoolId,
    fake: FakeTwilio,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Desk {
    fn drop(&mut self) {
        self.server.abort();
        self.fake.stop();
    }
}

fn agent(id: &str, reach: &str) -> Agent {
    Agent::new(AgentId::new(id).unwrap(), id, Reach::parse(reach).unwrap()).unwrap()
}

impl Desk {
    /// The IVR (no buyer networks, fallback `in-house,message`), the desk and the
    /// operator dashboard over one temporary SQLite store, with two tier-1 agents logged
    /// in and a 60 s offer TTL.
    async fn start() -> Desk {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("calls.db").display());
        let db = Store::open(&url).await.unwrap();
        let handles = db.handles();
        let store: Arc<dyn AgentStore> = Arc::new(db.clone());
        let pool = AgentPoolId::new("desk").unwrap();
        let buyer = BuyerId::new("in-house-agents").unwrap();
        let settings = AgentPool::new(pool.clone(), buyer.clone())
            .with_offer_ttl(Duration::from_secs(60))
            .unwrap()
            .with_wrap_up(Duration::ZERO)
            .unwrap()
            .with_default_bid(Money::usd(Decimal::new(1500, 2)))
            .unwrap();
        store.put_pool(&settings).await.unwrap();
        let now = Utc::now();
        for a in [agent("agent1", AGENT1), agent("agent2", AGENT2)] {
            store.put_agent(&pool, &a, now).await.unwrap();
            store
                .set_presence(&pool, &a.id, PresenceChange::LogIn, now)
                .await
                .unwrap();
        }
        let fake = FakeTwilio::start("127.0.0.1:0".parse().unwrap(), ACCOUNT, "rest-tok")
            .await
            .unwrap();
        let twilio = callbid::twilio::rest::Client::builder(ACCOUNT)
            .auth_token("rest-tok")
            .api_base_url(fake.base_url.clone())
            .build()
            .unwrap();
        let auction = build_auction(
            Vec::new(),
            handles.history.clone(),
            Strategy::HighestBid,
            Duration::from_millis(500),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let stores = Stores {
            log: handles.log.clone(),
            caps: handles.caps.clone(),
            history: handles.history.clone(),
            routing: handles.routing.clone(),
            agents: Some(AgentOffers::new(store.clone(), pool.clone(), buyer).with_twilio(twilio)),
            pools: None,
        };
        let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
        let app: Arc<App> = App::new(
            ivr_config(
                &base,
                "1=Plumbing,2=Pest Control",
                "in-house,message",
                Some(IN_HOUSE),
            ),
            stores,
            auction.clone(),
            Some(verifier),
        );
        let dash = dashboard::router(dashboard::DashboardState {
            store: db,
            auction,
            title: "desk test".into(),
        });
        let router = app::router(app.clone())
            .merge(desk::router(app))
            .merge(dash);
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Desk {
            base,
            store,
            _dir: dir,
            pool,
            fake,
            http: reqwest::Client::new(),
            server,
        }
    }

    /// A Twilio webhook to `url` (absolute), signed with the auth token.
    async fn webhook(&self, url: &str, sid: &str, extra: &[(&str, &str)]) -> String {
        let mut params: Vec<(String, String)> = [
            ("AccountSid", ACCOUNT),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", sid),
            ("CallStatus", "in-progress"),
            ("Direction", "inbound"),
            ("From", CALLER),
            ("To", "+18005550100"),
        ]
        .iter()
        .chain(extra.iter())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        params.sort();
        let sig = RequestValidator::new(TOKEN).compute_signature(url, &params);
        let res = self
            .http
            .post(url)
            .header("X-Twilio-Signature", sig)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{url}");
        res.text().await.unwrap()
    }

    /// Walks a call through greeting, ZIP and menu to the pool's offer; returns the
    /// `<Dial>` TwiML that rings the agents.
    async fn call_until_offered(&self, sid: &str) -> String {
        let greet = self
            .webhook(&format!("{}/voice", self.base), sid, &[])
            .await;
        let menu = self
            .webhook(&action(&greet), sid, &[("Digits", "78701")])
            .await;
        let dial = self.webhook(&action(&menu), sid, &[("Digits", "1")]).await;
        assert!(dial.contains("<Dial"), "the pool was not rung: {dial}");
        dial
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => self.http.post(&url).json(&body.unwrap_or(json!({}))),
            _ => self.http.get(&url),
        };
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn accept(&self, sid: &str, agent: &str) -> (u16, Value) {
        let path = format!("/desk/api/offers/{sid}/accept");
        self.api("POST", &path, Some(json!({ "agent": agent })))
            .await
    }

    async fn state(&self, sid: &str) -> OfferState {
        self.store
            .offer(&self.pool, &OfferId::new(sid).unwrap())
            .await
            .unwrap()
            .expect("offer stored")
            .state
    }

    async fn presence(&self, agent: &str) -> String {
        self.store
            .agents(&self.pool, Utc::now())
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.agent.id.as_str() == agent)
            .map(|s| s.presence.name().to_owned())
            .unwrap()
    }

    /// The `Url` of every Calls update the REST client sent, with its CallSid.
    fn redirects(&self) -> Vec<(String, String)> {
        self.fake
            .requests()
            .into_iter()
            .map(|r| (r.call_sid.clone(), r.param("Url").unwrap_or("").to_owned()))
            .collect()
    }
}

/// The first `action="…"` of a TwiML document, unescaped.
fn action(twiml: &str) -> String {
    let start = twiml.find("action=\"").expect("an action") + 8;
    let end = twiml[start..].find('"').unwrap() + start;
    twiml[start..end].replace("&amp;", "&")
}

fn sid(n: u32) -> String {
    format!("CA{:032x}", 0xde5c_0000_u64 + u64::from(n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_desk_accept_wins_and_the_call_is_moved_to_the_winner() {
    let d = Desk::start().await;
    let call = sid(1);
    let dial = d.call_until_offered(&call).await;
    assert!(dial.contains(AGENT1) && dial.contains(AGENT2), "{dial}");

    let (status, view) = d.api("GET", "/desk/api/offers?agent=agent2", None).await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["presence"], "offered");
    assert_eq!(view["offers"][0]["id"], call.as_str());
    assert_eq!(view["offers"][0]["mine"], true);
    assert_eq!(view["offers"][0]["zip"], "78701");

    // Both click at the same instant: exactly one wins, the other is told who did.
    let (a, b) = tokio::join!(d.accept(&call, "agent1"), d.accept(&call, "agent2"));
    let mut answers = [a, b];
    answers.sort_by_key(|(s, _)| *s);
    assert_eq!(answers[0].0, 200, "{answers:?}");
    assert_eq!(answers[1].0, 409, "{answers:?}");
    let winner = answers[0].1["agent"].as_str().unwrap().to_owned();
    assert_eq!(answers[1].1["result"], "taken");
    assert_eq!(answers[1].1["by"], winner.as_str());
    assert!(
        matches!(d.state(&call).await, OfferState::Accepted { agent, .. } if agent.as_str() == winner)
    );

    // The REST client moved the caller's call, once, to /ivr/offer/connect.
    let redirects = d.redirects();
    assert_eq!(redirects.len(), 1, "{redirects:?}");
    let (moved, url) = &redirects[0];
    assert_eq!(moved, &call);
    let connect = format!(
        "{}/ivr/offer/connect?offer={call}&via=fallback&step=0",
        d.base
    );
    assert_eq!(url, &connect);

    // The ringing <Dial> ends as canceled: its action sends the call on to connect,
    // and the winner stays on the call.
    let after = d
        .webhook(&action(&dial), &call, &[("DialCallStatus", "canceled")])
        .await;
    assert!(after.contains("/ivr/offer/connect"), "{after}");
    assert_eq!(d.presence(&winner).await, "on_call");

    // Twilio fetches the redirect: the winner's phone is dialled, without a whisper.
    let twiml = d.webhook(url, &call, &[]).await;
    let number = if winner == "agent1" { AGENT1 } else { AGENT2 };
    let other = if winner == "agent1" { AGENT2 } else { AGENT1 };
    assert!(twiml.contains(&format!(">{number}</Number>")), "{twiml}");
    assert!(
        !twiml.contains(other) && !twiml.contains("whisper"),
        "{twiml}"
    );

    // A repeated click by the winner is still a win but does not move the call again
    // (that would re-run connect under the live bridge); `retry` does.
    let (again, v) = d.accept(&call, &winner).await;
    assert_eq!((again, &v["moved"]), (200, &json!(false)), "{v}");
    assert_eq!(d.redirects().len(), 1);
    let (again, v) = d
        .api(
            "POST",
            &format!("/desk/api/offers/{call}/accept"),
            Some(json!({"agent": winner, "retry": true})),
        )
        .await;
    assert_eq!((again, &v["moved"]), (200, &json!(true)), "{v}");
    assert_eq!(d.redirects().len(), 2);

    // The bridge ends: the winner is free again; metrics count the accept.
    let bye = d
        .webhook(
            &action(&twiml),
            &call,
            &[("DialCallStatus", "completed"), ("DialCallDuration", "95")],
        )
        .await;
    assert!(bye.contains("Goodbye"), "{bye}");
    assert_eq!(d.presence(&winner).await, "available");
    let (_, m) = d.api("GET", "/desk/api/metrics?hours=1", None).await;
    assert_eq!(m["offers"], 1, "{m}");
    assert_eq!(m["accepted"], 1, "{m}");
}

#[tokio::test]
async fn desk_api_names_bad_input() {
    let d = Desk::start().await;
    let cases: Vec<(&str, String, Option<Value>, u16, &str)> = vec![
        (
            "POST",
            format!("/desk/api/offers/{}/accept", sid(9)),
            Some(json!({"agent": ""})),
            400,
            "agent",
        ),
        (
            "POST",
            "/desk/api/offers/bad%20id/accept".into(),
            Some(json!({"agent": "agent1"})),
            400,
            "offer",
        ),
        (
            "POST",
            format!("/desk/api/offers/{}/accept", sid(9)),
            Some(json!({"agent": "agent1"})),
            400,
            "offer",
        ),
        (
            "POST",
            "/desk/api/agents/agent1/presence".into(),
            Some(json!({"change": "nap"})),
            400,
            "change",
        ),
        (
            "POST",
            "/desk/api/agents/nobody/presence".into(),
            Some(json!({"change": "log_in"})),
            400,
            "agent",
        ),
        (
            "GET",
            "/desk/api/metrics?hours=0".into(),
            None,
            400,
            "hours",
        ),
        (
            "POST",
            format!("/desk/api/offers/{}/accept", sid(9)),
            Some(json!({"agent": "zed"})),
            400,
            "agent",
        ),
        (
            "GET",
            "/desk/api/offers/stream?agent=zed".into(),
            None,
            400,
            "agent",
        ),
        (
            "GET",
            "/desk/api/offers?agent=a%20b".into(),
            None,
            400,
            "agent",
        ),
    ];
    for (method, path, body, want, field) in cases {
        let (status, v) = d.api(method, &path, body).await;
        assert_eq!(status, want, "{method} {path}: {v}");
        let text = v.to_string();
        assert!(
            v["field"] == field || text.contains(field),
            "{method} {path}: the error does not name {field}: {v}"
        );
    }
    // Logging out and in through the API.
    let (s, v) = d
        .api(
            "POST",
            "/desk/api/agents/agent1/presence",
            Some(json!({"change": "log_out"})),
        )
        .await;
    assert_eq!((s, v["presence"].as_str()), (200, Some("offline")));
    assert!(d.redirects().is_empty());
}

#[cfg_attr(
    callbid_no_browser,
    ignore = "needs chromium and chromedriver (/usr/bin or CHROMIUM_BIN / CHROMEDRIVER_BIN; source .ci/chromium.sh)"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_desks_in_chromium_first_click_wins_the_other_sees_it_taken() {
    let Some(first) = browser().await else { return };
    let Some(second) = browser().await else {
        return;
    };
    let (c1, c2) = (&first.c, &second.c);
    let d = Desk::start().await;
    open(c1, &format!("{}/desk?agent=agent1", d.base)).await;
    open(c2, &format!("{}/desk?agent=agent2", d.base)).await;
    wait_text(c1, "presence", "agent1 available", |t| t == "available").await;

    let call = sid(2);
    d.call_until_offered(&call).await;
    let accept = fantoccini::Locator::Css("#offers li.mine button.accept");
    for c in [c1, c2] {
        eventually(
            "the offer is shown with Accept",
            || async { text_at(c, accept).await },
            |t| t == "Accept",
        )
        .await;
    }
    wait_text(c2, "presence", "agent2 offered", |t| t == "offered").await;

    // First click in session 1, then at once in session 2.
    c1.find(accept).await.unwrap().click().await.unwrap();
    if let Ok(b) = c2.find(accept).await {
        let _ = b.click().await;
    }
    wait_text(c1, "status", "session 1 won", |t| t.starts_with("You won")).await;
    wait_text(c2, "status", "session 2 told it was taken", |t| {
        t == "Taken by agent1"
    })
    .await;
    eventually(
        "session 2's history names the winner",
        || async { text_at(c2, fantoccini::Locator::Css("#history li")).await },
        |t| t.contains("taken by agent1"),
    )
    .await;
    eventually(
        "the offer leaves both desks",
        || async {
            c2.find_all(fantoccini::Locator::Css("#offers li"))
                .await
                .map(|v| v.len())
                .unwrap_or(99)
        },
        |n| *n == 0,
    )
    .await;
    wait_text(c1, "presence", "agent1 on the call", |t| t == "on_call").await;
    assert!(
        matches!(d.state(&call).await, OfferState::Accepted { agent, .. } if agent.as_str() == "agent1")
    );
    assert_eq!(d.redirects().len(), 1, "{:?}", d.redirects());
    let _ = first.c.clone().close().await;
    let _ = second.c.clone().close().await;
}
