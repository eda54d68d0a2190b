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
