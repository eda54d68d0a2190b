#!/usr/bin/env python3
"""Makes OpenAPI's default form encoding explicit for Prism.

OpenAPI 3 says an `application/x-www-form-urlencoded` body property without an
`encoding` entry uses style=form, explode=true: an array is sent as repeated keys
(`StatusCallbackEvent=initiated&StatusCallbackEvent=answered`), which is what
Twilio's API expects. Prism 5 does not apply that default (it only recognises
`Key[]=` arrays), so it rejects correct repeated-key requests with 422. This
script copies a spec and writes the default out as explicit `encoding` entries
for every array property of every form body. Nothing else changes.

Usage: oas_form_encoding.py IN.json OUT.json
"""
import json
import sys


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        spec = json.load(f)
    patched = 0
    for item in spec.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict):
                continue
            content = op.get("requestBody", {}).get("content", {})
            form = content.get("application/x-www-form-urlencoded")
            if not form:
                continue
            props = form.get("schema", {}).get("properties", {})
            enc = form.setdefault("encoding", {})
            for name, schema in props.items():
                if schema.get("type") == "array" and name not in enc:
                    enc[name] = {"style": "form", "explode": True}
                    patched += 1
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    print("%s: made form encoding explicit for %d array properties" % (dst, patched))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
