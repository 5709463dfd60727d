//! The scenarios. Each hookrelay scenario starts its own child (or, on PostgreSQL, its own
//! `--instances` children sharing one database) on a fresh data directory or database, and
//! kills it at the end; all traffic stays on 127.0.0.1. With several instances, instance 0 is
//! set up through the API and the load tool's clients are spread over all of them (client k
//! talks to instance k mod N); deliveries are counted at the sink as with one.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde::Serialize;

use crate::child::{self, ADMIN_KEY, ChildOptions, EVENT_TYPE, Fleet, Hookrelay, TENANT_UID};
use crate::load::{self, LoadOutcome, Percentiles, Target, percentiles};
use crate::pg::{PgActivity, Postgres, Probe};
use crate::prefill::{self, FillStats};
use crate::sink::{INBOUND_INDEX, Sink};

/// Everything a scenario needs from the command line, plus the shared sink.
pub struct Ctx {
    pub hookrelay: PathBuf,
    pub data_root: PathBuf,
    pub duration: Duration,
    pub clients: usize,
    pub rate: f64,
    pub fanout: usize,
    pub drain_timeout: Duration,
    pub delivery_concurrency: Option<usize>,
    pub rust_log: String,
    /// Where the latency scenario writes one CSV line per request, if anywhere.
    pub dump_latencies: Option<PathBuf>,
    pub body: Bytes,
    /// Size of each inbound request body, bytes of JSON.
    pub payload_bytes: usize,
    pub sink: Sink,
    /// The PostgreSQL server each scenario gets a fresh database on; SQLite when `None`.
    pub pg: Option<Postgres>,
    /// hookrelay instances per scenario (several only on PostgreSQL).
    pub instances: usize,
    pub database_pool_size: Option<u32>,
    /// History written into each scenario's store before its measured phase, if any.
    pub prefill: Option<prefill::Spec>,
    pub prefill_cache: PrefillCache,
    /// Requests per query of the list scenario.
    pub list_requests: usize,
}

/// Filled stores kept for the next scenario (SQLite: a copy of the file per set-up), and
/// what each fill cost. The copies are removed on drop.
#[derive(Default)]
pub struct PrefillCache {
    files: Mutex<HashMap<String, PathBuf>>,
    pub fills: Mutex<Vec<FillStats>>,
    /// Seconds each restore from a cached copy took.
    pub restores_s: Mutex<Vec<f64>>,
}

