-- hookrelay on PostgreSQL, schema version 1: the same tables as the embedded store, so both
-- backends behave identically. Times are milliseconds since the Unix epoch (BIGINT), as in
-- SQLite: values round-trip exactly on both. Ids and names are `COLLATE "C"` so that keyset
-- pagination orders them bytewise, whatever the database's locale.

CREATE TABLE settings (
    key   TEXT COLLATE "C" PRIMARY KEY,
    value TEXT NOT NULL
);

-- Periodic jobs that must run once per cluster, not once per instance: the holder of a
-- job's row renews it while alive; another instance takes it over once it expires.
CREATE TABLE cluster_jobs (
    job        TEXT COLLATE "C" PRIMARY KEY,
    owner      TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT COLLATE "C" PRIMARY KEY,
    uid        TEXT COLLATE "C" NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT COLLATE "C" PRIMARY KEY,
    tenant_id  TEXT COLLATE "C" REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_by_tenant ON api_keys(tenant_id);

CREATE TABLE event_types (
    name        TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL,
    schema      TEXT,
    sample      TEXT,
    archived    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE endpoints (
    id                   TEXT COLLATE "C" PRIMARY KEY,
    tenant_id            TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL,
    event_types          TEXT NOT NULL,
    channels             TEXT NOT NULL,
    secrets              TEXT NOT NULL,
    headers              TEXT NOT NULL,
    timeout_ms           BIGINT,
    rate_limit_per_s     INTEGER,
    disabled             BOOLEAN NOT NULL,
    metadata             TEXT NOT NULL,
    retry_schedule       TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        BIGINT,
    last_success_at      BIGINT,
    last_failure_at      BIGINT,
    disabled_reason      TEXT,
    disabled_at          BIGINT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    -- An endpoint owned by a source is the hidden delivery target of one of its HTTP
    -- destinations: not listed with the tenant's endpoints and never a fan-out candidate.
    source_id            TEXT COLLATE "C"
);
CREATE INDEX endpoints_by_tenant ON endpoints(tenant_id, id);
CREATE INDEX endpoints_by_source ON endpoints(source_id) WHERE source_id IS NOT NULL;

CREATE TABLE events (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    -- Kept as the exact text received: signatures are computed over these bytes.
    payload         TEXT NOT NULL,
    channels        TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_by_tenant ON events(tenant_id, id);
CREATE UNIQUE INDEX events_by_idempotency_key ON events(tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_id        TEXT COLLATE "C" NOT NULL,
    endpoint_id     TEXT COLLATE "C" NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX deliveries_by_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_by_endpoint ON deliveries(endpoint_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries(event_id);
-- What the claim query walks: only pending rows are in it, so it stays small however many
-- finished deliveries the table holds.
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';

CREATE TABLE attempts (
    id               TEXT COLLATE "C" PRIMARY KEY,
    delivery_id      TEXT COLLATE "C" NOT NULL,
    tenant_id        TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    endpoint_id      TEXT COLLATE "C" NOT NULL,
    attempt          INTEGER NOT NULL,
    url              TEXT NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    succeeded        BOOLEAN NOT NULL,
    request_headers  TEXT NOT NULL,
    response_status  INTEGER,
    response_headers TEXT NOT NULL,
    response_body    TEXT,
    error_kind       TEXT,
    error            TEXT
);
CREATE INDEX attempts_by_delivery ON attempts(delivery_id, id);
CREATE INDEX attempts_by_endpoint ON attempts(endpoint_id, id);

CREATE TABLE operational_events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    endpoint_id TEXT COLLATE "C",
    message     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX operational_events_by_tenant ON operational_events(tenant_id, id);

CREATE TABLE sources (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    tenant_id           TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    provider            TEXT NOT NULL,
    settings            TEXT NOT NULL,
    allowed_event_types TEXT NOT NULL,
    destinations        TEXT NOT NULL,
    enabled             BOOLEAN NOT NULL,
    dedup_window_s      BIGINT NOT NULL,
    -- An unauthenticated token a provider sent during set-up (Notion), kept for an operator.
    unconfirmed_token    TEXT,
    unconfirmed_token_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX sources_by_tenant ON sources(tenant_id, id);

CREATE TABLE inbound_requests (
    id                TEXT COLLATE "C" PRIMARY KEY,
    tenant_id         TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    source_id         TEXT COLLATE "C" NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    received_at       BIGINT NOT NULL,
    outcome           TEXT NOT NULL,
    reason            TEXT,
    provider_event_id TEXT,
    event_type        TEXT,
    dedup_key         TEXT,
    headers           TEXT NOT NULL,
    body              TEXT,
    body_bytes        BIGINT NOT NULL,
    routed_events     TEXT NOT NULL,
    routing_error     TEXT
);
CREATE INDEX inbound_requests_by_source ON inbound_requests(source_id, id);
CREATE INDEX inbound_requests_by_outcome ON inbound_requests(source_id, outcome, id);

CREATE TABLE inbound_dedup (
    source_id   TEXT COLLATE "C" NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    key         TEXT COLLATE "C" NOT NULL,
    request_id  TEXT COLLATE "C" NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (source_id, key)
);
-- Expired keys are dropped as new ones arrive.
CREATE INDEX inbound_dedup_by_age ON inbound_dedup(source_id, received_at);

-- Inbound events waiting to be forwarded in a batch (see the SQLite migration 0003).
CREATE TABLE inbound_batch_items (
    -- The order of acceptance: a batch carries its items in this order.
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    event_id    TEXT COLLATE "C" NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    batch_type  TEXT NOT NULL,
    max_events  INTEGER NOT NULL,
    window_ms   BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX inbound_batch_items_by_endpoint ON inbound_batch_items(endpoint_id, id);
