//! Outbound campaigns through the server's routes, on a SQLite file: upload (per-row
//! errors naming row and column), preview, lifecycle, pacing rounds that launch only
//! inside the callee's calling window, signed Twilio status callbacks applied once, the
//! answer TwiML, a restart that resumes without re-dialing, and two instances sharing one
//! campaign without dialing anyone twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use callbid_core::campaign::{
    CampaignStore, OutboundCall, OutboundProvider, ProviderCall, ProviderCallStatus, ProviderError,
    RateWindow,
};
use callbid_core::PhoneNumber;
use callbid_server::campaign::{self, CampaignApp, CampaignSettings};
use callbid_store::SqliteStore;
use callbid_twilio::outbound::TwilioProvider;
use callbid_twilio::signature::{RequestValidator, WebhookVerifier};
use chrono::{DateTime, Utc};
use tower::ServiceExt;

const PUBLIC: &str = "https://calls.example.com/callbid";
const TOKEN: &str = "campaign-test-auth-token";

/// Records placed calls; status callbacks are parsed by the real Twilio provider.
#[derive(Debug)]
struct Recording {
    placed: Mutex<Vec<OutboundCall>>,
    twilio: TwilioProvider,
}

impl Recording {
    fn new() -> Arc<Self> {
        let client = callbid_twilio::rest::Client::builder("AC00000000000000000000000000000000")
            .auth_token("unused")
            .api_base_url("http://127.0.0.1:9/")
            .build()
            .unwrap();
        Arc::new(Recording {
            placed: Mutex::new(Vec::new()),
            twilio: TwilioProvider::new(client),
        })
    }
    fn placed(&self) -> Vec<OutboundCall> {
        self.placed.lock().unwrap().clone()
    }
}

#[async_trait]
impl OutboundProvider for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }
    async fn place(&self, call: &OutboundCall) -> Result<ProviderCall, ProviderError> {
        let mut placed = self.placed.lock().unwrap();
        placed.push(call.clone());
        Ok(ProviderCall {
            id: format!("CA{:032}", placed.len()),
            status: ProviderCallStatus::Queued,
            answered_by: None,
            duration_secs: None,
            conversation_secs: None,
            legs: Vec::new(),
            price: None,
        })
    }
    async fn details(&self, id: &str) -> Result<ProviderCall, ProviderError> {
        Err(ProviderError::Unavailable {
            provider: "recording",
            operation: "details",
            message: format!("no details for {id}"),
        })
    }
    fn parse_status_callback(
        &self,
        fields: &[(String, String)],
    ) -> Result<ProviderCall, ProviderError> {
        self.twilio.parse_status_callback(fields)
    }
}

struct Instance {
    app: Arc<CampaignApp>,
    router: Router,
}

fn instance(store: Arc<dyn CampaignStore>, provider: Arc<Recording>) -> Instance {
    let settings = CampaignSettings::new(
        PUBLIC,
        store,
        provider,
        RateWindow::twilio(1).unwrap(),
        // Free agents: the worst-case abandon ceiling keeps ringing lines at or below
        // the free agents until answers are measured.
        10,
    )
    .caller_id(PhoneNumber::parse("+15125559000").unwrap(), 1000)
    .caller_id(PhoneNumber::parse("+12125559000").unwrap(), 1000)
    .verifier(WebhookVerifier::new(PUBLIC, TOKEN).unwrap());
    let app = CampaignApp::new(settings);
    let router = campaign::api_router(app.clone()).merge(campaign::webhook_router(app.clone()));
    Instance { app, router }
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, String) {
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn post(uri: &str, body: &str) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "text/csv")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// A Twilio-signed form POST to `path_and_query` (signed against the public URL).
fn signed(path_and_query: &str, params: &[(&str, &str)]) -> Request<Body> {
    let url = format!("{PUBLIC}{path_and_query}");
    let sig = RequestValidator::new(TOKEN).compute_signature(&url, params);
    let body: String = params
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    Request::post(path_and_query)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", sig)
        .body(Body::from(body))
        .unwrap()
}

/// 17:00 UTC on a Monday: 11:00 in Texas, 12:00 in New York, inside every window.
fn open_hour() -> DateTime<Utc> {
    "2026-12-07T17:00:00Z".parse().unwrap()
}

/// 02:30 UTC: 20:30 in Texas (open until 21:00), 21:30 in New York (closed).
fn late_evening() -> DateTime<Utc> {
    "2026-12-08T02:30:00Z".parse().unwrap()
}

const LIST: &str = "number,name\n+15125550101,Ann\n+15125550102,Bob\n+12125550103,Cy\n+12125550104,Di\n+15125550105,Ed\n";

fn store(dir: &tempfile::TempDir) -> Arc<dyn CampaignStore> {
    Arc::new(SqliteStore::open(dir.path().join("campaigns.db")).unwrap())
}

