//! The call simulator driving a real axum IVR over HTTP, with every webhook
//! verified by the `TwilioWebhook` extractor.
#![cfg(all(feature = "sim", feature = "axum"))]

use axum::extract::{FromRef, State};
use axum::routing::post;
use axum::Router;
use callbid_twilio::extract::TwilioWebhook;
use callbid_twilio::signature::WebhookVerifier;
use callbid_twilio::sim::{CallScript, DialOutcome, SimError, SimEvent, Simulator};
use callbid_twilio::twiml::*;
use callbid_twilio::webhook::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TOKEN: &str = "sim-auth-token";

#[derive(Clone)]
struct App {
    verifier: WebhookVerifier,
    log: Arc<Mutex<Vec<String>>>,
}

impl FromRef<App> for WebhookVerifier {
    fn from_ref(app: &App) -> WebhookVerifier {
        app.verifier.clone()
    }
}

impl App {
    fn log(&self, line: String) {
        if let Ok(mut l) = self.log.lock() {
            l.push(line);
        }
    }
}

async fn voice(State(app): State<App>, TwilioWebhook(call): TwilioWebhook<VoiceRequest>) -> String {
    app.log(format!(
        "voice from={} status={:?} zip={:?}",
        call.call.from.unwrap_or_default(),
        call.call.call_status,
        call.extra.get("FromZip")
    ));
    VoiceResponse::new()
        .gather(
            Gather::new()
                .input(GatherInput::Dtmf)
                .num_digits(5u32)
                .action("/ivr/zip")
                .timeout(7u32)
                .say(Say::new("Please enter your ZIP code").voice("alice")),
        )
        .say(Say::new("We did not get that. Goodbye."))
        .hangup()
        .to_xml()
}

async fn zip(State(app): State<App>, TwilioWebhook(g): TwilioWebhook<GatherRequest>) -> String {
    let digits = g.digits.unwrap_or_default();
    app.log(format!("zip {digits}"));
    VoiceResponse::new()
        .say(Say::new(format!("Connecting you for {digits}")))
        .dial(
            Dial::new()
                .action("dial-done") // relative: resolves against /ivr/zip
                .timeout(20u32)
                .record(DialRecord::RecordFromAnswer)
                .number(Number::new("+15550001111")),
        )
        .to_xml()
}

async fn dial_done(
    State(app): State<App>,
    TwilioWebhook(d): TwilioWebhook<DialActionRequest>,
) -> String {
    app.log(format!(
        "dial {:?} {:?} rec={}",
        d.dial_call_status,
        d.dial_call_duration,
        d.recording_url.is_some()
    ));
    match d.dial_call_status {
        Some(DialCallStatus::Completed) => VoiceResponse::new().hangup().to_xml(),
        _ => VoiceResponse::new()
            .say(Say::new("Nobody is available. Leave a message."))
            .record(Record::new().action("/ivr/recorded").max_length(60u32))
            .to_xml(),
    }
}

async fn recorded(
    State(app): State<App>,
    TwilioWebhook(r): TwilioWebhook<RecordActionRequest>,
) -> String {
    app.log(format!(
        "recorded {:?} {}",
        r.recording_duration,
        r.recording_url.unwrap_or_default()
    ));
    VoiceResponse::new()
        .say(Say::new("Thanks"))
        .hangup()
        .to_xml()
}

async fn status(
    State(app): State<App>,
    TwilioWebhook(s): TwilioWebhook<StatusCallbackRequest>,
) -> &'static str {
    app.log(format!(
        "status {:?} {:?}",
        s.call.call_status, s.call_duration
    ));
    ""
}

async fn looping(TwilioWebhook(_): TwilioWebhook<VoiceRequest>) -> String {
    VoiceResponse::new()
        .redirect(Redirect::new("/loop"))
        .to_xml()
}

async fn not_twiml(TwilioWebhook(_): TwilioWebhook<VoiceRequest>) -> &'static str {
    "<html>oops</html>"
}

