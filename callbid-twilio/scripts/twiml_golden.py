#!/usr/bin/env python3
"""Writes the TwiML golden files with twilio-python (pip install 'twilio>=9,<10').

Each case here has a twin in callbid-twilio/tests/twiml_golden.rs that builds the same
document with callbid-twilio; the test asserts byte equality with the file written
here. CI reruns this script and fails if the committed files change.

Usage: python3 callbid-twilio/scripts/twiml_golden.py [OUTPUT_DIR]
"""
import os
import sys

from twilio.twiml.voice_response import VoiceResponse

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "golden")

TRICKY = "tab\tnew\nline\rcr & \"q\" 'a' <b> ]]> Ol\u00e1 \u65e5\u672c \U0001F600"


def reference_example():
    r = VoiceResponse()
    g = r.gather(input="dtmf", num_digits=5, action="/ivr/zip", timeout=5)
    g.say("Please enter your <zip> & code", voice="alice")
    d = r.dial(caller_id="+15551234567", timeout=20, record="record-from-answer")
    d.sip("sip:buyer@example.com")
    r.hangup()
    return r


def empty_response():
    return VoiceResponse()


def say_all_attributes():
    r = VoiceResponse()
    r.say('Hello "world" & <you>', voice="Polly.Joanna", loop=2, language="en-US")
    r.say("")
    return r


def play_and_pause():
    r = VoiceResponse()
    r.play("https://example.com/a.mp3?x=1&y=2", loop=3)
    r.play(digits="ww1234")
    r.pause(length=2)
    r.pause()
    return r


def gather_all_attributes():
    r = VoiceResponse()
    g = r.gather(
        input="dtmf speech",
        action='/ivr?step=1&x="q"',
        method="GET",
        timeout=7,
        speech_timeout="auto",
        max_speech_time=30,
        profanity_filter=False,
        finish_on_key="",
        num_digits=1,
        partial_result_callback="/partial",
        partial_result_callback_method="POST",
        language="es-MX",
        hints="one, two",
        barge_in=True,
        debug=False,
        action_on_empty_result=True,
        speech_model="phone_call",
        enhanced=True,
    )
    g.say("Press 1", voice="man")
    g.play("https://example.com/menu.mp3")
    g.pause(length=1)
    r.gather(speech_timeout=3)
    return r


def dial_all_nouns():
    r = VoiceResponse()
    d = r.dial(
        action="/dial-done",
        method="POST",
        timeout=25,
        hangup_on_star=True,
        time_limit=3600,
        caller_id="+15551234567",
        record="record-from-ringing-dual",
        trim="trim-silence",
        recording_status_callback="/rec",
        recording_status_callback_method="GET",
        recording_status_callback_event="in-progress completed absent",
        answer_on_bridge=True,
        ring_tone="us",
        recording_track="both",
        sequential=True,
        refer_url="/refer",
        refer_method="POST",
    )
    d.number(
        "+15550001111",
        send_digits="ww12",
        url="/whisper",
        method="GET",
        status_callback_event="initiated ringing answered completed",
        status_callback="https://cb.example.com/s?a=1&b=2",
        status_callback_method="POST",
        machine_detection="Enable",
        machine_detection_timeout=10,
    )
    d.sip(
        "sip:buyer@example.com;transport=tls",
        username="u",
        password='p"w&<>',
        url="/sipwhisper",
        status_callback_event="answered",
    )
    d.client("agent_7", url="/c", method="POST")
    d.conference(
        "Room 1",
        muted=False,
        beep="onEnter",
        start_conference_on_enter=True,
        end_conference_on_exit=False,
        wait_url="",
        wait_method="GET",
        max_participants=10,
        record="record-from-start",
        region="us1",
        trim="do-not-trim",
        status_callback_event="start end join leave",
        status_callback="/conf",
        status_callback_method="POST",
        jitter_buffer_size="small",
        participant_label="caller",
    )
    d.queue("support", url="/q", method="POST", reservation_sid="WR123", post_work_activity_sid="WA123")
    return r


