-- v3: reserve prunes expired reservations oldest first; this finds them without a scan.
CREATE INDEX cap_reservations_by_expiry ON cap_reservations (expires_ns) WHERE expires_ns IS NOT NULL;
