//! Webhooks that arrive late, twice, out of order, without optional fields or with bytes
//! that are not UTF-8, posted as `curl` would (`--insecure-skip-signature`): the result
//! does not depend on it, bad input is a `400` naming the field and the value, and no
//! acknowledged callback is lost.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use callbid_core::auction::Strategy;
use callbid_core::billing::PayoutRule;
use callbid_core::inprocess::InProcessBuyer;
use callbid_core::state::{
    CallEvent, CallLog, CallRecord, CallStatus, MemoryCallLog, MemoryCapStore,
    MemoryDurationHistory, MemoryRoutingStore,
};
use callbid_core::{BuyerEntry, BuyerId, CallId, Capabilities, Destination, Money};
use callbid_server::ivr::fallback::{FallbackChain, DEFAULT_MESSAGE};
use callbid_server::ivr::menu::{Campaigns, Menu};
use callbid_server::ivr::{self, App, IvrConfig, Stores};
use callbid_server::settle::build_auction;
use rust_decimal::Decimal;
use tower::ServiceExt;

const BASE: &str = "http://127.0.0.1:3000";
const FROM: &str = "From=%2B15125550123&To=%2B18005550100";

struct Server {
    app: Arc<App>,
    log: Arc<MemoryCallLog>,
}

impl Server {
    /// One buyer (`acme`, $42, needs caller id when `needs_caller_id`), fallback
    /// `voicemail,message`.
    fn new(needs_caller_id: bool) -> Server {
        let log = Arc::new(MemoryCallLog::new());
        let history = Arc::new(MemoryDurationHistory::new());
        let stores = Stores {
            log: log.clone(),
            caps: Arc::new(MemoryCapStore::new()),
            history: history.clone(),
            routing: Arc::new(MemoryRoutingStore::new()),
            agents: None,
            pools: None,
        };
        let buyer = InProcessBuyer::new(
            BuyerId::new("acme").unwrap(),
            Money::usd(Decimal::new(4200, 2)),
            Destination::parse("+15125550199").unwrap(),
        )
        .with_min_duration(Duration::from_secs(60))
        .with_capabilities(Capabilities::default().with_needs_caller_id(needs_caller_id));
        let auction = build_auction(
            vec![BuyerEntry::new(Arc::new(buyer))],
            history,
            Strategy::HighestScore,
            Duration::from_millis(1500),
        )
        .unwrap();
        let config = IvrConfig {
            public_url: BASE.to_owned(),
            menu: Menu::parse("1=Plumbing,2=Roofing").unwrap(),
            campaigns: Campaigns::demo(),
            fallback: FallbackChain::parse(
                "voicemail,message",
                None,
                DEFAULT_MESSAGE,
                &format!("{BASE}/ivr/fallback"),
            )
            .unwrap(),
            payout: PayoutRule::PercentOfRevenue(Decimal::from(70)),
            dial_timeout: 25,
            record: false,
            greeting: "Hello.".to_owned(),
            log_calls: false,
        };
        let app = App::new(config, stores, auction, None);
        Server { app, log }
    }

