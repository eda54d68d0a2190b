//! The simulator against hostile TwiML: huge numbers, endless verb lists, deep
//! nesting and oversized bodies end in a clear error or a saturated clock, never
//! a panic, a hang or a stack overflow.
#![cfg(feature = "sim")]

use axum::extract::Path;
use axum::routing::post;
use axum::Router;
use callbid_twilio::sim::{CallScript, DialOutcome, SimError, SimEvent, Simulator};
use callbid_twilio::twiml::parse::{TwimlParseError, MAX_DEPTH};
use callbid_twilio::webhook::{CallStatus, DialCallStatus};
use std::time::Duration;

const TOKEN: &str = "hostile-token";
const HUGE: &str = "18446744073709551615"; // u64::MAX
const HUGER: &str = "99999999999999999999999999"; // does not fit a u64

fn huge_numbers() -> String {
    format!(
        r#"<Response><Say loop="{HUGE}">hello there</Say><Play loop="{HUGE}">https://x.example/a.mp3</Play><Pause length="{HUGE}"/><Pause length="{HUGER}"/><Gather timeout="{HUGE}"><Say loop="{HUGE}">press</Say></Gather><Dial timeout="{HUGE}" timeLimit="{HUGE}"><Number>+15550001111</Number></Dial><Hangup/></Response>"#
    )
}

fn document(name: &str) -> String {
    match name {
        "huge" => huge_numbers(),
        "record-huge" => {
            format!(r#"<Response><Record maxLength="{HUGE}" action="/doc/hangup"/></Response>"#)
        }
        "dial-huge" => format!(
            r#"<Response><Pause length="{HUGE}"/><Dial timeout="{HUGE}" action="/doc/hangup"><Number>+15550001111</Number></Dial></Response>"#
        ),
        "hangup" => "<Response><Hangup/></Response>".to_owned(),
        "many" => format!(
            "<Response>{}</Response>",
            r#"<Pause length="0"/>"#.repeat(20_000)
        ),
        "gather-many" => format!(
            "<Response><Gather>{}</Gather></Response>",
            "<Say>x</Say>".repeat(50)
        ),
        "deep" => format!(
            "<Response>{}{}</Response>",
            "<Gather>".repeat(200_000),
            "</Gather>".repeat(200_000)
        ),
        "ping" => r#"<Response><Redirect>/doc/pong</Redirect></Response>"#.to_owned(),
        "pong" => r#"<Response><Redirect method="GET">/doc/ping</Redirect></Response>"#.to_owned(),
        "big" => format!("<Response><Say>{}</Say></Response>", "a".repeat(2 << 20)),
        _ => "<Response><Hangup/></Response>".to_owned(),
    }
}

/// Serves `document(name)` at `/doc/{name}` (no signature check: the TwiML is the subject).
async fn start() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new().route(
        "/doc/{name}",
        post(|Path(name): Path<String>| async move { document(&name) })
            .get(|Path(name): Path<String>| async move { document(&name) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{addr}")
}

fn sim(base: &str, doc: &str) -> Simulator {
    Simulator::new(base, TOKEN)
        .unwrap()
        .voice_path(format!("/doc/{doc}"))
}

#[tokio::test]
async fn huge_loop_length_and_timeout_values_saturate_the_clock() {
    let base = start().await;
    let t = sim(&base, "huge")
        .run(
            CallScript::new("+15125550000", "+18005551212")
                .stay_silent()
                .dial(DialOutcome::answered(u64::MAX, u64::MAX)),
        )
        .await
        .expect("call completes");
    assert_eq!(t.status, CallStatus::Completed);
    assert_eq!(t.duration, Duration::MAX);
    let pauses: Vec<u64> = t
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            SimEvent::Pause { seconds } => Some(*seconds),
            _ => None,
        })
        .collect();
    assert_eq!(pauses, [u64::MAX, u64::MAX]);
    let dials = t.dials();
    assert_eq!(dials.len(), 1);
    assert_eq!(dials[0].1, DialCallStatus::Completed);
    assert_eq!(dials[0].2, u64::MAX);
}

#[tokio::test]
async fn huge_record_and_dial_lengths_saturate() {
    let base = start().await;
    let t = sim(&base, "record-huge")
        .run(CallScript::new("+1", "+2").record_for(u64::MAX))
        .await
        .expect("call completes");
    assert_eq!(t.duration, Duration::from_secs(u64::MAX));
    let recorded = t.events.iter().find_map(|(_, e)| match e {
        SimEvent::Record { duration, .. } => Some(*duration),
        _ => None,
    });
    assert_eq!(recorded, Some(u64::MAX));
    // The clock is already near its end when the Dial rings out.
    let t = sim(&base, "dial-huge")
        .run(CallScript::new("+1", "+2").dial(DialOutcome::NoAnswer))
        .await
        .expect("call completes");
    assert_eq!(t.dials()[0].1, DialCallStatus::NoAnswer);
    assert_eq!(t.duration, Duration::MAX);
}

#[tokio::test]
async fn endless_verb_lists_stop_at_max_steps() {
    let base = start().await;
    let err = sim(&base, "many")
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimError::TooManySteps { limit: 10_000 }),
        "{err}"
    );
    assert!(err.to_string().contains("10000"), "{err}");
    // Verbs nested in a Gather count too.
    let err = sim(&base, "gather-many")
        .max_steps(20)
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::TooManySteps { limit: 20 }), "{err}");
    // Under the limit the same document plays out.
    let t = sim(&base, "gather-many")
        .max_steps(51)
        .run(CallScript::new("+1", "+2"))
        .await
        .expect("51 verbs fit");
    assert_eq!(t.said().len(), 50);
}

#[tokio::test]
async fn deep_nesting_is_a_twiml_error_not_a_stack_overflow() {
    let base = start().await;
    let err = sim(&base, "deep")
        .max_response_bytes(8 << 20)
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    match &err {
        SimError::Twiml {
            source: TwimlParseError::TooDeep { limit, .. },
            ..
        } => assert_eq!(*limit, MAX_DEPTH),
        other => panic!("expected TooDeep, got {other}"),
    }
}

#[tokio::test]
async fn redirect_ping_pong_stops_at_max_requests() {
    let base = start().await;
    let err = sim(&base, "ping")
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimError::TooManyRequests { limit: 100 }),
        "{err}"
    );
}

#[tokio::test]
async fn oversized_twiml_bodies_are_refused() {
    let base = start().await;
    let err = sim(&base, "big")
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SimError::ResponseTooLarge { limit: 1_048_576, url } if url.ends_with("/doc/big")),
        "{err}"
    );
    let t = sim(&base, "big")
        .max_response_bytes(4 << 20)
        .run(CallScript::new("+1", "+2"))
        .await
        .expect("fits a larger cap");
    assert_eq!(t.said()[0].len(), 2 << 20);
}
