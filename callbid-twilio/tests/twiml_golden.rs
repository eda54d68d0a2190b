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
    // The parser reads our output back to the same tree: written out again
    // from the parsed elements, it is the same bytes. (The parser keeps an
    // element's text as one string, so text between child elements, SSML's
    // mixed content, comes back joined: those cases compare the tree shape.)
    let root = parse::parse(&ours).expect("rendered TwiML parses");
    assert_eq!(root.children.len(), doc.verbs().len(), "{name}");
    let mut again = XML_DECLARATION.to_owned();
    rerender(&root, &mut again);
    if MIXED_CONTENT.contains(&name) {
        assert_ne!(again, ours, "{name} is listed as mixed content but is not");
        assert_eq!(
            shape(&parse::parse(&again).expect("re-rendered TwiML parses")),
            shape(&root),
            "{name}"
        );
    } else {
        assert_eq!(again, ours, "{name}: parse then render differs");
    }
}

/// Cases with text between child elements (see [`check`]).
const MIXED_CONTENT: &[&str] = &["say_ssml"];

/// Writes a parsed element the way the builder does: sorted attributes as
/// parsed, text, then children, ` />` when there is neither.
fn rerender(el: &parse::Element, out: &mut String) {
    out.push('<');
    out.push_str(&el.name);
    for (k, v) in &el.attributes {
        out.push_str(&format!(" {k}=\"{}\"", escape_attr(v)));
    }
    if el.text.is_empty() && el.children.is_empty() {
        out.push_str(" />");
        return;
    }
    out.push('>');
    out.push_str(&escape_text(&el.text));
    for c in &el.children {
        rerender(c, out);
    }
    out.push_str(&format!("</{}>", el.name));
}

/// One element's name, attributes and text.
type Shape = (String, Vec<(String, String)>, String);

