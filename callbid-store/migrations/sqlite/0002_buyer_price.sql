-- v2: "a buyer's calls by price" pages read in index order instead of sorting every
-- call of the buyer.
CREATE INDEX calls_by_buyer_price ON calls (buyer, price_micros, call_id);
