//! `hookrelay-bench`: measures an already-built hookrelay against the figures of SPEC §9.
//!
//! It builds nothing. For each scenario it starts the `hookrelay` beside its own executable
//! (else `target/release/hookrelay`, or `--hookrelay PATH`) as a child on a fresh temporary
//! data directory and a free 127.0.0.1 port, sets it up through the API, drives it with an
//! in-process load generator, receives its deliveries in an in-process sink, and kills it.
//! All traffic stays on 127.0.0.1.
//!
//! ```text
//! cargo build --release --bins
//! target/release/hookrelay-bench --duration 10 --repeat 3
//! ```
//!
//! Scenarios: `ceiling` (the sink alone under the same load tool), `publish` (durable
//! publish, workers off), `deliver` (publish + deliver to 1 endpoint), `fanout` (10
//! endpoints), `latency` (open loop at `--rate`), `inbound` (signed GitHub deliveries to a
//! source whose HTTP destination is the sink), `accept` (the same requests to a source with no
//! destination: verify and durable accept only, SPEC §9's inbound figure), `rss` (idle and peak resident memory, taken
//! from the other scenarios' children, or from a child of its own when run alone), `list`
//! (latency of the listing endpoints, one request at a time).
//!
//! `--prefill N` puts history into each scenario's store before its measured phase: N events,
//! each with one finished delivery and `--prefill-attempts` attempts, over a few tenants and
//! endpoints (the scenario's first endpoint among them), written straight into the store
//! (see `hookrelay_bench/prefill.rs`). On SQLite the filled file is kept and copied for the
//! next scenario with the same set-up. `--prefill 1000000 --only publish,deliver,list`
//! measures whether cost stays flat as the store grows.
//!
//! `--backend postgres` runs hookrelay on PostgreSQL instead of its embedded SQLite store: the
//! bench starts a durable throw-away server with `scripts/pg-cluster start DIR --durable`
//! (stopped at exit), or uses `--database-url` (an admin URL of an existing server), and
//! gives each scenario a fresh database (`CREATE DATABASE bench_<pid>_<n>`, dropped after).
//! `--instances N` then starts N hookrelay children on that database, each on its own port;
//! instance 0 is set up through the API and the load generator's clients are spread over all
//! of them (client k talks to instance k mod N).
//!
//! ```text
//! target/release/hookrelay-bench --backend postgres --instances 2 --only publish,deliver
//! ```

#[path = "hookrelay_bench/child.rs"]
mod child;
#[path = "hookrelay_bench/load.rs"]
mod load;
#[path = "hookrelay_bench/pg.rs"]
mod pg;
#[path = "hookrelay_bench/prefill.rs"]
mod prefill;
#[path = "hookrelay_bench/report.rs"]
mod report;
#[path = "hookrelay_bench/scenarios.rs"]
mod scenarios;
#[path = "hookrelay_bench/sink.rs"]
mod sink;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;

use report::RunResult;
use scenarios::{ChildStats, Ctx};
use sink::Sink;