/// Names, attributes and text of every element, depth first.
fn shape(el: &parse::Element) -> Vec<Shape> {
    let mut out = vec![(el.name.clone(), el.attributes.clone(), el.text.clone())];
    for c in &el.children {
        out.extend(shape(c));
    }
    out
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

fn name(s: &str) -> AttrName {
    AttrName::new(s).expect("valid attribute name")
}

#[test]
fn connect_nouns() {
    let stream = Stream::new()
        .name("agent audio")
        .connector_name("conn1")
        .url("wss://media.example.com/s?a=1&b=2")
        .track("both_tracks")
        .status_callback("/stream-status")
        .status_callback_method(Method::Get)
        .audio_format("audio/x-mulaw")
        .sample_rate(8000u32)
        .parameter(Parameter::new("callId", "CA123"))
        .parameter(Parameter::new("note", r#"a "quoted" & <odd> value"#));
    let agent = VirtualAgent::new()
        .connector_name("dialogflow")
        .language("en-US")
        .sentiment_analysis(true)
        .status_callback("/va")
        .status_callback_method(Method::Post)
        .config(Config::new("voiceName", "en-US-Wavenet-C"))
        .parameter(Parameter::new("customer", "42"));
    let conversation = Conversation::new()
        .service_instance_sid("IS123")
        .inbound_autocreation(true)
        .routing_assignment_timeout(60u32)
        .inbound_timeout(30u32)
        .url("/conv")
        .method(Method::Post)
        .record("record-from-answer")
        .trim(Trim::TrimSilence)
        .recording_status_callback("/crs")
        .recording_status_callback_method(Method::Get)
        .recording_status_callback_event(vec![
            RecordingEvent::InProgress,
            RecordingEvent::Completed,
        ])
        .status_callback("/cs")
        .status_callback_method(Method::Post)
        .status_callback_event("initiated ringing answered completed");
    let relay = ConversationRelay::new()
        .url("wss://relay.example.com/ws")
        .language("en-US")
        .tts_language("en-US")
        .transcription_language("es-US")
        .tts_provider("ElevenLabs")
        .voice("UgBBYS2sOqTuMpoF3BR0")
        .transcription_provider("Deepgram")
        .speech_model("nova-2-phonecall")
        .profanity_filter(false)
        .dtmf_detection(true)
        .welcome_greeting("Hi! How can I help?")
        .partial_prompts(true)
        .welcome_greeting_interruptible("speech")
        .interruptible("any")
        .preemptible(false)
        .hints("callbid, ping, post")
        .intelligence_service("GA123")
        .report_input_during_agent_speech("none")
        .elevenlabs_text_normalization("on")
        .interrupt_sensitivity("high")
        .debug("debugging speaker-events")
        .background_noise_reduction("true")
        .speech_timeout("1500")
        .deepgram_smart_format("true")
        .ignore_backchannel("true")
        .events("speaker-events")
        .partial_prompt_on_hangup("true")
        .eager_eot_threshold("0.5")
        .asr_smart_format("true")
        .tts_text_normalization("auto")
        .tts_language_text_normalization("true")
        .elevenlabs_language_text_normalization("true")
        .include_in_prompt("turn-state")
        .customer_name("Ana")
        .application_reconnect("true")
        .echo_prompt_filtering("true")
        .turn_detection("true")
        .language_setting(
            Language::new()
                .code("es-US")
                .tts_provider("Google")
                .voice("es-US-Neural2-A")
                .transcription_provider("Google")
                .speech_model("telephony")
                .hints("uno, dos")
                .asr_smart_format("false")
                .tts_text_normalization("off")
                .tts_language_text_normalization("false"),
        )
        .parameter(Parameter::new("buyer", "acme"));
    check(
        "connect_nouns",
        VoiceResponse::new()
            .connect(
                Connect::new()
                    .action("/connect-done")
                    .method(Method::Post)
                    .stream(stream),
            )
            .connect(
                Connect::new().room(Room::new("Support Room").participant_identity("caller-1")),
            )
            .connect(Connect::new().virtual_agent(agent))
            .connect(Connect::new().conversation(conversation))
            .connect(Connect::new().conversation_relay(relay))
            .connect(Connect::new()),
    );
}

#[test]
fn start_stop() {
    let transcription = Transcription::new()
        .name("call transcript")
        .track("both_tracks")
        .status_callback_url("https://cb.example.com/transcripts?call=1&x=2")
        .status_callback_method(Method::Post)
        .inbound_track_label("caller")
        .outbound_track_label("agent")
        .partial_results(true)
        .language_code("en-US")
        .transcription_engine("google")
        .profanity_filter(true)
        .speech_model("telephony")
        .hints("bid, cap")
        .enable_automatic_punctuation(false)
        .intelligence_service("GA456")
        .config(Config::new("enableSpeakerDiarization", "true"))
        .parameter(Parameter::new("callbid", "1"));
    let recording = Recording::new()
        .recording_status_callback("/rec-status")
        .recording_status_callback_method(Method::Get)
        .recording_status_callback_event(vec![
            RecordingEvent::InProgress,
            RecordingEvent::Completed,
            RecordingEvent::Absent,
        ])
        .trim(Trim::DoNotTrim)
        .track("both")
        .channels("dual")
        .recording_configuration_id("RC123");
    check(
        "start_stop",
        VoiceResponse::new()
            .start(
                Start::new()
                    .action("/started")
                    .method(Method::Get)
                    .stream(
                        Stream::new()
                            .name("fork")
                            .url("wss://media.example.com/fork")
                            .track("inbound_track")
                            .parameter(Parameter::new("k", "v")),
                    )
                    .siprec(
                        Siprec::new()
                            .name("rec1")
                            .connector_name("SR1")
                            .track("both_tracks")
                            .status_callback("/siprec")
                            .status_callback_method(Method::Post)
                            .parameter(Parameter::new("a", "b")),
                    )
                    .transcription(transcription),
            )
            .start(Start::new().recording(recording))
            .stop(
                Stop::new()
                    .stream(Stream::new().name("fork"))
                    .siprec(Siprec::new().name("rec1"))
                    .transcription(Transcription::new().name("call transcript")),
            )
            .start(Start::new())
            .stop(Stop::new()),
    );
}

#[test]
fn pay_prompt() {
    let pay = Pay::new()
        .input("dtmf")
        .action("/paid")
        .bank_account_type("consumer-checking")
        .status_callback("/pay-status")
        .status_callback_method(Method::Post)
        .timeout(10u32)
        .max_attempts(3u32)
        .security_code(true)
        .postal_code("94105")
        .min_postal_code_length(5u32)
        .payment_connector("Stripe_Connector")
        .payment_method("credit-card")
        .token_type("reusable")
        .charge_amount(rust_decimal::Decimal::new(1000, 2))
        .currency("usd")
        .description("Lead fee & tax")
        .valid_card_types("visa mastercard amex")
        .language("en-US")
        .prompt(
            Prompt::new()
                .for_("payment-card-number")
                .error_type("timeout invalid-card-number")
                .card_type("visa amex")
                .attempt("1 2")
                .require_matching_inputs("true")
                .say(Say::new("Enter your card number"))
                .play(Play::new("https://example.com/beep.mp3"))
                .pause(Pause::new().length(1u32)),
        )
        .parameter(Parameter::new("order", "A-1"));
    check(
        "pay_prompt",
        VoiceResponse::new()
            .pay(pay)
            .pay(Pay::new().charge_amount(rust_decimal::Decimal::ZERO)),
    );
}

#[test]
fn refer_echo() {
    check(
        "refer_echo",
        VoiceResponse::new()
            .refer(
                Refer::new()
                    .action("/referred")
                    .method(Method::Post)
                    .sip(ReferSip::new(
                        "sip:alice@example.com?X-Lead=123&X-Buyer=acme",
                    )),
            )
            .refer(Refer::new())
            .echo(),
    );
}

#[test]
fn dial_application_client_sip() {
    let dial = Dial::new()
        .caller_id("+15551234567")
        .application(
            Application::new("")
                .url("/app-whisper")
                .method(Method::Post)
                .status_callback_event(vec![
                    CallProgressEvent::Initiated,
                    CallProgressEvent::Answered,
                ])
                .status_callback("/app-status")
                .status_callback_method(Method::Get)
                .customer_id("cust-9")
                .copy_parent_to(true)
                .sid(ApplicationSid::new("AP0123456789abcdef0123456789abcdef"))
                .parameter(Parameter::new("lead", "L-7")),
        )
        .application(Application::new("AP11111111111111111111111111111111"))
        .client(
            Client::new("")
                .url("/agent-whisper")
                .method(Method::Post)
                .status_callback_event(vec![
                    CallProgressEvent::Ringing,
                    CallProgressEvent::Answered,
                ])
                .status_callback("/agent-status")
                .status_callback_method(Method::Post)
                .identity(Identity::new("agent_7"))
                .parameter(Parameter::new("offer", "O-1"))
                .parameter(Parameter::new("payout", "12.50")),
        )
        .client(Client::new("agent_8"))
        .sip(
            Sip::new("")
                .username("u")
                .password("p")
                .uri(
                    SipUri::new("sip:a@buyer.example.com")
                        .priority(1u32)
                        .weight(10u32)
                        .username("ua")
                        .password("pa"),
                )
                .uri(SipUri::new("sip:b@buyer.example.com").priority(2u32))
                .headers(
                    Headers::new()
                        .header(Header::new("X-Lead-Id", "L-7"))
                        .header(Header::new("X-Note", "a&b")),
                ),
        )
        .sip(Sip::new("sip:buyer@example.com?X-Lead-Id=L-7&X-Buyer=acme"))
        .sim(Sim::new("DE0123456789abcdef0123456789abcdef"))
        .whats_app(
            WhatsApp::new("+15550002222")
                .url("/wa")
                .method(Method::Get)
                .status_callback_event("answered")
                .status_callback("/was")
                .status_callback_method(Method::Post),
        )
        .number(
            Number::new("+15550001111")
                .url("/number-whisper")
                .method(Method::Get),
        );
    check(
        "dial_application_client_sip",
        VoiceResponse::new().dial(dial),
    );
}

#[test]
fn say_ssml() {
    let sentence = SsmlS::new("A sentence")
        .emphasis(SsmlEmphasis::new("inside").w(SsmlW::new("read").role("amazon:VBD")))
        .child(" tail & <text>")
        .say_as(SsmlSayAs::new("12/25").interpret_as("date").format("mdy"));
    let para = SsmlP::new("A paragraph.").s(sentence).w(SsmlW::new("live")
        .role("amazon:VB")
        .sub(SsmlSub::new("W3C").alias("World Wide Web Consortium")));
    let prosody = SsmlProsody::new("Slow and loud")
        .volume("+6dB")
        .rate("slow")
        .pitch("-10%")
        .p(SsmlP::new("nested p"))
        .s(SsmlS::new("nested s").break_(SsmlBreak::new()))
        .lang(SsmlLang::new("").prosody(SsmlProsody::new("deep").pitch("x-low")));
    let say = Say::new("Hello")
        .voice("Polly.Joanna")
        .language("en-US")
        .break_(SsmlBreak::new().strength("x-weak").time("100ms"))
        .child(" and welcome ")
        .emphasis(SsmlEmphasis::new("to callbid").level("strong"))
        .lang(SsmlLang::new("Bonjour").xml_lang("fr-FR"))
        .p(para)
        .phoneme(
            SsmlPhoneme::new("tomato")
                .alphabet("ipa")
                .ph("t\u{259}\u{2c8}me\u{26a}to\u{28a}"),
        )
        .prosody(prosody)
        .s(SsmlS::new(""))
        .say_as(SsmlSayAs::new("4155551234").interpret_as("telephone"))
        .sub(SsmlSub::new("Mg").alias("magnesium"))
        .w(SsmlW::new("bass").role("amazon:SENSE_1"));
    check(
        "say_ssml",
        VoiceResponse::new()
            .say(say)
            .say(Say::new("").break_(SsmlBreak::new().time("1s")))
            .gather(
                Gather::new()
                    .input(GatherInput::Speech)
                    .say(Say::new("Inside gather").emphasis(SsmlEmphasis::new("now"))),
            ),
    );
}

#[test]
fn hangup_reject_parameters() {
    check(
        "hangup_reject_parameters",
        VoiceResponse::new()
            .verb(Hangup::new().parameter(Parameter::new("reason", "no-buyer")))
            .reject(
                Reject::new()
                    .reason(RejectReason::Rejected)
                    .parameter(Parameter::new("why", "blocked & spam")),
            )
            .leave(),
    );
}

#[test]
fn extra_attributes() {
    check(
        "extra_attributes",
        VoiceResponse::new()
            .say(
                Say::new("x")
                    .voice("alice")
                    .attr(name("newFeature"), "on")
                    .attr(name("zeta"), "1")
                    .attr(name("Alpha"), "2")
                    .attr(name("a-b"), "4")
                    .attr(name("_u"), "3 \"q\" & <t>\n")
                    .attr(name("voice"), "man"),
            )
            .dial(
                Dial::new()
                    .timeout(5u32)
                    .attr(name("answerTimeout"), "7")
                    .number(
                        Number::new("+15550001111")
                            .url("/w")
                            .attr(name("whisperMode"), "beep"),
                    ),
            )
            .connect(
                Connect::new().stream(Stream::new().url("wss://x").attr(name("customThing"), "c")),
            )
            .verb(Hangup::new().attr(name("graceful"), "true"))
            .verb(Leave::new().attr(name("note"), "n"))
            .verb(Echo::new().attr(name("mode"), "loop"))
            .gather(
                Gather::new()
                    .input(GatherInput::Dtmf)
                    .attr(name("x:y"), "ns"),
            ),
    );
}
