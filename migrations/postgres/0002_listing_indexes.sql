-- Schema version 2: listing a tenant's deliveries by status without walking its whole
-- history. Only rows that did not succeed are indexed (a delivery leaves the index when it
-- succeeds), so the index stays as small as the work that is not done.
CREATE INDEX deliveries_unfinished_by_tenant ON deliveries(tenant_id, status, id)
    WHERE status <> 'succeeded';
