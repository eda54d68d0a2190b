#!/usr/bin/env python3
"""Writes seed corpora for every fuzz target of the workspace from the test fixtures.

    python3 callbid-buyers/fuzz/seed_corpora.py      # from the workspace root

Writes (the corpus directories are git-ignored; re-run after changing fixtures):
- callbid-buyers/fuzz/corpus/parse_responses/: every canned response of
  callbid-buyers/tests/fixtures/*/*/*.json, in the target's input form: byte 0 the
  status index, byte 1 the content-type index, byte 2 the Content-Encoding index (see
  STATUSES, CONTENT_TYPES, CODINGS in fuzz_targets/parse_responses.rs), then the body
  (bodies over 70 000 bytes are cut there);
- callbid-core/fuzz/corpus/parse_inputs/: the phone numbers, ZIPs, services, ids,
  prices, currencies, SIP URIs, hours and call JSON the fixtures and examples use;
- callbid-twilio/fuzz/corpus/twiml_parse/: the golden TwiML documents;
- callbid-twilio/fuzz/corpus/twiml_escape/: text/attribute pairs from the golden
  documents, in `arbitrary`'s (&str, &str) form (a length byte, the first string, the
  rest);
- callbid-twilio/fuzz/corpus/webhook_form/: the form bodies the Twilio tests post.

File names are content hashes, so re-running adds nothing twice.
"""
import base64
import glob
import hashlib
import json
import os
import re

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

STATUSES = [200, 201, 204, 302, 400, 404, 429, 500]
CONTENT_TYPES = ["application/json", "text/html", "application/vnd.x+json"]
CODINGS = ["", "gzip", "deflate", "br", "gzip, br", "identity", "zstd"]
MAX_BODY = 70_000


def write(target_dir, data):
    os.makedirs(target_dir, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(target_dir, name), "wb") as f:
        f.write(data)


def response_seed(r, server):
    status = r.get("status", 200)
    si = STATUSES.index(status) if status in STATUSES else 0
    ct = r.get("content_type") or ("application/json" if "json" in r or "body" not in r else "application/json")
    ci = 0 if "json" in ct else 1
    coding = {k.lower(): v for k, v in r.get("headers", {}).items()}.get("content-encoding", "")
    ei = CODINGS.index(coding) if coding in CODINGS else 0
    if "body_base64" in r:
        body = base64.b64decode(r["body_base64"])
    elif "body" in r:
        body = r["body"].encode()
    elif "body_repeat" in r:
        text, times = r["body_repeat"]
        body = (text * times).encode()
    elif "json" in r:
        body = json.dumps(r["json"]).encode()
    else:
        body = b""
    body = body.replace(b"{{server}}", server.encode())
    return bytes([si, ci, ei]) + body[:MAX_BODY]


def buyers():
    out = os.path.join(ROOT, "callbid-buyers/fuzz/corpus/parse_responses")
    n = 0
    strings = set()
    for path in sorted(glob.glob(os.path.join(ROOT, "callbid-buyers/tests/fixtures/*/*/*.json"))):
        with open(path) as f:
            fx = json.load(f)
        call = fx["call"]
        strings.update(v for v in call.values() if isinstance(v, str))
        strings.add(json.dumps({k: v for k, v in call.items() if k != "attributes"}))
        for step in fx["steps"]:
            r = step.get("response")
            if r:
                write(out, response_seed(r, "http://127.0.0.1:1"))
                n += 1
            for e in ("bid", "error"):
                v = step.get("expect", {}).get(e, {})
                for k in ("price", "destination", "bid_id"):
                    if isinstance(v.get(k), str):
                        strings.add(v[k])
            d = step.get("expect", {}).get("destination")
            if isinstance(d, str):
                strings.add(d)
    return n, strings


def core(strings):
    out = os.path.join(ROOT, "callbid-core/fuzz/corpus/parse_inputs")
    extra = {"USD", "EUR", "usd", "08:00-20:00", "22:00-02:00", "00:00-24:00", "+18005550100",
             "8005550100", "sip:buyer@pbx.example.com;transport=tcp", "0.30000000000000004",
             "-5.00", "1e2", "NaN", "99999999999999999999999999999", "plumbing", "air_conditioning"}
    toml = os.path.join(ROOT, "callbid-buyers/examples/buyers.toml")
    with open(toml) as f:
        extra.update(re.findall(r'"([^"\n]{1,64})"', f.read()))
    for s in sorted(strings | extra):
        write(out, s.encode())
    return len(strings | extra)


def twilio():
    golden = sorted(glob.glob(os.path.join(ROOT, "callbid-twilio/tests/golden/*.xml")))
    n = {"twiml_parse": 0, "twiml_escape": 0, "webhook_form": 0}
    for g in golden:
        with open(g, "rb") as f:
            doc = f.read()
        write(os.path.join(ROOT, "callbid-twilio/fuzz/corpus/twiml_parse"), doc)
        n["twiml_parse"] += 1
        text = doc.decode("utf-8", "replace")
        texts = re.findall(r">([^<>]+)<", text) or [""]
        attrs = re.findall(r'="([^"]*)"', text) or [""]
        for t, a in zip(texts, attrs):
            t = t.encode()[:255]
            write(os.path.join(ROOT, "callbid-twilio/fuzz/corpus/twiml_escape"), bytes([len(t)]) + t + a.encode())
            n["twiml_escape"] += 1
    forms = set()
    for src in glob.glob(os.path.join(ROOT, "callbid-twilio/tests/*.rs")) + glob.glob(
            os.path.join(ROOT, "callbid-twilio/src/**/*.rs"), recursive=True):
        with open(src) as f:
            forms.update(re.findall(r'"((?:[A-Za-z]+=[^"&\s]*&)+[A-Za-z]+=[^"&\s]*)"', f.read()))
    for form in sorted(forms):
        write(os.path.join(ROOT, "callbid-twilio/fuzz/corpus/webhook_form"), form.encode())
    n["webhook_form"] = len(forms)
    return n


def main():
    n, strings = buyers()
    print("parse_responses:", n, "responses")
    print("parse_inputs:", core(strings), "strings")
    for k, v in twilio().items():
        print(k + ":", v, "seeds")


if __name__ == "__main__":
    main()