#[derive(Parser, Debug)]
#[command(
    name = "hookrelay-bench",
    about = "Benchmark an already-built hookrelay against SPEC §9 (127.0.0.1 only)"
)]
struct Args {
    /// Length of each scenario's load phase: seconds, or with a unit (500ms, 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent clients, one keep-alive connection each.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Offered publish rate of the latency scenario, events/s.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// The hookrelay binary to run [default: `hookrelay` beside this executable, else
    /// target/release/hookrelay].
    #[arg(long)]
    hookrelay: Option<PathBuf>,
    /// Run only these scenarios (repeatable, or comma-separated); all when left out.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Where to write the JSON results; bench-results/<timestamp>.json when left out.
    #[arg(long)]
    json_out: Option<PathBuf>,
    /// Run everything this many times; the table shows the medians.
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Endpoints of the fan-out scenario.
    #[arg(long, default_value_t = 10)]
    fanout: usize,
    /// Payload size of each event, bytes of JSON.
    #[arg(long, default_value_t = 1024)]
    payload_bytes: usize,
    /// Longest wait for the delivery backlog after the publish phase.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// HOOKRELAY_DELIVERY_CONCURRENCY for the child (its default when left out).
    #[arg(long)]
    delivery_concurrency: Option<usize>,
    /// Where the per-scenario data directories are made (the system temp dir when left
    /// out). It should be on the disk under test: on tmpfs an fsync costs nothing.
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Write one CSV line per request of the latency scenario here (scheduled offset, API
    /// latency, publish→receive latency, event id), to look for stalls over time.
    #[arg(long)]
    dump_latencies: Option<PathBuf>,
    /// Before each scenario, wait up to this long for other processes to use less than 10%
    /// of a core (a shared machine); 0 does not wait.
    #[arg(long, default_value = "0s", value_parser = parse_duration_or_zero)]
    quiet_wait: Duration,
    /// Measure a scenario again (up to this many times) when other processes used more
    /// than 20% of a core, or wrote more than 10 MB/s to disk, during its load phase.
    #[arg(long, default_value_t = 2)]
    noise_retries: usize,
    /// RUST_LOG for the child.
    #[arg(long, default_value = "info")]
    child_log: String,
    /// The store hookrelay runs on: its embedded SQLite, or PostgreSQL (a durable throw-away
    /// server the bench starts, unless --database-url is given).
    #[arg(long, value_enum, default_value_t = Backend::Sqlite)]
    backend: Backend,
    /// hookrelay instances per scenario, sharing one database, each on its own port; the
    /// load is spread over them. More than 1 only with --backend postgres.
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// With --backend postgres: an existing server's admin URL
    /// (postgres://user@host:port/postgres) to create the per-scenario databases on,
    /// instead of starting a throw-away server.
    #[arg(long)]
    database_url: Option<String>,
    /// The script that starts the throw-away PostgreSQL server [default: scripts/pg-cluster
    /// of the checkout this bench was built from].
    #[arg(long)]
    pg_cluster_script: Option<PathBuf>,
    /// HOOKRELAY_DATABASE_POOL_SIZE for each instance (hookrelay's default when left out).
    #[arg(long)]
    database_pool_size: Option<u32>,
    /// Events already in the store before each scenario's measured phase (each with one
    /// finished delivery and --prefill-attempts attempts), written straight into the store.
    #[arg(long, default_value_t = 0)]
    prefill: u64,
    /// Attempts of each prefilled event's delivery (1-1000).
    #[arg(long, default_value_t = 5)]
    prefill_attempts: u32,
    /// Requests per listing query of the list scenario (after 3 unmeasured ones; fewer when
    /// they take over 20 s).
    #[arg(long, default_value_t = 200)]
    list_requests: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Ceiling,
    Publish,
    Deliver,
    Fanout,
    Latency,
    Inbound,
    Accept,
    Rss,
    List,
}

/// The hookrelay beside this executable (the same build, wherever CARGO_TARGET_DIR put it),
/// else target/release/hookrelay.
fn default_hookrelay() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("hookrelay"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("target/release/hookrelay"))
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(['m', 's']).trim() == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a duration such as 10, 10s or 500ms"))?;
    if !(v.is_finite() && v > 0.0) {
        return Err(format!("`{s}` must be positive"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let outcome = tokio::select! {
        r = run(args) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    // Here the run has been dropped: its children are killed, their data directories
    // removed, and the throw-away PostgreSQL server (if any) stopped.
    outcome.unwrap_or_else(|| {
        eprintln!("interrupted");
        std::process::exit(130);
    })
}

async fn run(mut args: Args) -> anyhow::Result<()> {
    let hookrelay = args.hookrelay.take().unwrap_or_else(default_hookrelay);
    if args.clients == 0 || args.repeat == 0 || args.fanout == 0 {
        bail!("--clients, --repeat and --fanout must be at least 1");
    }
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be positive");
    }
    if args.instances == 0 {
        bail!("--instances must be at least 1");
    }
    if !(1..=1000).contains(&args.prefill_attempts) || args.list_requests == 0 {
        bail!("--prefill-attempts must be 1-1000 and --list-requests at least 1");
    }
    if args.backend == Backend::Sqlite
        && (args.instances > 1 || args.database_url.is_some() || args.database_pool_size.is_some())
    {
        bail!(
            "--instances above 1, --database-url and --database-pool-size need --backend postgres"
        );
    }
    let wanted = |s: Scenario| args.only.is_empty() || args.only.contains(&s);
    let needs_child = [
        Scenario::Publish,
        Scenario::Deliver,
        Scenario::Fanout,
        Scenario::Latency,
        Scenario::Inbound,
        Scenario::Accept,
        Scenario::Rss,
        Scenario::List,
    ]
    .into_iter()
    .any(wanted);
    if needs_child && !hookrelay.is_file() {
        bail!(
            "{} not found: build it first (cargo build --release --bins) or pass --hookrelay PATH",
            hookrelay.display()
        );
    }
    let data_root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&data_root)
        .with_context(|| format!("creating {}", data_root.display()))?;
    let data_fs = child::fs_type(&data_root);
    if let Some(kind @ ("tmpfs" | "ramfs")) = data_fs.as_deref() {
        eprintln!(
            "warning: {} is on {kind}: fsync is free there, so durable figures are flattered; \
             pass --data-root on a real disk",
            data_root.display()
        );
    }
    let pg = match (args.backend, &args.database_url) {
        (Backend::Sqlite, _) => None,
        (Backend::Postgres, Some(url)) => Some(pg::Postgres::existing(url).await?),
        (Backend::Postgres, None) => {
            let script = args.pg_cluster_script.clone().unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster")
            });
            Some(pg::Postgres::start_cluster(&script, &data_root).await?)
        }
    };
    let backend = json!({
        "kind": args.backend.name(),
        "instances": args.instances,
        "postgres": pg.as_ref().map(|p| json!({
            "throw_away_server": p.cluster_dir().map(|d| d.display().to_string()),
            "version": p.version,
            "fsync": p.fsync,
            "synchronous_commit": p.synchronous_commit,
            "server_cpu_measured": p.postmaster.is_some(),
            "pool_size": args.database_pool_size,
        })),
    });
    let prefill = (args.prefill > 0).then_some(prefill::Spec {
        events: args.prefill,
        attempts: args.prefill_attempts,
        payload_bytes: args.payload_bytes,
    });
    let heading = report::heading(
        args.backend.name(),
        args.instances,
        prefill,
        pg.as_ref().map(|p| {
            format!(
                "{}, fsync {}, synchronous_commit {}",
                p.version
                    .as_deref()
                    .and_then(|v| v.split(" on ").next())
                    .unwrap_or("PostgreSQL ?"),
                p.fsync.as_deref().unwrap_or("?"),
                p.synchronous_commit.as_deref().unwrap_or("?"),
            )
        }),
    );
    let ctx = Ctx {
        pg,
        instances: args.instances,
        database_pool_size: args.database_pool_size,
        hookrelay: hookrelay.clone(),
        data_root: data_root.clone(),
        duration: args.duration,
        clients: args.clients,
        rate: args.rate,
        fanout: args.fanout,
        drain_timeout: args.drain_timeout,
        delivery_concurrency: args.delivery_concurrency,
        rust_log: args.child_log.clone(),
        dump_latencies: args.dump_latencies.clone(),
        body: scenarios::publish_body(args.payload_bytes),
        payload_bytes: args.payload_bytes,
        sink: Sink::start().await?,
        prefill,
        prefill_cache: scenarios::PrefillCache::default(),
        list_requests: args.list_requests,
    };
    eprintln!(
        "hookrelay-bench: {} · {} · data in {} ({}) · {} clients · {:?} per scenario · {} B payloads · sink on {}",
        hookrelay.display(),
        heading,
        data_root.display(),
        data_fs.as_deref().unwrap_or("?"),
        args.clients,
        args.duration,
        args.payload_bytes,
        ctx.sink.addr
    );

