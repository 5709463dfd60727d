//! The hookrelay under test: the already-built binary, started as a child process with a
//! fresh data directory (or a fresh PostgreSQL database) and a free 127.0.0.1 port, set up
//! through its API, killed at the end. With PostgreSQL, several children may share one
//! database: a [`Fleet`].

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use crate::load::{HttpClient, new_client};

pub const ADMIN_KEY: &str = "hr_bench_admin_key_0123456789abcdefghijklmnop";
pub const EVENT_TYPE: &str = "bench.event";
pub const TENANT_UID: &str = "bench";

pub struct ChildOptions {
    /// Parent of the per-scenario data directories.
    pub data_root: PathBuf,
    pub delivery_enabled: bool,
    pub delivery_concurrency: Option<usize>,
    pub rust_log: String,
    /// HOOKRELAY_DATABASE_URL (PostgreSQL); the embedded SQLite store when `None`.
    pub database_url: Option<String>,
    /// HOOKRELAY_DATABASE_POOL_SIZE (its default when `None`).
    pub database_pool_size: Option<u32>,
}

pub struct Hookrelay {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    dir: PathBuf,
    api: HttpClient,
    /// Leave the data directory in place on drop (to start again on it).
    keep_dir: bool,
}

impl Hookrelay {
    pub async fn start(bin: &Path, opts: &ChildOptions) -> anyhow::Result<Hookrelay> {
        Hookrelay::start_in(bin, opts, None).await
    }

    /// Like [`start`](Self::start), on the data directory `dir` (left by
    /// [`stop_keeping_data`](Self::stop_keeping_data)) when given, else on a fresh one.
    pub async fn start_in(
        bin: &Path,
        opts: &ChildOptions,
        dir: Option<PathBuf>,
    ) -> anyhow::Result<Hookrelay> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        if !bin.is_file() {
            bail!(
                "{} not found: build it first (cargo build --release --bins) or pass --hookrelay PATH",
                bin.display()
            );
        }
        let dir = match dir {
            Some(dir) => dir,
            None => {
                let dir = opts.data_root.join(format!(
                    "hookrelay-bench-{}-{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::Relaxed)
                ));
                let _ = std::fs::remove_dir_all(&dir);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                dir
            }
        };
        let addr = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("hookrelay.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve");
        // Only what the benchmark sets: nothing inherited from the caller's environment.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HOOKRELAY_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("HOOKRELAY_LISTEN", addr.to_string())
            .env("HOOKRELAY_DATA_DIR", &dir)
            .env("HOOKRELAY_ADMIN_KEY", ADMIN_KEY)
            .env("HOOKRELAY_ALLOW_NETS", "127.0.0.1/32")
            .env(
                "HOOKRELAY_DELIVERY_ENABLED",
                if opts.delivery_enabled {
                    "true"
                } else {
                    "false"
                },
            )
            // A failed attempt (there should be none) is retried soon, not in 5 s.
            .env("HOOKRELAY_DELIVERY_RETRY_SCHEDULE", "1s,2s,5s,10s")
            .env("RUST_LOG", &opts.rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        if let Some(n) = opts.delivery_concurrency {
            cmd.env("HOOKRELAY_DELIVERY_CONCURRENCY", n.to_string());
        }
        if let Some(url) = &opts.database_url {
            cmd.env("HOOKRELAY_DATABASE_URL", url);
        }
        if let Some(n) = opts.database_pool_size {
            cmd.env("HOOKRELAY_DATABASE_POOL_SIZE", n.to_string());
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("child has no pid")?;
        let mut hr = Hookrelay {
            child,
            pid,
            addr,
            dir,
            api: new_client(),
            keep_dir: false,
        };
        hr.wait_healthy(Duration::from_secs(60)).await?;
        Ok(hr)
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn wait_healthy(&mut self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        let url = format!("{}/health", self.base());
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "hookrelay exited during start ({status}):\n{}",
                    self.log_tail(20)
                );
            }
            if let Ok((StatusCode::OK, _)) = self.call(Method::GET, &url, None).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "hookrelay did not answer {url} within {within:?}:\n{}",
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// One admin API call; answers the status and the JSON body (or the text as a string).
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header(AUTHORIZATION, format!("Bearer {ADMIN_KEY}"));
        let bytes = match body {
            Some(v) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v)?)
            }
            None => Bytes::new(),
        };
        let resp = self.api.request(req.body(Full::new(bytes))?).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok((status, value))
    }

    async fn create(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base());
        let (status, value) = self.call(Method::POST, &url, Some(&body)).await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {value}");
        }
        Ok(value)
    }

    /// The event type, the tenant, and `endpoints` endpoints at `{sink}/ep/{i}` taking every
    /// event type. Answers the publish URL.
    pub async fn set_up(&self, sink: SocketAddr, endpoints: usize) -> anyhow::Result<String> {
        self.create(
            "/api/v1/event-types",
            json!({"name": EVENT_TYPE, "description": "benchmark event"}),
        )
        .await?;
        self.create(
            "/api/v1/tenants",
            json!({"uid": TENANT_UID, "name": "Benchmark"}),
        )
        .await?;
        for i in 0..endpoints {
            self.create(
                &format!("/api/v1/tenants/{TENANT_UID}/endpoints"),
                json!({"url": format!("http://{sink}/ep/{i}"), "event_types": ["*"]}),
            )
            .await?;
        }
        Ok(format!(
            "{}/api/v1/tenants/{TENANT_UID}/events",
            self.base()
        ))
    }

    /// The tenant and a GitHub source verified with `secret` whose one destination is the
    /// sink's [`INBOUND_PATH`](crate::sink::INBOUND_PATH). Answers the source's receive URL.
    pub async fn set_up_inbound(
        &self,
        sink: Option<SocketAddr>,
        secret: &str,
    ) -> anyhow::Result<String> {
        self.create(
            "/api/v1/tenants",
            json!({"uid": TENANT_UID, "name": "Benchmark"}),
        )
        .await?;
        let destinations: Vec<_> = sink
            .into_iter()
            .map(|sink| {
                json!({
                    "type": "http",
                    "url": format!("http://{sink}{}", crate::sink::INBOUND_PATH),
                })
            })
            .collect();
        let source = self
            .create(
                &format!("/api/v1/tenants/{TENANT_UID}/sources"),
                json!({
                    "name": "bench-github",
                    "provider": "github",
                    "verification": {"secrets": [secret]},
                    "destinations": destinations,
                }),
            )
            .await?;
        let id = source["id"]
            .as_str()
            .with_context(|| format!("source answer without an id: {source}"))?;
        Ok(format!("{}/in/{id}", self.base()))
    }

    /// The child's Prometheus text (`/metrics`), if it answers.
    pub async fn metrics(&self) -> Option<String> {
        let url = format!("{}/metrics", self.base());
        match self.call(Method::GET, &url, None).await {
            Ok((StatusCode::OK, Value::String(text))) => Some(text),
            _ => None,
        }
    }

    /// A `Vm*` line of /proc/<pid>/status, in MB (10^6 bytes).
    pub fn vm_mb(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status
            .lines()
            .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
        let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024.0 / 1e6)
    }

    /// Total CPU seconds (user + system) the child has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_seconds(&self.pid.to_string())
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("hookrelay.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// WARN and ERROR lines the child logged (count, first few).
    pub fn log_problems(&self, keep: usize) -> (usize, Vec<String>) {
        let text = std::fs::read_to_string(self.dir.join("hookrelay.log")).unwrap_or_default();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| l.contains(" WARN ") || l.contains(" ERROR ") || l.contains("panicked"))
            .collect();
        (
            bad.len(),
            bad.iter().take(keep).map(|l| l.to_string()).collect(),
        )
    }

    /// Kills the child (SIGKILL: nothing of its shutdown is measured) and removes its data.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Kills the child but keeps its data directory; answers it (for
    /// [`start_in`](Self::start_in), or to remove).
    pub async fn stop_keeping_data(mut self) -> PathBuf {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.keep_dir = true;
        self.dir.clone()
    }
}

