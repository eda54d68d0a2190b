//! The simulator's multi-leg `<Dial>`: each leg answers on its own delay and runs its
//! own whisper; the first whose whisper completes without hanging up is bridged.
#![cfg(feature = "sim")]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Form, Router};
use callbid_twilio::sim::{CallScript, DialLeg, DialLegs, LegEnd, SimEvent, Simulator};
use callbid_twilio::webhook::DialCallStatus;
use std::collections::HashMap;

const TOKEN: &str = "legs-token";

#[derive(Default)]
struct Seen {
    winner: Option<String>,
    pressed: Vec<String>,
    after: Vec<String>,
}

type Shared = Arc<Mutex<Seen>>;

const DIAL: &str = r#"<Response><Dial timeout="20" action="/after"><Number url="/whisper">+15550000001</Number><Sip url="/whisper">sip:agent2@pbx.example.com</Sip><Client url="/whisper"><Identity>agent3</Identity></Client></Dial><Say>nobody</Say></Response>"#;
const PLAIN: &str = r#"<Response><Dial timeout="20" action="/after"><Number>+15550000001</Number><Number>+15550000002</Number></Dial></Response>"#;

async fn whisper() -> &'static str {
    r#"<Response><Gather numDigits="1" timeout="5" action="/pressed"><Say>A plumbing call, press 1</Say></Gather><Say>Goodbye</Say><Hangup/></Response>"#
}

async fn pressed(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> String {
    let to = f.get("To").cloned().unwrap_or_default();
    let mut s = s.lock().unwrap();
    s.pressed.push(to.clone());
    if f.get("Digits").map(String::as_str) != Some("1") {
        return "<Response><Hangup/></Response>".into();
    }
    if s.winner.is_none() {
        s.winner = Some(to);
        // Takes 3 s of virtual time (32 characters at 15 per second) before the bridge,
        // so a leg that presses meanwhile hears that the call was taken.
        "<Response><Say>Connecting you now to the caller</Say></Response>".into()
    } else {
        "<Response><Say>This call was taken</Say><Hangup/></Response>".into()
    }
}

async fn after(State(s): State<Shared>, Form(f): Form<HashMap<String, String>>) -> &'static str {
    let status = f.get("DialCallStatus").cloned().unwrap_or_default();
    s.lock().unwrap().after.push(status);
    "<Response><Hangup/></Response>"
}

async fn start() -> (String, Shared) {
    let shared: Shared = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router = Router::new()
        .route("/voice", post(|| async { DIAL }))
        .route("/plain", post(|| async { PLAIN }))
        .route("/whisper", post(whisper))
        .route("/pressed", post(pressed))
        .route("/after", post(after))
        .route("/status", post(|| async { "" }))
        .with_state(shared.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), shared)
}

fn sim(base: &str) -> Simulator {
    Simulator::new(base, TOKEN)
        .unwrap()
        .status_callback("/status")
}

fn script(legs: DialLegs) -> CallScript {
    CallScript::new("+15125550000", "+18005551212").dial_legs(legs)
}

#[tokio::test]
async fn the_first_leg_to_press_1_is_bridged() {
    let (base, seen) = start().await;
    let t = sim(&base)
        .run(script(DialLegs::new([
            DialLeg::answers_after(9).press("1"),
            DialLeg::answers_after(3).press("1").talk_for(42),
            DialLeg::answers_after(12).press("1"),
        ])))
        .await
        .unwrap();
    assert_eq!(
        t.bridged(),
        Some("sip:agent2@pbx.example.com"),
        "{}",
        t.render()
    );
    assert_eq!(t.dials()[0].1, DialCallStatus::Completed);
    assert_eq!(t.dials()[0].2, 42);
    // The first leg pressed 1 before the second's bridge? No: leg 2 answered at 3 s and
    // finished its whisper first; legs 1 and 3 were cancelled mid-whisper or ringing.
    let s = seen.lock().unwrap();
    assert_eq!(s.winner.as_deref(), Some("sip:agent2@pbx.example.com"));
    assert_eq!(s.after, vec!["completed".to_owned()]);
    assert!(t.leg_events("+15550000001").iter().any(|e| matches!(
        e,
        SimEvent::LegEnded {
            end: LegEnd::Cancelled,
            ..
        }
    )));
    assert!(t.leg_events("agent3").iter().any(|e| matches!(
        e,
        SimEvent::LegEnded {
            end: LegEnd::Cancelled,
            ..
        }
    )));
    // Leg 3 never answered before the bridge.
    assert!(!t
        .leg_events("agent3")
        .iter()
        .any(|e| matches!(e, SimEvent::LegAnswered { .. })));
}