/// Starts the IVR; `public` overrides the public base URL the app verifies against.
async fn start(public: Option<&str>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let base = format!("http://{addr}");
    let log = Arc::new(Mutex::new(Vec::new()));
    let app = App {
        verifier: WebhookVerifier::new(public.unwrap_or(&base), TOKEN).expect("verifier"),
        log: log.clone(),
    };
    let router = Router::new()
        .route("/voice", post(voice))
        .route("/ivr/zip", post(zip))
        .route("/ivr/dial-done", post(dial_done))
        .route("/ivr/recorded", post(recorded))
        .route("/status", post(status))
        .route("/loop", post(looping))
        .route("/html", post(not_twiml))
        .with_state(app);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (base, log)
}

fn lines(log: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    log.lock().map(|l| l.clone()).unwrap_or_default()
}

#[tokio::test]
async fn answered_call_runs_on_virtual_time() {
    let (base, log) = start(None).await;
    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .status_callback("/status");
    let started = Instant::now();
    let t = sim
        .run(
            CallScript::new("+15125550000", "+18005551212")
                .param("FromZip", "78701")
                .press("78701")
                .dial(DialOutcome::answered(5, 120)),
        )
        .await
        .expect("call completes");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "virtual time, no sleeping"
    );
    assert_eq!(
        t.said(),
        ["Please enter your ZIP code", "Connecting you for 78701"]
    );
    assert_eq!(t.dials().len(), 1);
    let (targets, st, dur) = t.dials()[0].clone();
    assert_eq!(targets, ["+15550001111".to_owned()]);
    assert_eq!((st, dur), (DialCallStatus::Completed, 120));
    assert_eq!(t.status, CallStatus::Completed);
    // Say 26 chars → 2 s, 5 digits → 5 s, Say 24 chars → 2 s, ring 5 s, talk 120 s.
    assert_eq!(t.duration, Duration::from_secs(2 + 5 + 2 + 5 + 120));
    let urls = t.requested_urls();
    assert_eq!(
        urls,
        [
            format!("{base}/voice"),
            format!("{base}/ivr/zip"),
            format!("{base}/ivr/dial-done"),
            format!("{base}/status")
        ]
    );
    assert!(matches!(
        t.events.last(),
        Some((_, SimEvent::StatusCallback { duration: 134, .. }))
    ));
    assert_eq!(
        lines(&log),
        [
            "voice from=+15125550000 status=Some(Ringing) zip=Some(\"78701\")".to_owned(),
            "zip 78701".to_owned(),
            "dial Some(Completed) Some(120) rec=true".to_owned(),
            "status Some(Completed) Some(134)".to_owned(),
        ]
    );
}

#[tokio::test]
async fn busy_buyer_goes_to_voicemail() {
    let (base, log) = start(None).await;
    let sim = Simulator::new(&base, TOKEN)
        .unwrap()
        .status_callback("/status");
    let t = sim
        .run(
            CallScript::new("+15125550000", "+18005551212")
                .press("1000199")
                .dial(DialOutcome::Busy)
                .record_for(90),
        )
        .await
        .unwrap();
    assert_eq!(t.dials()[0].1, DialCallStatus::Busy);
    // maxLength=60 caps the scripted 90 s recording.
    let rec = t.events.iter().find_map(|(_, e)| match e {
        SimEvent::Record {
            recording_url,
            duration,
        } => Some((recording_url.clone(), *duration)),
        _ => None,
    });
    let (url, secs) = rec.expect("recorded");
    assert_eq!(secs, 60);
    assert!(url.starts_with("https://api.twilio.com/2010-04-01/Accounts/AC"));
    let l = lines(&log);
    // numDigits=5: only the first five keys are posted.
    assert!(l.contains(&"zip 10001".to_owned()), "{l:?}");
    assert!(
        l.contains(&"dial Some(Busy) Some(0) rec=false".to_owned()),
        "{l:?}"
    );
    assert!(
        l.iter()
            .any(|x| x.starts_with("recorded Some(60) https://api.twilio.com/")),
        "{l:?}"
    );
    assert_eq!(t.said().last(), Some(&"Thanks"));
}

