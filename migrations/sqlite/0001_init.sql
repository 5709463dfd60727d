-- hookrelay embedded store, schema version 1. Times are milliseconds since the Unix epoch.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    uid        TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    name       TEXT,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE event_types (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    schema      TEXT,
    sample      TEXT,
    archived    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE endpoints (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL,
    event_types          TEXT NOT NULL,
    channels             TEXT NOT NULL,
    secrets              TEXT NOT NULL,
    headers              TEXT NOT NULL,
    timeout_ms           INTEGER,
    rate_limit_per_s     INTEGER,
    disabled             INTEGER NOT NULL,
    metadata             TEXT NOT NULL,
    retry_schedule       TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        INTEGER,
    last_success_at      INTEGER,
    last_failure_at      INTEGER,
    disabled_reason      TEXT,
    disabled_at          INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE INDEX endpoints_by_tenant ON endpoints(tenant_id, id);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    channels        TEXT NOT NULL,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_by_tenant ON events(tenant_id, id);
CREATE UNIQUE INDEX events_by_idempotency_key ON events(tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    endpoint_id     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_owner     TEXT,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX deliveries_by_tenant ON deliveries(tenant_id, id);
CREATE INDEX deliveries_by_endpoint ON deliveries(endpoint_id, status, id);
CREATE INDEX deliveries_by_event ON deliveries(event_id);
CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';

CREATE TABLE attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    endpoint_id      TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    url              TEXT NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    succeeded        INTEGER NOT NULL,
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
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    endpoint_id TEXT,
    message     TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX operational_events_by_tenant ON operational_events(tenant_id, id);
