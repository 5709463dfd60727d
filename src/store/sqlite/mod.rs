//! The embedded store: one SQLite file in WAL mode with `synchronous=FULL`, one writer thread
//! doing group commit (`writer.rs`) and a pool of read-only connections (`reader.rs`).

mod checkpointer;
mod inbound;
mod reader;
mod rows;
mod writer;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use self::reader::Readers;
use self::rows::*;
use self::writer::Writer;
use super::*;
use crate::domain::{ApiKey, Delivery, Endpoint, Event, EventType, Page, PageRequest, Tenant, ids};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/sqlite/0001_init.sql"),
    include_str!("../../../migrations/sqlite/0002_inbound.sql"),
    include_str!("../../../migrations/sqlite/0003_inbound_batches.sql"),
    include_str!("../../../migrations/sqlite/0004_listing_indexes.sql"),
];
const READERS: usize = 4;

pub struct SqliteStore {
    writer: Writer,
    readers: Readers,
    _checkpointer: checkpointer::Checkpointer,
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && matches!(
            f.code,
            rusqlite::ErrorCode::DiskFull
                | rusqlite::ErrorCode::CannotOpen
                | rusqlite::ErrorCode::ReadOnly
        )
    {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Backend(Arc::new(e))
}

/// A unique-key violation is the caller's conflict (`what` already exists); anything else
/// is the store's failure.
fn conflict_or_backend(e: rusqlite::Error, what: impl FnOnce() -> String) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(what())
    } else {
        backend(e)
    }
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}

/// The write-ahead log of the database at `path` (SQLite's naming).
fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

