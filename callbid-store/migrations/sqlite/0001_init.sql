-- callbid-store schema v1 (SQLite). Instants are INTEGER nanoseconds since the epoch (UTC);
-- money is exact decimal TEXT, plus INTEGER micro-units in `calls` for filters and sums.

-- The call log: append-only, one row per distinct (call_id, idempotency_key).
CREATE TABLE call_events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    call_id         TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    at_ns           INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    event           TEXT    NOT NULL, -- the CallEvent as JSON
    UNIQUE (call_id, idempotency_key)
);
CREATE INDEX call_events_by_call ON call_events (call_id, seq);
CREATE TRIGGER call_events_no_update BEFORE UPDATE ON call_events
BEGIN SELECT RAISE(ABORT, 'call_events is append-only'); END;
CREATE TRIGGER call_events_no_delete BEFORE DELETE ON call_events
BEGIN SELECT RAISE(ABORT, 'call_events is append-only'); END;

-- One summary row per call, folded with CallRecord::apply in the append's transaction.
CREATE TABLE calls (
    call_id        TEXT    PRIMARY KEY,
    received_ns    INTEGER NOT NULL,
    day            INTEGER NOT NULL, -- received_ns / 86400e9 (UTC day number)
    status         TEXT    NOT NULL,
    caller         TEXT,
    dialed         TEXT,
    campaign       TEXT,
    source         TEXT,
    zip            TEXT,
    service        TEXT,
    buyer          TEXT,
    currency       TEXT,
    price          TEXT,
    price_micros   INTEGER,
    revenue        TEXT,
    revenue_micros INTEGER,
    payout         TEXT,
    payout_micros  INTEGER,
    billable       INTEGER,
    accepted       INTEGER NOT NULL,
    duration_secs  INTEGER,
    fallback       TEXT,
    destination    TEXT,
    recording_url  TEXT,
    pinged         INTEGER NOT NULL,
    bids           INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    record         TEXT    NOT NULL -- the CallRecord as JSON
);
-- Every filterable column leads an index that ends in the default sort, so a filtered,
-- newest-first page is an index range scan that stops after `limit` rows.
CREATE INDEX calls_by_time     ON calls (received_ns, call_id);
CREATE INDEX calls_by_status   ON calls (status, received_ns, call_id);
CREATE INDEX calls_by_buyer    ON calls (buyer, received_ns, call_id);
CREATE INDEX calls_by_service  ON calls (service, received_ns, call_id);
CREATE INDEX calls_by_zip      ON calls (zip, received_ns, call_id);
CREATE INDEX calls_by_campaign ON calls (campaign, received_ns, call_id);
CREATE INDEX calls_by_source   ON calls (source, received_ns, call_id);
CREATE INDEX calls_by_price    ON calls (price_micros, call_id);
CREATE INDEX calls_by_revenue  ON calls (revenue_micros, call_id);
CREATE INDEX calls_by_duration ON calls (duration_secs, call_id);
CREATE INDEX calls_by_day      ON calls (day);

-- Caps: a reservation and the counters it adds to.
CREATE TABLE cap_reservations (
    id         TEXT PRIMARY KEY,
    expires_ns INTEGER -- NULL: until released
);
CREATE TABLE cap_increments (
    reservation_id TEXT NOT NULL REFERENCES cap_reservations (id) ON DELETE CASCADE,
    counter        TEXT NOT NULL,
    amount         TEXT NOT NULL, -- exact decimal
    PRIMARY KEY (reservation_id, counter)
);
CREATE INDEX cap_increments_by_counter ON cap_increments (counter, reservation_id, amount);

-- Duplicate callers.
CREATE TABLE seen_callers (
    buyer        TEXT    NOT NULL,
    caller       TEXT    NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    PRIMARY KEY (buyer, caller)
) WITHOUT ROWID;

-- Duration history buckets (hour_of_week -1 = all hours).
CREATE TABLE duration_history (
    buyer        TEXT    NOT NULL,
    area         TEXT    NOT NULL,
    hour_of_week INTEGER NOT NULL,
    calls        INTEGER NOT NULL,
    billable     INTEGER NOT NULL,
    PRIMARY KEY (buyer, area, hour_of_week)
) WITHOUT ROWID;
