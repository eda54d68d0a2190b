-- Outbound campaigns: one JSON document per campaign, one row per contact. Every change
-- is a compare-and-set on `version` (see src/campaign.rs).
CREATE TABLE campaigns (
    id      TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    doc     TEXT NOT NULL
);
CREATE TABLE campaign_contacts (
    campaign_id      TEXT NOT NULL REFERENCES campaigns (id),
    number           TEXT NOT NULL,
    seq              BIGINT NOT NULL,
    state            TEXT NOT NULL,
    due_ms           BIGINT,
    dialing_since_ms BIGINT,
    version          BIGINT NOT NULL,
    doc              TEXT NOT NULL,
    PRIMARY KEY (campaign_id, number)
);
CREATE INDEX campaign_contacts_due ON campaign_contacts (campaign_id, seq) WHERE due_ms IS NOT NULL;
CREATE INDEX campaign_contacts_dialing ON campaign_contacts (campaign_id, dialing_since_ms)
    WHERE dialing_since_ms IS NOT NULL;
