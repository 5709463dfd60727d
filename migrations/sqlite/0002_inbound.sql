-- hookrelay embedded store, schema version 2: inbound sources, their request log and the
-- dedup keys. Times are milliseconds since the Unix epoch.

-- An endpoint owned by a source is the hidden delivery target of one of its HTTP
-- destinations: not listed with the tenant's endpoints and never a fan-out candidate.
ALTER TABLE endpoints ADD COLUMN source_id TEXT;
CREATE INDEX endpoints_by_source ON endpoints(source_id) WHERE source_id IS NOT NULL;

CREATE TABLE sources (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    provider            TEXT NOT NULL,
    settings            TEXT NOT NULL,
    allowed_event_types TEXT NOT NULL,
    destinations        TEXT NOT NULL,
    enabled             INTEGER NOT NULL,
    dedup_window_s      INTEGER NOT NULL,
    -- An unauthenticated token a provider sent during set-up (Notion), kept for an operator.
    unconfirmed_token    TEXT,
    unconfirmed_token_at INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
CREATE INDEX sources_by_tenant ON sources(tenant_id, id);

CREATE TABLE inbound_requests (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    source_id         TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    received_at       INTEGER NOT NULL,
    outcome           TEXT NOT NULL,
    reason            TEXT,
    provider_event_id TEXT,
    event_type        TEXT,
    dedup_key         TEXT,
    headers           TEXT NOT NULL,
    body              TEXT,
    body_bytes        INTEGER NOT NULL,
    routed_events     TEXT NOT NULL,
    routing_error     TEXT
);
CREATE INDEX inbound_requests_by_source ON inbound_requests(source_id, id);
CREATE INDEX inbound_requests_by_outcome ON inbound_requests(source_id, outcome, id);

CREATE TABLE inbound_dedup (
    source_id   TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (source_id, key)
) WITHOUT ROWID;
-- Expired keys are dropped as new ones arrive.
CREATE INDEX inbound_dedup_by_age ON inbound_dedup(source_id, received_at);
