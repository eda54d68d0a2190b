use super::*;
use axum::body::Body;
use axum::http::Request;
use callbid_core::quality::PhraseClassifier;
use callbid_core::state::{MemoryCallLog, MemoryQualityHistory, QualitySignal, QualityStats};
use callbid_core::{Destination, Money};
use chrono::TimeZone;
use rust_decimal_macros::dec;
use tower::ServiceExt;

const TOKEN_A: &str = "token-of-buyer-a-0123456789";
const TOKEN_B: &str = "token-of-buyer-b-0123456789";

fn buyer(id: &str) -> BuyerId {
    BuyerId::new(id).unwrap()
}

async fn app() -> (Arc<QualityApp>, Arc<MemoryQualityHistory>) {
    let log = Arc::new(MemoryCallLog::new());
    let at = Utc.with_ymd_and_hms(2026, 11, 21, 15, 0, 0).unwrap();
    let call = CallId::new("CA1").unwrap();
    let events = [
        CallEventKind::Incoming {
            caller: Some("+15125550123".parse().unwrap()),
            dialed: None,
            campaign: None,
            source: None,
        },
        CallEventKind::IvrInput {
            step: "zip".into(),
            value: "78701".into(),
        },
        CallEventKind::Winner {
            buyer: buyer("a"),
            price: Money::usd(dec!(40)),
            score: dec!(20),
        },
        CallEventKind::Forwarded {
            buyer: buyer("a"),
            destination: Destination::Phone("+15125550199".parse().unwrap()),
        },
    ];
    for (i, kind) in events.into_iter().enumerate() {
        let e = CallEvent::new(call.clone(), at, format!("e{i}"), kind);
        log.append(&e).await.unwrap();
    }
    let quality = Arc::new(MemoryQualityHistory::new());
    let tokens = BuyerTokens::new([
        (buyer("a"), TOKEN_A.to_string()),
        (buyer("b"), TOKEN_B.to_string()),
    ])
    .unwrap();
    let app = Arc::new(QualityApp {
        log,
        quality: quality.clone(),
        tokens,
        classifier: PhraseClassifier::new(PhraseClassifier::default_rules()).unwrap(),
        zones: BTreeMap::new(),
        verifier: None,
    });
    (app, quality)
}