def dial_text_number():
    r = VoiceResponse()
    r.dial("+15558675309", timeout=10)
    r.dial()
    return r


def record_all_attributes():
    r = VoiceResponse()
    r.record(
        action="/recorded",
        method="POST",
        timeout=5,
        finish_on_key="#*",
        max_length=120,
        play_beep=True,
        trim="do-not-trim",
        recording_status_callback="/rs",
        recording_status_callback_method="POST",
        recording_status_callback_event="completed",
        transcribe=True,
        transcribe_callback="/t",
    )
    r.record()
    return r


def redirect_reject_hangup_leave():
    r = VoiceResponse()
    r.redirect("../next?x=1&y=2", method="GET")
    r.reject(reason="busy")
    r.reject()
    r.hangup()
    r.leave()
    return r


def enqueue_task():
    r = VoiceResponse()
    e = r.enqueue(
        None,
        workflow_sid="WW123",
        action="/eq",
        max_queue_size=5,
        method="POST",
        wait_url="/wait",
        wait_url_method="GET",
    )
    e.task('{"selected_language": "es", "a": "<&>"}', priority=5, timeout=200)
    r.enqueue("support")
    return r


def escaping():
    r = VoiceResponse()
    r.say(TRICKY, voice=TRICKY, language="a&b<c>d\"e'f")
    r.redirect(TRICKY)
    return r


def connect_nouns():
    r = VoiceResponse()
    c = r.connect(action="/connect-done", method="POST")
    s = c.stream(
        name="agent audio",
        connector_name="conn1",
        url="wss://media.example.com/s?a=1&b=2",
        track="both_tracks",
        status_callback="/stream-status",
        status_callback_method="GET",
        audio_format="audio/x-mulaw",
        sample_rate=8000,
    )
    s.parameter(name="callId", value="CA123")
    s.parameter(name="note", value='a "quoted" & <odd> value')
    r.connect().room("Support Room", participant_identity="caller-1")
    v = r.connect().virtual_agent(
        connector_name="dialogflow",
        language="en-US",
        sentiment_analysis=True,
        status_callback="/va",
        status_callback_method="POST",
    )
    v.config(name="voiceName", value="en-US-Wavenet-C")
    v.parameter(name="customer", value="42")
    r.connect().conversation(
        service_instance_sid="IS123",
        inbound_autocreation=True,
        routing_assignment_timeout=60,
        inbound_timeout=30,
        url="/conv",
        method="POST",
        record="record-from-answer",
        trim="trim-silence",
        recording_status_callback="/crs",
        recording_status_callback_method="GET",
        recording_status_callback_event="in-progress completed",
        status_callback="/cs",
        status_callback_method="POST",
        status_callback_event="initiated ringing answered completed",
    )
    cr = r.connect().conversation_relay(
        url="wss://relay.example.com/ws",
        language="en-US",
        tts_language="en-US",
        transcription_language="es-US",
        tts_provider="ElevenLabs",
        voice="UgBBYS2sOqTuMpoF3BR0",
        transcription_provider="Deepgram",
        speech_model="nova-2-phonecall",
        profanity_filter=False,
        dtmf_detection=True,
        welcome_greeting="Hi! How can I help?",
        partial_prompts=True,
        welcome_greeting_interruptible="speech",
        interruptible="any",
        preemptible=False,
        hints="callbid, ping, post",
        intelligence_service="GA123",
        report_input_during_agent_speech="none",
        elevenlabs_text_normalization="on",
        interrupt_sensitivity="high",
        debug="debugging speaker-events",
        backgroundNoiseReduction="true",
        speechTimeout="1500",
        deepgramSmartFormat="true",
        ignoreBackchannel="true",
        events="speaker-events",
        partial_prompt_on_hangup="true",
        eager_eot_threshold="0.5",
        asr_smart_format="true",
        tts_text_normalization="auto",
        tts_language_text_normalization="true",
        elevenlabs_language_text_normalization="true",
        include_in_prompt="turn-state",
        customer_name="Ana",
        application_reconnect="true",
        echo_prompt_filtering="true",
        turn_detection="true",
    )
    cr.language(
        code="es-US",
        tts_provider="Google",
        voice="es-US-Neural2-A",
        transcription_provider="Google",
        speech_model="telephony",
        hints="uno, dos",
        asr_smart_format="false",
        tts_text_normalization="off",
        tts_language_text_normalization="false",
    )
    cr.parameter(name="buyer", value="acme")
    r.connect()
    return r


