-- v10 (file 0011, numbered as PostgreSQL's): quality history (callbid_core::state::quality).
-- quality_calls holds each call's one stored outcome (signal, converted) and the buckets it
-- counts in (HistoryKey JSON array); quality_history the counts per buyer x area x hour.
CREATE TABLE quality_calls (
    call_id   TEXT    NOT NULL PRIMARY KEY,
    signal    TEXT    NOT NULL,
    converted INTEGER NOT NULL,
    keys      TEXT    NOT NULL
) WITHOUT ROWID;
CREATE TABLE quality_history (
    buyer        TEXT    NOT NULL,
    area         TEXT    NOT NULL,
    hour_of_week INTEGER NOT NULL,
    calls        INTEGER NOT NULL,
    converted    INTEGER NOT NULL,
    postback     INTEGER NOT NULL,
    transcript   INTEGER NOT NULL,
    PRIMARY KEY (buyer, area, hour_of_week)
) WITHOUT ROWID;
