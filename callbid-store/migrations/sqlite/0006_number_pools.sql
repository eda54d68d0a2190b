-- Number pools (seed 003): pools, their numbers, leases, call locks, recorded calls and
-- the lease log for health. Instants are nanoseconds since the Unix epoch.
CREATE TABLE IF NOT EXISTS pool_pools (
    pool_id  TEXT PRIMARY KEY,
    settings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pool_numbers (
    pool_id      TEXT NOT NULL,
    number       TEXT NOT NULL,
    info         TEXT NOT NULL,
    added_at     INTEGER NOT NULL,
    leased_until INTEGER,
    lease_id     TEXT,
    locked_until INTEGER,
    last_active  INTEGER NOT NULL,
    PRIMARY KEY (pool_id, number)
);
CREATE INDEX IF NOT EXISTS pool_numbers_free ON pool_numbers (pool_id, leased_until, number);
CREATE TABLE IF NOT EXISTS pool_leases (
    lease_id   TEXT PRIMARY KEY,
    pool_id    TEXT NOT NULL,
    lease_key  TEXT NOT NULL,
    visitor    TEXT NOT NULL,
    number     TEXT NOT NULL,
    exclusive  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pool_leases_key ON pool_leases (pool_id, lease_key, expires_at);
CREATE INDEX IF NOT EXISTS pool_leases_visitor ON pool_leases (pool_id, visitor, expires_at);
CREATE INDEX IF NOT EXISTS pool_leases_number ON pool_leases (pool_id, number, created_at);
CREATE TABLE IF NOT EXISTS pool_locks (
    pool_id      TEXT NOT NULL,
    number       TEXT NOT NULL,
    caller       TEXT NOT NULL,
    lease_id     TEXT NOT NULL,
    lease_key    TEXT NOT NULL,
    visitor      TEXT NOT NULL,
    locked_from  INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    PRIMARY KEY (pool_id, number, caller)
);
CREATE INDEX IF NOT EXISTS pool_locks_key ON pool_locks (pool_id, lease_key, locked_until);
CREATE INDEX IF NOT EXISTS pool_locks_visitor ON pool_locks (pool_id, visitor, number);
CREATE TABLE IF NOT EXISTS pool_calls (
    pool_id  TEXT NOT NULL,
    call_sid TEXT NOT NULL,
    at       INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    body     TEXT NOT NULL,
    PRIMARY KEY (pool_id, call_sid)
);
CREATE INDEX IF NOT EXISTS pool_calls_at ON pool_calls (pool_id, at);
CREATE TABLE IF NOT EXISTS pool_lease_log (
    pool_id TEXT NOT NULL,
    at      INTEGER NOT NULL,
    granted INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS pool_lease_log_at ON pool_lease_log (pool_id, at);
