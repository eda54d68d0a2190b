-- callbid-store schema v1 (PostgreSQL). Same shape as the SQLite schema: instants are
-- BIGINT nanoseconds since the epoch (UTC); report money is exact BIGINT micro-units plus
-- the exact decimal text; cap amounts are NUMERIC. Ids compare bytewise (COLLATE "C"),
-- as in SQLite, so keyset pages are identical on both backends.

CREATE TABLE call_events (
    seq             BIGSERIAL PRIMARY KEY,
    call_id         TEXT COLLATE "C" NOT NULL,
    idempotency_key TEXT COLLATE "C" NOT NULL,
    at_ns           BIGINT NOT NULL,
    kind            TEXT   NOT NULL,
    event           TEXT   NOT NULL,
    UNIQUE (call_id, idempotency_key)
);
CREATE INDEX call_events_by_call ON call_events (call_id, seq);
CREATE FUNCTION callbid_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'call_events is append-only';
END;
$$;
CREATE TRIGGER call_events_append_only BEFORE UPDATE OR DELETE ON call_events
    FOR EACH ROW EXECUTE FUNCTION callbid_append_only();

CREATE TABLE calls (
    call_id        TEXT COLLATE "C" PRIMARY KEY,
    received_ns    BIGINT NOT NULL,
    day            BIGINT NOT NULL,
    status         TEXT   NOT NULL,
    caller         TEXT,
    dialed         TEXT,
    campaign       TEXT,
    source         TEXT,
    zip            TEXT,
    service        TEXT,
    buyer          TEXT,
    currency       TEXT,
    price          TEXT,
    price_micros   BIGINT,
    revenue        TEXT,
    revenue_micros BIGINT,
    payout         TEXT,
    payout_micros  BIGINT,
    billable       BIGINT,
    accepted       BIGINT NOT NULL,
    duration_secs  BIGINT,
    fallback       TEXT,
    destination    TEXT,
    recording_url  TEXT,
    pinged         BIGINT NOT NULL,
    bids           BIGINT NOT NULL,
    events         BIGINT NOT NULL,
    record         TEXT   NOT NULL
);
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

CREATE TABLE cap_reservations (
    id         TEXT PRIMARY KEY,
    expires_ns BIGINT
);
CREATE TABLE cap_increments (
    reservation_id TEXT    NOT NULL REFERENCES cap_reservations (id) ON DELETE CASCADE,
    counter        TEXT    NOT NULL,
    amount         NUMERIC NOT NULL,
    PRIMARY KEY (reservation_id, counter)
);
CREATE INDEX cap_increments_by_counter ON cap_increments (counter, reservation_id) INCLUDE (amount);

CREATE TABLE seen_callers (
    buyer        TEXT   NOT NULL,
    caller       TEXT   NOT NULL,
    last_seen_ns BIGINT NOT NULL,
    PRIMARY KEY (buyer, caller)
);

CREATE TABLE duration_history (
    buyer        TEXT   NOT NULL,
    area         TEXT   NOT NULL,
    hour_of_week BIGINT NOT NULL,
    calls        BIGINT NOT NULL,
    billable     BIGINT NOT NULL,
    PRIMARY KEY (buyer, area, hour_of_week)
);