impl Drop for Hookrelay {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The hookrelay instances of one scenario: one child, or several sharing one PostgreSQL
/// database (each on its own port). The first one is the one set up through the API.
pub struct Fleet {
    pub all: Vec<Hookrelay>,
    /// The PostgreSQL database they share, made for this scenario, if any.
    pub database: Option<String>,
}

impl Fleet {
    pub fn first(&self) -> &Hookrelay {
        &self.all[0]
    }

    pub fn count(&self) -> usize {
        self.all.len()
    }

    /// `http://addr` of each instance.
    pub fn bases(&self) -> Vec<String> {
        self.all.iter().map(Hookrelay::base).collect()
    }

    /// Total CPU seconds of all instances (`None` if one cannot be read).
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.all.iter().map(Hookrelay::cpu_seconds).sum()
    }

    /// Bytes all instances caused to be written to storage.
    pub fn written_bytes(&self) -> Option<f64> {
        self.all
            .iter()
            .map(|h| written_bytes(&h.pid.to_string()))
            .sum()
    }

    /// A `Vm*` figure of each instance, MB.
    pub fn vm_mb_each(&self, field: &str) -> Vec<Option<f64>> {
        self.all.iter().map(|h| h.vm_mb(field)).collect()
    }

    /// Each instance's `/metrics` text, of those that answer.
    pub async fn metrics(&self) -> Vec<String> {
        let mut texts = Vec::new();
        for h in &self.all {
            texts.extend(h.metrics().await);
        }
        texts
    }

    /// WARN and ERROR lines of all instances (count, first few; tagged `[i]` when several).
    pub fn log_problems(&self, keep: usize) -> (usize, Vec<String>) {
        let mut count = 0;
        let mut lines = Vec::new();
        for (i, h) in self.all.iter().enumerate() {
            let (n, first) = h.log_problems(keep);
            count += n;
            for l in first {
                if lines.len() < keep {
                    lines.push(if self.all.len() > 1 {
                        format!("[{i}] {l}")
                    } else {
                        l
                    });
                }
            }
        }
        (count, lines)
    }

    pub async fn stop(self) {
        for h in self.all {
            h.stop().await;
        }
    }
}

/// The sum of a metric's samples over all label sets (`name` or `name{...}` lines).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

/// The file system type holding `path` (longest mount point prefix in /proc/mounts).
pub fn fs_type(path: &Path) -> Option<String> {
    let path = std::fs::canonicalize(path).ok()?;
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mount)
                .then(|| (mount.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, kind)| kind)
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// Bytes a process (`self` or a pid) caused to be written to storage, from /proc/<pid>/io.
pub fn written_bytes(pid: &str) -> Option<f64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))?
        .trim()
        .parse()
        .ok()
}

/// CPU seconds (user + system) used by a process (`self` or a pid), from /proc.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name come fields 3...; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on the Linux architectures this runs on.
    Some(ticks / 100.0)
}
