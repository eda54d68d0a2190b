-- v9: one row per cap counter, updated in place (see src/sqlite/caps.rs). Its `used` is
-- the exact sum (text) of the counter's stored increments; migrate.rs seeds it from the
-- increments in Rust after this script (SQL's SUM over text is floating point).
CREATE TABLE cap_counters (
    counter TEXT PRIMARY KEY,
    used    TEXT NOT NULL -- exact decimal
);
-- Each increment carries its reservation's expiry, so the expired part of a counter is
-- one range of a partial index.
ALTER TABLE cap_increments ADD COLUMN expires_ns INTEGER;
UPDATE cap_increments SET expires_ns =
    (SELECT r.expires_ns FROM cap_reservations r WHERE r.id = cap_increments.reservation_id);
DROP INDEX cap_increments_by_counter;
CREATE INDEX cap_increments_expiring ON cap_increments (counter, expires_ns)
    WHERE expires_ns IS NOT NULL;