    let mut runs = Vec::new();
    for i in 0..args.repeat {
        if args.repeat > 1 {
            eprintln!("== run {}/{}", i + 1, args.repeat);
        }
        let patience = Patience {
            quiet_wait: args.quiet_wait,
            retries: args.noise_retries,
        };
        let run = run_once(&ctx, &wanted, patience).await?;
        if args.repeat > 1 {
            eprintln!(
                "{heading}\n{}",
                report::table(&report::figures(std::slice::from_ref(&run)))
            );
        }
        runs.push(run);
    }

    let figures = report::figures(&runs);
    if args.repeat > 1 {
        println!("\nMedians of {} runs:", args.repeat);
    }
    println!("{heading}\n{}", report::table(&figures));
    for (i, run) in runs.iter().enumerate() {
        let tag = if runs.len() > 1 {
            format!("run {}: ", i + 1)
        } else {
            String::new()
        };
        println!(
            "{tag}CPU in the load phase, % of one core:\n  {}",
            report::cpu_line(run)
        );
        for (name, share) in report::shares(run) {
            if let Some(why) = disturbed(&share) {
                println!("{tag}warning: {name}: {why} during the load phase; not a quiet machine");
            }
        }
        let pg = report::pg_lines(run);
        if !pg.is_empty() {
            println!(
                "{tag}PostgreSQL, from the start of the load (requests: accepted ones):\n  {}",
                pg.join("\n  ")
            );
        }
        for note in report::notes(run) {
            println!("{tag}note: {note}");
        }
    }

