//! TwiML rendering compared byte for byte with twilio-python's output.
//!
//! The files in `tests/golden/` are written by `scripts/twiml_golden.py` with
//! twilio-python; every function here builds the same document as the Python
//! function of the same name.

use callbid_twilio::twiml::*;

const TRICKY: &str = "tab\tnew\nline\rcr & \"q\" 'a' <b> ]]> Ol\u{e1} \u{65e5}\u{672c} \u{1F600}";

fn golden(name: &str) -> String {
    let path = format!("{}/tests/golden/{name}.xml", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn check(name: &str, doc: VoiceResponse) {
    let ours = doc.to_xml();
    let theirs = golden(name);
    assert_eq!(
        ours, theirs,
        "\n{name}: ours\n{ours}\ntwilio-python\n{theirs}"
    );
    // The parser reads our output back to the same shape.
    let root = parse::parse(&ours).expect("rendered TwiML parses");
    assert_eq!(root.children.len(), doc.verbs().len(), "{name}");
}

#[test]
fn reference_example() {
    check(
        "reference_example",
        VoiceResponse::new()
            .gather(
                Gather::new()
                    .input(GatherInput::Dtmf)
                    .num_digits(5u32)
                    .action("/ivr/zip")
                    .timeout(5u32)
                    .say(Say::new("Please enter your <zip> & code").voice("alice")),
            )
            .dial(
                Dial::new()
                    .caller_id("+15551234567")
                    .timeout(20u32)
                    .record(DialRecord::RecordFromAnswer)
                    .sip(Sip::new("sip:buyer@example.com")),
            )
            .hangup(),
    );
}

#[test]
fn empty_response() {
    check("empty_response", VoiceResponse::new());
}

#[test]
fn say_all_attributes() {
    check(
        "say_all_attributes",
        VoiceResponse::new()
            .say(
                Say::new(r#"Hello "world" & <you>"#)
                    .voice("Polly.Joanna")
                    .loop_count(2u32)
                    .language("en-US"),
            )
            .say(Say::new("")),
    );
}

#[test]
fn play_and_pause() {
    check(
        "play_and_pause",
        VoiceResponse::new()
            .play(Play::new("https://example.com/a.mp3?x=1&y=2").loop_count(3u32))
            .play(Play::digits_only("ww1234"))
            .pause(Pause::new().length(2u32))
            .pause(Pause::new()),
    );
}

#[test]
fn gather_all_attributes() {
    check(
        "gather_all_attributes",
        VoiceResponse::new()
            .gather(
                Gather::new()
                    .input(GatherInput::DtmfSpeech)
                    .action(r#"/ivr?step=1&x="q""#)
                    .method(Method::Get)
                    .timeout(7u32)
                    .speech_timeout(SpeechTimeout::Auto)
                    .max_speech_time(30u32)
                    .profanity_filter(false)
                    .finish_on_key("")
                    .num_digits(1u32)
                    .partial_result_callback("/partial")
                    .partial_result_callback_method(Method::Post)
                    .language("es-MX")
                    .hints("one, two")
                    .barge_in(true)
                    .debug(false)
                    .action_on_empty_result(true)
                    .speech_model("phone_call")
                    .enhanced(true)
                    .say(Say::new("Press 1").voice("man"))
                    .play(Play::new("https://example.com/menu.mp3"))
                    .pause(Pause::new().length(1u32)),
            )
            .gather(Gather::new().speech_timeout(3u32)),
    );
}

#[test]
fn dial_all_nouns() {
    let dial = Dial::new()
        .action("/dial-done")
        .method(Method::Post)
        .timeout(25u32)
        .hangup_on_star(true)
        .time_limit(3600u32)
        .caller_id("+15551234567")
        .record(DialRecord::RecordFromRingingDual)
        .trim(Trim::TrimSilence)
        .recording_status_callback("/rec")
        .recording_status_callback_method(Method::Get)
        .recording_status_callback_event(vec![
            RecordingEvent::InProgress,
            RecordingEvent::Completed,
            RecordingEvent::Absent,
        ])
        .answer_on_bridge(true)
        .ring_tone("us")
        .recording_track(RecordingTrack::Both)
        .sequential(true)
        .refer_url("/refer")
        .refer_method(Method::Post)
        .number(
            Number::new("+15550001111")
                .send_digits("ww12")
                .url("/whisper")
                .method(Method::Get)
                .status_callback_event(vec![
                    CallProgressEvent::Initiated,
                    CallProgressEvent::Ringing,
                    CallProgressEvent::Answered,
                    CallProgressEvent::Completed,
                ])
                .status_callback("https://cb.example.com/s?a=1&b=2")
                .status_callback_method(Method::Post)
                .machine_detection(MachineDetection::Enable)
                .machine_detection_timeout(10u32),
        )
        .sip(
            Sip::new("sip:buyer@example.com;transport=tls")
                .username("u")
                .password(r#"p"w&<>"#)
                .url("/sipwhisper")
                .status_callback_event(CallProgressEvent::Answered),
        )
        .client(Client::new("agent_7").url("/c").method(Method::Post))
        .conference(
            Conference::new("Room 1")
                .muted(false)
                .beep(ConferenceBeep::OnEnter)
                .start_conference_on_enter(true)
                .end_conference_on_exit(false)
                .wait_url("")
                .wait_method(Method::Get)
                .max_participants(10u32)
                .record(ConferenceRecord::RecordFromStart)
                .region("us1")
                .trim(Trim::DoNotTrim)
                .status_callback_event(vec![
                    ConferenceEvent::Start,
                    ConferenceEvent::End,
                    ConferenceEvent::Join,
                    ConferenceEvent::Leave,
                ])
                .status_callback("/conf")
                .status_callback_method(Method::Post)
                .jitter_buffer_size("small")
                .participant_label("caller"),
        )
        .queue(
            Queue::new("support")
                .url("/q")
                .method(Method::Post)
                .reservation_sid("WR123")
                .post_work_activity_sid("WA123"),
        );
    check("dial_all_nouns", VoiceResponse::new().dial(dial));
}

#[test]
fn dial_text_number() {
    check(
        "dial_text_number",
        VoiceResponse::new()
            .dial(Dial::to("+15558675309").timeout(10u32))
            .dial(Dial::new()),
    );
}

#[test]
fn record_all_attributes() {
    check(
        "record_all_attributes",
        VoiceResponse::new()
            .record(
                Record::new()
                    .action("/recorded")
                    .method(Method::Post)
                    .timeout(5u32)
                    .finish_on_key("#*")
                    .max_length(120u32)
                    .play_beep(true)
                    .trim(Trim::DoNotTrim)
                    .recording_status_callback("/rs")
                    .recording_status_callback_method(Method::Post)
                    .recording_status_callback_event(RecordingEvent::Completed)
                    .transcribe(true)
                    .transcribe_callback("/t"),
            )
            .record(Record::new()),
    );
}

#[test]
fn redirect_reject_hangup_leave() {
    check(
        "redirect_reject_hangup_leave",
        VoiceResponse::new()
            .redirect(Redirect::new("../next?x=1&y=2").method(Method::Get))
            .reject(Reject::new().reason(RejectReason::Busy))
            .reject(Reject::new())
            .hangup()
            .leave(),
    );
}

#[test]
fn enqueue_task() {
    check(
        "enqueue_task",
        VoiceResponse::new()
            .enqueue(
                Enqueue::unnamed()
                    .workflow_sid("WW123")
                    .action("/eq")
                    .max_queue_size(5u32)
                    .method(Method::Post)
                    .wait_url("/wait")
                    .wait_url_method(Method::Get)
                    .task(
                        Task::new(r#"{"selected_language": "es", "a": "<&>"}"#)
                            .priority(5u32)
                            .timeout(200u32),
                    ),
            )
            .enqueue(Enqueue::new("support")),
    );
}

#[test]
fn escaping() {
    check(
        "escaping",
        VoiceResponse::new()
            .say(Say::new(TRICKY).voice(TRICKY).language("a&b<c>d\"e'f"))
            .redirect(Redirect::new(TRICKY)),
    );
}
