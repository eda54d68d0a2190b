-- Agent pools (issue 10): pool settings, agents and offers as JSON documents. Agents and
-- offers carry a version; every change is a compare-and-set on it (see src/agents.rs),
-- so an offer is won by exactly one agent across every instance on the database.
CREATE TABLE agent_pools (
    id  TEXT PRIMARY KEY,
    doc TEXT NOT NULL
);
CREATE TABLE agents (
    pool_id TEXT NOT NULL,
    id      TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc     TEXT NOT NULL,
    PRIMARY KEY (pool_id, id)
);
CREATE TABLE agent_offers (
    pool_id    TEXT NOT NULL,
    id         TEXT NOT NULL,
    version    INTEGER NOT NULL,
    live       INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    PRIMARY KEY (pool_id, id)
);
CREATE INDEX agent_offers_created ON agent_offers (pool_id, created_ms);
CREATE INDEX agent_offers_live ON agent_offers (pool_id, created_ms) WHERE live = 1;
