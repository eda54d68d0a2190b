-- v2: calls without a price / revenue / duration sort as the smallest values (as in
-- SQLite), so those indexes are NULLS FIRST; plus "a buyer's calls by price".
DROP INDEX calls_by_price;
DROP INDEX calls_by_revenue;
DROP INDEX calls_by_duration;
CREATE INDEX calls_by_price    ON calls (price_micros NULLS FIRST, call_id);
CREATE INDEX calls_by_revenue  ON calls (revenue_micros NULLS FIRST, call_id);
CREATE INDEX calls_by_duration ON calls (duration_secs NULLS FIRST, call_id);
CREATE INDEX calls_by_buyer_price ON calls (buyer, price_micros NULLS FIRST, call_id);