    let fills = ctx
        .prefill_cache
        .fills
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let restores = ctx
        .prefill_cache
        .restores_s
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for f in &fills {
        println!(
            "prefill: {} events + {} deliveries ({} failed) + {} attempts written in {:.1} s ({:.0} rows/s), store {:.0} MB",
            f.events,
            f.deliveries,
            f.failed_deliveries,
            f.attempts,
            f.seconds,
            f.rows_per_s,
            f.store_mb.unwrap_or(f64::NAN)
        );
    }
    if !restores.is_empty() {
        println!(
            "prefill: the filled store was copied for {} more scenario run(s), {:.1} s each on average",
            restores.len(),
            restores.iter().sum::<f64>() / restores.len() as f64
        );
    }
    let now = chrono::Utc::now();
    let path = args.json_out.clone().unwrap_or_else(|| {
        PathBuf::from("bench-results").join(format!("{}.json", now.format("%Y%m%dT%H%M%SZ")))
    });
    let doc = json!({
        "timestamp": now.to_rfc3339(),
        "hookrelay": hookrelay.display().to_string(),
        "hookrelay_modified": std::fs::metadata(&hookrelay)
            .and_then(|m| m.modified())
            .ok()
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
        "git_commit": git_commit(),
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
            "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").ok().map(|s| s.trim().to_string()),
        },
        "backend": backend,
        "instances": args.instances,
        "data_root": data_root.display().to_string(),
        "data_fs": data_fs,
        "settings": {
            "duration_s": args.duration.as_secs_f64(),
            "clients": args.clients,
            "rate": args.rate,
            "repeat": args.repeat,
            "fanout_endpoints": args.fanout,
            "payload_bytes": args.payload_bytes,
            "drain_timeout_s": args.drain_timeout.as_secs_f64(),
            "quiet_wait_s": args.quiet_wait.as_secs_f64(),
            "noise_retries": args.noise_retries,
            "delivery_concurrency": args.delivery_concurrency,
            "child_log": args.child_log,
            "backend": args.backend.name(),
            "instances": args.instances,
            "database_pool_size": args.database_pool_size,
            "only": args.only.iter().map(|s| format!("{s:?}").to_lowercase()).collect::<Vec<_>>(),
            "list_requests": args.list_requests,
        },
        "prefill": {
            "events": args.prefill,
            "attempts_per_event": args.prefill_attempts,
            "payload_bytes": args.payload_bytes,
            "failed_every": prefill::FAILED_EVERY,
            "failed_at": prefill::FAILED_AT,
            "fills": fills,
            "restores_s": restores,
        },
        "figures": figures,
        "runs": runs,
    });
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("results: {}", path.display());
    if let Some(pg) = ctx.pg {
        pg.close().await;
    }
    Ok(())
}