fn open(path: &Path, read_only: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    if read_only {
        conn.execute_batch("PRAGMA query_only = ON;")?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/hookrelay.db` and applies pending migrations.
    pub fn open(dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = dir.join("hookrelay.db");
        let conn = open(&path, false).map_err(backend)?;
        migrate(&conn)?;
        // Checkpoints run on their own thread (checkpointer.rs), not inside the writer's
        // commits, where they held up every publish waiting for that commit.
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(backend)?;
        // The writer touches the right-hand edges of every index on each commit; 16 MiB
        // (against SQLite's 2 MiB) keeps them cached as the store grows past a million rows,
        // instead of re-reading them from the OS. The cache fills only as pages are used.
        conn.execute_batch("PRAGMA cache_size = -16384")
            .map_err(backend)?;
        let checkpointer = checkpointer::start(open(&path, false).map_err(backend)?);
        let readers = (0..READERS)
            .map(|_| open(&path, true))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(backend)?;
        Ok(SqliteStore {
            writer: Writer::start(conn, wal_path(&path)),
            readers: Readers::new(readers),
            _checkpointer: checkpointer,
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.readers.read(move |c| f(c).map_err(backend)).await
    }

    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write(f).await
    }

    /// For the delivery engine's bookkeeping: see `writer.rs` on relaxed writes.
    async fn write_relaxed<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.writer.write_relaxed(f).await
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        let tx = format!("BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;", i + 1);
        conn.execute_batch(&tx).map_err(backend)?;
    }
    Ok(())
}

/// `WHERE ... AND id < ?cursor ORDER BY id DESC LIMIT limit + 1`: newest first.
fn page_clause(page: &PageRequest<'_>) -> (String, Option<String>) {
    match page.cursor {
        Some(c) => (
            format!(" AND id < ?99 ORDER BY id DESC LIMIT {}", page.limit + 1),
            Some(c.to_string()),
        ),
        None => (format!(" ORDER BY id DESC LIMIT {}", page.limit + 1), None),
    }
}

fn query_page<T>(
    conn: &Connection,
    sql_head: &str,
    params_head: &[&dyn rusqlite::ToSql],
    page: &PageRequest<'_>,
    map: impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    id: impl Fn(&T) -> String,
) -> rusqlite::Result<Page<T>> {
    let (tail, cursor) = page_clause(page);
    let sql = format!("{sql_head}{tail}");
    let mut stmt = conn.prepare_cached(&sql)?;
    for (i, p) in params_head.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, p)?;
    }
    if let Some(c) = &cursor {
        stmt.raw_bind_parameter(99, c)?;
    }
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(Page::from_rows(out, page.limit, id))
}

fn owned_page(page: PageRequest<'_>) -> (usize, Option<String>) {
    (page.limit, page.cursor.map(str::to_string))
}

fn as_page(p: &(usize, Option<String>)) -> PageRequest<'_> {
    PageRequest {
        limit: p.0,
        cursor: p.1.as_deref(),
    }
}

/// The head of a delivery listing (before the page clause) and its arguments. The index
/// is named rather than left to SQLite's planner: the store keeps no `ANALYZE` statistics,
/// and a wrong guess walks a tenant's whole history (hundreds of ms at a million rows)
/// where the right index answers a page in well under a millisecond.
fn deliveries_query<'a>(
    tenant_id: &'a dyn rusqlite::ToSql,
    filter: &'a DeliveryFilter,
    status: &'a Option<&'static str>,
) -> (String, Vec<&'a dyn rusqlite::ToSql>) {
    let mut terms: Vec<(&str, &'a dyn rusqlite::ToSql)> = Vec::new();
    let mut extra = "";
    let index = match (&filter.event_id, &filter.endpoint_id, status) {
        (Some(event_id), endpoint_id, status) => {
            terms.push(("event_id", event_id));
            if let Some(e) = endpoint_id {
                terms.push(("endpoint_id", e));
            }
            if let Some(s) = status {
                terms.push(("status", s));
            }
            "deliveries_by_event"
        }
        (None, Some(endpoint_id), Some(status)) => {
            terms.push(("endpoint_id", endpoint_id));
            terms.push(("status", status));
            "deliveries_by_endpoint"
        }
        (None, None, Some(status)) if *status != DeliveryStatus::Succeeded.as_str() => {
            terms.push(("status", status));
            // Repeated word for word, or SQLite will not use the partial index.
            extra = " AND status <> 'succeeded'";
            "deliveries_unfinished_by_tenant"
        }
        (None, None, status) => {
            if let Some(s) = status {
                terms.push(("status", s));
            }
            "deliveries_by_tenant"
        }
        (None, Some(_), None) => unreachable!("answered by endpoint_deliveries_page"),
    };
    let mut sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries INDEXED BY {index} WHERE tenant_id = ?1"
    );
    let mut args: Vec<&dyn rusqlite::ToSql> = vec![tenant_id];
    for (column, value) in terms {
        args.push(value);
        sql.push_str(&format!(" AND {column} = ?{}", args.len()));
    }
    sql.push_str(extra);
    (sql, args)
}

/// An endpoint's deliveries, newest first, whatever their status: the endpoint index is
/// ordered by status before id, so each status's newest rows are read from their own range
/// and merged (at most four pages read for one returned).
fn endpoint_deliveries_page(
    conn: &Connection,
    tenant_id: &str,
    endpoint_id: &str,
    page: &PageRequest<'_>,
) -> rusqlite::Result<Page<Delivery>> {
    let limit = page.limit + 1;
    let cursor = if page.cursor.is_some() {
        " AND id < ?3"
    } else {
        ""
    };
    let arms: Vec<String> = DeliveryStatus::ALL
        .iter()
        .map(|s| {
            format!(
                "SELECT * FROM (SELECT {DELIVERY_COLUMNS} FROM deliveries INDEXED BY deliveries_by_endpoint
                 WHERE endpoint_id = ?2 AND status = '{}' AND tenant_id = ?1{cursor}
                 ORDER BY id DESC LIMIT {limit})",
                s.as_str()
            )
        })
        .collect();
    let sql = format!(
        "{} ORDER BY id DESC LIMIT {limit}",
        arms.join(" UNION ALL ")
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = match page.cursor {
        Some(c) => stmt
            .query_map(params![tenant_id, endpoint_id, c], delivery_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => stmt
            .query_map(params![tenant_id, endpoint_id], delivery_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    Ok(Page::from_rows(rows, page.limit, |d| d.id.clone()))
}

fn insert_delivery(
    conn: &Connection,
    tenant_id: &str,
    event: (&str, &str),
    d: &NewDelivery,
    now: i64,
) -> rusqlite::Result<Delivery> {
    let (owner, until) = lease_cols(d.lease.as_ref());
    conn.prepare_cached(
        "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, attempts,
             next_attempt_at, lease_owner, lease_until, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, ?8, ?6, ?6)",
    )?
    .execute(params![d.id, tenant_id, event.0, d.endpoint_id, event.1, now, owner, until])?;
    let at = from_ms(now);
    Ok(Delivery {
        id: d.id.clone(),
        tenant_id: tenant_id.to_string(),
        event_id: event.0.to_string(),
        endpoint_id: d.endpoint_id.clone(),
        event_type: event.1.to_string(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(at),
        last_error: None,
        created_at: at,
        updated_at: at,
    })
}

pub(crate) fn insert_endpoint(c: &Connection, ep: &Endpoint) -> rusqlite::Result<()> {
    c.prepare_cached(&format!(
        "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, NULL, NULL, NULL, NULL, NULL, ?14, ?15, ?16)"
    ))?
    .execute(params![
        ep.id,
        ep.tenant_id,
        ep.url,
        ep.description,
        json(&ep.event_types),
        json(&ep.channels),
        json(&ep.secrets),
        json(&ep.headers),
        ep.timeout_ms.map(|v| v as i64),
        ep.rate_limit_per_s,
        ep.disabled,
        json(&ep.metadata),
        ep.retry_schedule.as_ref().map(json),
        ms(ep.created_at),
        ms(ep.updated_at),
        ep.source_id
    ])?;
    Ok(())
}

fn lease_cols(lease: Option<&Lease>) -> (Option<&str>, Option<i64>) {
    match lease {
        Some(l) => (Some(l.owner.as_str()), Some(ms(l.until))),
        None => (None, None),
    }
}

const TASK_SELECT: &str =
    "SELECT d.id, d.tenant_id, d.endpoint_id, d.event_id, d.event_type, e.payload,
        d.attempts, d.next_attempt_at
   FROM deliveries d JOIN events e ON e.id = d.event_id";

fn task_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeliveryTask> {
    Ok(DeliveryTask {
        delivery_id: r.get(0)?,
        tenant_id: r.get(1)?,
        endpoint_id: r.get(2)?,
        event_id: r.get(3)?,
        event_type: r.get(4)?,
        payload: Arc::from(r.get::<_, String>(5)?),
        attempts_made: r.get(6)?,
        due_at: from_ms(r.get::<_, Option<i64>>(7)?.unwrap_or_default()),
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(()))).await
    }

    async fn admin_key_hash(&self) -> Result<Option<String>> {
        self.read(|c| {
            c.query_row(
                "SELECT value FROM settings WHERE key = 'admin_key_hash'",
                [],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn set_admin_key_hash(&self, hash: String) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO settings (key, value) VALUES ('admin_key_hash', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [hash],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKey, hash: String) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![key.id, key.tenant_id, key.name, key.prefix, hash, ms(key.created_at)],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        let hash = hash.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT id, tenant_id, name, prefix, created_at FROM api_keys WHERE hash = ?1",
            )?
            .query_row([hash], |r| {
                Ok(ApiKey {
                    id: r.get(0)?,
                    tenant_id: r.get(1)?,
                    name: r.get(2)?,
                    prefix: r.get(3)?,
                    created_at: from_ms(r.get(4)?),
                })
            })
            .optional()
        })
        .await
    }

    async fn create_tenant(&self, t: Tenant) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO tenants (id, uid, name, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![t.id, t.uid, t.name, ms(t.created_at), ms(t.updated_at)],
            )
            .map_err(|e| conflict_or_backend(e, || format!("a tenant with uid `{}`", t.uid)))?;
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, id_or_uid: &str) -> Result<Option<Tenant>> {
        let key = id_or_uid.to_string();
        self.read(move |c| {
            let sql = if key.starts_with("tn_") {
                "SELECT id, uid, name, created_at, updated_at FROM tenants WHERE id = ?1"
            } else {
                "SELECT id, uid, name, created_at, updated_at FROM tenants WHERE uid = ?1"
            };
            c.prepare_cached(sql)?
                .query_row([key], tenant_row)
                .optional()
        })
        .await
    }

    async fn list_tenants(&self, page: PageRequest<'_>) -> Result<Page<Tenant>> {
        let p = owned_page(page);
        self.read(move |c| {
            query_page(
                c,
                "SELECT id, uid, name, created_at, updated_at FROM tenants WHERE 1 = 1",
                &[],
                &as_page(&p),
                tenant_row,
                |t| t.id.clone(),
            )
        })
        .await
    }

    async fn update_tenant(&self, t: Tenant) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE tenants SET uid = ?2, name = ?3, updated_at = ?4 WHERE id = ?1",
                params![t.id, t.uid, t.name, ms(t.updated_at)],
            )
            .map_err(|e| conflict_or_backend(e, || format!("a tenant with uid `{}`", t.uid)))?;
            Ok(())
        })
        .await
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool> {
        let id = id.to_string();
        self.write(move |c| {
            // Foreign keys cascade to keys, endpoints, events, deliveries, attempts.
            let n = c
                .execute("DELETE FROM tenants WHERE id = ?1", [id])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn create_event_type(&self, et: EventType) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO event_types (name, description, schema, sample, archived, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    et.name,
                    et.description,
                    et.schema.as_ref().map(|v| v.to_string()),
                    et.sample.as_ref().map(|v| v.to_string()),
                    et.archived,
                    ms(et.created_at),
                    ms(et.updated_at)
                ],
            )
            .map_err(|e| conflict_or_backend(e, || format!("event type `{}`", et.name)))?;
            Ok(())
        })
        .await
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>> {
        let name = name.to_string();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT name, description, schema, sample, archived, created_at, updated_at
                 FROM event_types WHERE name = ?1",
            )?
            .query_row([name], event_type_row)
            .optional()
        })
        .await
    }

    async fn list_event_types(
        &self,
        page: PageRequest<'_>,
        include_archived: bool,
    ) -> Result<Page<EventType>> {
        let p = owned_page(page);
        self.read(move |c| {
            // Event types page by name, ascending: a catalogue reads alphabetically.
            let sql = format!(
                "SELECT name, description, schema, sample, archived, created_at, updated_at
                 FROM event_types WHERE (?1 OR archived = 0) AND name > ?2 ORDER BY name LIMIT {}",
                p.0 + 1
            );
            let rows = c
                .prepare_cached(&sql)?
                .query_map(
                    params![include_archived, p.1.clone().unwrap_or_default()],
                    event_type_row,
                )?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Page::from_rows(rows, p.0, |e| e.name.clone()))
        })
        .await
    }

    async fn update_event_type(&self, et: EventType) -> Result<()> {
        self.write(move |c| {
            c.execute(
                "UPDATE event_types SET description = ?2, schema = ?3, sample = ?4, archived = ?5, updated_at = ?6
                 WHERE name = ?1",
                params![
                    et.name,
                    et.description,
                    et.schema.as_ref().map(|v| v.to_string()),
                    et.sample.as_ref().map(|v| v.to_string()),
                    et.archived,
                    ms(et.updated_at)
                ],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM event_types WHERE name = ?1", [name])
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn create_endpoint(&self, ep: Endpoint) -> Result<()> {
        self.write(move |c| insert_endpoint(c, &ep).map_err(backend))
            .await
    }

    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> Result<Option<Endpoint>> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ?1 AND id = ?2"
            ))?
            .query_row([tenant_id, id], endpoint_row)
            .optional()
        })
        .await
    }

    async fn list_endpoints(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Endpoint>> {
        let p = owned_page(page);
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            query_page(
                c,
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = ?1 AND source_id IS NULL"
                ),
                &[&tenant_id],
                &as_page(&p),
                endpoint_row,
                |e| e.id.clone(),
            )
        })
        .await
    }

    async fn enabled_endpoints(&self, tenant_id: &str) -> Result<Vec<Endpoint>> {
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoints
                 WHERE tenant_id = ?1 AND disabled = 0 AND source_id IS NULL"
            ))?
            .query_map([tenant_id], endpoint_row)?
            .collect()
        })
        .await
    }

    async fn update_endpoint(&self, ep: Endpoint) -> Result<bool> {
        self.write(move |c| {
            // Re-enabling clears the automatic-disable record and the failure streak.
            let n = c
                .execute(
                    "UPDATE endpoints SET url = ?3, description = ?4, event_types = ?5, channels = ?6,
                        secrets = ?7, headers = ?8, timeout_ms = ?9, rate_limit_per_s = ?10,
                        disabled = ?11, metadata = ?12, retry_schedule = ?13, updated_at = ?14,
                        disabled_reason = CASE WHEN ?11 THEN disabled_reason ELSE NULL END,
                        disabled_at = CASE WHEN ?11 THEN disabled_at ELSE NULL END,
                        consecutive_failures = CASE WHEN ?11 OR disabled = 0 THEN consecutive_failures ELSE 0 END,
                        failing_since = CASE WHEN ?11 OR disabled = 0 THEN failing_since ELSE NULL END
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![
                        ep.tenant_id,
                        ep.id,
                        ep.url,
                        ep.description,
                        json(&ep.event_types),
                        json(&ep.channels),
                        json(&ep.secrets),
                        json(&ep.headers),
                        ep.timeout_ms.map(|v| v as i64),
                        ep.rate_limit_per_s,
                        ep.disabled,
                        json(&ep.metadata),
                        ep.retry_schedule.as_ref().map(json),
                        ms(ep.updated_at)
                    ],
                )
                .map_err(backend)?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_endpoint(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.write(move |c| {
            let n = c
                .execute("DELETE FROM endpoints WHERE tenant_id = ?1 AND id = ?2", [&tenant_id, &id])
                .map_err(backend)?;
            if n > 0 {
                c.execute(
                    "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_owner = NULL,
                        lease_until = NULL, last_error = 'endpoint deleted', updated_at = ?3
                     WHERE endpoint_id = ?2 AND tenant_id = ?1 AND status = 'pending'",
                    params![tenant_id, id, ms(Utc::now())],
                )
                .map_err(backend)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn publish(&self, event: Event, deliveries: Vec<NewDelivery>) -> Result<PublishOutcome> {
        // Fails only when the store does (an idempotency repeat is found, not violated).
        self.writer.write_unguarded(move |c| {
            if let Some(key) = &event.idempotency_key {
                let existing = c
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND idempotency_key = ?2"
                    ))
                    .and_then(|mut s| s.query_row([&event.tenant_id, key], event_row).optional())
                    .map_err(backend)?;
                if let Some(first) = existing {
                    return Ok(PublishOutcome::Existing(first));
                }
            }
            let now = ms(event.created_at);
            c.prepare_cached(&format!(
                "INSERT INTO events ({EVENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            ))
            .and_then(|mut s| {
                s.execute(params![
                    event.id,
                    event.tenant_id,
                    event.event_type,
                    event.payload,
                    json(&event.channels),
                    event.idempotency_key,
                    now
                ])
            })
            .map_err(backend)?;
            let created = deliveries
                .iter()
                .map(|d| insert_delivery(c, &event.tenant_id, (&event.id, &event.event_type), d, now))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(PublishOutcome::Created {
                event,
                deliveries: created,
            })
        })
        .await
    }

    async fn get_event(&self, tenant_id: &str, id: &str) -> Result<Option<Event>> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1 AND id = ?2"
            ))?
            .query_row([tenant_id, id], event_row)
            .optional()
        })
        .await
    }

    async fn list_events(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Event>> {
        let p = owned_page(page);
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            query_page(
                c,
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = ?1"),
                &[&tenant_id],
                &as_page(&p),
                event_row,
                |e| e.id.clone(),
            )
        })
        .await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: DeliveryFilter,
        page: PageRequest<'_>,
    ) -> Result<Page<Delivery>> {
        let p = owned_page(page);
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            let status = filter.status.map(DeliveryStatus::as_str);
            if filter.event_id.is_none()
                && let (Some(endpoint_id), None) = (&filter.endpoint_id, status)
            {
                return endpoint_deliveries_page(c, &tenant_id, endpoint_id, &as_page(&p));
            }
            let (sql, args) = deliveries_query(&tenant_id, &filter, &status);
            query_page(c, &sql, &args, &as_page(&p), delivery_row, |d| d.id.clone())
        })
        .await
    }

    async fn get_delivery(&self, tenant_id: &str, id: &str) -> Result<Option<Delivery>> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = ?1 AND id = ?2"
            ))?
            .query_row([tenant_id, id], delivery_row)
            .optional()
        })
        .await
    }

    async fn list_attempts(&self, tenant_id: &str, delivery_id: &str) -> Result<Vec<Attempt>> {
        let (tenant_id, id) = (tenant_id.to_string(), delivery_id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE tenant_id = ?1 AND delivery_id = ?2 ORDER BY id"
            ))?
            .query_map([tenant_id, id], attempt_row)?
            .collect()
        })
        .await
    }

    async fn add_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<Delivery>> {
        let (tenant_id, event_id) = (tenant_id.to_string(), event_id.to_string());
        self.write(move |c| {
            let event_type: String = c
                .query_row(
                    "SELECT event_type FROM events WHERE tenant_id = ?1 AND id = ?2",
                    [&tenant_id, &event_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            let now = ms(Utc::now());
            deliveries
                .iter()
                .map(|d| insert_delivery(c, &tenant_id, (&event_id, &event_type), d, now))
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)
        })
        .await
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<RetryOutcome> {
        let (tenant_id, id) = (tenant_id.to_string(), id.to_string());
        self.write(move |c| {
            let current = c
                .query_row(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = ?1 AND id = ?2"
                    ),
                    [&tenant_id, &id],
                    delivery_row,
                )
                .optional()
                .map_err(backend)?;
            let Some(mut d) = current else {
                return Ok(RetryOutcome::NotFound);
            };
            if d.status == DeliveryStatus::Pending {
                return Ok(RetryOutcome::InProgress);
            }
            let (owner, until) = lease_cols(lease.as_ref());
            c.execute(
                "UPDATE deliveries SET status = 'pending', next_attempt_at = ?2, lease_owner = ?3,
                    lease_until = ?4, updated_at = ?2 WHERE id = ?1",
                params![id, ms(now), owner, until],
            )
            .map_err(backend)?;
            d.status = DeliveryStatus::Pending;
            d.next_attempt_at = Some(now);
            d.updated_at = now;
            Ok(RetryOutcome::Scheduled(d))
        })
        .await
    }

    async fn recover_failed(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<Vec<Delivery>> {
        let (tenant_id, endpoint_id) = (tenant_id.to_string(), endpoint_id.to_string());
        self.write(move |c| {
            let (owner, until) = lease_cols(lease.as_ref());
            let mut stmt = c
                .prepare_cached(&format!(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = ?4, lease_owner = ?5,
                        lease_until = ?6, updated_at = ?4
                     WHERE tenant_id = ?1 AND endpoint_id = ?2 AND status = 'failed' AND created_at >= ?3
                     RETURNING {DELIVERY_COLUMNS}"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![tenant_id, endpoint_id, ms(since), ms(now), owner, until], delivery_row)
                .map_err(backend)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(backend)?;
            Ok(rows)
        })
        .await
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Lease,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>> {
        self.write_relaxed(move |c| {
            let ids: Vec<String> = c
                .prepare_cached(
                    "UPDATE deliveries SET lease_owner = ?1, lease_until = ?2
                     WHERE id IN (SELECT id FROM deliveries
                                  WHERE status = 'pending' AND next_attempt_at <= ?3
                                    AND (lease_until IS NULL OR lease_until < ?3)
                                  ORDER BY next_attempt_at LIMIT ?4)
                     RETURNING id",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![lease.owner, ms(lease.until), ms(now), limit as i64],
                        |r| r.get(0),
                    )?
                    .collect()
                })
                .map_err(backend)?;
            load_tasks(c, None, &ids).map_err(backend)
        })
        .await
    }

    async fn load_tasks(
        &self,
        owner: &str,
        delivery_ids: Vec<String>,
    ) -> Result<Vec<DeliveryTask>> {
        let owner = owner.to_string();
        self.read(move |c| load_tasks(c, Some(&owner), &delivery_ids))
            .await
    }

    async fn record_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        now: DateTime<Utc>,
        auto_disable_after: chrono::Duration,
    ) -> Result<Vec<DisabledEndpoint>> {
        let headers = attempt_headers_json(&records);
        self.write_relaxed(move |c| {
            record_attempts(c, &records, &headers, now, auto_disable_after).map_err(backend)
        })
        .await
    }

    async fn release_leases(&self, owner: &str, ids: Option<Vec<String>>) -> Result<()> {
        let owner = owner.to_string();
        self.write_relaxed(move |c| {
            match ids {
                None => c.execute(
                    "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?1",
                    [owner],
                ),
                Some(ids) => {
                    let mut stmt = c.prepare_cached(
                        "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE id = ?1 AND lease_owner = ?2",
                    ).map_err(backend)?;
                    for id in ids {
                        stmt.execute([&id, &owner]).map_err(backend)?;
                    }
                    Ok(0)
                }
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn release_all_leases(&self) -> Result<()> {
        self.write(|c| {
            c.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner IS NOT NULL",
                [],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn purge_before(&self, before: DateTime<Utc>, limit: usize) -> Result<PurgeCounts> {
        self.write_relaxed(move |c| purge_before(c, before, limit).map_err(backend))
            .await
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        self.read(|c| {
            c.query_row(
                "SELECT count(*), min(created_at) FROM deliveries WHERE status = 'pending'",
                [],
                |r| {
                    Ok(QueueStats {
                        pending: r.get::<_, i64>(0)? as u64,
                        oldest_pending_at: r.get::<_, Option<i64>>(1)?.map(from_ms),
                    })
                },
            )
        })
        .await
    }

    async fn recent_attempts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>> {
        let (tenant_id, endpoint_id) = (tenant_id.to_string(), endpoint_id.to_string());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE endpoint_id = ?1 AND tenant_id = ?2
                 ORDER BY id DESC LIMIT ?3"
            ))?
            .query_map(params![endpoint_id, tenant_id, limit as i64], attempt_row)?
            .collect()
        })
        .await
    }

    async fn recent_outcomes(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<AttemptOutcome>> {
        let (tenant_id, endpoint_id) = (tenant_id.to_string(), endpoint_id.to_string());
        self.read(move |c| {
            c.prepare_cached(
                "SELECT started_at, succeeded, duration_ms, error_kind FROM attempts
                 INDEXED BY attempts_by_endpoint
                 WHERE endpoint_id = ?1 AND tenant_id = ?2 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(params![endpoint_id, tenant_id, limit as i64], |r| {
                Ok(AttemptOutcome {
                    started_at: from_ms(r.get(0)?),
                    succeeded: r.get(1)?,
                    duration_ms: r.get::<_, i64>(2)?.max(0) as u64,
                    error_kind: r
                        .get::<_, Option<String>>(3)?
                        .map(|k| AttemptErrorKind::parse(&k)),
                })
            })?
            .collect()
        })
        .await
    }

    async fn delivery_counts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        window: TimeWindow,
    ) -> Result<DeliveryCounts> {
        let (tenant_id, endpoint_id) = (tenant_id.to_string(), endpoint_id.to_string());
        let (first, end) = window.id_range(ids::DELIVERY);
        self.read(move |c| {
            let mut counts = DeliveryCounts::default();
            let owned = c
                .prepare_cached("SELECT 1 FROM endpoints WHERE id = ?1 AND tenant_id = ?2")?
                .exists([&endpoint_id, &tenant_id])?;
            if !owned {
                return Ok(counts);
            }
            // One range of the endpoint index per status: entries only, no table rows.
            let mut stmt = c.prepare_cached(
                "SELECT count(*) FROM deliveries INDEXED BY deliveries_by_endpoint
                 WHERE endpoint_id = ?1 AND status = ?2 AND id >= ?3 AND id < ?4",
            )?;
            for status in DeliveryStatus::ALL {
                let n = stmt.query_row(params![endpoint_id, status.as_str(), first, end], |r| {
                    r.get::<_, i64>(0)
                })? as u64;
                *counts.of_mut(status) = n;
            }
            Ok(counts)
        })
        .await
    }

    async fn list_operational_events(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<OperationalEvent>> {
        let p = owned_page(page);
        let tenant_id = tenant_id.to_string();
        self.read(move |c| {
            query_page(
                c,
                "SELECT id, tenant_id, kind, endpoint_id, message, created_at FROM operational_events WHERE tenant_id = ?1",
                &[&tenant_id],
                &as_page(&p),
                |r| {
                    Ok(OperationalEvent {
                        id: r.get(0)?,
                        tenant_id: r.get(1)?,
                        kind: r.get(2)?,
                        endpoint_id: r.get(3)?,
                        message: r.get(4)?,
                        created_at: from_ms(r.get(5)?),
                    })
                },
                |o| o.id.clone(),
            )
        })
        .await
    }

    async fn create_source(&self, source: Source, endpoints: Vec<Endpoint>) -> Result<()> {
        self.create_source_impl(source, endpoints).await
    }

    async fn get_source(&self, tenant_id: &str, id: &str) -> Result<Option<Source>> {
        self.get_source_impl(Some(tenant_id.to_string()), id).await
    }

    async fn find_source(&self, id: &str) -> Result<Option<Source>> {
        self.get_source_impl(None, id).await
    }

    async fn list_sources(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Source>> {
        self.list_sources_impl(tenant_id, page).await
    }

    async fn update_source(
        &self,
        source: Source,
        add: Vec<Endpoint>,
        remove: Vec<String>,
    ) -> Result<bool> {
        self.update_source_impl(source, add, remove).await
    }

    async fn delete_source(&self, tenant_id: &str, id: &str) -> Result<bool> {
        self.delete_source_impl(tenant_id, id).await
    }

    async fn store_unconfirmed_token(
        &self,
        tenant_id: &str,
        source_id: &str,
        token: String,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.store_unconfirmed_token_impl(tenant_id, source_id, token, at)
            .await
    }

    async fn accept_inbound(&self, accept: InboundAccept) -> Result<InboundAccepted> {
        self.accept_inbound_impl(accept).await
    }

    async fn log_inbound(&self, request: InboundRequestLog) -> Result<()> {
        self.log_inbound_impl(request).await
    }

    async fn list_inbound_requests(
        &self,
        tenant_id: &str,
        source_id: &str,
        outcome: Option<InboundOutcome>,
        page: PageRequest<'_>,
    ) -> Result<Page<InboundRequestLog>> {
        self.list_inbound_requests_impl(tenant_id, source_id, outcome, page)
            .await
    }

    async fn source_backlog(&self, source_id: &str) -> Result<u64> {
        self.source_backlog_impl(source_id).await
    }

    async fn source_activity(
        &self,
        tenant_id: &str,
        source_id: &str,
        now: DateTime<Utc>,
    ) -> Result<SourceActivity> {
        self.source_activity_impl(tenant_id, source_id, now).await
    }

    async fn due_inbound_batches(&self, now: DateTime<Utc>) -> Result<Vec<DueBatch>> {
        self.due_inbound_batches_impl(now).await
    }

    async fn flush_inbound_batch(&self, flush: BatchFlush) -> Result<Option<(Event, Delivery)>> {
        self.flush_inbound_batch_impl(flush).await
    }
}

/// Retention, by id ranges on the primary keys (ids sort by creation time).
fn purge_before(
    c: &Connection,
    before: DateTime<Utc>,
    limit: usize,
) -> rusqlite::Result<PurgeCounts> {
    let events: Vec<String> = c
        .prepare_cached(
            "SELECT id FROM events e WHERE id < ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.event_id = e.id AND d.status = 'pending')
               AND NOT EXISTS (SELECT 1 FROM inbound_batch_items b WHERE b.event_id = e.id)
             ORDER BY id LIMIT ?2",
        )?
        .query_map(
            params![ids::first_id_at(ids::EVENT, before), limit as i64],
            |r| r.get(0),
        )?
        .collect::<rusqlite::Result<_>>()?;
    for id in &events {
        c.prepare_cached(
            "DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = ?1)",
        )?
        .execute([id])?;
        c.prepare_cached("DELETE FROM deliveries WHERE event_id = ?1")?
            .execute([id])?;
        c.prepare_cached("DELETE FROM events WHERE id = ?1")?
            .execute([id])?;
    }
    let by_id = |table: &str, prefix: &str| -> rusqlite::Result<u64> {
        let n = c
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE id IN
                   (SELECT id FROM {table} WHERE id < ?1 ORDER BY id LIMIT ?2)"
            ))?
            .execute(params![ids::first_id_at(prefix, before), limit as i64])?;
        Ok(n as u64)
    };
    Ok(PurgeCounts {
        events: events.len() as u64,
        inbound_requests: by_id("inbound_requests", ids::INBOUND_REQUEST)?,
        operational_events: by_id("operational_events", ids::OPERATIONAL_EVENT)?,
    })
}

/// The pending tasks among `ids`, only those leased to `owner` when one is given.
fn load_tasks(
    c: &Connection,
    owner: Option<&str>,
    ids: &[String],
) -> rusqlite::Result<Vec<DeliveryTask>> {
    let mut stmt = c.prepare_cached(&format!(
        "{TASK_SELECT} WHERE d.id = ?1 AND d.status = 'pending'
           AND (?2 IS NULL OR d.lease_owner = ?2)"
    ))?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(task) = stmt.query_row(params![id, owner], task_row).optional()? {
            out.push(task);
        }
    }
    Ok(out)
}

/// The header maps of each record's attempt as stored (JSON): made on the caller's thread,
/// not the writer's, which is the one that cannot be parallelised.
fn attempt_headers_json(records: &[AttemptRecord]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                json(&r.attempt.request_headers),
                json(&r.attempt.response_headers),
            )
        })
        .collect()
}

/// Marks the endpoint's last success: run once per endpoint per batch, not per attempt.
fn endpoint_succeeded(c: &Connection, endpoint_id: &str, at: i64) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE endpoints SET consecutive_failures = 0, failing_since = NULL,
            last_success_at = max(coalesce(last_success_at, 0), ?2) WHERE id = ?1",
    )?
    .execute(params![endpoint_id, at])?;
    Ok(())
}

fn record_attempts(
    c: &Connection,
    records: &[AttemptRecord],
    headers: &[(String, String)],
    now: DateTime<Utc>,
    auto_disable_after: chrono::Duration,
) -> rusqlite::Result<Vec<DisabledEndpoint>> {
    let mut disabled = Vec::new();
    // Successes not yet written to their endpoint's health row, with the latest start: a
    // batch of attempts to one endpoint updates its row once. A failure of the same
    // endpoint writes the pending success first, so the order of outcomes is kept.
    let mut successes: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
    for (rec, (request_headers, response_headers)) in records.iter().zip(headers) {
        let a = &rec.attempt;
        c.prepare_cached(&format!(
            "INSERT INTO attempts ({ATTEMPT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
        ))?
        .execute(params![
            a.id,
            a.delivery_id,
            rec.tenant_id,
            a.endpoint_id,
            a.attempt,
            a.url,
            ms(a.started_at),
            a.duration_ms as i64,
            a.succeeded,
            request_headers,
            a.response_status,
            response_headers,
            a.response_body,
            a.error_kind.map(|k| k.as_str()),
            a.error
        ])?;
        let (status, next_at, lease) = match &rec.next {
            NextStep::Succeeded => ("succeeded", None, None),
            NextStep::Retry { at, lease } => ("pending", Some(ms(*at)), lease.as_ref()),
            NextStep::Failed => ("failed", None, None),
            NextStep::Cancelled => ("cancelled", None, None),
        };
        let (owner, until) = lease_cols(lease);
        c.prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts = max(attempts, ?3), next_attempt_at = ?4,
                lease_owner = ?5, lease_until = ?6, last_error = ?7, updated_at = ?8
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![
            a.delivery_id,
            status,
            a.attempt,
            next_at,
            owner,
            until,
            a.error,
            ms(now)
        ])?;
        if !rec.counts_for_health {
            continue;
        }
        let at = ms(a.started_at);
        if a.succeeded {
            let latest = successes.entry(a.endpoint_id.as_str()).or_insert(at);
            *latest = (*latest).max(at);
            continue;
        }
        if let Some(success_at) = successes.remove(a.endpoint_id.as_str()) {
            endpoint_succeeded(c, &a.endpoint_id, success_at)?;
        }
        let row: Option<(bool, Option<i64>)> = c
            .prepare_cached(
                "UPDATE endpoints SET consecutive_failures = consecutive_failures + 1,
                    failing_since = coalesce(failing_since, ?2),
                    last_failure_at = max(coalesce(last_failure_at, 0), ?2)
                 WHERE id = ?1 RETURNING disabled, failing_since",
            )?
            .query_row(params![a.endpoint_id, at], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let Some((false, Some(since))) = row else {
            continue;
        };
        if now - from_ms(since) < auto_disable_after {
            continue;
        }
        let since = from_ms(since);
        let reason = format!("every attempt failed since {}", since.to_rfc3339());
        c.prepare_cached(
            "UPDATE endpoints SET disabled = 1, disabled_reason = ?2, disabled_at = ?3 WHERE id = ?1",
        )?
        .execute(params![a.endpoint_id, reason, ms(now)])?;
        // No more attempts: its pending deliveries are dead-lettered, for `recover` later.
        c.prepare_cached(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_owner = NULL,
                lease_until = NULL, last_error = 'endpoint disabled', updated_at = ?2
             WHERE endpoint_id = ?1 AND status = 'pending'",
        )?
        .execute(params![a.endpoint_id, ms(now)])?;
        c.prepare_cached(
            "INSERT INTO operational_events (id, tenant_id, kind, endpoint_id, message, created_at)
             VALUES (?1, ?2, 'endpoint.disabled', ?3, ?4, ?5)",
        )?
        .execute(params![
            ids::new_id(ids::OPERATIONAL_EVENT),
            rec.tenant_id,
            a.endpoint_id,
            format!(
                "Endpoint {} was disabled automatically: {reason}.",
                a.endpoint_id
            ),
            ms(now)
        ])?;
        disabled.push(DisabledEndpoint {
            tenant_id: rec.tenant_id.clone(),
            endpoint_id: a.endpoint_id.clone(),
            failing_since: since,
        });
    }
    for (endpoint_id, at) in successes {
        endpoint_succeeded(c, endpoint_id, at)?;
    }
    Ok(disabled)
}
