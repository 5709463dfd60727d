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
