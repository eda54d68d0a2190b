-- v9: one row per cap counter, updated in place by reserve (a row lock instead of an
-- advisory lock and a SUM over every reservation; see reserve_inner in
-- src/postgres/mod.rs). `used` is the sum of the counter's stored increments.
CREATE TABLE cap_counters (
    counter TEXT PRIMARY KEY,
    used    NUMERIC NOT NULL
);
-- Each increment carries its reservation's expiry, so the expired part of a counter is
-- one range of a partial index.
ALTER TABLE cap_increments ADD COLUMN expires_ns BIGINT;
UPDATE cap_increments i SET expires_ns = r.expires_ns
    FROM cap_reservations r WHERE r.id = i.reservation_id AND r.expires_ns IS NOT NULL;
INSERT INTO cap_counters (counter, used)
    SELECT counter, SUM(amount) FROM cap_increments GROUP BY counter;
DROP INDEX cap_increments_by_counter;
CREATE INDEX cap_increments_expiring ON cap_increments (counter, expires_ns) INCLUDE (amount)
    WHERE expires_ns IS NOT NULL;
