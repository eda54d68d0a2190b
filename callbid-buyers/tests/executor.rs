//! The shared executor against well- and ill-behaved endpoints on 127.0.0.1.

mod common;

use std::time::Duration;

use callbid_buyers::http::{ExecutorConfig, HttpExecutor, HttpRequest, Method};
use callbid_buyers::Secret;
use callbid_core::{BuyerErrorKind, BuyerId, BuyerStep, Deadline};
use common::{misbehaving, refused, Misbehaviour};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn buyer() -> BuyerId {
    BuyerId::new("b").unwrap()
}

fn get(addr: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, url::Url::parse(addr).unwrap())
}

async fn send_for(
    ex: &HttpExecutor,
    req: &HttpRequest,
    ms: u64,
) -> (
    Result<callbid_buyers::HttpResponse, callbid_core::BuyerError>,
    Duration,
) {
    let started = std::time::Instant::now();
    let r = ex
        .send(
            &buyer(),
            BuyerStep::Ping,
            req,
            Deadline::after(Duration::from_millis(ms)),
            None,
        )
        .await;
    (r, started.elapsed())
}

#[tokio::test]
async fn capture_redacts_secrets_everywhere() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(serde_json::json!({"echo": "s3cr3t/+key"})),
        )
        .mount(&server)
        .await;
    let ex = HttpExecutor::with_config(ExecutorConfig::default().with_capture(2)).unwrap();
    let secret = Secret::new("s3cr3t/+key");
    let mut url = url::Url::parse(&format!("{}/ping", server.uri())).unwrap();
    url.query_pairs_mut().append_pair("key", secret.expose());
    let req = HttpRequest::new(Method::Post, url)
        .with_header("Authorization", "Bearer abc")
        .with_header("X-Api-Key", secret.expose())
        .with_json(&serde_json::json!({"sd_api_key": secret.expose(), "zip": "78701"}))
        .with_secret(secret.clone());
    let (r, _) = send_for(&ex, &req, 2000).await;
    assert_eq!(r.unwrap().status, 200);
    let got = server.received_requests().await.unwrap();
    assert!(
        got[0].url.as_str().contains("key=s3cr3t%2F%2Bkey"),
        "the real request carries the key"
    );
    let cap = ex.captured();
    assert_eq!(cap.len(), 1);
    let text = format!("{cap:?} {req:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!text.contains("Bearer abc"), "{text}");
    assert!(cap[0].url.contains("key=[REDACTED]"), "{}", cap[0].url);
    assert!(cap[0].request_body.contains("78701"));
    assert_eq!(cap[0].status, Some(200));
    // The ring keeps the last `capture` exchanges.
    for _ in 0..3 {
        let _ = send_for(&ex, &req, 2000).await;
    }
    assert_eq!(ex.captured().len(), 2);
}

#[tokio::test]
async fn redirects_are_returned_not_followed() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/elsewhere", server.uri()).as_str()),
        )
        .mount(&server)
        .await;
    let ex = HttpExecutor::new().unwrap();
    let (r, _) = send_for(&ex, &get(&format!("{}/ping", server.uri())), 2000).await;
    assert_eq!(r.unwrap().status, 302);
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn body_cap_stops_reading_chunked_bodies() {
    let addr = misbehaving(Misbehaviour::TenMegabytesChunked).await;
    let ex = HttpExecutor::new().unwrap();
    let (r, took) = send_for(&ex, &get(&format!("http://{addr}/")), 5000).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::BadResponse, "{e}");
    assert!(e.message.contains("exceeds the 65536-byte limit"), "{e}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn body_cap_refuses_announced_large_bodies() {
    let addr = misbehaving(Misbehaviour::TenMegabytesSized).await;
    let ex =
        HttpExecutor::with_config(ExecutorConfig::default().with_max_body_bytes(1024)).unwrap();
    let (r, _) = send_for(&ex, &get(&format!("http://{addr}/")), 5000).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::BadResponse);
    assert!(
        e.message
            .contains("10485760 bytes exceeds the 1024-byte limit"),
        "{e}"
    );
}

#[tokio::test]
async fn deadline_bounds_hangs_and_trickles() {
    let ex = HttpExecutor::new().unwrap();
    for how in [
        Misbehaviour::HangAfterHeaders,
        Misbehaviour::HangBeforeHeaders,
        Misbehaviour::Trickle,
    ] {
        let addr = misbehaving(how).await;
        let (r, took) = send_for(&ex, &get(&format!("http://{addr}/")), 400).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind, BuyerErrorKind::Timeout, "{how:?}: {e}");
        assert!(
            took >= Duration::from_millis(380) && took < Duration::from_millis(1500),
            "{how:?}: {took:?}"
        );
    }
    // A per-request timeout shorter than the deadline wins.
    let addr = misbehaving(Misbehaviour::HangBeforeHeaders).await;
    let started = std::time::Instant::now();
    let e = ex
        .send(
            &buyer(),
            BuyerStep::Ping,
            &get(&format!("http://{addr}/")),
            Deadline::after(Duration::from_secs(5)),
            Some(Duration::from_millis(150)),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_millis(1500));
    // A deadline already passed sends nothing.
    let (r, _) = send_for(&ex, &get(&format!("http://{addr}/")), 0).await;
    assert!(r
        .unwrap_err()
        .message
        .contains("before the request was sent"));
}

#[tokio::test]
async fn broken_answers_are_bad_responses_and_refusals_transport() {
    let ex = HttpExecutor::new().unwrap();
    let addr = misbehaving(Misbehaviour::CloseMidBody).await;
    let (r, _) = send_for(&ex, &get(&format!("http://{addr}/")), 2000).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::BadResponse, "{e}");
    assert!(e.message.contains("broken off"), "{e}");

    let addr = misbehaving(Misbehaviour::Garbage).await;
    let (r, _) = send_for(&ex, &get(&format!("http://{addr}/")), 2000).await;
    assert_eq!(r.unwrap_err().kind, BuyerErrorKind::BadResponse);

    let addr = refused().await;
    let (r, took) = send_for(&ex, &get(&format!("http://{addr}/")), 2000).await;
    let e = r.unwrap_err();
    assert_eq!(e.kind, BuyerErrorKind::Transport, "{e}");
    assert!(e.message.contains("connection failed"), "{e}");
    assert!(took < Duration::from_millis(1500));
}
