//! The scale-out store: PostgreSQL, shared by any number of hookrelay processes.
//!
//! The tables are those of the embedded store (see `migrations/postgres`), so both backends
//! answer alike. What PostgreSQL adds: claims with `FOR UPDATE SKIP LOCKED`, so instances
//! never take the same delivery; `LISTEN/NOTIFY` on `hookrelay_due`, so an instance with
//! workers hears at once about deliveries an API-only instance created; batched writes
//! (`UNNEST`) for deliveries and attempt outcomes; and a `cluster_jobs` row per periodic
//! job, so it runs on one instance at a time.
//!
//! Durability: every write commits with the server's `synchronous_commit` (on by default)
//! before it returns. The delivery engine's bookkeeping commits with
//! `synchronous_commit = off`, as the trait allows.

mod batch;
mod inbound;
mod publish;
mod rows;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row};
use tokio::sync::Notify;

use self::rows::*;
use super::*;
use crate::domain::{ApiKey, Delivery, Endpoint, Event, EventType, Page, PageRequest, Tenant, ids};

const MIGRATIONS: &[&str] = &[
    include_str!("../../../migrations/postgres/0001_init.sql"),
    include_str!("../../../migrations/postgres/0002_listing_indexes.sql"),
];
/// The channel on which deliveries that nobody holds in memory are announced.
const DUE_CHANNEL: &str = "hookrelay_due";
/// Serialises concurrent migrations of instances starting together.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_7265_6c61; // "hookrela"

pub struct PgStore {
    pool: PgPool,
    publisher: batch::Batcher<publish::PublishWrite>,
    accepter: batch::Batcher<inbound::AcceptWrite>,
    due: Arc<Notify>,
    listener: tokio::task::JoinHandle<()>,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Connection failures, a server shutting down or out of connections are `Unavailable`
/// (the API answers 503); anything else is the store's failure.
pub(crate) fn backend(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // 08: connection exception; 57P0x: the server is shutting down or starting;
            // 53: insufficient resources (disk full, too many connections).
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("53")
        }),
        _ => false,
    };
    if unavailable {
        return StoreError::Unavailable(e.to_string());
    }
    StoreError::Backend(Arc::new(e))
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// A unique-key violation is the caller's conflict (`what` already exists).
fn conflict_or_backend(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict(what())
    } else {
        backend(e)
    }
}

fn query(sql: String) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(AssertSqlSafe(sql))
}

impl PgStore {
    /// Connects (up to `pool_size` connections for queries, and one to listen on), applies
    /// pending migrations and starts listening for due-work announcements.
    pub async fn connect(url: &str, pool_size: u32) -> Result<PgStore> {
        let options = connect_options(url)?;
        let pool = PgPoolOptions::new()
            // One more than configured: the LISTEN task holds a connection for itself.
            .max_connections(pool_size + 1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            // No ping before every use (a round trip per query): a connection broken by a
            // server restart fails its next query with `Unavailable` (503) and is dropped.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        let due = Arc::new(Notify::new());
        let listener = tokio::spawn(listen(pool.clone(), due.clone()));
        let notify_pool = pool.clone();
        let announce: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let pool = notify_pool.clone();
            tokio::spawn(async move { announce_due(&pool).await });
        });
        let publisher = batch::Batcher::start(
            pool.clone(),
            publish::PublishWrite {
                announce: announce.clone(),
            },
        );
        let accepter = batch::Batcher::start(pool.clone(), inbound::AcceptWrite { announce });
        Ok(PgStore {
            pool,
            publisher,
            accepter,
            due,
            listener,
        })
    }

    /// Applies pending migrations and returns the schema version: `hookrelay migrate`.
    pub async fn migrate_only(url: &str) -> Result<usize> {
        let options = connect_options(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(backend)?;
        migrate(&pool).await?;
        pool.close().await;
        Ok(MIGRATIONS.len())
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }

    /// A transaction for the delivery engine's bookkeeping: committed without waiting for
    /// the WAL flush (a crash can only repeat attempts).
    async fn begin_relaxed(&self) -> Result<sqlx::Transaction<'static, Postgres>> {
        let mut tx = self.begin().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        Ok(tx)
    }

    async fn fetch_optional<T>(
        &self,
        q: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
        map: impl Fn(&PgRow) -> RowResult<T>,
    ) -> Result<Option<T>> {
        let row = q.fetch_optional(&self.pool).await.map_err(backend)?;
        row.as_ref().map(map).transpose().map_err(backend)
    }

    async fn fetch_all<T>(
        &self,
        q: sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments>,
        map: impl Fn(&PgRow) -> RowResult<T>,
    ) -> Result<Vec<T>> {
        let rows = q.fetch_all(&self.pool).await.map_err(backend)?;
        rows.iter()
            .map(map)
            .collect::<RowResult<_>>()
            .map_err(backend)
    }

    /// `head` (a query whose parameters are `$1..$n`, `n = params`) with keyset pagination:
    /// newest first, below the cursor.
    async fn page<T>(
        &self,
        head: &str,
        binds: Vec<String>,
        page: PageRequest<'_>,
        map: impl Fn(&PgRow) -> RowResult<T>,
        id: impl Fn(&T) -> String,
    ) -> Result<Page<T>> {
        let mut sql = head.to_string();
        if page.cursor.is_some() {
            sql.push_str(&format!(" AND id < ${}", binds.len() + 1));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", page.limit + 1));
        let mut q = query(sql);
        for b in binds {
            q = q.bind(b);
        }
        if let Some(c) = page.cursor {
            q = q.bind(c.to_string());
        }
        let rows = self.fetch_all(q, map).await?;
        Ok(Page::from_rows(rows, page.limit, id))
    }

    async fn announce_due(&self) {
        announce_due(&self.pool).await
    }
}