#[tokio::test]
async fn a_bad_upload_names_each_row_and_column_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let one = instance(store(&dir), Recording::new());
    let bad = "phone,name\n+15125550101,Ann\n512555,Bob\n,Cy\n+15125550101,Dup\n";
    let (st, body) = send(
        &one.router,
        post(
            "/api/campaigns?id=c1&flow=message&message=hi&number_column=phone",
            bad,
        ),
    )
    .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows: Vec<u64> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [2, 3, 4], "{body}");
    assert!(v["errors"][0]["column"] == "phone", "{body}");
    let (st, body) = send(
        &one.router,
        Request::get("/api/campaigns").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "[]"));

    // Every other kind of bad input names its field and value.
    for (uri, field) in [
        (
            "/api/campaigns?id=c1&flow=message&message=hi&number_column=tel",
            "number_column",
        ),
        ("/api/campaigns?id=c1&flow=voicemail&message=hi", "flow"),
        ("/api/campaigns?id=c1&flow=message", "message"),
        (
            "/api/campaigns?id=c1&flow=message&message=hi&mode=fast",
            "mode",
        ),
        ("/api/campaigns?id=c%20%201&flow=message&message=hi", "id"),
    ] {
        let (st, body) = send(&one.router, post(uri, LIST)).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert!(body.contains(field), "{uri}: {body}");
    }
}

