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
    for bad in ["+", "", "+0", "15108675310", "+1510867531x"] {
        let e = c.lookups().line_type(bad).await.unwrap_err();
        assert!(
            matches!(&e, RestError::InvalidArgument { field: "PhoneNumber", value, .. } if value == bad),
            "{bad}: {e}"
        );
        assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
    }
    let e = c
        .incoming_phone_numbers()
        .create(&IncomingPhoneNumberParams::buy(
            "5108675310",
            "https://app.example/voice",
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PhoneNumber") && e.contains("`5108675310`"),
        "{e}"
    );
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

/// A page whose `next_page_uri` leaves the API host is refused with a typed
/// error; the other host never sees a request (nor the credentials).
#[tokio::test]
async fn next_page_uri_off_the_api_host_is_refused() {
    let server = MockServer::start().await;
    let foreign = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "calls": [], "next_page_uri": null})))
        .mount(&foreign)
        .await;
    let api = url::Url::parse(&server.uri()).unwrap();
    let foreign_port = url::Url::parse(&foreign.uri()).unwrap().port().unwrap();
    let api_port = api.port().unwrap();
    let page = format!("{}?Page=1&PageToken=PA1", calls_path());
    let cases = [
        // Absolute URL to another server.
        format!("{}{page}", foreign.uri()),
        // Scheme-relative, same IP, another port.
        format!("//127.0.0.1:{foreign_port}{page}"),
        // Scheme-relative to another host name.
        format!("//evil.example{page}"),
        // Same host and port, another scheme.
        format!("https://127.0.0.1:{api_port}{page}"),
        // Another host hidden behind user information.
        format!("http://127.0.0.1:{api_port}@127.0.0.1:{foreign_port}{page}"),
        // The API host itself, but with user information.
        format!("http://user:pw@127.0.0.1:{api_port}{page}"),
    ];
    for next in cases {
        server.reset().await;
        let next_for_mock = next.clone();
        Mock::given(method("GET"))
            .and(path(calls_path()))
            .respond_with(move |_: &WmRequest| {
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "calls": [call_json(CA, "completed")],
                    "next_page_uri": next_for_mock, "page": 0, "page_size": 1}))
            })
            .expect(1)
            .mount(&server)
            .await;
        let mut stream = client(&server).calls().list(&ListCalls::default());
        let first = stream.try_next().await.unwrap().expect("first page's item");
        assert_eq!(first.sid.as_deref(), Some(CA));
        let err = stream.try_next().await.unwrap_err();
        match &err {
            RestError::UntrustedNextPage {
                operation,
                next_page_uri,
                ..
            } => {
                assert_eq!(*operation, "calls.list");
                assert_eq!(next_page_uri, &next);
            }
            other => panic!("{next}: expected UntrustedNextPage, got {other:?}"),
        }
        assert!(err.to_string().contains(&next), "{err}");
        assert!(
            stream.try_next().await.unwrap().is_none(),
            "{next}: stream ends"
        );
        server.verify().await;
    }
    assert!(
        foreign
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "the foreign host was contacted"
    );
}

/// A relative `next_page_uri`, or an absolute one naming the API host itself, is followed.
#[tokio::test]
async fn next_page_uri_on_the_api_host_is_followed() {
    let server = MockServer::start().await;
    let absolute_same_host = format!("{}{}?Page=1", server.uri(), calls_path());
    Mock::given(method("GET"))
        .and(path(calls_path()))
        .and(query_param("Page", "1"))
        .and(header("authorization", basic(AC, "secret-token").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "calls": [call_json("CA0000000000000000000000000000000b", "completed")],
            "next_page_uri": null})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(calls_path()))
        .and(query_param("PageSize", "1"))
        .respond_with(move |_: &WmRequest| {
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "calls": [call_json("CA0000000000000000000000000000000a", "completed")],
                "next_page_uri": absolute_same_host}))
        })
        .expect(1)
        .mount(&server)
        .await;
    let mut filter = ListCalls::default();
    filter.page_size = Some(1);
    let calls: Vec<Call> = client(&server)
        .calls()
        .list(&filter)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(calls.len(), 2);
}