def start_stop():
    r = VoiceResponse()
    st = r.start(action="/started", method="GET")
    st.stream(name="fork", url="wss://media.example.com/fork", track="inbound_track").parameter(name="k", value="v")
    st.siprec(name="rec1", connector_name="SR1", track="both_tracks", status_callback="/siprec", status_callback_method="POST").parameter(name="a", value="b")
    t = st.transcription(
        name="call transcript",
        track="both_tracks",
        status_callback_url="https://cb.example.com/transcripts?call=1&x=2",
        status_callback_method="POST",
        inbound_track_label="caller",
        outbound_track_label="agent",
        partial_results=True,
        language_code="en-US",
        transcription_engine="google",
        profanity_filter=True,
        speech_model="telephony",
        hints="bid, cap",
        enable_automatic_punctuation=False,
        intelligence_service="GA456",
    )
    t.config(name="enableSpeakerDiarization", value="true")
    t.parameter(name="callbid", value="1")
    r.start().recording(
        recording_status_callback="/rec-status",
        recording_status_callback_method="GET",
        recording_status_callback_event="in-progress completed absent",
        trim="do-not-trim",
        track="both",
        channels="dual",
        recording_configuration_id="RC123",
    )
    sp = r.stop()
    sp.stream(name="fork")
    sp.siprec(name="rec1")
    sp.transcription(name="call transcript")
    r.start()
    r.stop()
    return r


def pay_prompt():
    r = VoiceResponse()
    p = r.pay(
        input="dtmf",
        action="/paid",
        bank_account_type="consumer-checking",
        status_callback="/pay-status",
        status_callback_method="POST",
        timeout=10,
        max_attempts=3,
        security_code=True,
        postal_code="94105",
        min_postal_code_length=5,
        payment_connector="Stripe_Connector",
        payment_method="credit-card",
        token_type="reusable",
        charge_amount="10.00",
        currency="usd",
        description="Lead fee & tax",
        valid_card_types="visa mastercard amex",
        language="en-US",
    )
    pr = p.prompt(for_="payment-card-number", error_type="timeout invalid-card-number", card_type="visa amex", attempt="1 2", require_matching_inputs="true")
    pr.say("Enter your card number")
    pr.play("https://example.com/beep.mp3")
    pr.pause(length=1)
    p.parameter(name="order", value="A-1")
    r.pay(charge_amount="0")
    return r


def refer_echo():
    r = VoiceResponse()
    r.refer(action="/referred", method="POST").sip("sip:alice@example.com?X-Lead=123&X-Buyer=acme")
    r.refer()
    r.echo()
    return r


