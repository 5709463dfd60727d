//! The PostgreSQL side of the harness. When `HOOKRELAY_TEST_DATABASE_URL` names a server
//! (`scripts/test` starts a throw-away one), every test app runs on PostgreSQL instead of
//! SQLite: each data directory gets a schema of its own in that server, so a test that
//! restarts its app on the same directory finds its data again, and tests never see each
//! other's rows.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use sqlx::Connection;

/// The server the suite runs against, if any.
pub fn admin_url() -> Option<String> {
    std::env::var("HOOKRELAY_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

pub fn enabled() -> bool {
    admin_url().is_some()
}

/// The database URL for the app whose data directory is `dir`: a schema named after the
/// directory, created on first use. `None` when the suite runs on SQLite.
pub fn database_url_for(dir: &Path) -> Option<String> {
    let admin = admin_url()?;
    let schema = schema_name(dir);
    static CREATED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let created = CREATED.get_or_init(Default::default);
    if !created.lock().unwrap().contains(&schema) {
        run_sql(&admin, format!("CREATE SCHEMA IF NOT EXISTS {schema}"));
        created.lock().unwrap().insert(schema.clone());
    }
    Some(with_search_path(&admin, &schema))
}

/// `url` with the connection option that makes `schema` the only one searched.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

fn schema_name(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut h);
    format!("t_{:016x}", h.finish())
}

/// Runs `f` on a runtime of its own, on a thread of its own: usable from any context, a
/// test's runtime included.
fn on_own_runtime<T: Send + 'static>(
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .join()
    .unwrap()
}

/// Runs one statement on `url`.
pub fn run_sql(url: &str, sql: String) {
    let url = url.to_string();
    on_own_runtime(move || {
        Box::pin(async move {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .expect("the test PostgreSQL server answers");
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("test SQL runs");
        })
    })
}

/// Runs one query returning text values.
pub fn query_strings(url: &str, sql: &str) -> Vec<String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    on_own_runtime(move || {
        Box::pin(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut conn)
                .await
                .unwrap()
        })
    })
}

/// A private PostgreSQL server for tests that stop and restart it (`scripts/pg-cluster`).
pub struct Cluster {
    dir: PathBuf,
    pub url: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster")
}

fn run_script(args: &[&str]) -> String {
    let out = std::process::Command::new(script())
        .args(args)
        .output()
        .expect("scripts/pg-cluster runs");
    assert!(
        out.status.success(),
        "scripts/pg-cluster {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "hookrelay-pg-{}-{}",
            std::process::id(),
            ulid_like()
        ));
        let url = run_script(&["start", dir.to_str().unwrap()]);
        Cluster { dir, url }
    }

    /// Stops the server abruptly (as a crash would), keeping its data.
    pub fn down(&self) {
        run_script(&["down", self.dir.to_str().unwrap()]);
    }

    pub fn up(&self) {
        run_script(&["up", self.dir.to_str().unwrap()]);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .args(["stop", self.dir.to_str().unwrap()])
            .output();
    }
}

fn ulid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}")
}