/// How patient to be with a shared machine.
#[derive(Clone, Copy)]
struct Patience {
    /// Wait up to this long for quiet before each scenario.
    quiet_wait: Duration,
    /// Measure a scenario again this many times when other processes disturbed it.
    retries: usize,
}

/// Other processes' CPU share (% of one core) above which a measurement counts as disturbed.
const NOISY: f64 = 20.0;
/// Other processes' disk writes (MB/s) above which a measurement counts as disturbed: they
/// stretch the child's fsyncs.
const NOISY_DISK_MB_S: f64 = 10.0;

/// Why a measurement counts as disturbed, if it does.
fn disturbed(share: &scenarios::CpuShare) -> Option<String> {
    let cpu = share.other.filter(|o| *o > NOISY);
    let disk = share.other_disk_write_mb_s.filter(|d| *d > NOISY_DISK_MB_S);
    match (cpu, disk) {
        (None, None) => None,
        (Some(c), None) => Some(format!("other processes used {c:.0}% of a core")),
        (None, Some(d)) => Some(format!("other processes wrote {d:.0} MB/s to disk")),
        (Some(c), Some(d)) => Some(format!(
            "other processes used {c:.0}% of a core and wrote {d:.0} MB/s to disk"
        )),
    }
}

/// Runs one scenario, after waiting for quiet, and again while other processes disturbed it
/// (up to `retries` more times). Disturbed measurements that were redone are noted in `redone`.
async fn measure<T, F, Fut>(
    label: &str,
    patience: Patience,
    redone: &mut Vec<String>,
    mut scenario: F,
    share: fn(&T) -> scenarios::CpuShare,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut tries = 0;
    loop {
        if !patience.quiet_wait.is_zero()
            && let Some(other) = scenarios::wait_quiet(patience.quiet_wait)
                .await
                .filter(|o| *o >= 10.0)
        {
            eprintln!(
                "   (still busy after {:?}: other processes use {other:.0}% of a core)",
                patience.quiet_wait
            );
        }
        eprintln!("-- {label}");
        let result = scenario()
            .await
            .with_context(|| format!("scenario {label}"))?;
        match disturbed(&share(&result)) {
            Some(why) if tries < patience.retries => {
                tries += 1;
                eprintln!(
                    "   {why} meanwhile: measuring again ({tries}/{})",
                    patience.retries
                );
                redone.push(format!("{label}: {why}"));
            }
            _ => return Ok(result),
        }
    }
}