#[tokio::test]
async fn legs_interleave_by_virtual_time_and_a_late_press_hears_taken() {
    let (base, seen) = start().await;
    // Leg 1 answers at 2 s and presses at 5 s; leg 2 answers at 3 s and presses at 6 s,
    // while leg 1 still hears "connecting": leg 1 wins, leg 2 hears "taken" and hangs up.
    let t = sim(&base)
        .run(script(DialLegs::new([
            DialLeg::answers_after(2).press("1"),
            DialLeg::answers_after(3).press("1"),
        ])))
        .await
        .unwrap();
    assert_eq!(t.bridged(), Some("+15550000001"), "{}", t.render());
    let s = seen.lock().unwrap();
    assert_eq!(
        s.pressed,
        vec![
            "+15550000001".to_owned(),
            "sip:agent2@pbx.example.com".to_owned()
        ]
    );
    let leg2 = t.leg_events("sip:agent2@pbx.example.com");
    assert!(
        leg2.iter().any(|e| matches!(
            e,
            SimEvent::Say { text, .. } if text == "This call was taken"
        )),
        "{}",
        t.render()
    );
    // The transcript is in virtual-time order across legs.
    let times: Vec<_> = t.events.iter().map(|(at, _)| *at).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{}", t.render());
}

#[tokio::test]
async fn voicemail_answering_first_never_wins() {
    let (base, seen) = start().await;
    let t = sim(&base)
        .run(script(DialLegs::new([
            DialLeg::voicemail_after(1).press("1"), // scripted keys are ignored
            DialLeg::answers_after(6).press("1"),
        ])))
        .await
        .unwrap();
    assert_eq!(
        t.bridged(),
        Some("sip:agent2@pbx.example.com"),
        "{}",
        t.render()
    );
    let vm = t.leg_events("+15550000001");
    assert!(vm.iter().any(|e| matches!(
        e,
        SimEvent::LegAnswered {
            voicemail: true,
            ..
        }
    )));
    assert!(vm.iter().any(|e| matches!(
        e,
        SimEvent::Gather {
            input: callbid_twilio::sim::CallerInput::Silence
        }
    )));
    // The voicemail's Gather timed out and its whisper hung up (or it was cancelled).
    assert!(vm.iter().any(|e| matches!(e, SimEvent::LegEnded { .. })));
    assert_eq!(
        seen.lock().unwrap().pressed,
        vec!["sip:agent2@pbx.example.com".to_owned()]
    );
}

#[tokio::test]
async fn voicemail_alone_hangs_up_and_the_dial_reports_no_answer() {
    let (base, seen) = start().await;
    let t = sim(&base)
        .run(script(DialLegs::new([
            DialLeg::voicemail_after(1),
            DialLeg::busy(),
            DialLeg::no_answer(),
        ])))
        .await
        .unwrap();
    assert_eq!(t.bridged(), None);
    assert_eq!(t.dials()[0].1, DialCallStatus::NoAnswer);
    assert!(t.leg_events("+15550000001").iter().any(|e| matches!(
        e,
        SimEvent::LegEnded {
            end: LegEnd::HungUp,
            ..
        }
    )));
    assert_eq!(seen.lock().unwrap().after, vec!["no-answer".to_owned()]);
    // The Dial lasted its full 20 s timeout (the unanswered leg rang out).
    let dial_at = t
        .events
        .iter()
        .find(|(_, e)| matches!(e, SimEvent::Dial { .. }))
        .map(|(at, _)| at.as_secs());
    assert_eq!(dial_at, Some(20), "{}", t.render());
}

#[tokio::test]
async fn every_leg_busy_reports_busy_at_once() {
    let (base, seen) = start().await;
    let t = sim(&base)
        .run(script(DialLegs::new([
            DialLeg::busy(),
            DialLeg::busy(),
            DialLeg::busy(),
        ])))
        .await
        .unwrap();
    assert_eq!(t.dials()[0].1, DialCallStatus::Busy);
    assert_eq!(seen.lock().unwrap().after, vec!["busy".to_owned()]);
}

#[tokio::test]
async fn the_caller_hanging_up_during_the_whisper_cancels_every_leg() {
    let (base, seen) = start().await;
    let t = sim(&base)
        .run(script(
            DialLegs::new([
                DialLeg::answers_after(2).stay_silent(),
                DialLeg::answers_after(3).stay_silent(),
                DialLeg::answers_after(15).press("1"),
            ])
            .caller_hangs_up_after(4),
        ))
        .await
        .unwrap();
    assert_eq!(t.bridged(), None, "{}", t.render());
    assert!(t
        .events
        .iter()
        .any(|(at, e)| matches!(e, SimEvent::CallerHungUp) && at.as_secs() == 4));
    let s = seen.lock().unwrap();
    assert!(s.after.is_empty(), "no Dial action after the caller left");
    assert!(s.pressed.is_empty());
    assert!(t
        .events
        .iter()
        .any(|(_, e)| matches!(e, SimEvent::StatusCallback { .. })));
    for target in ["+15550000001", "sip:agent2@pbx.example.com", "agent3"] {
        assert!(t.leg_events(target).iter().any(|e| matches!(
            e,
            SimEvent::LegEnded {
                end: LegEnd::Cancelled,
                ..
            }
        )));
    }
}

#[tokio::test]
async fn without_whisper_urls_the_first_leg_to_answer_is_bridged() {
    let (base, _) = start().await;
    let t = sim(&base)
        .voice_path("/plain")
        .run(script(DialLegs::new([
            DialLeg::answers_after(8),
            DialLeg::answers_after(4).talk_for(10),
        ])))
        .await
        .unwrap();
    assert_eq!(t.bridged(), Some("+15550000002"));
    assert_eq!(t.dials()[0].2, 10);
    assert_eq!(t.bridged_at().map(|d| d.as_secs()), Some(4));
}
