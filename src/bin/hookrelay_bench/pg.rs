//! The PostgreSQL backend under test: a durable throw-away server started with
//! `scripts/pg-cluster start DIR --durable` (stopped again when this is dropped, on an error
//! or a panic too), or an existing server given by its admin URL; and a fresh database for
//! each scenario, dropped after it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use anyhow::{Context, bail};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// A throw-away cluster started by the script; `scripts/pg-cluster stop DIR` on drop.
struct Cluster {
    script: PathBuf,
    dir: PathBuf,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        eprintln!(
            "stopping the throw-away PostgreSQL in {}",
            self.dir.display()
        );
        let _ = std::process::Command::new(&self.script)
            .arg("stop")
            .arg(&self.dir)
            .stdin(std::process::Stdio::null())
            .status();
    }
}

pub struct Postgres {
    /// `postgres://user@host:port/postgres`: where databases are created.
    pub admin_url: String,
    pool: PgPool,
    seq: AtomicU32,
    /// The server's postmaster, when it runs on this machine and its data directory is
    /// readable: its processes' CPU and disk writes are the backend's, not noise.
    pub postmaster: Option<u32>,
    /// `SELECT version()`.
    pub version: Option<String>,
    /// `SHOW fsync` and `SHOW synchronous_commit`.
    pub fsync: Option<String>,
    pub synchronous_commit: Option<String>,
    /// Declared last: the server stops after the pool has closed.
    cluster: Option<Cluster>,
}

impl Postgres {
    /// Starts a durable throw-away server in a new directory under `root` with `script`.
    pub async fn start_cluster(script: &Path, root: &Path) -> anyhow::Result<Postgres> {
        if !script.is_file() {
            bail!(
                "{} not found: pass --pg-cluster-script PATH or --database-url URL",
                script.display()
            );
        }
        let dir = root.join(format!("hookrelay-bench-pg-{}", std::process::id()));
        eprintln!(
            "starting a durable throw-away PostgreSQL in {}",
            dir.display()
        );
        // From here on, whatever happens, the directory is stopped and removed.
        let cluster = Cluster {
            script: script.to_path_buf(),
            dir: dir.clone(),
        };
        let out = tokio::process::Command::new(script)
            .arg("start")
            .arg(&dir)
            .arg("--durable")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .await
            .with_context(|| format!("running {} start", script.display()))?;
        if !out.status.success() {
            bail!("{} start failed ({})", script.display(), out.status);
        }
        let url = String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .find(|l| l.starts_with("postgres://"))
            .map(str::to_string)
            .with_context(|| format!("{} start printed no URL", script.display()))?;
        Postgres::connect(&url, Some(cluster)).await
    }

    /// Uses an existing server through its admin URL.
    pub async fn existing(admin_url: &str) -> anyhow::Result<Postgres> {
        Postgres::connect(admin_url, None).await
    }

    async fn connect(admin_url: &str, cluster: Option<Cluster>) -> anyhow::Result<Postgres> {
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        let version = show(&pool, "SELECT version()").await;
        let fsync = show(&pool, "SHOW fsync").await;
        let synchronous_commit = show(&pool, "SHOW synchronous_commit").await;
        let postmaster = show(&pool, "SHOW data_directory").await.and_then(|d| {
            let pid = std::fs::read_to_string(Path::new(&d).join("postmaster.pid")).ok()?;
            pid.lines().next()?.trim().parse().ok()
        });
        Ok(Postgres {
            admin_url: admin_url.to_string(),
            pool,
            seq: AtomicU32::new(0),
            postmaster,
            version,
            fsync,
            synchronous_commit,
            cluster,
        })
    }

    /// Creates an empty database; answers its name and URL.
    pub async fn fresh_database(&self) -> anyhow::Result<(String, String)> {
        let name = format!(
            "bench_{}_{}",
            std::process::id(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.pool)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        Ok((name.clone(), database_url(&self.admin_url, &name)?))
    }

    /// Drops a database made by [`fresh_database`](Self::fresh_database), best effort.
    pub async fn drop_database(&self, name: &str) {
        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&self.pool).await {
            eprintln!("   (could not drop database {name}: {e})");
        }
    }