async fn run_once(
    ctx: &Ctx,
    wanted: &dyn Fn(Scenario) -> bool,
    patience: Patience,
) -> anyhow::Result<RunResult> {
    let mut run = RunResult::default();
    let redone = &mut run.redone;
    if wanted(Scenario::Ceiling) {
        let r = measure(
            "ceiling: the sink alone",
            patience,
            redone,
            || ctx.ceiling(),
            |r| r.load.cpu,
        );
        run.ceiling = Some(r.await?);
    }
    if wanted(Scenario::Publish) {
        let label = "publish: durable publish, delivery workers off";
        let r = measure(label, patience, redone, || ctx.publish(), |r| r.load.cpu);
        run.publish = Some(r.await?);
    }
    if wanted(Scenario::Deliver) {
        let label = "deliver: publish + deliver, 1 endpoint";
        let r = measure(
            label,
            patience,
            redone,
            || ctx.deliver(1),
            |r| r.publish.cpu,
        );
        run.deliver = Some(r.await?);
    }
    if wanted(Scenario::Fanout) {
        let label = format!("fanout: publish + deliver, {} endpoints", ctx.fanout);
        let r = measure(
            &label,
            patience,
            redone,
            || ctx.deliver(ctx.fanout),
            |r| r.publish.cpu,
        );
        run.fanout = Some(r.await?);
    }
    if wanted(Scenario::Latency) {
        let label = format!("latency: open loop at {} events/s", ctx.rate);
        let r = measure(
            &label,
            patience,
            redone,
            || ctx.latency(),
            |r| r.publish.cpu,
        );
        run.latency = Some(r.await?);
    }
    if wanted(Scenario::Inbound) {
        let label =
            "inbound: signed GitHub deliveries, verify + durable accept, 1 HTTP destination";
        let r = measure(
            label,
            patience,
            redone,
            || ctx.inbound(true),
            |r| r.load.cpu,
        );
        run.inbound = Some(r.await?);
    }
    if wanted(Scenario::Accept) {
        let label = "accept: signed GitHub deliveries, verify + durable accept, no destination";
        let r = measure(
            label,
            patience,
            redone,
            || ctx.inbound(false),
            |r| r.load.cpu,
        );
        run.accept = Some(r.await?);
    }
    if wanted(Scenario::List) {
        let label = "list: listing endpoints, one client, one request at a time";
        let r = measure(label, patience, redone, || ctx.list(), |r| r.cpu);
        run.list = Some(r.await?);
    }
    let mut children: Vec<(&str, ChildStats)> = [
        ("publish", run.publish.as_ref().map(|r| r.child.clone())),
        ("deliver", run.deliver.as_ref().map(|r| r.child.clone())),
        ("fanout", run.fanout.as_ref().map(|r| r.child.clone())),
        ("latency", run.latency.as_ref().map(|r| r.child.clone())),
        ("inbound", run.inbound.as_ref().map(|r| r.child.clone())),
        ("accept", run.accept.as_ref().map(|r| r.child.clone())),
    ]
    .into_iter()
    .filter_map(|(n, c)| Some((n, c?)))
    .collect();
    if wanted(Scenario::Rss) && children.is_empty() {
        eprintln!("-- rss: idle child");
        children.push(("idle", ctx.idle().await.context("rss scenario")?));
    }
    if wanted(Scenario::Rss) {
        run.rss_idle_mb = children
            .iter()
            .filter_map(|(_, c)| c.idle_rss_mb)
            .reduce(f64::max);
        let peak = children
            .iter()
            .filter_map(|(n, c)| Some((*n, c.peak_rss_mb?)))
            .reduce(|a, b| if b.1 > a.1 { b } else { a });
        let several = children.iter().any(|(_, c)| c.instances > 1);
        if several {
            run.rss_idle_sum_mb = children
                .iter()
                .filter_map(|(_, c)| c.idle_rss_sum_mb)
                .reduce(f64::max);
        }
        // Run alone, the child saw no load: its peak is not "under load".
        if children.iter().any(|(n, _)| *n != "idle") {
            run.rss_peak_mb = peak.map(|p| p.1);
            run.rss_peak_scenario = peak.map(|p| p.0.to_string());
            if several {
                run.rss_peak_sum_mb = children
                    .iter()
                    .filter_map(|(_, c)| c.peak_rss_sum_mb)
                    .reduce(f64::max);
            }
        }
    }
    Ok(run)
}

/// The checkout's commit, `+dirty` when it has local changes (best effort: the binary under
/// test may have been built from another state).
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{head}+dirty") } else { head })
}