/// Wakes the workers of every instance: deliveries were made due that no instance holds in
/// memory.
async fn announce_due(pool: &PgPool) {
    if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
        .bind(DUE_CHANNEL)
        .execute(pool)
        .await
    {
        // Only a delay: pollers find the work within their interval.
        tracing::debug!(error = %e, "could not announce due deliveries");
    }
}

/// The connection settings of `url`.
fn connect_options(url: &str) -> Result<PgConnectOptions> {
    let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
        // The URL may carry a password: say what is wrong without repeating it.
        StoreError::Unavailable(format!("invalid database_url: {}", redact_url_error(&e)))
    })?;
    Ok(options.application_name("hookrelay"))
}

/// `sqlx` configuration errors can quote the URL; keep only the kind of error.
fn redact_url_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(inner) => {
            let text = inner.to_string();
            if text.contains('@') || text.contains("://") {
                "the URL could not be parsed".to_string()
            } else {
                text
            }
        }
        _ => "the URL could not be parsed".to_string(),
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await.map_err(backend)?;
    // Instances starting together apply each migration once: the others wait here.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS hookrelay_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at BIGINT NOT NULL
         )",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let applied: i32 =
        sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM hookrelay_migrations")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
    if applied as usize > MIGRATIONS.len() {
        return Err(StoreError::Unavailable(format!(
            "the database schema (version {applied}) is newer than this hookrelay (version {}): upgrade hookrelay",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied.max(0) as usize) {
        sqlx::raw_sql(AssertSqlSafe(*sql))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("INSERT INTO hookrelay_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(i as i32 + 1)
            .bind(ms(Utc::now()))
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tracing::info!(version = i + 1, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(backend)
}

/// Forwards `hookrelay_due` notifications to `due`, reconnecting after a failure (and
/// waking the workers then, since announcements may have been missed meanwhile).
async fn listen(pool: PgPool, due: Arc<Notify>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "cannot listen for due deliveries yet");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if let Err(e) = listener.listen(DUE_CHANNEL).await {
            tracing::debug!(error = %e, "LISTEN failed");
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        due.notify_one();
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => due.notify_one(),
                // The connection was lost; `try_recv` reconnects on the next call.
                Ok(None) => due.notify_one(),
                Err(e) => {
                    tracing::debug!(error = %e, "lost the LISTEN connection");
                    break;
                }
            }
        }
    }
}

fn lease_cols(lease: Option<&Lease>) -> (Option<String>, Option<i64>) {
    match lease {
        Some(l) => (Some(l.owner.clone()), Some(ms(l.until))),
        None => (None, None),
    }
}

type DeliveryColumns = (
    Vec<String>,
    Vec<String>,
    Vec<Option<String>>,
    Vec<Option<i64>>,
);

/// New deliveries as columns, for `UNNEST`: ids, endpoint ids, lease owners and expiries.
fn delivery_columns(deliveries: &[NewDelivery]) -> DeliveryColumns {
    (
        deliveries.iter().map(|d| d.id.clone()).collect(),
        deliveries.iter().map(|d| d.endpoint_id.clone()).collect(),
        deliveries
            .iter()
            .map(|d| d.lease.as_ref().map(|l| l.owner.clone()))
            .collect(),
        deliveries
            .iter()
            .map(|d| d.lease.as_ref().map(|l| ms(l.until)))
            .collect(),
    )
}

/// The deliveries as they were inserted.
fn created_deliveries(
    tenant_id: &str,
    event: (&str, &str),
    deliveries: &[NewDelivery],
    now: i64,
) -> Vec<Delivery> {
    let at = from_ms(now);
    deliveries
        .iter()
        .map(|d| Delivery {
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
        .collect()
}

/// Inserts deliveries of one event in one statement; returns them as created.
async fn insert_deliveries(
    conn: &mut sqlx::PgConnection,
    tenant_id: &str,
    event: (&str, &str),
    deliveries: &[NewDelivery],
    now: i64,
) -> std::result::Result<Vec<Delivery>, sqlx::Error> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, endpoints, owners, untils) = delivery_columns(deliveries);
    sqlx::query(
        "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, attempts,
             next_attempt_at, lease_owner, lease_until, created_at, updated_at)
         SELECT d.id, $1, $2, d.endpoint_id, $3, 'pending', 0, $4, d.owner, d.until, $4, $4
           FROM UNNEST($5::text[], $6::text[], $7::text[], $8::bigint[])
                AS d(id, endpoint_id, owner, until)",
    )
    .bind(tenant_id)
    .bind(event.0)
    .bind(event.1)
    .bind(now)
    .bind(&ids)
    .bind(&endpoints)
    .bind(&owners)
    .bind(&untils)
    .execute(&mut *conn)
    .await?;
    Ok(created_deliveries(tenant_id, event, deliveries, now))
}

/// Whether some of these deliveries wait for a claim (no instance holds them in memory).
fn any_unleased(deliveries: &[NewDelivery]) -> bool {
    deliveries.iter().any(|d| d.lease.is_none())
}

pub(crate) async fn insert_endpoint(
    conn: &mut sqlx::PgConnection,
    ep: &Endpoint,
) -> std::result::Result<(), sqlx::Error> {
    query(format!(
        "INSERT INTO endpoints ({ENDPOINT_COLUMNS}) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 0, NULL, NULL, NULL, NULL, NULL, $14, $15, $16)"
    ))
    .bind(&ep.id)
    .bind(&ep.tenant_id)
    .bind(&ep.url)
    .bind(&ep.description)
    .bind(json(&ep.event_types))
    .bind(json(&ep.channels))
    .bind(json(&ep.secrets))
    .bind(json(&ep.headers))
    .bind(ep.timeout_ms.map(|v| v as i64))
    .bind(ep.rate_limit_per_s.map(|v| v as i32))
    .bind(ep.disabled)
    .bind(json(&ep.metadata))
    .bind(ep.retry_schedule.as_ref().map(json))
    .bind(ms(ep.created_at))
    .bind(ms(ep.updated_at))
    .bind(&ep.source_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Cancels the pending deliveries of a removed endpoint.
pub(crate) async fn cancel_pending(
    conn: &mut sqlx::PgConnection,
    tenant_id: &str,
    endpoint_id: &str,
    why: &str,
) -> std::result::Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'cancelled', next_attempt_at = NULL, lease_owner = NULL,
            lease_until = NULL, last_error = $3, updated_at = $4
         WHERE endpoint_id = $2 AND tenant_id = $1 AND status = 'pending'",
    )
    .bind(tenant_id)
    .bind(endpoint_id)
    .bind(why)
    .bind(ms(Utc::now()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const TASK_SELECT: &str =
    "SELECT d.id, d.tenant_id, d.endpoint_id, d.event_id, d.event_type, e.payload,
        d.attempts, d.next_attempt_at
   FROM deliveries d JOIN events e ON e.id = d.event_id";

fn task_row(r: &PgRow) -> RowResult<DeliveryTask> {
    Ok(DeliveryTask {
        delivery_id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        endpoint_id: r.try_get(2)?,
        event_id: r.try_get(3)?,
        event_type: r.try_get(4)?,
        payload: Arc::from(r.try_get::<&str, _>(5)?),
        attempts_made: uint(r, 6)?,
        due_at: from_ms(r.try_get::<Option<i64>, _>(7)?.unwrap_or_default()),
    })
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn admin_key_hash(&self) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT value FROM settings WHERE key = 'admin_key_hash'")
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)
    }

    async fn set_admin_key_hash(&self, hash: String) -> Result<()> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ('admin_key_hash', $1)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(hash)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn create_api_key(&self, key: ApiKey, hash: String) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, tenant_id, name, prefix, hash, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.id)
        .bind(&key.tenant_id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(hash)
        .bind(ms(key.created_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn find_api_key(&self, hash: &str) -> Result<Option<ApiKey>> {
        self.fetch_optional(
            sqlx::query(
                "SELECT id, tenant_id, name, prefix, created_at FROM api_keys WHERE hash = $1",
            )
            .bind(hash),
            |r| {
                Ok(ApiKey {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    name: r.try_get(2)?,
                    prefix: r.try_get(3)?,
                    created_at: time(r, 4)?,
                })
            },
        )
        .await
    }

    async fn create_tenant(&self, t: Tenant) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenants (id, uid, name, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&t.id)
        .bind(&t.uid)
        .bind(&t.name)
        .bind(ms(t.created_at))
        .bind(ms(t.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, || format!("a tenant with uid `{}`", t.uid)))?;
        Ok(())
    }

    async fn get_tenant(&self, id_or_uid: &str) -> Result<Option<Tenant>> {
        let sql = if id_or_uid.starts_with("tn_") {
            "SELECT id, uid, name, created_at, updated_at FROM tenants WHERE id = $1"
        } else {
            "SELECT id, uid, name, created_at, updated_at FROM tenants WHERE uid = $1"
        };
        self.fetch_optional(sqlx::query(sql).bind(id_or_uid), tenant_row)
            .await
    }

    async fn list_tenants(&self, page: PageRequest<'_>) -> Result<Page<Tenant>> {
        self.page(
            "SELECT id, uid, name, created_at, updated_at FROM tenants WHERE TRUE",
            vec![],
            page,
            tenant_row,
            |t| t.id.clone(),
        )
        .await
    }

    async fn update_tenant(&self, t: Tenant) -> Result<()> {
        sqlx::query("UPDATE tenants SET uid = $2, name = $3, updated_at = $4 WHERE id = $1")
            .bind(&t.id)
            .bind(&t.uid)
            .bind(&t.name)
            .bind(ms(t.updated_at))
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or_backend(e, || format!("a tenant with uid `{}`", t.uid)))?;
        Ok(())
    }

    async fn delete_tenant(&self, id: &str) -> Result<bool> {
        // Foreign keys cascade to keys, endpoints, events, deliveries, attempts, sources.
        let n = sqlx::query("DELETE FROM tenants WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn create_event_type(&self, et: EventType) -> Result<()> {
        sqlx::query(
            "INSERT INTO event_types (name, description, schema, sample, archived, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&et.name)
        .bind(&et.description)
        .bind(et.schema.as_ref().map(|v| v.to_string()))
        .bind(et.sample.as_ref().map(|v| v.to_string()))
        .bind(et.archived)
        .bind(ms(et.created_at))
        .bind(ms(et.updated_at))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or_backend(e, || format!("event type `{}`", et.name)))?;
        Ok(())
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>> {
        self.fetch_optional(
            sqlx::query(
                "SELECT name, description, schema, sample, archived, created_at, updated_at
                 FROM event_types WHERE name = $1",
            )
            .bind(name),
            event_type_row,
        )
        .await
    }

    async fn list_event_types(
        &self,
        page: PageRequest<'_>,
        include_archived: bool,
    ) -> Result<Page<EventType>> {
        // Event types page by name, ascending: a catalogue reads alphabetically.
        let rows = self
            .fetch_all(
                query(format!(
                    "SELECT name, description, schema, sample, archived, created_at, updated_at
                     FROM event_types WHERE ($1 OR NOT archived) AND name > $2
                     ORDER BY name LIMIT {}",
                    page.limit + 1
                ))
                .bind(include_archived)
                .bind(page.cursor.unwrap_or_default().to_string()),
                event_type_row,
            )
            .await?;
        Ok(Page::from_rows(rows, page.limit, |e| e.name.clone()))
    }

    async fn update_event_type(&self, et: EventType) -> Result<()> {
        sqlx::query(
            "UPDATE event_types SET description = $2, schema = $3, sample = $4, archived = $5,
                updated_at = $6
             WHERE name = $1",
        )
        .bind(&et.name)
        .bind(&et.description)
        .bind(et.schema.as_ref().map(|v| v.to_string()))
        .bind(et.sample.as_ref().map(|v| v.to_string()))
        .bind(et.archived)
        .bind(ms(et.updated_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn delete_event_type(&self, name: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM event_types WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(backend)?
            .rows_affected();
        Ok(n > 0)
    }

    async fn create_endpoint(&self, ep: Endpoint) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        insert_endpoint(&mut conn, &ep).await.map_err(backend)
    }

    async fn get_endpoint(&self, tenant_id: &str, id: &str) -> Result<Option<Endpoint>> {
        self.fetch_optional(
            query(format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
            endpoint_row,
        )
        .await
    }

    async fn list_endpoints(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<Endpoint>> {
        self.page(
            &format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoints WHERE tenant_id = $1 AND source_id IS NULL"
            ),
            vec![tenant_id.to_string()],
            page,
            endpoint_row,
            |e| e.id.clone(),
        )
        .await
    }

    async fn enabled_endpoints(&self, tenant_id: &str) -> Result<Vec<Endpoint>> {
        self.fetch_all(
            query(format!(
                "SELECT {ENDPOINT_COLUMNS} FROM endpoints
                 WHERE tenant_id = $1 AND NOT disabled AND source_id IS NULL"
            ))
            .bind(tenant_id),
            endpoint_row,
        )
        .await
    }

    async fn update_endpoint(&self, ep: Endpoint) -> Result<bool> {
        // Re-enabling clears the automatic-disable record and the failure streak.
        let n = sqlx::query(
            "UPDATE endpoints SET url = $3, description = $4, event_types = $5, channels = $6,
                secrets = $7, headers = $8, timeout_ms = $9, rate_limit_per_s = $10,
                disabled = $11, metadata = $12, retry_schedule = $13, updated_at = $14,
                disabled_reason = CASE WHEN $11 THEN disabled_reason ELSE NULL END,
                disabled_at = CASE WHEN $11 THEN disabled_at ELSE NULL END,
                consecutive_failures = CASE WHEN $11 OR NOT disabled THEN consecutive_failures ELSE 0 END,
                failing_since = CASE WHEN $11 OR NOT disabled THEN failing_since ELSE NULL END
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(&ep.tenant_id)
        .bind(&ep.id)
        .bind(&ep.url)
        .bind(&ep.description)
        .bind(json(&ep.event_types))
        .bind(json(&ep.channels))
        .bind(json(&ep.secrets))
        .bind(json(&ep.headers))
        .bind(ep.timeout_ms.map(|v| v as i64))
        .bind(ep.rate_limit_per_s.map(|v| v as i32))
        .bind(ep.disabled)
        .bind(json(&ep.metadata))
        .bind(ep.retry_schedule.as_ref().map(json))
        .bind(ms(ep.updated_at))
        .execute(&self.pool)
        .await
        .map_err(backend)?
        .rows_affected();
        Ok(n > 0)
    }

    async fn delete_endpoint(&self, tenant_id: &str, id: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM endpoints WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
        if n > 0 {
            cancel_pending(&mut tx, tenant_id, id, "endpoint deleted")
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(n > 0)
    }

    async fn publish(&self, event: Event, deliveries: Vec<NewDelivery>) -> Result<PublishOutcome> {
        // Group commit with the publishes arriving meanwhile: see batch.rs.
        self.publisher.submit((event, deliveries)).await
    }

    async fn get_event(&self, tenant_id: &str, id: &str) -> Result<Option<Event>> {
        self.fetch_optional(
            query(format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
            event_row,
        )
        .await
    }

    async fn list_events(&self, tenant_id: &str, page: PageRequest<'_>) -> Result<Page<Event>> {
        self.page(
            &format!("SELECT {EVENT_COLUMNS} FROM events WHERE tenant_id = $1"),
            vec![tenant_id.to_string()],
            page,
            event_row,
            |e| e.id.clone(),
        )
        .await
    }

    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: DeliveryFilter,
        page: PageRequest<'_>,
    ) -> Result<Page<Delivery>> {
        let mut sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1");
        let mut binds = vec![tenant_id.to_string()];
        if filter
            .status
            .is_some_and(|s| s != DeliveryStatus::Succeeded)
        {
            // Lets the planner prove that the partial index of unfinished rows applies.
            sql.push_str(" AND status <> 'succeeded'");
        }
        let conditions = [
            ("status", filter.status.map(|s| s.as_str().to_string())),
            ("endpoint_id", filter.endpoint_id),
            ("event_id", filter.event_id),
        ];
        for (column, value) in conditions {
            if let Some(v) = value {
                binds.push(v);
                sql.push_str(&format!(" AND {column} = ${}", binds.len()));
            }
        }
        self.page(&sql, binds, page, delivery_row, |d| d.id.clone())
            .await
    }

    async fn get_delivery(&self, tenant_id: &str, id: &str) -> Result<Option<Delivery>> {
        self.fetch_optional(
            query(format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2"
            ))
            .bind(tenant_id)
            .bind(id),
            delivery_row,
        )
        .await
    }

    async fn list_attempts(&self, tenant_id: &str, delivery_id: &str) -> Result<Vec<Attempt>> {
        self.fetch_all(
            query(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE tenant_id = $1 AND delivery_id = $2
                 ORDER BY id"
            ))
            .bind(tenant_id)
            .bind(delivery_id),
            attempt_row,
        )
        .await
    }

    async fn add_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
        deliveries: Vec<NewDelivery>,
    ) -> Result<Vec<Delivery>> {
        let mut tx = self.begin().await?;
        let event_type: String =
            sqlx::query_scalar("SELECT event_type FROM events WHERE tenant_id = $1 AND id = $2")
                .bind(tenant_id)
                .bind(event_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        let created = insert_deliveries(
            &mut tx,
            tenant_id,
            (event_id, &event_type),
            &deliveries,
            ms(Utc::now()),
        )
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        if any_unleased(&deliveries) {
            self.announce_due().await;
        }
        Ok(created)
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        id: &str,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<RetryOutcome> {
        let mut tx = self.begin().await?;
        let current = query(format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2 FOR UPDATE"
        ))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some(mut d) = current
            .as_ref()
            .map(delivery_row)
            .transpose()
            .map_err(backend)?
        else {
            return Ok(RetryOutcome::NotFound);
        };
        if d.status == DeliveryStatus::Pending {
            return Ok(RetryOutcome::InProgress);
        }
        let (owner, until) = lease_cols(lease.as_ref());
        sqlx::query(
            "UPDATE deliveries SET status = 'pending', next_attempt_at = $2, lease_owner = $3,
                lease_until = $4, updated_at = $2 WHERE id = $1",
        )
        .bind(id)
        .bind(ms(now))
        .bind(owner)
        .bind(until)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        if lease.is_none() {
            self.announce_due().await;
        }
        d.status = DeliveryStatus::Pending;
        d.next_attempt_at = Some(now);
        d.updated_at = now;
        Ok(RetryOutcome::Scheduled(d))
    }

    async fn recover_failed(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        lease: Option<Lease>,
    ) -> Result<Vec<Delivery>> {
        let unleased = lease.is_none();
        let (owner, until) = lease_cols(lease.as_ref());
        let rows = self
            .fetch_all(
                query(format!(
                    "UPDATE deliveries SET status = 'pending', next_attempt_at = $4, lease_owner = $5,
                        lease_until = $6, updated_at = $4
                     WHERE tenant_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3
                     RETURNING {DELIVERY_COLUMNS}"
                ))
                .bind(tenant_id)
                .bind(endpoint_id)
                .bind(ms(since))
                .bind(ms(now))
                .bind(owner)
                .bind(until),
                delivery_row,
            )
            .await?;
        if unleased && !rows.is_empty() {
            self.announce_due().await;
        }
        Ok(rows)
    }

    async fn claim_due(
        &self,
        now: DateTime<Utc>,
        lease: Lease,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>> {
        let mut tx = self.begin_relaxed().await?;
        // SKIP LOCKED: instances claiming at the same moment take disjoint rows instead of
        // waiting for each other (or taking the same ones).
        let rows = sqlx::query(
            "WITH due AS (
                 SELECT id FROM deliveries
                  WHERE status = 'pending' AND next_attempt_at <= $3
                    AND (lease_until IS NULL OR lease_until < $3)
                  ORDER BY next_attempt_at
                  LIMIT $4
                  FOR UPDATE SKIP LOCKED)
             UPDATE deliveries d SET lease_owner = $1, lease_until = $2
               FROM due WHERE d.id = due.id
             RETURNING d.id, d.tenant_id, d.endpoint_id, d.event_id, d.event_type,
                 (SELECT e.payload FROM events e WHERE e.id = d.event_id),
                 d.attempts, d.next_attempt_at",
        )
        .bind(&lease.owner)
        .bind(ms(lease.until))
        .bind(ms(now))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut tasks = rows
            .iter()
            .filter(|r| r.try_get::<Option<&str>, _>(5).ok().flatten().is_some())
            .map(task_row)
            .collect::<RowResult<Vec<_>>>()
            .map_err(backend)?;
        tasks.sort_by_key(|t| t.due_at);
        Ok(tasks)
    }

    async fn load_tasks(
        &self,
        owner: &str,
        delivery_ids: Vec<String>,
    ) -> Result<Vec<DeliveryTask>> {
        self.fetch_all(
            query(format!(
                "{TASK_SELECT} WHERE d.id = ANY($1) AND d.status = 'pending' AND d.lease_owner = $2
                 ORDER BY d.id"
            ))
            .bind(&delivery_ids)
            .bind(owner),
            task_row,
        )
        .await
    }

    async fn record_attempts(
        &self,
        records: Arc<[AttemptRecord]>,
        now: DateTime<Utc>,
        auto_disable_after: chrono::Duration,
    ) -> Result<Vec<DisabledEndpoint>> {
        let mut tx = self.begin_relaxed().await?;
        let disabled = record_attempts(&mut tx, &records, now, auto_disable_after)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(disabled)
    }

    async fn release_leases(&self, owner: &str, ids: Option<Vec<String>>) -> Result<()> {
        let mut tx = self.begin_relaxed().await?;
        match ids {
            None => sqlx::query(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1",
            )
            .bind(owner)
            .execute(&mut *tx)
            .await,
            Some(ids) => sqlx::query(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL
                 WHERE id = ANY($1) AND lease_owner = $2",
            )
            .bind(&ids)
            .bind(owner)
            .execute(&mut *tx)
            .await,
        }
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        // Released work is due again: let any instance take it.
        self.announce_due().await;
        Ok(())
    }

    async fn release_all_leases(&self) -> Result<()> {
        // Other instances may hold leases on a shared database: never drop them all.
        Ok(())
    }

    async fn purge_before(&self, before: DateTime<Utc>, limit: usize) -> Result<PurgeCounts> {
        let mut tx = self.begin_relaxed().await?;
        // Ids sort by creation time: ranges on the primary keys, no extra index.
        let events: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM events e WHERE id < $1
               AND NOT EXISTS (SELECT 1 FROM deliveries d
                               WHERE d.event_id = e.id AND d.status = 'pending')
               AND NOT EXISTS (SELECT 1 FROM inbound_batch_items b WHERE b.event_id = e.id)
             ORDER BY id LIMIT $2
             FOR UPDATE SKIP LOCKED",
        )
        .bind(ids::first_id_at(ids::EVENT, before))
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        for sql in [
            "DELETE FROM attempts WHERE delivery_id IN
               (SELECT id FROM deliveries WHERE event_id = ANY($1))",
            "DELETE FROM deliveries WHERE event_id = ANY($1)",
            "DELETE FROM events WHERE id = ANY($1)",
        ] {
            sqlx::query(sql)
                .bind(&events)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        let mut counts = PurgeCounts {
            events: events.len() as u64,
            ..PurgeCounts::default()
        };
        for (table, prefix) in [
            ("inbound_requests", ids::INBOUND_REQUEST),
            ("operational_events", ids::OPERATIONAL_EVENT),
        ] {
            let n = query(format!(
                "DELETE FROM {table} WHERE id IN
                   (SELECT id FROM {table} WHERE id < $1 ORDER BY id LIMIT $2)"
            ))
            .bind(ids::first_id_at(prefix, before))
            .bind(limit as i64)
            .execute(&mut *tx)
            .await
            .map_err(backend)?
            .rows_affected();
            if table == "inbound_requests" {
                counts.inbound_requests = n;
            } else {
                counts.operational_events = n;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(counts)
    }

    async fn queue_stats(&self) -> Result<QueueStats> {
        let row = sqlx::query(
            "SELECT count(*), min(created_at) FROM deliveries WHERE status = 'pending'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(QueueStats {
            pending: row.try_get::<i64, _>(0).map_err(backend)?.max(0) as u64,
            oldest_pending_at: opt_time(&row, 1).map_err(backend)?,
        })
    }

    fn due_signal(&self) -> Option<Arc<Notify>> {
        Some(self.due.clone())
    }

    async fn hold_job(
        &self,
        job: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool> {
        // Taken when free or expired, renewed when ours; another live holder keeps it.
        let held: Option<String> = sqlx::query_scalar(
            "INSERT INTO cluster_jobs (job, owner, lease_until) VALUES ($1, $2, $4)
             ON CONFLICT (job) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
              WHERE cluster_jobs.owner = excluded.owner OR cluster_jobs.lease_until < $3
             RETURNING owner",
        )
        .bind(job)
        .bind(owner)
        .bind(ms(now))
        .bind(ms(until))
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(held.as_deref() == Some(owner))
    }

    async fn recent_attempts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<Attempt>> {
        self.fetch_all(
            query(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE endpoint_id = $1 AND tenant_id = $2
                 ORDER BY id DESC LIMIT $3"
            ))
            .bind(endpoint_id)
            .bind(tenant_id)
            .bind(limit as i64),
            attempt_row,
        )
        .await
    }

    async fn recent_outcomes(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        limit: usize,
    ) -> Result<Vec<AttemptOutcome>> {
        self.fetch_all(
            sqlx::query(
                "SELECT started_at, succeeded, duration_ms, error_kind FROM attempts
                 WHERE endpoint_id = $1 AND tenant_id = $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(endpoint_id)
            .bind(tenant_id)
            .bind(limit as i64),
            |r| {
                Ok(AttemptOutcome {
                    started_at: rows::time(r, 0)?,
                    succeeded: r.try_get(1)?,
                    duration_ms: r.try_get::<i64, _>(2)?.max(0) as u64,
                    error_kind: r
                        .try_get::<Option<&str>, _>(3)?
                        .map(AttemptErrorKind::parse),
                })
            },
        )
        .await
    }

    async fn delivery_counts(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        window: TimeWindow,
    ) -> Result<DeliveryCounts> {
        let mut counts = DeliveryCounts::default();
        let (first, end) = window.id_range(ids::DELIVERY);
        let statuses: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        // `status = ANY(...)` scans one range of the endpoint index per status, entries
        // only (the tenant is checked once on the endpoint, not on every row).
        let rows = sqlx::query(
            "SELECT status, count(*) FROM deliveries
             WHERE endpoint_id = $1 AND status = ANY($3) AND id >= $4 AND id < $5
               AND EXISTS (SELECT 1 FROM endpoints WHERE id = $1 AND tenant_id = $2)
             GROUP BY status",
        )
        .bind(endpoint_id)
        .bind(tenant_id)
        .bind(&statuses)
        .bind(&first)
        .bind(&end)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        for r in &rows {
            let n = r.try_get::<i64, _>(1).map_err(backend)?.max(0) as u64;
            let status = r.try_get::<&str, _>(0).map_err(backend)?;
            if let Some(status) = DeliveryStatus::parse(status) {
                *counts.of_mut(status) = n;
            }
        }
        Ok(counts)
    }

    async fn list_operational_events(
        &self,
        tenant_id: &str,
        page: PageRequest<'_>,
    ) -> Result<Page<OperationalEvent>> {
        self.page(
            "SELECT id, tenant_id, kind, endpoint_id, message, created_at
               FROM operational_events WHERE tenant_id = $1",
            vec![tenant_id.to_string()],
            page,
            |r| {
                Ok(OperationalEvent {
                    id: r.try_get(0)?,
                    tenant_id: r.try_get(1)?,
                    kind: r.try_get(2)?,
                    endpoint_id: r.try_get(3)?,
                    message: r.try_get(4)?,
                    created_at: time(r, 5)?,
                })
            },
            |o| o.id.clone(),
        )
        .await
    }

    async fn create_source(&self, source: Source, endpoints: Vec<Endpoint>) -> Result<()> {
        self.create_source_impl(source, endpoints).await
    }

    async fn get_source(&self, tenant_id: &str, id: &str) -> Result<Option<Source>> {
        self.get_source_impl(Some(tenant_id), id).await
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

/// What a batch of attempts does to one endpoint's health counters, folded in order.
#[derive(Default)]
struct HealthChange {
    tenant_id: String,
    /// Some(at) of the last success in the batch.
    last_success: Option<i64>,
    /// Failures after the last success (all of them when there is none).
    failures_after: i32,
    /// The first of those failures.
    first_failure_after: Option<i64>,
    last_failure: Option<i64>,
}

async fn record_attempts(
    tx: &mut sqlx::PgConnection,
    records: &[AttemptRecord],
    now: DateTime<Utc>,
    auto_disable_after: chrono::Duration,
) -> std::result::Result<Vec<DisabledEndpoint>, sqlx::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    // 1. Every attempt, in one statement.
    let col = |f: &dyn Fn(&AttemptRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
    let ids = col(&|r| r.attempt.id.clone());
    let delivery_ids = col(&|r| r.attempt.delivery_id.clone());
    let tenants = col(&|r| r.tenant_id.clone());
    let endpoints = col(&|r| r.attempt.endpoint_id.clone());
    let urls = col(&|r| r.attempt.url.clone());
    let req_headers = col(&|r| json(&r.attempt.request_headers));
    let resp_headers = col(&|r| json(&r.attempt.response_headers));
    let numbers: Vec<i32> = records.iter().map(|r| r.attempt.attempt as i32).collect();
    let started: Vec<i64> = records.iter().map(|r| ms(r.attempt.started_at)).collect();
    let durations: Vec<i64> = records
        .iter()
        .map(|r| r.attempt.duration_ms as i64)
        .collect();
    let succeeded: Vec<bool> = records.iter().map(|r| r.attempt.succeeded).collect();
    let statuses: Vec<Option<i32>> = records
        .iter()
        .map(|r| r.attempt.response_status.map(i32::from))
        .collect();
    let bodies: Vec<Option<String>> = records
        .iter()
        .map(|r| r.attempt.response_body.clone())
        .collect();
    let kinds: Vec<Option<&str>> = records
        .iter()
        .map(|r| r.attempt.error_kind.map(|k| k.as_str()))
        .collect();
    let errors: Vec<Option<String>> = records.iter().map(|r| r.attempt.error.clone()).collect();
    query(format!(
        "INSERT INTO attempts ({ATTEMPT_COLUMNS})
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int4[],
             $6::text[], $7::int8[], $8::int8[], $9::bool[], $10::text[], $11::int4[],
             $12::text[], $13::text[], $14::text[], $15::text[])"
    ))
    .bind(&ids)
    .bind(&delivery_ids)
    .bind(&tenants)
    .bind(&endpoints)
    .bind(&numbers)
    .bind(&urls)
    .bind(&started)
    .bind(&durations)
    .bind(&succeeded)
    .bind(&req_headers)
    .bind(&statuses)
    .bind(&resp_headers)
    .bind(&bodies)
    .bind(&kinds)
    .bind(&errors)
    .execute(&mut *tx)
    .await?;

    // 2. Every delivery moves on, in one statement. Only pending ones: a delivery that was
    // cancelled, dead-lettered or finished meanwhile (by another instance) stays as it is.
    let mut next_status = Vec::with_capacity(records.len());
    let mut next_at = Vec::with_capacity(records.len());
    let mut owners = Vec::with_capacity(records.len());
    let mut untils = Vec::with_capacity(records.len());
    for rec in records {
        let (status, at, lease) = match &rec.next {
            NextStep::Succeeded => ("succeeded", None, None),
            NextStep::Retry { at, lease } => ("pending", Some(ms(*at)), lease.as_ref()),
            NextStep::Failed => ("failed", None, None),
            NextStep::Cancelled => ("cancelled", None, None),
        };
        let (owner, until) = lease_cols(lease);
        next_status.push(status);
        next_at.push(at);
        owners.push(owner);
        untils.push(until);
    }
    sqlx::query(
        "UPDATE deliveries d SET status = u.status, attempts = greatest(d.attempts, u.attempt),
            next_attempt_at = u.next_at, lease_owner = u.owner, lease_until = u.until,
            last_error = u.error, updated_at = $8
           FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int8[], $5::text[], $6::int8[],
                       $7::text[]) AS u(id, status, attempt, next_at, owner, until, error)
          WHERE d.id = u.id AND d.status = 'pending'",
    )
    .bind(&delivery_ids)
    .bind(&next_status)
    .bind(&numbers)
    .bind(&next_at)
    .bind(&owners)
    .bind(&untils)
    .bind(&errors)
    .bind(ms(now))
    .execute(&mut *tx)
    .await?;

    // 3. Endpoint health, folded per endpoint in attempt order: one statement.
    let mut changes: std::collections::BTreeMap<&str, HealthChange> = Default::default();
    for rec in records.iter().filter(|r| r.counts_for_health) {
        let a = &rec.attempt;
        let at = ms(a.started_at);
        let c = changes.entry(a.endpoint_id.as_str()).or_default();
        c.tenant_id.clone_from(&rec.tenant_id);
        if a.succeeded {
            c.last_success = Some(c.last_success.map_or(at, |s| s.max(at)));
            c.failures_after = 0;
            c.first_failure_after = None;
        } else {
            c.failures_after += 1;
            c.first_failure_after.get_or_insert(at);
            c.last_failure = Some(c.last_failure.map_or(at, |f| f.max(at)));
        }
    }
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let ep_ids: Vec<&str> = changes.keys().copied().collect();
    let successes: Vec<Option<i64>> = changes.values().map(|c| c.last_success).collect();
    let failures: Vec<i32> = changes.values().map(|c| c.failures_after).collect();
    let first_failures: Vec<Option<i64>> =
        changes.values().map(|c| c.first_failure_after).collect();
    let last_failures: Vec<Option<i64>> = changes.values().map(|c| c.last_failure).collect();
    // Instances recording outcomes for the same endpoints at once lock their rows in one
    // order (by id), so they queue instead of deadlocking.
    sqlx::query("SELECT 1 FROM endpoints WHERE id = ANY($1) ORDER BY id FOR UPDATE")
        .bind(&ep_ids)
        .execute(&mut *tx)
        .await?;
    // With a success in the batch the streak restarts from the failures after it;
    // without one, it grows.
    let rows = sqlx::query(
        "UPDATE endpoints e SET
            consecutive_failures = CASE WHEN u.success IS NOT NULL THEN u.failures
                                        ELSE e.consecutive_failures + u.failures END,
            failing_since = CASE WHEN u.success IS NOT NULL THEN u.first_failure
                                 ELSE coalesce(e.failing_since, u.first_failure) END,
            last_success_at = CASE WHEN u.success IS NULL THEN e.last_success_at
                                   ELSE greatest(coalesce(e.last_success_at, 0), u.success) END,
            last_failure_at = CASE WHEN u.last_failure IS NULL THEN e.last_failure_at
                                   ELSE greatest(coalesce(e.last_failure_at, 0), u.last_failure) END
           FROM UNNEST($1::text[], $2::int8[], $3::int4[], $4::int8[], $5::int8[])
                AS u(id, success, failures, first_failure, last_failure)
          WHERE e.id = u.id
         RETURNING e.id, e.disabled, e.failing_since, u.failures",
    )
    .bind(&ep_ids)
    .bind(&successes)
    .bind(&failures)
    .bind(&first_failures)
    .bind(&last_failures)
    .fetch_all(&mut *tx)
    .await?;

    // 4. Automatic disable of endpoints failing for too long.
    let mut disabled = Vec::new();
    for row in rows {
        let id: String = row.try_get(0)?;
        let is_disabled: bool = row.try_get(1)?;
        let since: Option<i64> = row.try_get(2)?;
        let failed_now: i32 = row.try_get(3)?;
        let (false, Some(since), true) = (is_disabled, since, failed_now > 0) else {
            continue;
        };
        let since = from_ms(since);
        if now - since < auto_disable_after {
            continue;
        }
        let tenant_id = changes[id.as_str()].tenant_id.clone();
        let reason = format!("every attempt failed since {}", since.to_rfc3339());
        sqlx::query(
            "UPDATE endpoints SET disabled = TRUE, disabled_reason = $2, disabled_at = $3 WHERE id = $1",
        )
        .bind(&id)
        .bind(&reason)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        // No more attempts: its pending deliveries are dead-lettered, for `recover` later.
        sqlx::query(
            "UPDATE deliveries SET status = 'failed', next_attempt_at = NULL, lease_owner = NULL,
                lease_until = NULL, last_error = 'endpoint disabled', updated_at = $2
             WHERE endpoint_id = $1 AND status = 'pending'",
        )
        .bind(&id)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO operational_events (id, tenant_id, kind, endpoint_id, message, created_at)
             VALUES ($1, $2, 'endpoint.disabled', $3, $4, $5)",
        )
        .bind(ids::new_id(ids::OPERATIONAL_EVENT))
        .bind(&tenant_id)
        .bind(&id)
        .bind(format!(
            "Endpoint {id} was disabled automatically: {reason}."
        ))
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        disabled.push(DisabledEndpoint {
            tenant_id,
            endpoint_id: id,
            failing_since: since,
        });
    }
    Ok(disabled)
}
