-- hookrelay embedded store, schema version 4: listing a tenant's deliveries by status
-- without walking its whole history. Only unfinished and failed rows are indexed (a
-- delivery leaves the index when it succeeds), so the index stays as small as the work that
-- is not done, and the rows most deliveries end in cost nothing here. A query uses it only
-- when its WHERE clause repeats `status <> 'succeeded'` word for word (SQLite's rule for
-- partial indexes).
CREATE INDEX deliveries_unfinished_by_tenant ON deliveries(tenant_id, status, id)
    WHERE status <> 'succeeded';
