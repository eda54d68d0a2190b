//! REST client behaviour against a local mock server: auth, form encoding,
//! typed errors, retries and pagination.

use callbid_twilio::rest::*;
use callbid_twilio::twiml::CallProgressEvent;
use futures::TryStreamExt;
use std::time::{Duration, Instant};
use wiremock::matchers::{body_string, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request as WmRequest, ResponseTemplate};

const AC: &str = "AC0123456789abcdef0123456789abcdef";
const CA: &str = "CA0123456789abcdef0123456789abcdef";

fn calls_path() -> String {
    format!("/2010-04-01/Accounts/{AC}/Calls.json")
}

fn call_json(sid: &str, status: &str) -> serde_json::Value {
    serde_json::json!({"sid": sid, "account_sid": AC, "status": status, "to": "+15551230000", "from": "+15557650000", "direction": "outbound-api", "duration": null, "queue_time": "0"})
}

fn client(server: &MockServer) -> Client {
    Client::builder(AC)
        .auth_token("secret-token")
        .api_base_url(server.uri())
        .lookups_base_url(format!("{}/lookups-root", server.uri()))
        .retry(
            RetryConfig::default().with_backoff(Duration::from_millis(1), Duration::from_millis(5)),
        )
        .build()
        .expect("client")
}

fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[tokio::test]
async fn create_call_sends_basic_auth_and_repeated_keys() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(calls_path()))
        .and(header("authorization", basic(AC, "secret-token").as_str()))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string(
            "To=%2B15551230000&From=%2B15557650000&Url=https%3A%2F%2Fapp.example%2Fvoice&StatusCallback=https%3A%2F%2Fapp.example%2Fstatus&StatusCallbackEvent=initiated&StatusCallbackEvent=answered&Timeout=15",
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(call_json(CA, "queued")))
        .expect(1)
        .mount(&server)
        .await;
    let mut params = CreateCall::new(
        "+15551230000",
        "+15557650000",
        CallInstructions::Url("https://app.example/voice".into()),
    );
    params.status_callback = Some("https://app.example/status".into());
    params.status_callback_event = vec![CallProgressEvent::Initiated, CallProgressEvent::Answered];
    params.timeout = Some(15);
    let call = client(&server)
        .calls()
        .create(&params)
        .await
        .expect("created");
    assert_eq!(call.sid.as_deref(), Some(CA));
    assert_eq!(
        call.status,
        Some(callbid_twilio::webhook::CallStatus::Queued)
    );
    assert_eq!(call.extra.get("queue_time"), Some(&serde_json::json!("0")));
}

#[tokio::test]
async fn api_key_auth_keeps_account_in_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{AC}/Calls/{CA}.json")))
        .and(header(
            "authorization",
            basic("SK0123", "key-secret").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(call_json(CA, "in-progress")))
        .expect(1)
        .mount(&server)
        .await;
    let c = Client::builder(AC)
        .api_key("SK0123", "key-secret")
        .api_base_url(server.uri())
        .build()
        .unwrap();
    let call = c.calls().fetch(CA).await.unwrap();
    assert_eq!(
        call.status,
        Some(callbid_twilio::webhook::CallStatus::InProgress)
    );
}

#[tokio::test]
async fn twilio_error_body_is_kept() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "code": 20404, "message": "The requested resource was not found",
            "more_info": "https://www.twilio.com/docs/errors/20404", "status": 404})))
        .mount(&server)
        .await;
    let err = client(&server).calls().fetch(CA).await.unwrap_err();
    match &err {
        RestError::Api {
            operation,
            status,
            error,
        } => {
            assert_eq!(*operation, "calls.fetch");
            assert_eq!(*status, 404);
            assert_eq!(error.code, Some(20404));
            assert_eq!(
                error.more_info.as_deref(),
                Some("https://www.twilio.com/docs/errors/20404")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(err.code(), Some(20404));
    assert!(err.to_string().contains("20404"), "{err}");
}

#[tokio::test]
async fn unparseable_error_body_is_kept_raw() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>bad gateway</html>"))
        .mount(&server)
        .await;
    let err = client(&server)
        .calls()
        .update(CA, &UpdateCall::end(UpdateStatus::Completed))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RestError::Http { status: 502, body, .. } if body == "<html>bad gateway</html>"),
        "{err:?}"
    );
}

#[tokio::test]
async fn undecodable_success_body_is_kept_raw() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"sid\": 5}"))
        .mount(&server)
        .await;
    let err = client(&server).calls().fetch(CA).await.unwrap_err();
    assert!(
        matches!(&err, RestError::Decode { body, .. } if body == "{\"sid\": 5}"),
        "{err:?}"
    );
}

