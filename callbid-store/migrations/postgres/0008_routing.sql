-- v8: routing decisions, persisted before they are answered (callbid_core::state::routing).
-- One row per call x step: the holder routing it until lease_until_ns, then the TwiML it
-- decided. The first decision stands; at_ns (claim or decision time) drives pruning.
CREATE TABLE routes (
    call_id TEXT NOT NULL,
    step TEXT NOT NULL,
    holder TEXT NOT NULL,
    lease_until_ns BIGINT NOT NULL,
    twiml TEXT,
    at_ns BIGINT NOT NULL,
    PRIMARY KEY (call_id, step)
);
CREATE INDEX routes_at ON routes (at_ns);
