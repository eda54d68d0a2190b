# shellcheck shell=bash
# Browser-test setup for tests/dashboard_browser.rs. Meant to be *sourced* (not
# executed) before the tests:
#
#     source .ci/chromium.sh
#
# Installs Debian's `chromium` and `chromium-driver` with apt-get when either
# /usr/bin/chromium or /usr/bin/chromedriver is missing (runs `apt-get update` first;
# needs root, which CI and the developer machines are), checks that both start, and
# exports
#     CHROMIUM_BIN        /usr/bin/chromium
#     CHROMEDRIVER_BIN    /usr/bin/chromedriver
# which the test reads (it falls back to those paths). Any failing step fails the
# sourcing shell when it runs under `set -e`; the function also returns non-zero.

_chromium_ci_setup() {
    local chromium=/usr/bin/chromium driver=/usr/bin/chromedriver
    if [ ! -x "$chromium" ] || [ ! -x "$driver" ]; then
        echo "chromium.sh: installing chromium and chromium-driver with apt-get"
        local sudo=""
        if [ "$(id -u)" != "0" ]; then
            command -v sudo >/dev/null 2>&1 || {
                echo "chromium.sh: not root and no sudo; cannot install chromium" >&2
                return 1
            }
            sudo="sudo"
        fi
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            chromium chromium-driver fonts-dejavu-core >/dev/null || return 1
    fi
    "$chromium" --version || {
        echo "chromium.sh: $chromium does not start" >&2
        return 1
    }
    "$driver" --version || {
        echo "chromium.sh: $driver does not start" >&2
        return 1
    }
    export CHROMIUM_BIN="$chromium"
    export CHROMEDRIVER_BIN="$driver"
}

_chromium_ci_setup