#[tokio::test]
async fn no_answer_waits_for_the_dial_timeout() {
    let (base, log) = start(None).await;
    let t = Simulator::new(&base, TOKEN)
        .unwrap()
        .run(
            CallScript::new("+15125550000", "+18005551212")
                .press("73301")
                .dial(DialOutcome::answered(45, 60))
                .record_for(3),
        )
        .await
        .unwrap();
    // Answer after 45 s is too late for timeout=20: no-answer after 20 s.
    assert_eq!(t.dials()[0].1, DialCallStatus::NoAnswer);
    assert!(lines(&log).contains(&"dial Some(NoAnswer) Some(0) rec=false".to_owned()));
    assert_eq!(t.duration, Duration::from_secs(2 + 5 + 2 + 20 + 3 + 3 + 1));
}

#[tokio::test]
async fn silence_falls_through_the_gather() {
    let (base, _log) = start(None).await;
    let t = Simulator::new(&base, TOKEN)
        .unwrap()
        .run(CallScript::new("+15125550000", "+18005551212").stay_silent())
        .await
        .unwrap();
    assert_eq!(
        t.said(),
        [
            "Please enter your ZIP code",
            "We did not get that. Goodbye."
        ]
    );
    assert!(matches!(t.events.last(), Some((_, SimEvent::Hangup))));
    assert_eq!(t.requested_urls().len(), 1);
    // 2 s speech + 7 s timeout + 2 s goodbye.
    assert_eq!(t.duration, Duration::from_secs(11));
}

#[tokio::test]
async fn app_behind_a_proxy_rejects_the_wrong_url_with_403() {
    // The app believes it is served at https://ivr.example.com; the simulator
    // signs the loopback URL it really calls, so the signature cannot match.
    let (base, _log) = start(Some("https://ivr.example.com")).await;
    let err = Simulator::new(&base, TOKEN)
        .unwrap()
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Http { status: 403, .. }), "{err}");

    // And a request signed with the wrong token is refused too.
    let (base, _log) = start(None).await;
    let err = Simulator::new(&base, "other-token")
        .unwrap()
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Http { status: 403, .. }), "{err}");
}

#[tokio::test]
async fn redirect_loops_and_bad_twiml_are_errors() {
    let (base, _log) = start(None).await;
    let err = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path("/loop")
        .max_requests(10)
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimError::TooManyRequests { limit: 10 }),
        "{err}"
    );
    let err = Simulator::new(&base, TOKEN)
        .unwrap()
        .voice_path("/html")
        .run(CallScript::new("+1", "+2"))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Twiml { .. }), "{err}");
    let err = Simulator::new(&base, TOKEN)
        .unwrap()
        .run(CallScript::new("+1", "+2").press("12345"))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::NoDialOutcome { .. }), "{err}");
    assert!(err.to_string().contains("+15550001111"), "{err}");
}

#[tokio::test]
async fn extractor_answers_403_and_400() {
    let (base, _log) = start(None).await;
    let http = reqwest::Client::new();
    let body = "CallSid=CA1&AccountSid=AC1&From=%2B1";
    let r = http
        .post(format!("{base}/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "missing signature");
    let sig = callbid_twilio::signature::RequestValidator::new(TOKEN).compute_signature(
        &format!("{base}/voice"),
        &[("CallSid", "CA1"), ("AccountSid", "AC1"), ("From", "+1")],
    );
    let r = http
        .post(format!("{base}/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", &sig)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = http
        .post(format!("{base}/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", &sig)
        .body(format!("{body}&x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403, "tampered body");
    // Signed correctly but missing CallSid: 400 naming the field.
    let bad = "AccountSid=AC1";
    let sig = callbid_twilio::signature::RequestValidator::new(TOKEN)
        .compute_signature(&format!("{base}/voice"), &[("AccountSid", "AC1")]);
    let r = http
        .post(format!("{base}/voice"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("X-Twilio-Signature", &sig)
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("CallSid"), "{text}");
}
