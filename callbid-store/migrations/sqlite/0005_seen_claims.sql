-- v5 (after 0004_campaigns on main): duplicate-caller window claims, taken in the
-- reserve phase (one per caller × buyer; the primary key is what a second call cannot
-- also get). Confirming moves a claim into seen_callers; a failed accept deletes it; an
-- unconfirmed claim lapses at expires_ns.
CREATE TABLE seen_claims (
    buyer TEXT NOT NULL,
    caller TEXT NOT NULL,
    holder TEXT NOT NULL,
    expires_ns INTEGER NOT NULL,
    PRIMARY KEY (buyer, caller)
) WITHOUT ROWID;