def dial_application_client_sip():
    r = VoiceResponse()
    d = r.dial(caller_id="+15551234567")
    a = d.application(
        url="/app-whisper",
        method="POST",
        status_callback_event="initiated answered",
        status_callback="/app-status",
        status_callback_method="GET",
        customer_id="cust-9",
        copy_parent_to=True,
    )
    a.application_sid("AP0123456789abcdef0123456789abcdef")
    a.parameter(name="lead", value="L-7")
    d.application("AP11111111111111111111111111111111")
    c = d.client(url="/agent-whisper", method="POST", status_callback_event="ringing answered", status_callback="/agent-status", status_callback_method="POST")
    c.identity("agent_7")
    c.parameter(name="offer", value="O-1")
    c.parameter(name="payout", value="12.50")
    d.client("agent_8")
    s = d.sip(username="u", password="p")
    s.uri("sip:a@buyer.example.com", priority=1, weight=10, username="ua", password="pa")
    s.uri("sip:b@buyer.example.com", priority=2)
    h = s.headers()
    h.header(name="X-Lead-Id", value="L-7")
    h.header(name="X-Note", value="a&b")
    d.sip("sip:buyer@example.com?X-Lead-Id=L-7&X-Buyer=acme")
    d.sim("DE0123456789abcdef0123456789abcdef")
    d.whats_app("+15550002222", url="/wa", method="GET", status_callback_event="answered", status_callback="/was", status_callback_method="POST")
    d.number("+15550001111", url="/number-whisper", method="GET")
    return r


def say_ssml():
    r = VoiceResponse()
    s = r.say("Hello", voice="Polly.Joanna", language="en-US")
    s.break_(strength="x-weak", time="100ms")
    s.append(" and welcome ")
    s.emphasis("to callbid", level="strong")
    s.lang("Bonjour", xml_lang="fr-FR")
    p = s.p("A paragraph.")
    sen = p.s("A sentence")
    sen.emphasis("inside").w("read", role="amazon:VBD")
    sen.append(" tail & <text>")
    sen.say_as("12/25", interpret_as="date", format="mdy")
    p.w("live", role="amazon:VB").sub("W3C", alias="World Wide Web Consortium")
    s.phoneme("tomato", alphabet="ipa", ph="t\u0259\u02c8me\u026ato\u028a")
    pro = s.prosody("Slow and loud", volume="+6dB", rate="slow", pitch="-10%")
    pro.p("nested p")
    pro.s("nested s").break_()
    pro.lang().prosody("deep", pitch="x-low")
    s.s()
    s.say_as("4155551234", interpret_as="telephone")
    s.sub("Mg", alias="magnesium")
    s.w("bass", role="amazon:SENSE_1")
    r.say().break_(time="1s")
    g = r.gather(input="speech")
    g.say("Inside gather").emphasis("now")
    return r


def hangup_reject_parameters():
    r = VoiceResponse()
    r.hangup().parameter(name="reason", value="no-buyer")
    r.reject(reason="rejected").parameter(name="why", value="blocked & spam")
    r.leave()
    return r


def extra_attributes():
    r = VoiceResponse()
    say = r.say("x", voice="alice", newFeature="on", zeta="1", Alpha="2")
    say.attrs["a-b"] = "4"
    say.attrs["_u"] = '3 "q" & <t>\n'
    say.attrs["voice"] = "man"
    d = r.dial(timeout=5, answerTimeout="7")
    d.number("+15550001111", url="/w", whisperMode="beep")
    r.connect().stream(url="wss://x", customThing="c")
    r.hangup(graceful="true")
    r.leave(note="n")
    r.echo(mode="loop")
    r.gather(input="dtmf", **{"x:y": "ns"})
    return r


CASES = [
    reference_example,
    empty_response,
    say_all_attributes,
    play_and_pause,
    gather_all_attributes,
    dial_all_nouns,
    dial_text_number,
    record_all_attributes,
    redirect_reject_hangup_leave,
    enqueue_task,
    escaping,
    connect_nouns,
    start_stop,
    pay_prompt,
    refer_echo,
    dial_application_client_sip,
    say_ssml,
    hangup_reject_parameters,
    extra_attributes,
]


def main():
    os.makedirs(OUT, exist_ok=True)
    for case in CASES:
        xml = case().to_xml()
        with open(os.path.join(OUT, case.__name__ + ".xml"), "w", encoding="utf-8", newline="") as f:
            f.write(xml)
    print("wrote %d golden files to %s" % (len(CASES), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
