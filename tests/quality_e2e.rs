//! Issue 12, item 1 end to end: a call through the IVR with real-time transcription on
//! (`<Start><Transcription>` before the `<Dial>`), then Twilio's signed transcription
//! callbacks (twice, out of order, one forged) and the winner's conversion postback over
//! real HTTP on 127.0.0.1; the call log and the quality history hold the result, and the
//! winning buyer's next score carries the quality factor.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use callbid::core::auction::Strategy;
use callbid::core::inprocess::InProcessBuyer;
use callbid::core::quality::PhraseClassifier;
use callbid::core::state::{
    AreaKey, CallLog, HistoryKey, MemoryCallLog, MemoryCapStore, MemoryDurationHistory,
    MemoryQualityHistory, MemoryRoutingStore, QualityHistory, QualitySignal,
};
use callbid::core::{BuyerEntry, BuyerId, CallId, Destination, Money};
use callbid_server::auth::OperatorAuth;
use callbid_server::ivr::{App, Stores};
use callbid_server::quality::{BuyerTokens, QualityApp};
use callbid_server::{settle, Mounts};
use callbid_twilio::signature::{RequestValidator, WebhookVerifier, SIGNATURE_HEADER};
use callbid_twilio::sim::{CallScript, DialOutcome, SimEvent, Simulator};
use rust_decimal::Decimal;
use serde_json::{json, Value};

mod common;

const TOKEN: &str = "e2e-test-auth-token";
const ACME_TOKEN: &str = "acme-postback-token-0123456789";
const SID: &str = "CA00000000000000000000000000000012";

fn buyer(id: &str, cents: i64, dest: &str) -> BuyerEntry {
    let b = InProcessBuyer::new(
        BuyerId::new(id).unwrap(),
        Money::usd(Decimal::new(cents, 2)),
        Destination::parse(dest).unwrap(),
    )
    .with_min_duration(Duration::from_secs(60));
    BuyerEntry::new(Arc::new(b))
}

async fn signed_post(base: &str, path: &str, params: &[(&str, &str)], token: &str) -> (u16, Value) {
    let url = format!("{base}{path}");
    let sig = RequestValidator::new(token).compute_signature(&url, params);
    let res = reqwest::Client::new()
        .post(&url)
        .header(SIGNATURE_HEADER, sig)
        .form(params)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn fragment(base: &str, seq: &str, text: &str, token: &str) -> (u16, Value) {
    let data = json!({"transcript": text, "confidence": 0.93}).to_string();
    let params = [
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("CallSid", SID),
        ("TranscriptionSid", "GT00000000000000000000000000000001"),
        ("TranscriptionEvent", "transcription-content"),
        ("SequenceId", seq),
        ("Track", "inbound_track"),
        ("Final", "true"),
        ("TranscriptionData", data.as_str()),
    ];
    signed_post(base, "/twilio/transcription", &params, token).await
}

#[tokio::test]
async fn transcripts_and_postbacks_feed_the_quality_history() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(MemoryCallLog::new());
    let history = Arc::new(MemoryDurationHistory::new());
    let quality = Arc::new(MemoryQualityHistory::new());
    let stores = Stores {
        log: log.clone(),
        caps: Arc::new(MemoryCapStore::new()),
        history: history.clone(),
        routing: Arc::new(MemoryRoutingStore::new()),
        agents: None,
        pools: None,
    };
    let entries = vec![
        buyer("acme", 4200, "+15125550199"),
        buyer("beta", 3000, "+15125550188"),
    ];
    let auction = settle::build_auction(
        entries,
        history,
        Strategy::HighestBid,
        Duration::from_millis(1500),
    )
    .unwrap();
    let verifier = WebhookVerifier::new(&base, TOKEN).unwrap();
    let cfg = common::ivr::ivr_config(&base, "1=Plumbing,2=Roofing", "message", None);
    let app = App::new(cfg, stores, auction, Some(verifier.clone()));
    app.transcribe(true);
    let tokens =
        BuyerTokens::new([(BuyerId::new("acme").unwrap(), ACME_TOKEN.to_owned())]).unwrap();
    let q = Arc::new(QualityApp {
        log: app.stores.log.clone(),
        quality: quality.clone(),
        tokens,
        classifier: PhraseClassifier::new(PhraseClassifier::default_rules()).unwrap(),
        zones: BTreeMap::new(),
        verifier: Some(verifier),
    });
    let router = callbid_server::router(
        Mounts::new(OperatorAuth::open())
            .with_ivr(app.clone())
            .with_quality(q),
    );
    let server = tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path("/voice")
        .status_callback("/ivr/status");
    let script = CallScript::new("+15125550123", "+18005550100")
        .call_sid(SID)
        .press("78701")
        .press("1")
        .dial(DialOutcome::answered(2, 90));
    let t = sim.run(script).await.unwrap();
    assert!(
        t.events
            .iter()
            .any(|(_, e)| matches!(e, SimEvent::Unsupported { verb } if verb == "Start")),
        "the <Dial> is preceded by <Start><Transcription>: {t:#?}"
    );

    // Fragment 2 (junk) before fragment 1 (converted), fragment 1 twice, one forged.
    let (s, b) = fragment(&base, "2", "Sorry, wrong number.", TOKEN).await;
    assert_eq!((s, &b["class"]), (200, &json!("junk")), "{b}");
    assert_eq!(
        fragment(&base, "1", "I'd like to book an appointment", TOKEN)
            .await
            .0,
        200
    );
    assert_eq!(
        fragment(&base, "1", "I'd like to book an appointment", TOKEN)
            .await
            .0,
        200
    );
    assert_eq!(
        fragment(&base, "3", "appointment", "forged-token").await.0,
        403
    );
    let call = CallId::new(SID).unwrap();
    let o = quality.outcome(&call).await.unwrap().unwrap();
    assert_eq!((o.signal, o.converted), (QualitySignal::Transcript, true));
    let events = log.events(&call).await.unwrap();
    let fragments = events
        .iter()
        .filter(|e| e.kind.type_name() == "transcript")
        .count();
    assert_eq!(
        fragments, 2,
        "one event per fragment; the retry and the forgery are not"
    );

    // The winner's postback overrides the transcript; the loser may not post.
    let post = |token: &'static str, body: Value| {
        let url = format!("{base}/api/conversions");
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                res.status().as_u16(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let body = json!({"call_id": SID, "converted": false});
    let (s, b) = post(ACME_TOKEN, body.clone()).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["stored"],
        json!({"signal": "postback", "converted": false})
    );
    assert_eq!(
        post(ACME_TOKEN, body.clone()).await.1["changed"],
        json!(false)
    );
    assert_eq!(post("not-a-token", body).await.0, 401);
    let overall = HistoryKey {
        buyer: BuyerId::new("acme").unwrap(),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    let st = quality.stats(&[overall]).await.unwrap()[0];
    assert_eq!(
        (st.calls, st.converted, st.postback, st.transcript),
        (1, 0, 1, 0)
    );
    server.abort();
}