    /// The throw-away server's directory, if the bench started one.
    pub fn cluster_dir(&self) -> Option<&Path> {
        self.cluster.as_ref().map(|c| c.dir.as_path())
    }

    /// Closes the admin connections, then stops the throw-away server (if any).
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// The server's processes: the postmaster and its children.
    pub fn pids(&self) -> Vec<u32> {
        let Some(pm) = self.postmaster else {
            return Vec::new();
        };
        let mut pids = vec![pm];
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if parent_pid(pid) == Some(pm) {
                pids.push(pid);
            }
        }
        pids
    }
}

/// What the server did for one scenario's database, from its statistics views.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PgActivity {
    /// pg_stat_database deltas of the scenario's database (setup excluded).
    pub commits: i64,
    pub rollbacks: i64,
    pub tup_inserted: i64,
    pub tup_updated: i64,
    pub tup_deleted: i64,
    pub tup_fetched: i64,
    pub deadlocks: i64,
    /// pg_stat_wal deltas (the whole server: every scenario has it to itself).
    pub wal_records: i64,
    pub wal_fpi: i64,
    pub wal_bytes: f64,
    pub wal_sync: i64,
    /// Wait events (`type:event`, `CPU` when none) of the database's active backends,
    /// sampled every 20 ms, most frequent first, and the number of samples taken.
    pub waits: Vec<(String, u64)>,
    pub samples: u64,
    /// Most active backends seen in one sample.
    pub max_active: u64,
}

type Counters = [i64; 11];

/// Counts a scenario's database work from the start of its load to its end.
pub struct Probe {
    database: String,
    before: Option<Counters>,
    stop: oneshot::Sender<()>,
    sampler: JoinHandle<(HashMap<String, u64>, u64, u64)>,
}

impl Postgres {
    async fn counters(&self, database: &str) -> Option<Counters> {
        let sql = "SELECT d.xact_commit, d.xact_rollback, d.tup_inserted, d.tup_updated, \
                   d.tup_deleted, d.tup_fetched, d.deadlocks, w.wal_records, w.wal_fpi, \
                   w.wal_bytes::int8, w.wal_sync \
                   FROM pg_stat_database d, pg_stat_wal w WHERE d.datname = $1";
        let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64, i64) =
            sqlx::query_as(AssertSqlSafe(sql.to_string()))
                .bind(database)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| eprintln!("   (pg_stat_database: {e})"))
                .ok()?;
        Some([
            row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10,
        ])
    }

    /// Snapshots the counters and starts sampling wait events of `database`.
    pub async fn probe(&self, database: &str) -> Probe {
        let before = self.counters(database).await;
        let (stop, mut stopped) = oneshot::channel();
        let pool = self.pool.clone();
        let db = database.to_string();
        let sampler = tokio::spawn(async move {
            let mut waits = HashMap::new();
            let (mut samples, mut max_active) = (0u64, 0u64);
            let sql = "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') \
                       FROM pg_stat_activity \
                       WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()";
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = tick.tick() => {}
                }
                let Ok(rows) = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.to_string()))
                    .bind(&db)
                    .fetch_all(&pool)
                    .await
                else {
                    continue;
                };
                samples += 1;
                max_active = max_active.max(rows.len() as u64);
                for w in rows {
                    *waits.entry(w).or_insert(0u64) += 1;
                }
            }
            (waits, samples, max_active)
        });
        Probe {
            database: database.to_string(),
            before,
            stop,
            sampler,
        }
    }

    /// Stops the sampling; call it once hookrelay has been stopped (its backends then
    /// report their statistics on exit).
    pub async fn finish(&self, probe: Probe) -> Option<PgActivity> {
        let _ = probe.stop.send(());
        let (waits, samples, max_active) = probe.sampler.await.ok()?;
        // Backends flush their statistics as they exit.
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (a, b) = (self.counters(&probe.database).await?, probe.before?);
        let d = |i: usize| a[i] - b[i];
        let mut waits: Vec<(String, u64)> = waits.into_iter().collect();
        waits.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
        Some(PgActivity {
            commits: d(0),
            rollbacks: d(1),
            tup_inserted: d(2),
            tup_updated: d(3),
            tup_deleted: d(4),
            tup_fetched: d(5),
            deadlocks: d(6),
            wal_records: d(7),
            wal_fpi: d(8),
            wal_bytes: d(9) as f64,
            wal_sync: d(10),
            waits,
            samples,
            max_active,
        })
    }
}

