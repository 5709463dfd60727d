-- hookrelay embedded store, schema version 3: inbound events waiting to be forwarded in a
-- batch. An accepted request for a batched HTTP destination stores its event and one row
-- here (in the same transaction) instead of a delivery; the flusher turns up to
-- `max_events` rows of an endpoint into one combined event and delivery, deleting them in
-- the same transaction. Times are milliseconds since the Unix epoch.

CREATE TABLE inbound_batch_items (
    -- The order of acceptance (commit order): a batch carries its items in this order.
    id          INTEGER PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- The hidden endpoint of the batched destination; removing it drops its items.
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    -- The stored event whose payload (the envelope) goes into the batch.
    event_id    TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    -- The combined event's type (`{provider}.batch`) and the destination's batch settings
    -- at acceptance.
    batch_type  TEXT NOT NULL,
    max_events  INTEGER NOT NULL,
    window_ms   INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX inbound_batch_items_by_endpoint ON inbound_batch_items(endpoint_id, id);