#[tokio::test]
async fn a_campaign_runs_through_the_routes_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Recording::new();
    let one = instance(store(&dir), provider.clone());

    let (st, body) = send(&one.router, post("/api/campaigns/preview", LIST)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = send(
        &one.router,
        post(
            "/api/campaigns?id=dec&name=December&flow=message&message=Your%20quote%20is%20ready",
            LIST,
        ),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert!(body.contains("\"status\":\"draft\""), "{body}");

    // A draft places nothing; resuming a draft is not a thing a stopped campaign can do.
    assert!(one.app.tick_all(open_hour()).await.unwrap().is_empty());
    let (st, body) = send(&one.router, post("/api/campaigns/dec/start", "")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let (st, body) = send(&one.router, post("/api/campaigns/dec/fly", "")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");

    // Late evening: New York numbers are outside their window, Texas ones are not.
    one.app.tick_all(late_evening()).await.unwrap();
    let placed = provider.placed();
    assert!(!placed.is_empty());
    assert!(
        placed.iter().all(|c| c.to.as_str().starts_with("+1512")),
        "only Texas is open at 20:30 local: {placed:?}"
    );
    let first = placed[0].clone();
    assert!(
        first
            .status_callback
            .starts_with(&format!("{PUBLIC}/campaigns/dec/status?number=%2B1512")),
        "{}",
        first.status_callback
    );
    assert_eq!(
        first.caller_id.as_str(),
        "+15125559000",
        "a local caller ID"
    );

    // The answer TwiML plays the message.
    let answer_path = first.flow_url.strip_prefix(PUBLIC).unwrap().to_owned();
    let (st, twiml) = send(
        &one.router,
        signed(&answer_path, &[("CallSid", "CA1"), ("AccountSid", "AC1")]),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        twiml.contains("<Say>Your quote is ready</Say><Hangup />"),
        "{twiml}"
    );

    // A signed completed callback ends the attempt once; a duplicate changes nothing;
    // an unsigned one is refused.
    let status_path = first
        .status_callback
        .strip_prefix(PUBLIC)
        .unwrap()
        .to_owned();
    let done = [
        ("CallSid", "CA00000000000000000000000000000001"),
        ("AccountSid", "AC1"),
        ("CallStatus", "completed"),
        ("AnsweredBy", "human"),
        ("CallDuration", "42"),
    ];
    let (st, body) = send(&one.router, signed(&status_path, &done)).await;
    assert_eq!(
        (st, body.as_str()),
        (StatusCode::OK, r#"{"applied":"Changed"}"#)
    );
    let (st, body) = send(&one.router, signed(&status_path, &done)).await;
    assert_eq!(st, StatusCode::OK);
    assert_ne!(
        body, r#"{"applied":"Changed"}"#,
        "a duplicate is applied once"
    );
    let mut unsigned = signed(&status_path, &done);
    unsigned.headers_mut().remove("X-Twilio-Signature");
    assert_eq!(send(&one.router, unsigned).await.0, StatusCode::FORBIDDEN);
    // A callback for a number that is not a contact names the field.
    let (st, body) = send(
        &one.router,
        signed(
            "/campaigns/dec/status?number=%2B15125550199&attempt=1",
            &done,
        ),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("number"), "{body}");

    // Restart: a new instance on the same file resumes. Nobody already dialed is dialed
    // again, and the rest are called once New York opens.
    let before: HashSet<String> = provider
        .placed()
        .iter()
        .map(|c| c.to.as_str().to_owned())
        .collect();
    drop(one);
    let provider2 = Recording::new();
    let two = instance(store(&dir), provider2.clone());
    for i in 0..10 {
        let now = open_hour() + chrono::Duration::seconds(i);
        two.app.tick_all(now).await.unwrap();
    }
    let after: Vec<String> = provider2
        .placed()
        .iter()
        .map(|c| c.to.as_str().to_owned())
        .collect();
    assert!(
        after.iter().all(|n| !before.contains(n)),
        "re-dialed after the restart: before {before:?}, after {after:?}"
    );
    let all: HashSet<String> = before
        .iter()
        .cloned()
        .chain(after.iter().cloned())
        .collect();
    assert_eq!(
        all.len(),
        5,
        "every contact called once: {before:?} + {after:?}"
    );
    assert_eq!(after.len(), 5 - before.len(), "{after:?}");

    // The API shows the progress; the report has per-region rows.
    let (st, body) = send(
        &two.router,
        Request::get("/api/campaigns/dec")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("\"dialing\":4"), "{body}");
    // The first instance learned from the completed call; this one has not seen any.
    assert!(
        body.contains("\"caller_ids\":[{\"number\":\"+12125559000\""),
        "{body}"
    );
    let (st, body) = send(
        &two.router,
        Request::get("/api/campaigns/dec/report")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert!(body.contains("\"region\":\"TX\""), "{body}");

    // Pause: nothing more is placed. Stop, then resuming is refused.
    let (st, _) = send(&two.router, post("/api/campaigns/dec/pause", "")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = send(&two.router, post("/api/campaigns/dec/stop", "")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, body) = send(&two.router, post("/api/campaigns/dec/resume", "")).await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_campaign_without_dialing_anyone_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, pb) = (Recording::new(), Recording::new());
    let a = instance(store(&dir), pa.clone());
    let b = instance(store(&dir), pb.clone());
    let list: String = std::iter::once("number".to_owned())
        .chain((0..60).map(|i| format!("+1512555{:04}", 3000 + i)))
        .collect::<Vec<_>>()
        .join("\n");
    let (st, body) = send(&a.router, post("/api/campaigns?id=shared&flow=ivr", &list)).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    let (st, _) = send(&b.router, post("/api/campaigns/shared/start", "")).await;
    assert_eq!(st, StatusCode::OK);
    // Both tick at the same moments, many times over.
    for i in 0..40 {
        let now = open_hour() + chrono::Duration::seconds(i);
        let (ra, rb) = tokio::join!(a.app.tick_all(now), b.app.tick_all(now));
        ra.unwrap();
        rb.unwrap();
    }
    let mut seen = HashSet::new();
    for c in pa.placed().iter().chain(pb.placed().iter()) {
        assert!(
            seen.insert(c.to.as_str().to_owned()),
            "{} dialed twice",
            c.to
        );
    }
    assert!(
        !pa.placed().is_empty() && !pb.placed().is_empty(),
        "both instances dialed"
    );
    // The IVR flow: the answered call is redirected into the IVR under the public URL.
    let first = pa.placed()[0].clone();
    let path = first.flow_url.strip_prefix(PUBLIC).unwrap().to_owned();
    let (_, twiml) = send(
        &b.router,
        signed(&path, &[("CallSid", "CA2"), ("AccountSid", "AC1")]),
    )
    .await;
    assert!(
        twiml.contains(&format!("<Redirect>{PUBLIC}/voice</Redirect>")),
        "{twiml}"
    );
}

#[tokio::test]
async fn mounted_the_api_needs_the_operator_and_the_webhooks_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let one = instance(store(&dir), Recording::new());
    let operator = callbid_server::auth::OperatorAuth::with_token(
        "an-operator-token-of-at-least-32-characters",
    );
    let app = callbid_server::router(
        callbid_server::Mounts::new(operator).with_campaigns(one.app.clone()),
    );
    let (st, _) = send(
        &app,
        Request::get("/api/campaigns").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let (st, _) = send(
        &app,
        Request::get("/campaigns").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(
        st.is_redirection(),
        "the page sends the browser to log in: {st}"
    );
    let (st, body) = send(
        &app,
        Request::get("/api/campaigns")
            .header(
                "authorization",
                "Bearer an-operator-token-of-at-least-32-characters",
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "[]"));
    // The provider's callback needs no operator, only Twilio's signature.
    let (st, body) = send(
        &app,
        signed(
            "/campaigns/none/answer?number=%2B15125550101&attempt=1",
            &[("CallSid", "CA1")],
        ),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        body.contains("<Say>"),
        "the callee always hears something: {body}"
    );
}

/// Two uploads of one id at the same moment: exactly one is created, the other is told
/// the id exists (409), never a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_uploaded_twice_at_once_is_created_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = instance(store(&dir), Recording::new());
    let b = instance(store(&dir), Recording::new());
    for round in 0..10 {
        let uri = format!("/api/campaigns?id=twice-{round}&flow=message&message=hi");
        let (ra, rb) = tokio::join!(
            send(&a.router, post(&uri, LIST)),
            send(&b.router, post(&uri, LIST))
        );
        let mut codes = [ra.0, rb.0];
        codes.sort();
        assert_eq!(
            codes,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "{ra:?} {rb:?}"
        );
    }
}
