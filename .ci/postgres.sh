# shellcheck shell=bash
# Makes a throwaway PostgreSQL server available on loopback and exports DATABASE_URL.
#
# Usage (CI sources it before the tests, so the export reaches cargo):
#     source .ci/postgres.sh        # or: . .ci/postgres.sh
#     cargo test -p callbid-store --all-features
#     callbid_pg_stop               # optional: stop the server and delete its data
#
# - Uses the PostgreSQL server binaries under /usr/lib/postgresql/*/bin (newest version);
#   installs the Debian `postgresql` package when they are missing (needs root).
# - initdb into a fresh temporary directory, run as the `postgres` user when we are
#   root (the server refuses to run as root), trust authentication on 127.0.0.1 only,
#   on a free port; then creates the database `callbid_test`.
# - Exports DATABASE_URL=postgres://postgres@127.0.0.1:PORT/callbid_test,
#   CALLBID_PGDATA (the data directory) and CALLBID_PGBIN.
# - If DATABASE_URL is already set it is left alone and nothing is started.
# Works when sourced from a script running with `set -euo pipefail`. On failure it
# prints why and returns non-zero (which, under `set -e`, stops the caller: CI fails
# rather than silently skipping the PostgreSQL tests).

callbid_pg_start() {
    local bin ver port data log runas
    if [ -n "${DATABASE_URL:-}" ]; then
        echo "postgres.sh: DATABASE_URL already set; not starting a server" >&2
        return 0
    fi
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "postgres.sh: PostgreSQL server not found; installing the postgresql package" >&2
        if [ "$(id -u)" -ne 0 ]; then
            echo "postgres.sh: not root, cannot apt-get install postgresql" >&2
            return 1
        fi
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 || return 1
        bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
        if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
            echo "postgres.sh: installed postgresql but found no initdb" >&2
            return 1
        fi
    fi
    ver="$("$bin/postgres" --version 2>/dev/null || echo unknown)"

    data="$(mktemp -d /tmp/callbid-pg.XXXXXX)" || return 1
    log="$data.log"
    if [ "$(id -u)" -eq 0 ]; then
        runas=(runuser -u postgres --)
        chown postgres "$data" || return 1
        touch "$log" && chown postgres "$log" || return 1
    else
        runas=()
    fi

    # A free loopback port: ask the kernel for one.
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 54329)"

    "${runas[@]}" "$bin/initdb" -D "$data/db" -U postgres -A trust -E UTF8 --no-locale >"$log" 2>&1 || {
        echo "postgres.sh: initdb failed:" >&2; cat "$log" >&2; return 1; }
    "${runas[@]}" "$bin/pg_ctl" -D "$data/db" -l "$log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=on -c max_connections=200" \
        start >/dev/null || {
        echo "postgres.sh: pg_ctl start failed:" >&2; cat "$log" >&2; return 1; }
    "${runas[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres callbid_test || {
        echo "postgres.sh: createdb failed" >&2; return 1; }

    export CALLBID_PGDATA="$data"
    export CALLBID_PGBIN="$bin"
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/callbid_test"
    echo "postgres.sh: $ver on 127.0.0.1:$port, DATABASE_URL=$DATABASE_URL" >&2
}

# Stops the server started by callbid_pg_start and removes its data directory.
callbid_pg_stop() {
    if [ -z "${CALLBID_PGDATA:-}" ] || [ -z "${CALLBID_PGBIN:-}" ]; then
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$CALLBID_PGBIN/pg_ctl" -D "$CALLBID_PGDATA/db" -m fast -w stop >/dev/null 2>&1 || true
    else
        "$CALLBID_PGBIN/pg_ctl" -D "$CALLBID_PGDATA/db" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$CALLBID_PGDATA" "$CALLBID_PGDATA.log"
    unset CALLBID_PGDATA CALLBID_PGBIN DATABASE_URL
}

callbid_pg_start
