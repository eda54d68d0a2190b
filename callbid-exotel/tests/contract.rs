//! Contract tests against a local mock that serves the response shapes of the seed and
//! Exotel's documentation, and checks the documented request forms.
use std::time::Duration;

use callbid_core::campaign::{OutboundCall, OutboundProvider, ProviderCallStatus, ProviderError};
use callbid_core::{Currency, PhoneNumber};
use callbid_exotel::{ConnectToFlow, ExotelClient, ExotelError, ExotelProvider};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CONNECT_ANSWER: &str = r#"{"Call": {"Sid": "80bfbec2d78bbbf10fb851f4fa165211", "ParentCallSid": null,
  "DateCreated": "2017-03-03 12:30:24", "DateUpdated": "2017-03-03 12:30:27", "AccountSid": "Exotel",
  "To": "0XXXXX40682", "From": "0XXXXX30240", "PhoneNumberSid": "0XXXXXX4890", "Status": "in-progress",
  "StartTime": "2017-03-03 12:30:27", "EndTime": null, "Duration": null, "Price": null,
  "Direction": "outbound-api", "AnsweredBy": null, "ForwardedFrom": null, "CallerName": null,
  "Uri": "/v1/Accounts/Exotel/Calls.json/80bfbec2d78bbbf10fb851f4fa165211", "RecordingUrl": null}}"#;

const DETAILS_ANSWER: &str = r#"{"Call": {"Sid": "b6cfaf5f5cef3ca0fc937749ef96d245", "Status": "completed",
  "Duration": "17", "Price": "1.500", "AnsweredBy": "human", "Direction": "outbound-api",
  "Details": {"ConversationDuration": 8, "Leg1Status": "completed", "Leg2Status": "completed",
    "Legs": [{"Leg": {"Id": "1", "OnCallDuration": 21}}, {"Leg": {"Id": "2", "OnCallDuration": 8}}]}}}"#;

fn n(s: &str) -> PhoneNumber {
    PhoneNumber::parse(s).unwrap()
}

async fn client(server: &MockServer, prefix: &str) -> ExotelClient {
    ExotelClient::builder("acme", "key1", "tok1")
        .base_url(format!("{}{prefix}", server.uri()))
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn connect_sends_the_documented_form_with_basic_auth() {
    let server = MockServer::start().await;
    // Basic base64("key1:tok1").
    Mock::given(method("POST"))
        .and(path("/proxy/v1/Accounts/acme/Calls/connect.json"))
        .and(header("authorization", "Basic a2V5MTp0b2sx"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("From=%2B919812345678"))
        .and(body_string_contains("CallerId=%2B918039591234"))
        .and(body_string_contains(
            "Url=http%3A%2F%2Fmy.exotel.com%2Facme%2Fexoml%2Fstart_voice%2F926",
        ))
        .and(body_string_contains("CallType=trans"))
        .and(body_string_contains("TimeLimit=600"))
        .and(body_string_contains("StatusCallbackEvents%5B0%5D=terminal"))
        .respond_with(ResponseTemplate::new(200).set_body_string(CONNECT_ANSWER))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(&server, "/proxy").await;
    let req = ConnectToFlow::new(
        n("+919812345678"),
        n("+918039591234"),
        "http://my.exotel.com/acme/exoml/start_voice/926",
    )
    .status_callback("https://cb.example.com/exotel")
    .time_limit(600)
    .unwrap();
    let call = c.connect_to_flow(&req).await.unwrap();
    assert_eq!(call.sid, "80bfbec2d78bbbf10fb851f4fa165211");
    assert_eq!(call.status.as_deref(), Some("in-progress"));
}

#[tokio::test]
async fn details_and_metadata_parse_the_documented_shapes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/Accounts/acme/Calls/b6cf.json"))
        .and(query_param("details", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_string(DETAILS_ANSWER))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/Accounts/acme/Numbers/+919812345678.json"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"Numbers": {"PhoneNumber": "09812345678", "Circle": "KA", "CircleName": "Karnataka Telecom Circle", "Type": "Mobile", "Operator": "A", "OperatorName": "Airtel", "DND": "No"}}"#,
        ))
        .mount(&server)
        .await;
    let c = client(&server, "").await;
    let provider = ExotelProvider::new(c.clone(), Currency::parse("INR").unwrap());
    let call = provider.details("b6cf").await.unwrap();
    assert_eq!(call.status, ProviderCallStatus::Completed);
    assert_eq!(call.conversation_secs, Some(8));
    assert_eq!(call.legs.len(), 2);
    assert_eq!(call.legs[0].seconds, 21);
    assert_eq!(call.price.unwrap().amount.to_string(), "1.500");
    let meta = c.number_metadata(&n("+919812345678")).await.unwrap();
    assert_eq!(meta.circle.as_deref(), Some("KA"));
    assert!(!meta.is_dnd());
}

#[tokio::test]
async fn rate_limits_and_errors_keep_retry_after_and_body() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/Accounts/acme/Calls/connect.json"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_string(
                    r#"{"RestException": {"Status": 429, "Message": "Too many requests"}}"#,
                ),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/Accounts/acme/Calls/connect.json"))
        .respond_with(ResponseTemplate::new(400).set_body_string(
            r#"{"RestException": {"Status": 400, "Message": "CallerId is not a valid ExoPhone", "Code": 34002}}"#,
        ))
        .mount(&server)
        .await;
    let provider = ExotelProvider::new(client(&server, "").await, Currency::parse("INR").unwrap());
    let call = OutboundCall {
        to: n("+919812345678"),
        caller_id: n("+918039591234"),
        flow_url: "http://my.exotel.com/acme/exoml/start_voice/1".into(),
        status_callback: "https://cb.example.com/exotel".into(),
        ring_timeout_secs: 30,
        time_limit_secs: Some(900),
        machine_detection: false,
        tag: "c1:1".into(),
    };
    match provider.place(&call).await {
        Err(ProviderError::RateLimited {
            retry_after_secs, ..
        }) => assert_eq!(retry_after_secs, Some(30)),
        other => panic!("{other:?}"),
    }
    match provider.place(&call).await {
        Err(ProviderError::Refused {
            status, message, ..
        }) => {
            assert_eq!(status, 400);
            assert!(
                message.contains("CallerId is not a valid ExoPhone"),
                "{message}"
            );
            assert!(message.contains("34002"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A 2xx that is not JSON keeps its body.
    let server2 = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<TwilioResponse/>"))
        .mount(&server2)
        .await;
    let e = client(&server2, "")
        .await
        .call_details("x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ExotelError::Decode { body, .. } if body.contains("TwilioResponse")),
        "{e}"
    );
    // A too-long TimeLimit is refused before anything is sent.
    let mut long = call.clone();
    long.time_limit_secs = Some(20_000);
    assert!(matches!(
        provider.place(&long).await,
        Err(ProviderError::Refused { .. })
    ));
}

#[test]
fn status_callbacks_normalise() {
    let provider = ExotelProvider::new(
        ExotelClient::builder("a", "k", "t").build().unwrap(),
        Currency::parse("INR").unwrap(),
    );
    let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let c = provider
        .parse_status_callback(&f(&[("CallSid", "x"), ("Status", "no-answer")]))
        .unwrap();
    assert_eq!(c.status, ProviderCallStatus::NoAnswer);
    assert!(c.outcome().is_some());
    assert!(provider
        .parse_status_callback(&f(&[("CallSid", "x"), ("Status", "weird")]))
        .is_err());
    assert!(provider
        .parse_status_callback(&f(&[("Status", "busy")]))
        .is_err());
}
