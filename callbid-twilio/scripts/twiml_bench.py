#!/usr/bin/env python3
"""twilio-python's time to build and render the TWILIO.md example document.

The Rust side is benches/twiml.rs (`twiml/build_and_render_example`); run both on
the same machine and record the ratio in docs/BENCHMARKS.md ("TwiML rendering").

Usage: python3 callbid-twilio/scripts/twiml_bench.py [NUMBER]
"""
import sys
import timeit

from twilio.twiml.voice_response import VoiceResponse

EXPECTED = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Gather action="/ivr/zip" input="dtmf" '
    'numDigits="5" timeout="5"><Say voice="alice">Please enter your &lt;zip&gt; &amp; code</Say>'
    '</Gather><Dial callerId="+15551234567" record="record-from-answer" timeout="20">'
    "<Sip>sip:buyer@example.com</Sip></Dial><Hangup /></Response>"
)


def build_and_render():
    r = VoiceResponse()
    g = r.gather(input="dtmf", num_digits=5, action="/ivr/zip", timeout=5)
    g.say("Please enter your <zip> & code", voice="alice")
    d = r.dial(caller_id="+15551234567", timeout=20, record="record-from-answer")
    d.sip("sip:buyer@example.com")
    r.hangup()
    return r.to_xml()


def main():
    assert build_and_render() == EXPECTED, build_and_render()
    number = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    best = min(timeit.repeat(build_and_render, number=number, repeat=5)) / number
    print("twilio-python build_and_render_example: %.2f us per document (best of 5 x %d)" % (best * 1e6, number))


if __name__ == "__main__":
    main()
