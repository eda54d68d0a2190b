-- v11: quality history (callbid_core::state::quality). quality_calls holds each call's one
-- stored outcome (signal, converted) and the buckets it counts in (HistoryKey JSON array);
-- its row lock serializes concurrent records of one call. quality_history: counts per
-- buyer x area x hour-of-week.
CREATE TABLE quality_calls (
    call_id   TEXT    NOT NULL PRIMARY KEY,
    signal    TEXT    NOT NULL,
    converted BOOLEAN NOT NULL,
    keys      TEXT    NOT NULL
);
CREATE TABLE quality_history (
    buyer        TEXT   NOT NULL,
    area         TEXT   NOT NULL,
    hour_of_week BIGINT NOT NULL,
    calls        BIGINT NOT NULL,
    converted    BIGINT NOT NULL,
    postback     BIGINT NOT NULL,
    transcript   BIGINT NOT NULL,
    PRIMARY KEY (buyer, area, hour_of_week)
);