    async fn post(&self, path: &str, body: impl Into<Vec<u8>>) -> (StatusCode, String) {
        let res = ivr::router(self.app.clone())
            .oneshot(
                Request::post(path)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(body.into()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn record(&self, sid: &str) -> Option<CallRecord> {
        self.log.record(&CallId::new(sid).unwrap()).await.unwrap()
    }

    async fn events(&self, sid: &str) -> Vec<CallEvent> {
        self.log.events(&CallId::new(sid).unwrap()).await.unwrap()
    }

    /// `/voice`, ZIP 78701 and menu 1: the call is forwarded to acme.
    async fn forwarded(&self, sid: &str) {
        let (st, twiml) = self.post("/voice", format!("CallSid={sid}&{FROM}")).await;
        assert_eq!(st, StatusCode::OK, "{twiml}");
        let (st, twiml) = self
            .post(
                "/ivr/service?zip=78701&attempt=1",
                format!("CallSid={sid}&{FROM}&Digits=1"),
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert!(twiml.contains("<Dial"), "{twiml}");
    }

    async fn dial_result(&self, sid: &str, fields: &str) -> String {
        let (st, twiml) = self
            .post("/ivr/dial-result", format!("CallSid={sid}&{FROM}&{fields}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{twiml}");
        twiml
    }

    async fn status(&self, sid: &str, fields: &str) -> StatusCode {
        self.post("/ivr/status", format!("CallSid={sid}&{FROM}&{fields}"))
            .await
            .0
    }
}

/// The call's record and its event keys, to compare before and after a late webhook.
async fn snapshot(s: &Server, sid: &str) -> (CallRecord, Vec<String>) {
    let r = s.record(sid).await.expect("call logged");
    let keys = s
        .events(sid)
        .await
        .into_iter()
        .map(|e| e.idempotency_key)
        .collect();
    (r, keys)
}

fn hangs_up_silently(twiml: &str) {
    assert!(twiml.contains("<Hangup"), "{twiml}");
    for verb in ["<Record", "<Dial", "<Gather", "<Say"] {
        assert!(
            !twiml.contains(verb),
            "late webhook answered {verb}: {twiml}"
        );
    }
}

/// Issue's repro: a completed, billed call gets a late `busy` dial result. Also every
/// other late step: a conflicting dial result before the status callback, a repeat of
/// the same result, and the fallback steps after the end.
#[tokio::test]
async fn a_late_dial_result_never_reopens_a_finished_call() {
    let s = Server::new(false);
    s.forwarded("CA600").await;
    let twiml = s
        .dial_result("CA600", "DialCallStatus=completed&DialCallDuration=300")
        .await;
    assert!(twiml.contains("Goodbye"), "{twiml}");
    // A conflicting result before the status callback: the first result stands.
    let twiml = s.dial_result("CA600", "DialCallStatus=busy").await;
    hangs_up_silently(&twiml);
    let before = snapshot(&s, "CA600").await;
    assert_eq!(before.0.status, CallStatus::Completed);
    assert_eq!(before.0.billable, Some(true));
    assert_eq!(before.0.fallback, None);
    assert_eq!(
        s.status("CA600", "CallStatus=completed&CallDuration=310")
            .await,
        StatusCode::NO_CONTENT
    );
    let ended = snapshot(&s, "CA600").await;
    for late in [
        "DialCallStatus=busy",
        "DialCallStatus=no-answer",
        "DialCallStatus=completed&DialCallDuration=999",
        "",
    ] {
        let twiml = s.dial_result("CA600", late).await;
        hangs_up_silently(&twiml);
        assert_eq!(snapshot(&s, "CA600").await, ended, "after {late:?}");
    }
    for step in [
        "/ivr/fallback/voicemail?step=0",
        "/ivr/fallback/next?step=0",
    ] {
        let (st, twiml) = s
            .post(step, format!("CallSid=CA600&{FROM}&DialCallStatus=busy"))
            .await;
        assert_eq!(st, StatusCode::OK);
        hangs_up_silently(&twiml);
        assert_eq!(snapshot(&s, "CA600").await, ended, "after {step}");
    }
    for gather in ["/ivr/zip?attempt=1", "/ivr/service?zip=78701&attempt=2"] {
        let (st, twiml) = s
            .post(gather, format!("CallSid=CA600&{FROM}&Digits=78701"))
            .await;
        assert_eq!(st, StatusCode::OK);
        hangs_up_silently(&twiml);
        assert_eq!(snapshot(&s, "CA600").await, ended, "after {gather}");
    }
}

/// A missed dial followed by a conflicting `completed`: the first result (missed, then
/// the fallback chain) stands; a retry of the first one answers the same TwiML.
#[tokio::test]
async fn the_first_dial_result_stands_and_its_retry_answers_the_same() {
    let s = Server::new(false);
    s.forwarded("CA601").await;
    let first = s.dial_result("CA601", "DialCallStatus=busy").await;
    assert!(first.contains("<Record"), "voicemail: {first}");
    let retry = s.dial_result("CA601", "DialCallStatus=busy").await;
    assert_eq!(retry, first);
    let before = snapshot(&s, "CA601").await;
    let late = s
        .dial_result("CA601", "DialCallStatus=completed&DialCallDuration=300")
        .await;
    hangs_up_silently(&late);
    assert_eq!(snapshot(&s, "CA601").await, before);
    assert_eq!(before.0.billable, None);
}

/// Out of order: the status callback before the dial result. The bridge's talk time
/// still bills the call (the facts are recorded), but nothing is said to a caller who is
/// gone and no fallback starts.
#[tokio::test]
async fn a_dial_result_after_the_status_callback_records_its_facts_only() {
    let s = Server::new(false);
    s.forwarded("CA602").await;
    assert_eq!(
        s.status("CA602", "CallStatus=completed&CallDuration=310")
            .await,
        StatusCode::NO_CONTENT
    );
    let twiml = s
        .dial_result("CA602", "DialCallStatus=completed&DialCallDuration=300")
        .await;
    hangs_up_silently(&twiml);
    let r = s.record("CA602").await.unwrap();
    assert_eq!(r.status, CallStatus::Completed, "{r:#?}");
    assert_eq!(r.billable, Some(true));
    s.forwarded("CA603").await;
    s.status("CA603", "CallStatus=completed&CallDuration=20")
        .await;
    let twiml = s.dial_result("CA603", "DialCallStatus=no-answer").await;
    hangs_up_silently(&twiml);
    let r = s.record("CA603").await.unwrap();
    assert_eq!(r.status, CallStatus::Missed, "{r:#?}");
    assert_eq!(r.fallback, None);
}

/// The service step without `From`/`To` (another instance, a curl): the caller and the
/// dialed number come from the call's `incoming` event.
#[tokio::test]
async fn the_service_step_falls_back_to_the_logged_caller_and_dialed_number() {
    let s = Server::new(true);
    let (st, _) = s.post("/voice", format!("CallSid=CA700&{FROM}")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, twiml) = s
        .post("/ivr/service?zip=78701&attempt=1", "CallSid=CA700&Digits=1")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(twiml.contains("<Dial"), "buyer needing caller id: {twiml}");
    assert!(twiml.contains("callerId=\"+15125550123\""), "{twiml}");
    let r = s.record("CA700").await.unwrap();
    assert_eq!(r.status, CallStatus::Forwarded);
    // Only the dialed number known: it is the caller id, and the campaign follows it.
    let s = Server::new(false);
    let (st, _) = s.post("/voice", "CallSid=CA701&To=%2B18005550100").await;
    assert_eq!(st, StatusCode::OK);
    let (_, twiml) = s
        .post("/ivr/service?zip=78701&attempt=1", "CallSid=CA701&Digits=1")
        .await;
    assert!(twiml.contains("callerId=\"+18005550100\""), "{twiml}");
}

/// Bytes that are not UTF-8, raw or percent-encoded, in any field of any webhook route:
/// `400` naming the field (TwiML routes still answer TwiML, never dead air).
#[tokio::test]
async fn undecodable_form_bodies_are_refused_naming_the_field() {
    let s = Server::new(false);
    let bodies: [&[u8]; 4] = [
        b"CallSid=CA50\xff&CallStatus=completed",
        b"CallSid=CA50%FF&CallStatus=completed",
        b"CallSid=CA50&CallStatus=completed&From=%C3%28",
        b"CallSid=CA50&CallStatus=completed&Caller\xfe=x",
    ];
    for route in ["/ivr/status", "/ivr/recording"] {
        for body in bodies {
            let (st, text) = s.post(route, body.to_vec()).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{route} {body:?}: {text}");
            assert!(text.contains("UTF-8"), "{route}: {text}");
            let field =
                if body.starts_with(b"CallSid=CA50\xff") || body.starts_with(b"CallSid=CA50%FF") {
                    "CallSid"
                } else if body.ends_with(b"=x") {
                    "Caller"
                } else {
                    "From"
                };
            assert!(text.contains(field), "{route} {body:?}: {text}");
        }
    }
    // Refused callbacks record nothing.
    assert!(s.record("CA50").await.is_none());
    for route in ["/voice", "/ivr/zip?attempt=1", "/ivr/dial-result"] {
        for body in bodies {
            let (st, twiml) = s.post(route, body.to_vec()).await;
            assert_eq!(st, StatusCode::OK, "{route}: {twiml}");
            assert!(twiml.contains("<Say"), "fallback TwiML on {route}: {twiml}");
        }
    }
    // A CallSid that decodes but is no call id is bad input too, not a 500.
    let (st, text) = s
        .post("/ivr/status", "CallSid=CA%20&CallStatus=completed")
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("CallSid"), "{text}");
}

/// A status callback without a usable `CallStatus` is a `400` naming it and the value;
/// one for a call the log has never seen is recorded, as a missed call.
#[tokio::test]
async fn status_callbacks_are_never_acknowledged_and_dropped() {
    let s = Server::new(false);
    s.forwarded("CA800").await;
    for (fields, shown) in [
        ("CallStatus=bogus", "`bogus`"),
        ("CallStatus=", "CallStatus"),
        ("CallDuration=3", "CallStatus"),
    ] {
        let (st, text) = s
            .post("/ivr/status", format!("CallSid=CA800&{FROM}&{fields}"))
            .await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{fields}: {text}");
        assert!(
            text.contains("CallStatus") && text.contains(shown),
            "{text}"
        );
    }
    assert_eq!(
        s.record("CA800").await.unwrap().status,
        CallStatus::Forwarded
    );
    // Not over yet: acknowledged, nothing to record.
    assert_eq!(
        s.status("CA800", "CallStatus=ringing").await,
        StatusCode::NO_CONTENT
    );
    // Unknown call: recorded.
    assert_eq!(
        s.status("CA801", "CallStatus=completed&CallDuration=3")
            .await,
        StatusCode::NO_CONTENT
    );
    let r = s.record("CA801").await.expect("callback recorded");
    assert_eq!(r.status, CallStatus::Missed, "{r:#?}");
    // Twice: recorded once.
    let n = s.events("CA801").await.len();
    s.status("CA801", "CallStatus=completed&CallDuration=3")
        .await;
    assert_eq!(s.events("CA801").await.len(), n);
}

/// `/ivr/recording` without `AccountSid` is served (as the README says of every
/// webhook), a missing required field is named, and a recording for an unknown call is
/// kept on a call that is never `incoming`.
#[tokio::test]
async fn recording_callbacks_need_no_account_sid_and_unknown_calls_are_not_incoming() {
    let s = Server::new(false);
    s.forwarded("CA900").await;
    let (st, text) = s
        .post(
            "/ivr/recording",
            "CallSid=CA900&RecordingSid=RE1&RecordingStatus=completed&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE1",
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{text}");
    let r = s.record("CA900").await.unwrap();
    assert_eq!(
        r.recording_url.as_deref(),
        Some("https://api.twilio.com/r/RE1")
    );
    let (st, text) = s
        .post(
            "/ivr/recording",
            "CallSid=CA900&RecordingStatus=completed&RecordingUrl=x",
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(text.contains("RecordingSid"), "{text}");
    let (st, _) = s
        .post(
            "/ivr/recording",
            "CallSid=CA901&RecordingSid=RE2&RecordingStatus=completed&RecordingUrl=https%3A%2F%2Fapi.twilio.com%2Fr%2FRE2",
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let r = s.record("CA901").await.expect("recording kept");
    assert_eq!(r.status, CallStatus::Missed, "{r:#?}");
    assert!(r.recording_url.is_some());
}