impl Postgres {
    /// Fills database `name` (migrated and set up, its hookrelay stopped) with `spec`'s
    /// history for the tenant whose uid is `tenant_uid`: the layout of
    /// [`crate::prefill`], written with `INSERT ... SELECT ... FROM generate_series(...)`,
    /// then `VACUUM ANALYZE` (as autovacuum would have done by then).
    pub async fn prefill(
        &self,
        name: &str,
        tenant_uid: &str,
        spec: crate::prefill::Spec,
    ) -> anyhow::Result<crate::prefill::FillStats> {
        use crate::prefill::{FAILED_AT, FAILED_EVERY, OTHER_TYPE};
        use sqlx::Connection;
        let started = std::time::Instant::now();
        let url = database_url(&self.admin_url, name)?;
        let mut c = sqlx::postgres::PgConnection::connect(&url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let q = |sql: String| sqlx::query(AssertSqlSafe(sql));
        // ULID text of (ms, n): 10 characters of the time, 16 of n (Crockford base 32).
        q(
            "CREATE FUNCTION pg_temp.b32(v bigint, s int) RETURNS text LANGUAGE sql IMMUTABLE \
           AS $$ SELECT substr('0123456789ABCDEFGHJKMNPQRSTVWXYZ', \
           (CASE WHEN s >= 63 THEN 0 ELSE (v >> s) & 31 END)::int + 1, 1) $$"
                .into(),
        )
        .execute(&mut c)
        .await?;
        let ulid = |prefix: &str, ms: &str, n: &str| {
            let mut e = format!("'{prefix}_'");
            for k in 0..10 {
                e.push_str(&format!(" || pg_temp.b32({ms}, {})", 5 * (9 - k)));
            }
            for k in 0..16 {
                e.push_str(&format!(" || pg_temp.b32({n}, {})", 5 * (15 - k)));
            }
            e
        };
        let tenant: String = sqlx::query_scalar("SELECT id FROM tenants WHERE uid = $1")
            .bind(tenant_uid)
            .fetch_one(&mut c)
            .await
            .with_context(|| format!("tenant {tenant_uid} not set up"))?;
        let (endpoint, url): (String, String) = sqlx::query_as(
            "SELECT id, url FROM endpoints WHERE tenant_id = $1 AND source_id IS NULL \
             ORDER BY id LIMIT 1",
        )
        .bind(&tenant)
        .fetch_one(&mut c)
        .await
        .context("the scenario's tenant has no endpoint")?;
        let now = chrono::Utc::now().timestamp_millis();
        let end = now - 600_000;
        let start = end - 2 * 24 * 3_600_000;
        q(
            "CREATE TEMP TABLE bench_slots (slot int PRIMARY KEY, tenant_id text, \
           endpoint_id text, url text, event_type text)"
                .into(),
        )
        .execute(&mut c)
        .await?;
        sqlx::query("INSERT INTO bench_slots VALUES (0, $1, $2, $3, $4)")
            .bind(&tenant)
            .bind(&endpoint)
            .bind(&url)
            .bind(crate::child::EVENT_TYPE)
            .execute(&mut c)
            .await?;
        for t in 0..=3i64 {
            let at = start - 3_600_000 + t * 1000;
            let tenant_id = if t == 0 {
                tenant.clone()
            } else {
                let tid = format!(
                    "tn_{}",
                    ulid::Ulid::from_parts(at as u64, 1 << 40 | t as u128)
                );
                sqlx::query(
                    "INSERT INTO tenants (id, uid, name, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind(&tid)
                .bind(format!("prefill-{t}"))
                .bind(format!("Prefill {t}"))
                .bind(at)
                .execute(&mut c)
                .await?;
                tid
            };
            let eid = format!(
                "ep_{}",
                ulid::Ulid::from_parts(at as u64 + 1, 1 << 40 | t as u128)
            );
            let eurl = format!("{url}-prefill-{t}");
            sqlx::query(
                "INSERT INTO endpoints (id, tenant_id, url, description, event_types, channels, \
                   secrets, headers, timeout_ms, rate_limit_per_s, disabled, metadata, \
                   retry_schedule, consecutive_failures, created_at, updated_at, source_id) \
                 SELECT $1, $2, $3, description, $4, channels, secrets, headers, timeout_ms, \
                   rate_limit_per_s, disabled, metadata, retry_schedule, 0, $5, $5, NULL \
                 FROM endpoints WHERE id = $6",
            )
            .bind(&eid)
            .bind(&tenant_id)
            .bind(&eurl)
            .bind(format!(r#"["{OTHER_TYPE}"]"#))
            .bind(at + 1)
            .bind(&endpoint)
            .execute(&mut c)
            .await?;
            sqlx::query("INSERT INTO bench_slots VALUES ($1, $2, $3, $4, $5)")
                .bind(1 + t as i32)
                .bind(&tenant_id)
                .bind(&eid)
                .bind(&eurl)
                .bind(OTHER_TYPE)
                .execute(&mut c)
                .await?;
        }
        let step = (2 * 24 * 3_600_000 / spec.events.max(1) as i64).max(1);
        let attempts = spec.attempts.max(1) as i64;
        let head = r#"{"prefill":true,"pad":""#;
        let pad = spec.payload_bytes.saturating_sub(head.len() + 2);
        let payload = format!("{head}{}\"}}", "x".repeat(pad));
        let ms = format!("({start}::bigint + i * {step})");
        let slot = "(CASE WHEN i % 2 = 0 THEN (i / 2) % 2 ELSE 2 + (i / 2) % 3 END)";
        let failed = format!(
            "(i % {FAILED_EVERY} IN ({}, {}))",
            FAILED_AT[0], FAILED_AT[1]
        );
        let event_id = ulid("msg", &ms, "i");
        let delivery_id = ulid("dlv", &format!("({ms} + 1)"), "i");
        let attempt_ms = format!("({ms} + 2 + (k - 1) * 1000)");
        let attempt_id = ulid("atm", &attempt_ms, "(i * 1024 + k)");
        let batch = 100_000i64;
        let total = spec.events as i64;
        let mut lo = 0i64;
        while lo < total {
            let hi = (lo + batch).min(total) - 1;
            let mut tx = c.begin().await?;
            let from = format!(
                "FROM generate_series({lo}::bigint, {hi}) i JOIN bench_slots s ON s.slot = {slot}"
            );
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO events (id, tenant_id, event_type, payload, channels, \
                   idempotency_key, created_at) \
                 SELECT {event_id}, s.tenant_id, s.event_type, $1, '[]', NULL, {ms} {from}"
            )))
            .bind(&payload)
            .execute(&mut *tx)
            .await?;
            q(format!(
                "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status, \
                   attempts, next_attempt_at, lease_owner, lease_until, last_error, created_at, \
                   updated_at) \
                 SELECT {delivery_id}, s.tenant_id, {event_id}, s.endpoint_id, s.event_type, \
                   CASE WHEN {failed} THEN 'failed' ELSE 'succeeded' END, {attempts}, NULL, NULL, \
                   NULL, CASE WHEN {failed} THEN 'HTTP 500' END, {ms} + 1, \
                   {ms} + 1 + {attempts} * 1000 {from}"
            ))
            .execute(&mut *tx)
            .await?;
            q(format!(
                "INSERT INTO attempts (id, delivery_id, tenant_id, endpoint_id, attempt, url, \
                   started_at, duration_ms, succeeded, request_headers, response_status, \
                   response_headers, response_body, error_kind, error) \
                 SELECT {attempt_id}, {delivery_id}, s.tenant_id, s.endpoint_id, k, s.url, \
                   {attempt_ms}, 12, ok, \
                   '{{\"content-type\":\"application/json\",\"webhook-id\":\"' || {event_id} || \
                   '\",\"webhook-timestamp\":\"' || ({ms} / 1000) || '\"}}', \
                   CASE WHEN ok THEN 200 ELSE 500 END, '{{\"content-type\":\"text/plain\"}}', \
                   CASE WHEN ok THEN 'ok' ELSE 'internal error' END, \
                   CASE WHEN ok THEN NULL ELSE 'http_status' END, \
                   CASE WHEN ok THEN NULL ELSE 'HTTP 500' END \
                 {from} CROSS JOIN LATERAL generate_series(1, {attempts}) k \
                 CROSS JOIN LATERAL (SELECT k = {attempts} AND NOT {failed} AS ok) o"
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            lo = hi + 1;
            let s = started.elapsed().as_secs_f64();
            eprintln!(
                "   prefill: {lo} of {total} events ({:.0}%), {:.0} rows/s, {s:.0} s",
                lo as f64 * 100.0 / total as f64,
                (lo * (2 + attempts)) as f64 / s
            );
        }
        let t_vac = std::time::Instant::now();
        q("VACUUM ANALYZE events, deliveries, attempts, endpoints, tenants".into())
            .execute(&mut c)
            .await?;
        eprintln!(
            "   prefill: VACUUM ANALYZE took {:.1} s",
            t_vac.elapsed().as_secs_f64()
        );
        let size: Option<i64> = sqlx::query_scalar("SELECT pg_database_size(current_database())")
            .fetch_one(&mut c)
            .await
            .ok();
        let _ = c.close().await;
        let seconds = started.elapsed().as_secs_f64();
        let events = spec.events;
        let failed_deliveries = (0..events % FAILED_EVERY)
            .filter(|r| FAILED_AT.contains(r))
            .count() as u64
            + events / FAILED_EVERY * FAILED_AT.len() as u64;
        let rows = events * (2 + attempts as u64);
        Ok(crate::prefill::FillStats {
            events,
            deliveries: events,
            attempts: events * attempts as u64,
            failed_deliveries,
            seconds,
            rows_per_s: rows as f64 / seconds.max(1e-9),
            store_mb: size.map(|s| s as f64 / 1e6),
        })
    }
}

/// The one text value a query answers, if it does.
async fn show(pool: &PgPool, sql: &str) -> Option<String> {
    sqlx::query_scalar::<_, String>(AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .ok()
}

/// The parent of a process, from /proc/<pid>/stat.
fn parent_pid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `admin_url` with its database (the path) replaced by `name`, query string kept.
fn database_url(admin_url: &str, name: &str) -> anyhow::Result<String> {
    let scheme_end = admin_url
        .find("://")
        .with_context(|| format!("`{admin_url}` is not a postgres:// URL"))?
        + 3;
    let (base, query) = match admin_url.find('?') {
        Some(q) => admin_url.split_at(q),
        None => (admin_url, ""),
    };
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_database_of_a_url() {
        let u = |s| database_url(s, "bench_1").unwrap();
        assert_eq!(
            u("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/bench_1"
        );
        assert_eq!(u("postgres://u:p@h:1"), "postgres://u:p@h:1/bench_1");
        assert_eq!(
            u("postgres://u@h/db?sslmode=disable"),
            "postgres://u@h/bench_1?sslmode=disable"
        );
        assert!(database_url("nonsense", "x").is_err());
    }
}