#[tokio::test]
async fn rate_limited_post_is_retried_after_retry_after() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(serde_json::json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(call_json(CA, "queued")))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let params = CreateCall::new(
        "+15551230000",
        "+15557650000",
        CallInstructions::Twiml("<Response/>".into()),
    );
    let call = client(&server)
        .calls()
        .create(&params)
        .await
        .expect("retried");
    assert_eq!(call.sid.as_deref(), Some(CA));
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited for Retry-After"
    );
}

#[tokio::test]
async fn unavailable_post_is_not_retried_but_get_is() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .expect(1)
        .mount(&server)
        .await;
    let params = CreateCall::new(
        "+15551230000",
        "+15557650000",
        CallInstructions::Url("https://x/v".into()),
    );
    let err = client(&server).calls().create(&params).await.unwrap_err();
    assert_eq!(err.status(), Some(503));
    assert!(err.is_transient());

    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(call_json(CA, "completed")))
        .expect(1)
        .mount(&server)
        .await;
    let call = client(&server)
        .calls()
        .fetch(CA)
        .await
        .expect("retried GET");
    assert_eq!(call.sid.as_deref(), Some(CA));
}

#[tokio::test]
async fn retries_stop_at_max_and_long_retry_after_is_not_waited() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429))
        .expect(4)
        .mount(&server)
        .await;
    let err = client(&server).calls().fetch(CA).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    server.verify().await;

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .expect(1)
        .mount(&server)
        .await;
    let started = Instant::now();
    let err = client(&server).calls().fetch(CA).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn list_follows_next_page_uri() {
    let server = MockServer::start().await;
    let second = format!("{}?PageSize=2&Page=1&PageToken=PA1", calls_path());
    Mock::given(method("GET"))
        .and(path(calls_path()))
        .and(query_param("Page", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "calls": [call_json("CA0000000000000000000000000000000c", "completed")],
            "next_page_uri": null, "page": 1, "page_size": 2})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(calls_path()))
        .and(query_param("PageSize", "2"))
        .and(query_param("Status", "completed"))
        .respond_with(move |_: &WmRequest| {
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "calls": [call_json("CA0000000000000000000000000000000a", "completed"), call_json("CA0000000000000000000000000000000b", "completed")],
                "next_page_uri": second, "page": 0, "page_size": 2}))
        })
        .expect(1)
        .mount(&server)
        .await;
    let mut filter = ListCalls::default();
    filter.page_size = Some(2);
    filter.status = Some(callbid_twilio::webhook::CallStatus::Completed);
    let calls: Vec<Call> = client(&server)
        .calls()
        .list(&filter)
        .try_collect()
        .await
        .unwrap();
    let sids: Vec<_> = calls.iter().filter_map(|c| c.sid.as_deref()).collect();
    assert_eq!(
        sids,
        [
            "CA0000000000000000000000000000000a",
            "CA0000000000000000000000000000000b",
            "CA0000000000000000000000000000000c"
        ]
    );
}

#[tokio::test]
async fn lookups_use_their_own_base_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/lookups-root/v2/PhoneNumbers/+15108675310"))
        .and(query_param("Fields", "line_type_intelligence"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "phone_number": "+15108675310", "valid": true,
            "line_type_intelligence": {"type": "mobile", "carrier_name": "T-Mobile USA, Inc.", "error_code": null}})))
        .expect(1)
        .mount(&server)
        .await;
    let r = client(&server)
        .lookups()
        .line_type("+15108675310")
        .await
        .unwrap();
    assert_eq!(
        r.line_type_intelligence
            .and_then(|l| l.line_type)
            .as_deref(),
        Some("mobile")
    );
}

#[tokio::test]
async fn bad_arguments_are_rejected_before_sending() {
    let server = MockServer::start().await;
    let c = client(&server);
    let e = c.calls().fetch("CA123/../x").await.unwrap_err().to_string();
    assert!(e.contains("CallSid") && e.contains("CA123/../x"), "{e}");
    let e = c
        .lookups()
        .line_type("+1 (555)")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("PhoneNumber"), "{e}");
    let e = c
        .available_phone_numbers("usa")
        .local(&AvailableSearch::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("CountryCode") && e.contains("usa"), "{e}");
    let e = c
        .incoming_phone_numbers()
        .delete("PN1")
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("PN1"), "{e}");
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
    let mut big = ListCalls::default();
    big.page_size = Some(1001);
    let e = c
        .calls()
        .list(&big)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("PageSize") && e.contains("1001"), "{e}");
    assert!(server
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_after_retries() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let c = Client::builder(AC)
        .auth_token("t")
        .api_base_url(format!("http://127.0.0.1:{port}"))
        .retry(
            RetryConfig::default().with_backoff(Duration::from_millis(1), Duration::from_millis(2)),
        )
        .build()
        .unwrap();
    let params = CreateCall::new(
        "+15551230000",
        "+15557650000",
        CallInstructions::Url("https://x/v".into()),
    );
    let err = c.calls().create(&params).await.unwrap_err();
    assert!(
        matches!(
            err,
            RestError::Transport {
                operation: "calls.create",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}