async fn post(app: &Arc<QualityApp>, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut req = Request::post("/api/conversions").header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = api_router(app.clone())
        .oneshot(req.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn transcript(app: &Arc<QualityApp>, seq: u32, text: &str) -> (StatusCode, Value) {
    let data = serde_json::to_string(&json!({"transcript": text, "confidence": 0.9})).unwrap();
    let form: String = [
        ("CallSid", "CA1".to_string()),
        ("TranscriptionSid", "GT1".to_string()),
        ("TranscriptionEvent", "transcription-content".to_string()),
        ("SequenceId", seq.to_string()),
        ("Track", "inbound_track".to_string()),
        ("Final", "true".to_string()),
        ("TranscriptionData", data),
    ]
    .iter()
    .map(|(k, v)| {
        format!(
            "{k}={}",
            percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
        )
    })
    .collect::<Vec<_>>()
    .join("&");
    let req = Request::post("/twilio/transcription")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    let res = webhook_router(app.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn overall(q: &MemoryQualityHistory) -> QualityStats {
    let k = HistoryKey {
        buyer: buyer("a"),
        area: AreaKey::Any,
        hour_of_week: None,
    };
    futures::executor::block_on(q.stats(&[k])).unwrap()[0]
}

#[tokio::test]
async fn a_postback_is_recorded_once_and_answered_the_same_twice() {
    let (app, q) = app().await;
    let body = r#"{"call_id": "CA1", "converted": true, "value": "125.50"}"#;
    let (s1, b1) = post(&app, Some(TOKEN_A), body).await;
    assert_eq!(s1, StatusCode::OK, "{b1}");
    assert_eq!(
        b1["stored"],
        json!({"signal": "postback", "converted": true})
    );
    assert_eq!(b1["changed"], json!(true));
    let (s2, b2) = post(&app, Some(TOKEN_A), body).await;
    assert_eq!(
        (s2, &b2["stored"], &b2["changed"]),
        (StatusCode::OK, &b1["stored"], &json!(false))
    );
    let st = overall(&q);
    assert_eq!((st.calls, st.converted, st.postback), (1, 1, 1));
    let events = app.log.events(&CallId::new("CA1").unwrap()).await.unwrap();
    let conv: Vec<_> = events
        .iter()
        .filter(|e| e.kind.type_name() == "conversion")
        .collect();
    assert_eq!(conv.len(), 1);
    assert!(
        matches!(&conv[0].kind, CallEventKind::Conversion { value: Some(v), .. } if v.amount == dec!(125.50))
    );
    // A contradicting postback leaves the stored conversion and says so.
    let (s3, b3) = post(
        &app,
        Some(TOKEN_A),
        r#"{"call_id": "CA1", "converted": false}"#,
    )
    .await;
    assert_eq!(s3, StatusCode::CONFLICT);
    assert_eq!(b3["stored"]["converted"], json!(true));
}

#[tokio::test]
async fn postbacks_are_authenticated_and_only_the_winner_may_post() {
    let (app, _) = app().await;
    let body = r#"{"call_id": "CA1", "converted": true}"#;
    assert_eq!(post(&app, None, body).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post(&app, Some("nope"), body).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post(&app, Some(TOKEN_B), body).await.0,
        StatusCode::FORBIDDEN
    );
    let unknown = r#"{"call_id": "CA9", "converted": true}"#;
    assert_eq!(
        post(&app, Some(TOKEN_A), unknown).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_postbacks_name_the_field_and_the_value() {
    let (app, _) = app().await;
    let cases = [
        (r#"{"call_id": "CA1"}"#, "converted", ""),
        (
            r#"{"call_id": "CA1", "converted": "yes"}"#,
            "converted",
            "\"yes\"",
        ),
        (r#"{"converted": true}"#, "call_id", ""),
        (
            r#"{"call_id": "CA1", "converted": true, "value": 12.5}"#,
            "value",
            "12.5",
        ),
        (
            r#"{"call_id": "CA1", "converted": true, "value": "abc"}"#,
            "value",
            "abc",
        ),
        (
            r#"{"call_id": "CA1", "converted": true, "value": "-1"}"#,
            "value",
            "-1",
        ),
        (
            r#"{"call_id": "CA1", "converted": true, "currency": "dollars"}"#,
            "currency",
            "dollars",
        ),
        ("not json", "body", "not json"),
    ];
    for (body, field, value) in cases {
        let (s, b) = post(&app, Some(TOKEN_A), body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
        assert_eq!(b["error"]["field"], json!(field), "{body}: {b}");
        assert_eq!(b["error"]["value"], json!(value), "{body}: {b}");
    }
}

#[tokio::test]
async fn transcripts_are_classified_logged_and_a_postback_overrides_them() {
    let (app, q) = app().await;
    // Out of order and twice: fragment 2 (junk) before fragment 1 (converted).
    let (s, b) = transcript(&app, 2, "oh sorry, wrong number").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["class"], json!("junk"));
    transcript(&app, 1, "Great, you're booked for Tuesday").await;
    transcript(&app, 1, "Great, you're booked for Tuesday").await;
    let (_, b) = transcript(&app, 3, "thanks, bye").await;
    assert_eq!(b["class"], Value::Null);
    let st = overall(&q);
    assert_eq!((st.calls, st.converted, st.transcript), (1, 1, 1));
    let events = app.log.events(&CallId::new("CA1").unwrap()).await.unwrap();
    let n = events
        .iter()
        .filter(|e| e.kind.type_name() == "transcript")
        .count();
    assert_eq!(n, 3, "one event per fragment, the retry deduplicated");
    // The buyer's word beats the transcript.
    let (s, _) = post(
        &app,
        Some(TOKEN_A),
        r#"{"call_id": "CA1", "converted": false}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let st = overall(&q);
    assert_eq!(
        (st.calls, st.converted, st.postback, st.transcript),
        (1, 0, 1, 0)
    );
    let o = q
        .outcome(&CallId::new("CA1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(o.signal, QualitySignal::Postback);
}

#[test]
fn the_transcription_noun_carries_the_callback() {
    let xml = callbid_twilio::twiml::VoiceResponse::new()
        .start(transcription_start(
            "https://ivr.example.com/twilio/transcription",
        ))
        .to_xml();
    assert!(
        xml.contains(r#"<Start><Transcription statusCallbackUrl="https://ivr.example.com/twilio/transcription" /></Start>"#),
        "{xml}"
    );
}