impl Drop for PrefillCache {
    fn drop(&mut self) {
        let files = self.files.get_mut().unwrap_or_else(|e| e.into_inner());
        for path in files.values() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What the child process (or processes) did during a scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChildStats {
    /// hookrelay instances (children) of the scenario.
    pub instances: usize,
    /// VmRSS after start and setup, before any load, in MB: the largest instance's.
    pub idle_rss_mb: Option<f64>,
    /// VmHWM at the end of the scenario, in MB: the largest instance's.
    pub peak_rss_mb: Option<f64>,
    /// The same, summed over all instances (equal to the above with one).
    pub idle_rss_sum_mb: Option<f64>,
    pub peak_rss_sum_mb: Option<f64>,
    /// CPU used from the start of the load to the end of the scenario (drain included),
    /// in % of one core, all instances together.
    pub cpu_pct: Option<f64>,
    /// CPU of the PostgreSQL server meanwhile, % of one core (when it runs here).
    pub postgres_cpu_pct: Option<f64>,
    /// What PostgreSQL did for the scenario's database from the start of the load.
    pub postgres: Option<PgActivity>,
    /// Group commits of the SQLite writer over the child's life, and their mean size
    /// (writes per transaction), from its /metrics (summed over instances).
    pub group_commits: Option<f64>,
    pub group_commit_mean_size: Option<f64>,
    /// `webhook_retries_total` and `webhook_deliveries_total` at the end.
    pub retries: Option<f64>,
    pub deliveries_total: Option<f64>,
    pub log_problem_lines: usize,
    pub log_problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadStats {
    pub ok: u64,
    pub failed: u64,
    pub per_s: f64,
    pub elapsed_s: f64,
    pub api: Option<Percentiles>,
    pub errors: Option<String>,
    /// CPU used during the load phase, % of one core.
    pub cpu: CpuShare,
}

impl LoadStats {
    fn of(out: &LoadOutcome, cpu: CpuShare) -> LoadStats {
        LoadStats {
            ok: out.ok,
            failed: out.failed(),
            per_s: out.per_sec(),
            elapsed_s: out.elapsed.as_secs_f64(),
            api: percentiles(out.latencies_us.clone()),
            errors: out.error_summary(),
            cpu,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CeilingResult {
    pub load: LoadStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct PublishResult {
    pub load: LoadStats,
    pub child: ChildStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliverResult {
    pub endpoints: usize,
    pub publish: LoadStats,
    /// Deliveries the sink should get: accepted events × endpoints.
    pub expected: u64,
    /// Distinct (endpoint, event) pairs the sink received.
    pub delivered: u64,
    pub duplicates: u64,
    pub drained: bool,
    /// From the end of the publish phase to the last delivery.
    pub drain_s: f64,
    /// From the first publish to the last delivery.
    pub window_s: f64,
    pub delivered_per_s: f64,
    pub child: ChildStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    pub offered_rate: f64,
    pub offered: u64,
    pub publish: LoadStats,
    /// Scheduled publish time → first receipt at the sink, for events the sink got.
    pub end_to_end: Option<Percentiles>,
    pub delivered: u64,
    pub undelivered: u64,
    pub duplicates: u64,
    pub child: ChildStats,
}

#[derive(Debug, Clone, Serialize)]
pub struct InboundResult {
    /// `ok` counts the requests answered 200 with `"outcome":"accepted"`.
    pub load: LoadStats,
    /// Accepted requests whose envelope the sink received (by GitHub delivery id).
    pub delivered: u64,
    pub undelivered: u64,
    /// Envelopes the sink received for delivery ids not answered as accepted (e.g. the
    /// answer was lost), and repeats of one already received.
    pub unexpected: u64,
    pub duplicates: u64,
    pub drained: bool,
    /// From the end of the load phase to the last delivery.
    pub drain_s: f64,
    /// Send of the request → first receipt of its envelope at the sink.
    pub end_to_end: Option<Percentiles>,
    /// What building and signing one request cost the load generator, µs (outside the
    /// measured latency).
    pub sign_us: f64,
    pub child: ChildStats,
}

/// One listing request of the list scenario, sent `requests` times in a row.
#[derive(Debug, Clone, Serialize)]
pub struct ListQuery {
    pub name: &'static str,
    /// The path and query (ids vary for `delivery_attempts`: one delivery after another).
    pub path: String,
    pub ok: u64,
    pub failed: u64,
    /// Items in the last answer's `data` (attempts for `delivery_attempts`, 1 for an object).
    pub items: usize,
    /// Request → whole answer read, µs percentiles.
    pub latency: Option<Percentiles>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ListResult {
    pub queries: Vec<ListQuery>,
    pub cpu: CpuShare,
    pub child: ChildStats,
}

/// Longest time the list scenario spends on one query (at least 5 requests are measured).
const LIST_BUDGET: Duration = Duration::from_secs(20);

/// Where the machine's CPU went during a phase, in % of one core.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShare {
    /// The hookrelay child (all instances).
    pub hookrelay: Option<f64>,
    /// The PostgreSQL server (postmaster and its children), when it runs on this machine.
    pub postgres: Option<f64>,
    /// What the PostgreSQL server wrote to storage, MB/s.
    pub postgres_disk_write_mb_s: Option<f64>,
    /// This process: load generator and sink.
    pub bench: Option<f64>,
    /// Everything else on the machine: noise.
    pub other: Option<f64>,
    /// Bytes other processes wrote to the disks meanwhile, MB/s: noise of another kind
    /// (fsync latency suffers under someone else's writeback).
    pub other_disk_write_mb_s: Option<f64>,
}

/// CPU counters at one moment.
struct Meter {
    at: Instant,
    machine: Option<f64>,
    bench: Option<f64>,
    child: Option<f64>,
    disk_written: Option<f64>,
    bench_written: Option<f64>,
    child_written: Option<f64>,
    /// CPU seconds and bytes written of each PostgreSQL server process.
    db: Option<HashMap<u32, (f64, f64)>>,
}

impl Meter {
    fn now(hr: Option<&Fleet>, pg: Option<&Postgres>) -> Meter {
        let db = pg.filter(|p| p.postmaster.is_some()).map(|p| {
            p.pids()
                .into_iter()
                .filter_map(|pid| {
                    let id = pid.to_string();
                    let cpu = child::cpu_seconds(&id)?;
                    Some((pid, (cpu, child::written_bytes(&id).unwrap_or(0.0))))
                })
                .collect()
        });
        Meter {
            at: Instant::now(),
            machine: machine_busy_seconds(),
            bench: child::cpu_seconds("self"),
            child: hr.and_then(Fleet::cpu_seconds),
            disk_written: disk_written_bytes(),
            bench_written: child::written_bytes("self"),
            child_written: hr.and_then(Fleet::written_bytes),
            db,
        }
    }

    /// CPU seconds and bytes written by the PostgreSQL server since `start`: processes
    /// that started meanwhile count whole, those that ended meanwhile are lost.
    fn db_since(&self, start: &Meter) -> Option<(f64, f64)> {
        let (now, then) = (self.db.as_ref()?, start.db.as_ref()?);
        Some(now.iter().fold((0.0, 0.0), |(c, w), (pid, (cpu, wr))| {
            let (c0, w0) = then.get(pid).copied().unwrap_or((0.0, 0.0));
            (c + (cpu - c0).max(0.0), w + (wr - w0).max(0.0))
        }))
    }

    fn since(&self, start: &Meter) -> CpuShare {
        let wall = self.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        let pct = |d: Option<f64>| d.map(|d| d / wall * 100.0);
        let machine = delta(self.machine, start.machine);
        let bench = delta(self.bench, start.bench);
        let child = delta(self.child, start.child);
        let db = self.db_since(start);
        let db_cpu = db.map(|d| d.0);
        let other = machine
            .zip(bench)
            .map(|(m, b)| (m - b - child.unwrap_or(0.0) - db_cpu.unwrap_or(0.0)).max(0.0));
        let written = delta(self.disk_written, start.disk_written);
        let ours = delta(self.bench_written, start.bench_written).unwrap_or(0.0)
            + delta(self.child_written, start.child_written).unwrap_or(0.0)
            + db.map_or(0.0, |d| d.1);
        CpuShare {
            hookrelay: pct(child),
            postgres: pct(db_cpu),
            postgres_disk_write_mb_s: db.map(|d| d.1 / wall / 1e6),
            bench: pct(bench),
            other: pct(other),
            other_disk_write_mb_s: written.map(|w| (w - ours).max(0.0) / wall / 1e6),
        }
    }
}

/// Waits (up to `max`) until the rest of the machine leaves the CPU alone: less than 10% of
/// one core used by other processes over 2 s. Answers the last share seen, in %.
pub async fn wait_quiet(max: Duration) -> Option<f64> {
    let deadline = Instant::now() + max;
    loop {
        let m0 = Meter::now(None, None);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let other = Meter::now(None, None).since(&m0).other?;
        if other < 10.0 || Instant::now() >= deadline {
            return Some(other);
        }
    }
}

/// Bytes written to the machine's disks so far (whole disks in /sys/block, not loop, ram
/// or zram devices), from /proc/diskstats.
fn disk_written_bytes() -> Option<f64> {
    let disks: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !["loop", "ram", "zram"].iter().any(|p| n.starts_with(p)))
        .collect();
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let sectors: f64 = stats
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // major minor name reads merged sectors ms writes merged sectors-written ...
            disks
                .iter()
                .any(|d| f.get(2) == Some(&d.as_str()))
                .then(|| f.get(9)?.parse::<f64>().ok())?
        })
        .sum();
    Some(sectors * 512.0)
}

/// Busy CPU seconds of the whole machine (all CPUs), from the first line of /proc/stat.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: f64 = fields
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    Some(busy / 100.0)
}

/// The largest and the sum of per-instance readings (`None` when one is missing).
fn max_and_sum(each: &[Option<f64>]) -> (Option<f64>, Option<f64>) {
    let all: Option<Vec<f64>> = each.iter().copied().collect();
    match all {
        Some(v) if !v.is_empty() => (v.iter().copied().reduce(f64::max), Some(v.iter().sum())),
        _ => (None, None),
    }
}

/// A metric summed over several instances' /metrics texts (`None` if none has it).
fn metric_total(texts: &[String], name: &str) -> Option<f64> {
    texts
        .iter()
        .filter_map(|t| child::metric_sum(t, name))
        .reduce(|a, b| a + b)
}

impl Ctx {
    fn child_options(&self, delivery_enabled: bool, database_url: Option<String>) -> ChildOptions {
        ChildOptions {
            data_root: self.data_root.clone(),
            delivery_enabled,
            delivery_concurrency: self.delivery_concurrency,
            rust_log: self.rust_log.clone(),
            database_url,
            database_pool_size: self.database_pool_size,
        }
    }

    fn meter(&self, hr: Option<&Fleet>) -> Meter {
        Meter::now(hr, self.pg.as_ref())
    }

    /// `url` (made with the first instance's address) for each instance.
    fn spread(fleet: &Fleet, url: &str) -> anyhow::Result<Vec<hyper::Uri>> {
        let first = fleet.first().base();
        let path = url
            .strip_prefix(&first)
            .with_context(|| format!("{url} is not under {first}"))?;
        fleet
            .bases()
            .iter()
            .map(|b| Ok(format!("{b}{path}").parse()?))
            .collect()
    }

    fn health_uris(fleet: &Fleet) -> anyhow::Result<Vec<hyper::Uri>> {
        fleet
            .bases()
            .iter()
            .map(|b| Ok(format!("{b}/health").parse()?))
            .collect()
    }

    fn publish_target(&self, fleet: &Fleet, url: &str) -> anyhow::Result<Arc<Target>> {
        Ok(Arc::new(Target::fixed(
            Self::spread(fleet, url)?,
            Self::health_uris(fleet)?,
            Some(HeaderValue::from_str(&format!("Bearer {ADMIN_KEY}"))?),
            self.body.clone(),
            StatusCode::ACCEPTED,
        )))
    }

    /// Starts the first instance (on a fresh database with PostgreSQL), sets it up with
    /// `set_up`, then starts the other instances on the same database, and notes the idle
    /// RSS. Answers what `set_up` answered (a URL on the first instance).
    async fn start_fleet(
        &self,
        delivery_enabled: bool,
        prefill_key: Option<String>,
        set_up: impl AsyncFnOnce(&Hookrelay) -> anyhow::Result<String>,
    ) -> anyhow::Result<(Fleet, String, ChildStats)> {
        let (database, url) = match &self.pg {
            Some(pg) => {
                let (name, url) = pg.fresh_database().await?;
                (Some(name), Some(url))
            }
            None => (None, None),
        };
        let opts = self.child_options(delivery_enabled, url);
        let mut fleet = Fleet {
            all: Vec::with_capacity(self.instances),
            database,
        };
        let started = async {
            fleet
                .all
                .push(Hookrelay::start(&self.hookrelay, &opts).await?);
            let mut answer = set_up(fleet.first()).await?;
            if let (Some(spec), Some(key)) = (self.prefill.filter(|p| p.events > 0), prefill_key) {
                let first = fleet.all.pop().context("the first instance")?;
                let old_base = first.base();
                match &self.pg {
                    None => {
                        let dir = first.stop_keeping_data().await;
                        let restarted = async {
                            self.prefill_sqlite(&dir, &key, spec).await?;
                            Hookrelay::start_in(&self.hookrelay, &opts, Some(dir.clone())).await
                        }
                        .await;
                        match restarted {
                            Ok(hr) => fleet.all.push(hr),
                            Err(e) => {
                                let _ = std::fs::remove_dir_all(&dir);
                                return Err(e);
                            }
                        }
                    }
                    Some(pg) => {
                        first.stop().await;
                        let name = fleet.database.as_deref().context("a database")?;
                        let stats = pg.prefill(name, TENANT_UID, spec).await?;
                        self.prefill_cache
                            .fills
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(stats);
                        fleet
                            .all
                            .push(Hookrelay::start(&self.hookrelay, &opts).await?);
                    }
                }
                answer = answer.replacen(&old_base, &fleet.first().base(), 1);
            }
            for _ in 1..self.instances.max(1) {
                fleet
                    .all
                    .push(Hookrelay::start(&self.hookrelay, &opts).await?);
            }
            anyhow::Ok(answer)
        }
        .await;
        let answer = match started {
            Ok(a) => a,
            Err(e) => {
                self.stop_fleet(fleet).await;
                return Err(e);
            }
        };
        // Let start-up work settle before calling the processes idle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (idle, idle_sum) = max_and_sum(&fleet.vm_mb_each("VmRSS"));
        let stats = ChildStats {
            instances: fleet.count(),
            idle_rss_mb: idle,
            idle_rss_sum_mb: idle_sum,
            ..ChildStats::default()
        };
        Ok((fleet, answer, stats))
    }

    /// Starts the instances, sets them up with `endpoints` endpoints and notes idle RSS.
    async fn start_child(
        &self,
        delivery_enabled: bool,
        endpoints: usize,
    ) -> anyhow::Result<(Fleet, String, ChildStats)> {
        let sink = self.sink.addr;
        let key = format!("{endpoints}-endpoints");
        self.start_fleet(delivery_enabled, Some(key), async |hr: &Hookrelay| {
            hr.set_up(sink, endpoints).await
        })
        .await
    }

    /// Puts the prefilled history into the stopped child's SQLite store in `dir`: a copy of
    /// the store filled for the same set-up (`key`) earlier, else a fill (then kept).
    async fn prefill_sqlite(
        &self,
        dir: &Path,
        key: &str,
        spec: prefill::Spec,
    ) -> anyhow::Result<()> {
        let db = dir.join("hookrelay.db");
        let cached = self
            .prefill_cache
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned();
        if let Some(copy) = cached {
            // The set-up child's store, WAL included, is replaced by the copy.
            for ext in ["-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("hookrelay.db{ext}")));
            }
            let t0 = Instant::now();
            let from = copy.clone();
            let to = db.clone();
            tokio::task::spawn_blocking(move || std::fs::copy(&from, &to))
                .await?
                .with_context(|| format!("copying {} to {}", copy.display(), db.display()))?;
            let took = t0.elapsed().as_secs_f64();
            eprintln!(
                "   prefill: restored the filled store {} in {took:.1} s",
                copy.display()
            );
            self.prefill_cache
                .restores_s
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(took);
            return Ok(());
        }
        // The killed child's WAL (its set-up) is folded in when the fill opens the store.
        let path = db.clone();
        eprintln!(
            "   prefill: writing {} events × {} attempts into {}",
            spec.events,
            spec.attempts,
            db.display()
        );
        let stats =
            tokio::task::spawn_blocking(move || prefill::fill_sqlite(&path, TENANT_UID, spec))
                .await??;
        eprintln!(
            "   prefill: {} events, {} deliveries, {} attempts in {:.1} s ({:.0} rows/s), store {:.0} MB",
            stats.events,
            stats.deliveries,
            stats.attempts,
            stats.seconds,
            stats.rows_per_s,
            stats.store_mb.unwrap_or(0.0)
        );
        self.prefill_cache
            .fills
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(stats);
        let copy = self.data_root.join(format!(
            "hookrelay-bench-prefill-{}-{key}.db",
            std::process::id()
        ));
        let (from, to) = (db.clone(), copy.clone());
        tokio::task::spawn_blocking(move || std::fs::copy(&from, &to))
            .await?
            .with_context(|| format!("copying {} to {}", db.display(), copy.display()))?;
        self.prefill_cache
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), copy);
        Ok(())
    }

    /// Kills the instances and drops their database.
    async fn stop_fleet(&self, mut fleet: Fleet) {
        let database = fleet.database.take();
        fleet.stop().await;
        if let (Some(pg), Some(name)) = (&self.pg, database) {
            pg.drop_database(&name).await;
        }
    }

    /// With PostgreSQL: starts counting what the server does for the fleet's database.
    async fn probe(&self, fleet: &Fleet) -> Option<Probe> {
        Some(self.pg.as_ref()?.probe(fleet.database.as_deref()?).await)
    }

    async fn finish_child(&self, mut hr: Fleet, stats: &mut ChildStats, probe: Option<Probe>) {
        let (peak, peak_sum) = max_and_sum(&hr.vm_mb_each("VmHWM"));
        stats.peak_rss_mb = peak;
        stats.peak_rss_sum_mb = peak_sum;
        let texts = hr.metrics().await;
        if !texts.is_empty() {
            let count = metric_total(&texts, "hookrelay_store_group_commit_size_count");
            let sum = metric_total(&texts, "hookrelay_store_group_commit_size_sum");
            stats.group_commits = count;
            stats.group_commit_mean_size = sum.zip(count).map(|(s, c)| s / c.max(1.0));
            stats.retries = metric_total(&texts, "webhook_retries_total");
            stats.deliveries_total = metric_total(&texts, "webhook_deliveries_total");
        }
        let (n, lines) = hr.log_problems(5);
        stats.log_problem_lines = n;
        stats.log_problems = lines;
        let database = hr.database.take();
        hr.stop().await;
        if let (Some(pg), Some(probe)) = (&self.pg, probe) {
            stats.postgres = pg.finish(probe).await;
        }
        if let (Some(pg), Some(name)) = (&self.pg, database) {
            pg.drop_database(&name).await;
        }
    }

    /// 1. The sink alone under the same load tool: the machine's HTTP baseline.
    pub async fn ceiling(&self) -> anyhow::Result<CeilingResult> {
        self.sink.state.reset(0);
        let target = Arc::new(Target::fixed(
            vec![format!("http://{}/ceiling", self.sink.addr).parse()?],
            vec![format!("http://{}/warm", self.sink.addr).parse()?],
            Some(HeaderValue::from_str(&format!("Bearer {ADMIN_KEY}"))?),
            self.body.clone(),
            StatusCode::OK,
        ));
        let m0 = self.meter(None);
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let cpu = self.meter(None).since(&m0);
        Ok(CeilingResult {
            load: LoadStats::of(&out, cpu),
        })
    }

    /// 2. Durable publish with the delivery workers off.
    pub async fn publish(&self) -> anyhow::Result<PublishResult> {
        let (hr, url, mut child) = self.start_child(false, 1).await?;
        let target = self.publish_target(&hr, &url)?;
        let probe = self.probe(&hr).await;
        let m0 = self.meter(Some(&hr));
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let cpu = self.meter(Some(&hr)).since(&m0);
        child.cpu_pct = cpu.hookrelay;
        child.postgres_cpu_pct = cpu.postgres;
        self.finish_child(hr, &mut child, probe).await;
        Ok(PublishResult {
            load: LoadStats::of(&out, cpu),
            child,
        })
    }

    /// Waits until the sink has `expected` distinct deliveries, nothing arrived for a while,
    /// or the drain timeout passed. Answers whether everything arrived.
    async fn drain(&self, expected: u64) -> bool {
        let stall = Duration::from_secs(15).min(self.drain_timeout);
        let deadline = Instant::now() + self.drain_timeout;
        let mut last = self.sink.state.unique();
        let mut progress = Instant::now();
        loop {
            let now_seen = self.sink.state.unique();
            if now_seen >= expected {
                return true;
            }
            let now = Instant::now();
            if now_seen != last {
                last = now_seen;
                progress = now;
            }
            if now >= deadline || now.duration_since(progress) >= stall {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn sink_capacity(&self, per_s: f64, endpoints: usize) -> usize {
        ((self.duration.as_secs_f64() * per_s) as usize * endpoints).min(3_000_000)
    }

    /// 3 and 4. Closed-loop publishing with the workers on, then the backlog drains;
    /// delivered/s counts at the sink from the first publish to the last delivery.
    pub async fn deliver(&self, endpoints: usize) -> anyhow::Result<DeliverResult> {
        let (hr, url, mut child) = self.start_child(true, endpoints).await?;
        let target = self.publish_target(&hr, &url)?;
        self.sink
            .state
            .reset(self.sink_capacity(25_000.0, endpoints));
        let probe = self.probe(&hr).await;
        let m0 = self.meter(Some(&hr));
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let m1 = self.meter(Some(&hr));
        let publish_end = m1.at;
        let expected = out.ok * endpoints as u64;
        let drained = self.drain(expected).await;
        let whole = self.meter(Some(&hr)).since(&m0);
        child.cpu_pct = whole.hookrelay;
        child.postgres_cpu_pct = whole.postgres;
        let duplicates = self
            .sink
            .state
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed);
        let seen = self.sink.state.take();
        let start = out.start.context("load run has a start")?;
        let last = seen.values().copied().max().unwrap_or(start);
        let window = last.saturating_duration_since(start);
        self.finish_child(hr, &mut child, probe).await;
        Ok(DeliverResult {
            endpoints,
            publish: LoadStats::of(&out, m1.since(&m0)),
            expected,
            delivered: seen.len() as u64,
            duplicates,
            drained,
            drain_s: last.saturating_duration_since(publish_end).as_secs_f64(),
            window_s: window.as_secs_f64(),
            delivered_per_s: seen.len() as f64 / window.as_secs_f64().max(1e-9),
            child,
        })
    }

    /// 5. A fixed offered rate, open loop: publish API latency and publish → receipt latency.
    pub async fn latency(&self) -> anyhow::Result<LatencyResult> {
        let (hr, url, mut child) = self.start_child(true, 1).await?;
        let target = self.publish_target(&hr, &url)?;
        self.sink
            .state
            .reset(self.sink_capacity(self.rate * 1.2, 1));
        let probe = self.probe(&hr).await;
        let m0 = self.meter(Some(&hr));
        let out = load::open_loop(target, self.clients, self.rate, self.duration, true).await?;
        let cpu = self.meter(Some(&hr)).since(&m0);
        self.drain(out.ids.len() as u64).await;
        let whole = self.meter(Some(&hr)).since(&m0);
        child.cpu_pct = whole.hookrelay;
        child.postgres_cpu_pct = whole.postgres;
        let duplicates = self
            .sink
            .state
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed);
        let seen = self.sink.state.take();
        let mut e2e = Vec::with_capacity(out.ids.len());
        let mut undelivered = 0;
        let mut key = (0u16, Box::<str>::from(""));
        let start = out.start.context("load run has a start")?;
        let mut csv = String::from("offset_ms,api_ms,e2e_ms,event_id\n");
        for (id, due, api_us) in &out.ids {
            key.1 = id.clone();
            let took = seen
                .get(&key)
                .map(|at| at.saturating_duration_since(*due).as_micros() as u64);
            match took {
                Some(us) => e2e.push(us),
                None => undelivered += 1,
            }
            if self.dump_latencies.is_some() {
                csv.push_str(&format!(
                    "{:.3},{:.3},{},{id}\n",
                    due.duration_since(start).as_secs_f64() * 1000.0,
                    *api_us as f64 / 1000.0,
                    took.map(|us| format!("{:.3}", us as f64 / 1000.0))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(path) = &self.dump_latencies {
            std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
        }
        self.finish_child(hr, &mut child, probe).await;
        Ok(LatencyResult {
            offered_rate: self.rate,
            offered: out.offered,
            publish: LoadStats::of(&out, cpu),
            delivered: e2e.len() as u64,
            end_to_end: percentiles(e2e),
            undelivered,
            duplicates,
            child,
        })
    }

    /// 7, inbound: a GitHub source whose HTTP destination is the sink. Closed-loop clients
    /// post signed pushes of `payload_bytes`, each with its own `X-GitHub-Delivery`, and
    /// afterwards every accepted one must reach the sink. Without `forward` (the accept
    /// scenario) the source has no destination: each request is verified, deduplicated and
    /// stored (request log and envelope event) before its 2xx, and nothing goes out.
    pub async fn inbound(&self, forward: bool) -> anyhow::Result<InboundResult> {
        let sink = forward.then_some(self.sink.addr);
        let (hr, url, mut child) = self
            .start_fleet(forward, None, async |hr: &Hookrelay| {
                hr.set_up_inbound(sink, INBOUND_SECRET).await
            })
            .await?;
        let make = github_requests(INBOUND_SECRET, self.payload_bytes);
        let sign_us = {
            let n = 2_000u64;
            let t0 = Instant::now();
            for i in 0..n {
                std::hint::black_box(make(usize::MAX, i));
            }
            t0.elapsed().as_secs_f64() * 1e6 / n as f64
        };
        let target = Arc::new(Target {
            uris: Self::spread(&hr, &url)?,
            warm_uris: Self::health_uris(&hr)?,
            auth: None,
            body: Bytes::new(),
            expect: StatusCode::OK,
            expect_in_body: Some(br#""outcome":"accepted""#),
            make: Some(make),
        });
        self.sink.state.reset(self.sink_capacity(25_000.0, 1));
        let probe = self.probe(&hr).await;
        let m0 = self.meter(Some(&hr));
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let m1 = self.meter(Some(&hr));
        let drained = !forward || self.drain(out.ids.len() as u64).await;
        let whole = self.meter(Some(&hr)).since(&m0);
        child.cpu_pct = whole.hookrelay;
        child.postgres_cpu_pct = whole.postgres;
        let duplicates = self
            .sink
            .state
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed);
        let seen = self.sink.state.take();
        let mut e2e = Vec::with_capacity(out.ids.len());
        let mut key = (INBOUND_INDEX, Box::<str>::from(""));
        for (id, sent, _) in &out.ids {
            key.1 = id.clone();
            if let Some(at) = seen.get(&key) {
                e2e.push(at.saturating_duration_since(*sent).as_micros() as u64);
            }
        }
        let delivered = e2e.len() as u64;
        let last = seen.values().copied().max().unwrap_or(m1.at);
        self.finish_child(hr, &mut child, probe).await;
        Ok(InboundResult {
            load: LoadStats::of(&out, m1.since(&m0)),
            delivered,
            undelivered: if forward {
                out.ids.len() as u64 - delivered
            } else {
                0
            },
            unexpected: seen.len() as u64 - delivered,
            duplicates,
            drained,
            drain_s: last.saturating_duration_since(m1.at).as_secs_f64(),
            end_to_end: percentiles(e2e),
            sign_us,
            child,
        })
    }

    /// 8, list: the listing endpoints (and an endpoint's stats and health) on the (prefilled)
    /// store, one client, one request after another, `list_requests` times each after a few
    /// unmeasured ones, or as many as fit in 20 s.
    pub async fn list(&self) -> anyhow::Result<ListResult> {
        let (hr, _, mut child) = self.start_child(false, 1).await?;
        let result = self.list_queries(&hr).await;
        let (queries, cpu) = match result {
            Ok(r) => r,
            Err(e) => {
                self.stop_fleet(hr).await;
                return Err(e);
            }
        };
        self.finish_child(hr, &mut child, None).await;
        Ok(ListResult {
            queries,
            cpu,
            child,
        })
    }

    async fn list_queries(&self, fleet: &Fleet) -> anyhow::Result<(Vec<ListQuery>, CpuShare)> {
        let hr = fleet.first();
        let tenant = format!("{}/api/v1/tenants/{TENANT_UID}", hr.base());
        let get = async |url: &str| -> anyhow::Result<serde_json::Value> {
            let (status, body) = hr.call(hyper::Method::GET, url, None).await?;
            if status != StatusCode::OK {
                anyhow::bail!("GET {url} answered {status}: {body}");
            }
            Ok(body)
        };
        let endpoints = get(&format!("{tenant}/endpoints?limit=250")).await?;
        let endpoint = endpoints["data"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["url"].as_str().is_some_and(|u| u.ends_with("/ep/0")))
            })
            .and_then(|e| e["id"].as_str())
            .context("the scenario's endpoint is not listed")?
            .to_string();
        // An endpoint made now: none of the stored deliveries are its (the rare case of an
        // endpoint filter).
        let (status, made) = hr
            .call(
                hyper::Method::POST,
                &format!("{tenant}/endpoints"),
                Some(&serde_json::json!({
                    "url": format!("http://{}/ep/new", self.sink.addr),
                    "event_types": [EVENT_TYPE],
                })),
            )
            .await?;
        let new_endpoint = made["id"]
            .as_str()
            .with_context(|| format!("creating an endpoint answered {status}: {made}"))?
            .to_string();
        // A cursor ten pages deep, and deliveries to look at one by one.
        let mut cursor = None;
        for _ in 0..10 {
            let mut url = format!("{tenant}/events?limit=50");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            match get(&url).await?["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let mut delivery_ids = Vec::new();
        let mut event_id = None;
        let mut dcursor: Option<String> = None;
        for _ in 0..4 {
            let mut url = format!("{tenant}/deliveries?limit=250");
            if let Some(c) = &dcursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page = get(&url).await?;
            if event_id.is_none() {
                event_id = page["data"][0]["event_id"].as_str().map(str::to_string);
            }
            delivery_ids.extend(
                page["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["id"].as_str().map(str::to_string)),
            );
            match page["next_cursor"].as_str() {
                Some(c) => dcursor = Some(c.to_string()),
                None => break,
            }
        }
        let deep = match &cursor {
            Some(c) => format!("/events?limit=50&cursor={c}"),
            None => "/events?limit=50".to_string(),
        };
        // The retention default: the widest window worth asking statistics for.
        let month_ago = (chrono::Utc::now() - chrono::TimeDelta::days(30))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let paths: Vec<(&'static str, String)> = vec![
            ("events", "/events?limit=50".into()),
            ("events_deep", deep),
            ("deliveries", "/deliveries?limit=50".into()),
            (
                "deliveries_failed",
                "/deliveries?status=failed&limit=50".into(),
            ),
            (
                "deliveries_succeeded",
                "/deliveries?status=succeeded&limit=50".into(),
            ),
            (
                "deliveries_endpoint",
                format!("/deliveries?endpoint={endpoint}&limit=50"),
            ),
            (
                "deliveries_endpoint_failed",
                format!("/deliveries?endpoint={endpoint}&status=failed&limit=50"),
            ),
            (
                "deliveries_endpoint_new",
                format!("/deliveries?endpoint={new_endpoint}&limit=50"),
            ),
            (
                "deliveries_pending",
                "/deliveries?status=pending&limit=50".into(),
            ),
            (
                "deliveries_event",
                format!(
                    "/deliveries?event={}",
                    event_id.as_deref().unwrap_or("none")
                ),
            ),
            ("delivery_attempts", "/deliveries/{id}".into()),
            ("endpoints", "/endpoints?limit=50".into()),
            ("endpoint_stats", format!("/endpoints/{endpoint}/stats")),
            (
                "endpoint_stats_30d",
                format!("/endpoints/{endpoint}/stats?since={month_ago}"),
            ),
            ("endpoint_health", format!("/endpoints/{endpoint}/health")),
        ];
        let m0 = self.meter(Some(fleet));
        let mut out = Vec::new();
        for (name, path) in paths {
            let mut latencies = Vec::with_capacity(self.list_requests);
            let (mut ok, mut failed, mut items, mut error) = (0, 0, 0, None);
            let warm = 3;
            // A slow query gets LIST_BUDGET (and at least 5 measured requests), not hours.
            let began = Instant::now();
            for n in 0..warm + self.list_requests {
                if n >= warm + 5 && began.elapsed() > LIST_BUDGET {
                    break;
                }
                let url = if name == "delivery_attempts" {
                    let Some(id) = delivery_ids.get(n % delivery_ids.len().max(1)) else {
                        break;
                    };
                    format!("{tenant}/deliveries/{id}")
                } else {
                    format!("{tenant}{path}")
                };
                let t0 = Instant::now();
                let answer = hr.call(hyper::Method::GET, &url, None).await;
                let took = t0.elapsed().as_micros() as u64;
                if n < warm {
                    continue;
                }
                match answer {
                    Ok((StatusCode::OK, body)) => {
                        ok += 1;
                        latencies.push(took);
                        let list = if name == "delivery_attempts" {
                            &body["attempts"]
                        } else {
                            &body["data"]
                        };
                        items = list.as_array().map_or(1, Vec::len);
                    }
                    Ok((status, body)) => {
                        failed += 1;
                        error.get_or_insert(format!("{status}: {body}"));
                    }
                    Err(e) => {
                        failed += 1;
                        error.get_or_insert(e.to_string());
                    }
                }
            }
            let q = ListQuery {
                name,
                path,
                ok,
                failed,
                items,
                latency: percentiles(latencies),
                error,
            };
            eprintln!(
                "   {:<28} p50 {:>8.2} ms  p99 {:>8.2} ms  ({} items)",
                q.name,
                q.latency.map_or(f64::NAN, |l| l.p50_ms),
                q.latency.map_or(f64::NAN, |l| l.p99_ms),
                q.items
            );
            out.push(q);
        }
        let cpu = self.meter(Some(fleet)).since(&m0);
        Ok((out, cpu))
    }

    /// 6 alone: start, set up, note idle RSS, stop.
    pub async fn idle(&self) -> anyhow::Result<ChildStats> {
        let (hr, _, mut child) = self.start_child(true, 1).await?;
        self.finish_child(hr, &mut child, None).await;
        Ok(child)
    }
}

/// The webhook secret of the inbound scenario's GitHub source.
const INBOUND_SECRET: &str = "bench-github-webhook-secret-0123456789";

/// GitHub pushes signed as GitHub signs them: request `n` of client `k` has the delivery id
/// `<nonce>-<k>-<n>` (fixed length, used once), carried in its `payload_bytes`-long JSON
/// body too, and `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
fn github_requests(secret: &str, payload_bytes: usize) -> Arc<load::MakeRequest> {
    use hmac::{Hmac, Mac};
    use hyper::header::HeaderName;
    const EVENT: HeaderName = HeaderName::from_static("x-github-event");
    const DELIVERY: HeaderName = HeaderName::from_static("x-github-delivery");
    const SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature-256");
    let keyed = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    // Unique across runs too, though each run has a fresh store.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u32)
        .unwrap_or(0)
        ^ std::process::id();
    let head = br#"{"ref":"refs/heads/main","before":"0000000000000000000000000000000000000000","delivery":""#;
    let mid = br#"","pad":""#;
    let tail = br#""}"#;
    const ID_LEN: usize = 8 + 1 + 4 + 1 + 12;
    let pad = payload_bytes.saturating_sub(head.len() + ID_LEN + mid.len() + tail.len());
    Arc::new(move |k: usize, n: u64| {
        let id = format!("{nonce:08x}-{:04x}-{n:012x}", k & 0xffff);
        let mut body = Vec::with_capacity(head.len() + id.len() + mid.len() + pad + tail.len());
        body.extend_from_slice(head);
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(mid);
        body.resize(body.len() + pad, b'x');
        body.extend_from_slice(tail);
        let mut mac = keyed.clone();
        mac.update(&body);
        let digest = mac.finalize().into_bytes();
        let mut sig = String::with_capacity(7 + 64);
        sig.push_str("sha256=");
        for b in digest {
            sig.push(char::from(b"0123456789abcdef"[(b >> 4) as usize]));
            sig.push(char::from(b"0123456789abcdef"[(b & 15) as usize]));
        }
        let headers = vec![
            (EVENT, HeaderValue::from_static("push")),
            (
                DELIVERY,
                HeaderValue::from_str(&id).expect("hex and dashes"),
            ),
            (SIGNATURE, HeaderValue::from_str(&sig).expect("hex")),
        ];
        load::Made {
            id: id.into(),
            headers,
            body: Bytes::from(body),
        }
    })
}

/// A JSON publish request whose payload object is exactly `payload_bytes` long.
pub fn publish_body(payload_bytes: usize) -> Bytes {
    let head = r#"{"bench":true,"pad":""#;
    let tail = r#""}"#;
    let pad = payload_bytes.saturating_sub(head.len() + tail.len());
    let payload = format!("{head}{}{tail}", "x".repeat(pad));
    Bytes::from(format!(r#"{{"type":"{EVENT_TYPE}","payload":{payload}}}"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_requests_are_signed_sized_and_unique() {
        use hmac::{Hmac, Mac};
        let make = github_requests("s3cret", 1024);
        let a = make(3, 7);
        let b = make(3, 8);
        assert_eq!(a.body.len(), 1024);
        assert_ne!(a.id, b.id);
        assert!(serde_json::from_slice::<serde_json::Value>(&a.body).is_ok());
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(&a.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let sig = a.headers.iter().find(|(n, _)| n == "x-hub-signature-256");
        assert_eq!(sig.unwrap().1.to_str().unwrap(), format!("sha256={want}"));
        let delivery = a.headers.iter().find(|(n, _)| n == "x-github-delivery");
        assert_eq!(delivery.unwrap().1.to_str().unwrap(), &*a.id);
    }
}
