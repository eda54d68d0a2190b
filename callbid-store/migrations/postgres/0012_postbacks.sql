-- Publisher postbacks (callbid_core::state::postback): one row per call x publisher, the
-- outbox of "this call became billable" notifications. state is pending / delivered /
-- abandoned; a pending row is due at next_ns and may be held by holder until
-- lease_until_ns. Times are nanoseconds since the Unix epoch (UTC).
CREATE TABLE postbacks (
    call_id TEXT NOT NULL,
    publisher TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_ns BIGINT,
    last_attempt_ns BIGINT,
    last_status INTEGER,
    last_error TEXT,
    url TEXT,
    delivered_ns BIGINT,
    holder TEXT,
    lease_until_ns BIGINT,
    PRIMARY KEY (call_id, publisher)
);
CREATE INDEX postbacks_due ON postbacks (next_ns) WHERE state = 'pending';