fn capped_client(server_uri: &str, limit: usize) -> Client {
    Client::builder(AC)
        .auth_token("secret-token")
        .api_base_url(server_uri)
        .retry(RetryConfig::none())
        .max_response_bytes(limit)
        .build()
        .expect("client")
}

/// Bodies over the cap fail with a typed error naming the limit, whether the
/// status is a success or an error.
#[tokio::test]
async fn oversized_response_bodies_are_refused() {
    let server = MockServer::start().await;
    let fetch_path = format!("/2010-04-01/Accounts/{AC}/Calls/{CA}.json");
    // Valid JSON, 2 MiB of it: only the size is wrong.
    let padding = "x".repeat(2 << 20);
    let big = serde_json::json!({"sid": CA, "status": "completed", "pad": padding}).to_string();
    Mock::given(method("GET"))
        .and(path(fetch_path.clone()))
        .respond_with(ResponseTemplate::new(200).set_body_string(big.clone()))
        .mount(&server)
        .await;
    let err = capped_client(&server.uri(), 1 << 20)
        .calls()
        .fetch(CA)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RestError::ResponseTooLarge {
                operation: "calls.fetch",
                status: 200,
                limit: 1_048_576
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("1048576"), "{err}");
    // The same body fits the default cap (a full page of 1,000 calls is about 2 MB).
    let call = client(&server).calls().fetch(CA).await.unwrap();
    assert_eq!(call.sid.as_deref(), Some(CA));
    // Exactly at the limit is fine; one byte over is not.
    let exact = big.len();
    assert!(capped_client(&server.uri(), exact)
        .calls()
        .fetch(CA)
        .await
        .is_ok());
    let err = capped_client(&server.uri(), exact - 1)
        .calls()
        .fetch(CA)
        .await
        .unwrap_err();
    assert!(matches!(err, RestError::ResponseTooLarge { .. }), "{err:?}");
    // An error status with a huge body is capped as well.
    server.reset().await;
    Mock::given(method("GET"))
        .and(path(fetch_path))
        .respond_with(ResponseTemplate::new(500).set_body_string("e".repeat(2 << 20)))
        .mount(&server)
        .await;
    let err = capped_client(&server.uri(), 64 * 1024)
        .calls()
        .fetch(CA)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RestError::ResponseTooLarge {
                status: 500,
                limit: 65_536,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(500));
}

/// A chunked body with no `Content-Length` that never ends is cut off at the
/// cap instead of being buffered.
#[tokio::test]
async fn endless_chunked_body_stops_at_the_cap() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let sent_by_server = sent.clone();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let _ = sock.read(&mut buf).await;
        let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
        if sock.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, " ".repeat(16 * 1024));
        // Up to 256 MiB, far more than the client may keep.
        for _ in 0..16 * 1024 {
            if sock.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
            sent_by_server.fetch_add(16 * 1024, std::sync::atomic::Ordering::Relaxed);
        }
    });
    let started = Instant::now();
    let err = capped_client(&format!("http://{addr}"), 256 * 1024)
        .calls()
        .fetch(CA)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RestError::ResponseTooLarge { limit: 262_144, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    // The client stopped reading long before the server ran out of body.
    assert!(
        sent.load(std::sync::atomic::Ordering::Relaxed) < 64 << 20,
        "sent {}",
        sent.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[tokio::test]
async fn zero_response_cap_is_a_config_error() {
    let e = Client::builder(AC)
        .auth_token("t")
        .max_response_bytes(0)
        .build()
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_response_bytes") && e.contains("`0`"), "{e}");
}

/// The default client does not follow redirects: a 3xx is an error, and the
/// Location's host never sees the request or the credentials.
#[tokio::test]
async fn redirects_are_not_followed() {
    let server = MockServer::start().await;
    let foreign = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(call_json(CA, "queued")))
        .mount(&foreign)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/2010-04-01/Accounts/{AC}/Calls/{CA}.json")))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", format!("{}/x", foreign.uri())),
        )
        .expect(1)
        .mount(&server)
        .await;
    let err = client(&server).calls().fetch(CA).await.unwrap_err();
    assert_eq!(err.status(), Some(302), "{err:?}");
    assert!(foreign
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}
