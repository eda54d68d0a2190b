# shellcheck shell=bash
# callbid-twilio CI setup. Meant to be *sourced* (not executed) before the tests:
#
#     source .ci/twilio.sh
#
# 1. installs twilio-python from PyPI and reruns the TwiML golden script; fails if
#    the committed golden files under callbid-twilio/tests/golden differ;
# 2. installs Twilio's OpenAPI documents (npm pack @twilio-alpha/mcp@0.7.0) and
#    Stoplight Prism (@stoplight/prism-cli@5.16.0) into an ignored directory
#    ($TWILIO_OAI_DIR, default <repo>/.twilio-oai);
# 3. starts two Prism mocks on loopback (api v2010 and lookups v2), waits until they
#    answer, and exports
#        TWILIO_PRISM_API_URL      e.g. http://127.0.0.1:40123
#        TWILIO_PRISM_LOOKUPS_URL  e.g. http://127.0.0.1:40124
#        TWILIO_PRISM_PIDS         the mock processes, stopped by twilio_prism_stop
#    which callbid-twilio/tests/contract_prism.rs reads. The mocks are stopped on
#    shell exit (an EXIT trap, installed only if none is set; otherwise call
#    twilio_prism_stop yourself).
# Any failing step fails the sourcing shell when it runs under `set -e`; the
# function also returns non-zero.

twilio_prism_stop() {
    local pid
    for pid in ${TWILIO_PRISM_PIDS:-}; do
        kill "$pid" 2>/dev/null || true
    done
    TWILIO_PRISM_PIDS=""
}

_twilio_ci_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_twilio_ci_wait() {
    # Any HTTP answer (401 without credentials) means the mock is up.
    local url="$1" log="$2" i code
    for i in $(seq 1 180); do
        code="$(curl -s -o /dev/null -w '%{http_code}' "$url" 2>/dev/null || true)"
        if [ -n "$code" ] && [ "$code" != "000" ]; then
            return 0
        fi
        sleep 1
    done
    echo "twilio.sh: Prism at $url did not start; log:" >&2
    tail -n 40 "$log" >&2 || true
    return 1
}

_twilio_ci_setup() {
    local root oai spec_dir api_port lookups_port
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    oai="${TWILIO_OAI_DIR:-$root/.twilio-oai}"

    echo "twilio.sh: installing twilio-python and checking TwiML golden files"
    python3 -m pip install --quiet --disable-pip-version-check 'twilio>=9,<10' || return 1
    python3 "$root/callbid-twilio/scripts/twiml_golden.py" || return 1
    (cd "$root" && git diff --exit-code -- callbid-twilio/tests/golden) || {
        echo "twilio.sh: TwiML golden files differ from twilio-python's output" >&2
        return 1
    }
    if [ -n "$(cd "$root" && git status --porcelain -- callbid-twilio/tests/golden)" ]; then
        echo "twilio.sh: golden script wrote files that are not committed:" >&2
        (cd "$root" && git status --porcelain -- callbid-twilio/tests/golden) >&2
        return 1
    fi

    echo "twilio.sh: installing Twilio OpenAPI specs and Prism into $oai"
    mkdir -p "$oai"
    spec_dir="$oai/package/twilio-oai/spec/json"
    if [ ! -f "$spec_dir/twilio_api_v2010.json" ]; then
        (cd "$oai" && npm pack --silent @twilio-alpha/mcp@0.7.0 >/dev/null && tar xzf twilio-alpha-mcp-0.7.0.tgz) || return 1
    fi
    if [ ! -x "$oai/node_modules/.bin/prism" ]; then
        [ -f "$oai/package.json" ] || echo '{"name":"twilio-oai-mock","private":true}' > "$oai/package.json"
        (cd "$oai" && npm install --silent --no-audit --no-fund @stoplight/prism-cli@5.16.0) || return 1
    fi
    # Prism ignores OpenAPI's default form encoding (arrays as repeated keys);
    # write it out explicitly. See the script's docstring.
    python3 "$root/callbid-twilio/scripts/oas_form_encoding.py" \
        "$spec_dir/twilio_api_v2010.json" "$oai/twilio_api_v2010.form.json" || return 1

    twilio_prism_stop
    api_port="$(_twilio_ci_free_port)"
    lookups_port="$(_twilio_ci_free_port)"
    "$oai/node_modules/.bin/prism" mock -h 127.0.0.1 -p "$api_port" \
        "$oai/twilio_api_v2010.form.json" >"$oai/prism-api.log" 2>&1 </dev/null &
    TWILIO_PRISM_PIDS="$!"
    "$oai/node_modules/.bin/prism" mock -h 127.0.0.1 -p "$lookups_port" \
        "$spec_dir/twilio_lookups_v2.json" >"$oai/prism-lookups.log" 2>&1 </dev/null &
    TWILIO_PRISM_PIDS="$TWILIO_PRISM_PIDS $!"
    export TWILIO_PRISM_PIDS
    if [ -z "$(trap -p EXIT)" ]; then
        trap twilio_prism_stop EXIT
    fi
    _twilio_ci_wait "http://127.0.0.1:$api_port/2010-04-01/Accounts.json" "$oai/prism-api.log" || return 1
    _twilio_ci_wait "http://127.0.0.1:$lookups_port/v2/PhoneNumbers/+15005550006" "$oai/prism-lookups.log" || return 1
    export TWILIO_PRISM_API_URL="http://127.0.0.1:$api_port"
    export TWILIO_PRISM_LOOKUPS_URL="http://127.0.0.1:$lookups_port"
    echo "twilio.sh: Prism ready: TWILIO_PRISM_API_URL=$TWILIO_PRISM_API_URL TWILIO_PRISM_LOOKUPS_URL=$TWILIO_PRISM_LOOKUPS_URL"
}

_twilio_ci_setup
