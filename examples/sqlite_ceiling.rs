//! How fast can SQLite alone write hookrelay's rows? A micro-benchmark of the embedded
//! store's floor, without hookrelay's HTTP, tokio, serialisation or queueing around it.
//!
//! It creates a fresh database, applies every migration in `migrations/sqlite` (compiled in,
//! so it always has the real schema and indexes), sets the same PRAGMAs as
//! `src/store/sqlite/mod.rs` (`journal_mode=WAL`, `synchronous`, `foreign_keys=ON`,
//! `temp_store=MEMORY`; on the writer also `wal_autocheckpoint=0` and `cache_size=-16384`),
//! and runs a checkpointer thread doing a `PASSIVE` checkpoint every 250 ms like
//! `src/store/sqlite/checkpointer.rs`. One thread then writes, for `--seconds`, the rows of
//! `--batch` jobs per `BEGIN IMMEDIATE ... COMMIT` (group commit), each job inside its own
//! `SAVEPOINT job ... RELEASE job` as the store's writer wraps a write, unless
//! `--no-savepoints` is given (the writer runs publishes and inbound accepts without one).
//! A job (`--kind`) writes exactly what hookrelay writes for:
//!
//! - `publish`: an `events` row (1 KiB payload) and a leased, pending `deliveries` row;
//! - `inbound`: an accepted inbound request: the dedup lookup, the dedup-window `DELETE`, the
//!   `inbound_dedup` upsert, an `inbound_requests` row (headers JSON of `--header-bytes` and a
//!   1 KiB body), the `events` row of its envelope (`--envelope-bytes`) and a `deliveries` row;
//! - `deliver` / `inbound_deliver`: `publish` / `inbound` plus the outcome of the first,
//!   successful attempt in the same transaction: an `attempts` row, the `UPDATE deliveries` to
//!   `succeeded` and the `UPDATE endpoints` of the endpoint's health.
//!
//! `--synchronous NORMAL` leaves out the fsync altogether. hookrelay's writer also commits
//! with NORMAL but makes durable writes wait for a syncer thread's `fdatasync` of the log,
//! which this benchmark does not do, so its FULL and NORMAL figures bracket that writer.
//!
//! The result is the writer thread's ceiling at a given batch size: what hookrelay's
//! benchmark figures (`docs/performance.md`, "SQLite ceiling for the same rows") are compared
//! with to tell the cost of SQLite and the fsync from the cost of hookrelay's own code.
//!
//! Run it in release mode, with the database on the disk under test (on tmpfs, fsync is
//! free and the figures mean nothing for a real deployment):
//!
//! ```text
//! cargo run --release --example sqlite_ceiling -- --kind publish --batch 25 --seconds 3 \
//!     [--no-savepoints] [--synchronous NORMAL] [--dir DIR] [--repeat N]
//! ```
//!
//! Each run starts from an empty database in `--dir` (by default a new directory under the
//! system's temporary directory, removed at the end) and prints one line; with `--repeat N`
//! it prints one line per run and then the median of each figure.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::{Parser, ValueEnum};
use rusqlite::{Connection, params};

/// The schema, in order: every file of `migrations/sqlite`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_inbound.sql"),
    include_str!("../migrations/sqlite/0003_inbound_batches.sql"),
    include_str!("../migrations/sqlite/0004_listing_indexes.sql"),
];
/// The database file's name in the data directory, as hookrelay names it.
const DB_FILE: &str = "hookrelay.db";
/// Like `checkpointer.rs`: a passive checkpoint this often, a restart past this many frames.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);
const RESTART_FRAMES: i64 = 64 * 1024;
/// Size of an event payload and of an inbound request body.
const BODY_BYTES: usize = 1024;

const TENANT: &str = "ten_01JABCDEFGHJKMNPQRSTVWXYZ0";
const SOURCE: &str = "src_01JABCDEFGHJKMNPQRSTVWXYZ0";
const ENDPOINT: &str = "ep_01JABCDEFGHJKMNPQRSTVWXYZ0";
const LEASE_OWNER: &str = "ins_01JABCDEFGHJKMNPQRSTVWXYZ0";
/// The first job's timestamp (ms since the epoch); each job is 1 ms later.
const T0_MS: i64 = 1_763_800_000_000;
/// A GitHub source's dedup window.
const DEDUP_WINDOW_MS: i64 = 86_400_000;
/// An attempt's stored request and response headers.
const ATTEMPT_REQUEST_HEADERS: &str = r#"{"content-type":"application/json","webhook-id":"evt_x","webhook-timestamp":"1763800000","webhook-signature":"<redacted>","user-agent":"hookrelay"}"#;
const ATTEMPT_RESPONSE_HEADERS: &str =
    r#"{"content-length":"0","date":"Sat, 22 Nov 2026 09:00:00 GMT"}"#;

/// SQLite's write ceiling for the rows of one hookrelay job kind (see the module docs).
#[derive(Parser, Debug)]
#[command(long_about = None)]
struct Args {
    /// The rows each job writes.
    #[arg(long, value_enum, default_value_t = Kind::Publish)]
    kind: Kind,
    /// Jobs per transaction (group commit).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// How long each run writes, in seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Run the jobs without a `SAVEPOINT` each.
    #[arg(long)]
    no_savepoints: bool,
    /// `PRAGMA synchronous` of every connection. FULL: each commit waits for its fsync
    /// (`open()` in src/store/sqlite/mod.rs). NORMAL: no fsync at commit (the store's writer
    /// commits so and has its syncer thread fdatasync the log; the sync is not done here).
    #[arg(long, value_enum, ignore_case = true, default_value_t = Synchronous::Full)]
    synchronous: Synchronous,
    /// Data directory, removed and recreated at the start of each run; put it on the disk
    /// under test. Default: a new directory under the system's temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Size of an inbound request's stored headers JSON, in bytes.
    #[arg(long, default_value_t = 192, value_parser = clap::value_parser!(u64).range(8..))]
    header_bytes: u64,
    /// Size of an inbound event's envelope (its `events.payload`), in bytes.
    #[arg(long, default_value_t = 1218, value_parser = clap::value_parser!(u64).range(26..))]
    envelope_bytes: u64,
    /// Number of runs, each on a fresh database; more than one also prints the medians.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Kind {
    /// `POST /v1/events` to one endpoint: events + deliveries.
    Publish,
    /// An accepted inbound request forwarded to one endpoint: dedup, inbound_requests,
    /// events, deliveries.
    Inbound,
    /// `publish` plus the first attempt's outcome.
    Deliver,
    /// `inbound` plus the first attempt's outcome.
    #[value(name = "inbound_deliver", alias = "inbound-deliver")]
    InboundDeliver,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Publish => "publish",
            Kind::Inbound => "inbound",
            Kind::Deliver => "deliver",
            Kind::InboundDeliver => "inbound_deliver",
        }
    }

    fn inbound(self) -> bool {
        matches!(self, Kind::Inbound | Kind::InboundDeliver)
    }

    fn delivers(self) -> bool {
        matches!(self, Kind::Deliver | Kind::InboundDeliver)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Synchronous {
    #[value(name = "FULL")]
    Full,
    #[value(name = "NORMAL")]
    Normal,
}

impl Synchronous {
    fn name(self) -> &'static str {
        match self {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        }
    }
}

/// The figures of one run.
#[derive(Clone, Copy, Debug)]
struct Run {
    events: u64,
    rows: u64,
    commits: u64,
    seconds: f64,
}

/// The row contents, built once.
struct Rows {
    payload: String,
    envelope: String,
    headers: String,
    body: String,
}

impl Rows {
    fn new(args: &Args) -> Rows {
        // Each is exactly its size: the JSON around the padding is counted.
        let pad = |c: &str, total: u64, frame: usize| c.repeat(total as usize - frame);
        let payload = format!(
            r#"{{"bench":true,"pad":"{}"}}"#,
            pad("x", BODY_BYTES as u64, 23)
        );
        Rows {
            envelope: format!(
                r#"{{"envelope":true,"pad":"{}"}}"#,
                pad("y", args.envelope_bytes, 26)
            ),
            headers: format!(r#"{{"h":"{}"}}"#, pad("z", args.header_bytes, 8)),
            body: payload.clone(),
            payload,
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.seconds.is_finite() && args.seconds > 0.0,
        "--seconds must be positive"
    );
    let (dir, temporary) = match &args.dir {
        Some(dir) => (dir.clone(), false),
        None => {
            let dir = std::env::temp_dir()
                .join(format!("hookrelay-sqlite-ceiling-{}", std::process::id()));
            eprintln!(
                "warning: the database is in {}; it should be on the disk under test \
                 (on tmpfs fsync is free): pass --dir",
                dir.display()
            );
            (dir, true)
        }
    };
    let rows = Rows::new(&args);
    let mut runs = Vec::new();
    let mut result = Ok(());
    for _ in 0..args.repeat {
        match run(&args, &dir, &rows) {
            Ok(r) => {
                println!("{}", line(&args, &r));
                runs.push(r);
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?;
    if runs.len() > 1 {
        let mid = Run {
            events: median(runs.iter().map(|r| r.events as f64)).round() as u64,
            rows: median(runs.iter().map(|r| r.rows as f64)).round() as u64,
            commits: median(runs.iter().map(|r| r.commits as f64)).round() as u64,
            seconds: median(runs.iter().map(|r| r.seconds)),
        };
        // Each rate is the median of the runs' rates, not one derived from the medians above.
        let rate = |f: fn(&Run) -> f64| median(runs.iter().map(f));
        println!(
            "median of {} runs: {}",
            runs.len(),
            format_line(
                &args,
                rate(|r| r.events as f64 / r.seconds),
                rate(|r| r.rows as f64 / r.seconds),
                rate(|r| r.commits as f64 / r.seconds),
                rate(|r| r.seconds * 1e6 / r.events as f64),
                &mid,
            )
        );
    }
    Ok(())
}

fn line(args: &Args, r: &Run) -> String {
    format_line(
        args,
        r.events as f64 / r.seconds,
        r.rows as f64 / r.seconds,
        r.commits as f64 / r.seconds,
        r.seconds * 1e6 / r.events as f64,
        r,
    )
}

fn format_line(
    args: &Args,
    events_s: f64,
    rows_s: f64,
    commits_s: f64,
    us_event: f64,
    r: &Run,
) -> String {
    format!(
        "{} batch={} savepoints={} sync={}: {events_s:.0} events/s, {rows_s:.0} rows/s, \
         {commits_s:.1} commits/s, {us_event:.1} us/event, {} events in {:.1}s",
        args.kind.name(),
        args.batch,
        !args.no_savepoints,
        args.synchronous.name(),
        r.events,
        r.seconds,
    )
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Removes and recreates `dir`, refusing to remove a directory that holds anything but a
/// hookrelay database (a mistyped `--dir` must not wipe unrelated files).
fn fresh_dir(dir: &Path) -> Result<()> {
    if dir.exists() {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let ours = [DB_FILE, "hookrelay.db-wal", "hookrelay.db-shm"];
            if !ours.contains(&name.as_ref()) {
                bail!(
                    "{} holds {name}, not only a hookrelay database: refusing to remove it",
                    dir.display()
                );
            }
        }
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
}

/// A connection as `open()` in `src/store/sqlite/mod.rs` makes it.
fn open(path: &Path, synchronous: Synchronous) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {};
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
        synchronous.name()
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The checkpointer of `src/store/sqlite/checkpointer.rs`, on its own connection.
fn checkpointer(conn: Connection, stop: Arc<AtomicBool>) -> Result<JoinHandle<()>> {
    let checkpoint = move |mode: &str| {
        conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
            Ok(r.get::<_, i64>(1)? - r.get::<_, i64>(2)?)
        })
    };
    let handle = std::thread::Builder::new()
        .name("sqlite-checkpointer".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                match checkpoint("PASSIVE") {
                    Ok(left) if left >= RESTART_FRAMES => {
                        if let Err(e) = checkpoint("RESTART") {
                            eprintln!("warning: WAL restart checkpoint failed: {e}");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => eprintln!("warning: WAL checkpoint failed: {e}"),
                }
            }
        })?;
    Ok(handle)
}

/// One run on a fresh database.
fn run(args: &Args, dir: &Path, rows: &Rows) -> Result<Run> {
    fresh_dir(dir)?;
    let path = dir.join(DB_FILE);
    let conn = open(&path, args.synchronous)?;
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        conn.execute_batch(&format!(
            "BEGIN; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))
        .with_context(|| format!("applying migration {}", i + 1))?;
    }
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -16384;")?;
    setup(&conn)?;

    let stop = Arc::new(AtomicBool::new(false));
    let checkpointer = checkpointer(open(&path, args.synchronous)?, stop.clone())?;
    let result = write_for(args, &conn, rows);
    stop.store(true, Ordering::Relaxed);
    let _ = checkpointer.join();
    result
}

/// The tenant, the inbound source and the endpoint every job refers to.
fn setup(conn: &Connection) -> Result<()> {
    conn.execute(
        "INSERT INTO tenants (id, uid, name, created_at, updated_at)
         VALUES (?1, 'bench', 'bench', 0, 0)",
        [TENANT],
    )?;
    conn.execute(
        "INSERT INTO sources (id, tenant_id, name, provider, settings, allowed_event_types,
                              destinations, enabled, dedup_window_s, created_at, updated_at)
         VALUES (?1, ?2, 'gh', 'github', '{}', '[]', '[]', 1, 86400, 0, 0)",
        params![SOURCE, TENANT],
    )?;
    // The endpoint whose health an outcome updates.
    conn.execute(
        "INSERT INTO endpoints (id, tenant_id, url, description, event_types, channels, secrets,
                                headers, disabled, metadata, created_at, updated_at)
         VALUES (?1, ?2, 'http://127.0.0.1:9999/sink', '', '[]', '[]', '[]', '{}', 0, '{}', 0, 0)",
        params![ENDPOINT, TENANT],
    )?;
    Ok(())
}

/// Writes batches of jobs until `--seconds` have passed.
fn write_for(args: &Args, conn: &Connection, rows: &Rows) -> Result<Run> {
    let mut ids = ulid::Generator::new();
    let mut id = |prefix: &str| -> Result<String> { Ok(format!("{prefix}_{}", ids.generate()?)) };
    let savepoints = !args.no_savepoints;
    let exec = |sql: &str| -> Result<()> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    let (mut events, mut row_count, mut commits) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < args.seconds {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for _ in 0..args.batch {
            let now = T0_MS + events as i64;
            let ids = JobIds {
                event: id("evt")?,
                delivery: id("del")?,
                // Only the ids a kind uses are generated, like the original benchmark.
                request: if args.kind.inbound() {
                    id("req")?
                } else {
                    String::new()
                },
                attempt: if args.kind.delivers() {
                    id("att")?
                } else {
                    String::new()
                },
            };
            if savepoints {
                exec("SAVEPOINT job")?;
            }
            row_count += job(args.kind, conn, rows, &ids, now)?;
            if savepoints {
                exec("RELEASE job")?;
            }
            events += 1;
        }
        conn.execute_batch("COMMIT")?;
        commits += 1;
    }
    Ok(Run {
        events,
        rows: row_count,
        commits,
        seconds: started.elapsed().as_secs_f64(),
    })
}

struct JobIds {
    event: String,
    delivery: String,
    request: String,
    attempt: String,
}

/// The writes of one job; returns the number of rows written.
fn job(kind: Kind, c: &Connection, rows: &Rows, ids: &JobIds, now: i64) -> Result<u64> {
    let mut written = 0;
    let mut event_payload = rows.payload.as_str();
    if kind.inbound() {
        event_payload = rows.envelope.as_str();
        let key = format!("gh-delivery-{}", ids.event);
        let since = now - DEDUP_WINDOW_MS;
        let seen: Option<String> = c
            .prepare_cached(
                "SELECT request_id FROM inbound_dedup
                 WHERE source_id = ?1 AND key = ?2 AND received_at >= ?3",
            )?
            .query_row(params![SOURCE, key, since], |r| r.get(0))
            .ok();
        ensure!(seen.is_none(), "dedup key {key} already seen");
        c.prepare_cached("DELETE FROM inbound_dedup WHERE source_id = ?1 AND received_at < ?2")?
            .execute(params![SOURCE, since])?;
        c.prepare_cached(
            "INSERT INTO inbound_dedup (source_id, key, request_id, received_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source_id, key) DO UPDATE
             SET request_id = excluded.request_id, received_at = excluded.received_at",
        )?
        .execute(params![SOURCE, key, ids.request, now])?;
        c.prepare_cached(
            "INSERT INTO inbound_requests (id, tenant_id, source_id, received_at, outcome, reason,
                                           provider_event_id, event_type, dedup_key, headers,
                                           body, body_bytes, routed_events, routing_error)
             VALUES (?1, ?2, ?3, ?4, 'accepted', NULL, ?5, 'github.push', ?6, ?7, ?8, ?9, ?10,
                     NULL)",
        )?
        .execute(params![
            ids.request,
            TENANT,
            SOURCE,
            now,
            key,
            key,
            rows.headers,
            rows.body,
            rows.body.len() as i64,
            format!(r#"["{}"]"#, ids.event),
        ])?;
        written += 2;
    }
    c.prepare_cached(
        "INSERT INTO events (id, tenant_id, event_type, payload, channels, idempotency_key,
                             created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        ids.event,
        TENANT,
        "bench.event",
        event_payload,
        "[]",
        None::<String>,
        now
    ])?;
    c.prepare_cached(
        "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type, status,
                                 attempts, next_attempt_at, lease_owner, lease_until, created_at,
                                 updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'pending', 0, ?6, ?7, ?8, ?6, ?6)",
    )?
    .execute(params![
        ids.delivery,
        TENANT,
        ids.event,
        ENDPOINT,
        "bench.event",
        now,
        LEASE_OWNER,
        now + 30_000
    ])?;
    written += 2;
    if kind.delivers() {
        // The outcome of the first (successful) attempt, here in the same transaction.
        c.prepare_cached(
            "INSERT INTO attempts (id, delivery_id, tenant_id, endpoint_id, attempt, url,
                                   started_at, duration_ms, succeeded, request_headers,
                                   response_status, response_headers, response_body,
                                   error_kind, error)
             VALUES (?1, ?2, ?3, ?4, 1, 'http://127.0.0.1:9999/sink', ?5, 1, 1, ?6, 200, ?7, '',
                     NULL, NULL)",
        )?
        .execute(params![
            ids.attempt,
            ids.delivery,
            TENANT,
            ENDPOINT,
            now,
            ATTEMPT_REQUEST_HEADERS,
            ATTEMPT_RESPONSE_HEADERS
        ])?;
        c.prepare_cached(
            "UPDATE deliveries SET status = ?2, attempts = max(attempts, ?3), next_attempt_at = ?4,
                                   lease_owner = ?5, lease_until = ?6, last_error = ?7,
                                   updated_at = ?8
             WHERE id = ?1 AND status = 'pending'",
        )?
        .execute(params![
            ids.delivery,
            "succeeded",
            1,
            None::<i64>,
            None::<String>,
            None::<i64>,
            None::<String>,
            now
        ])?;
        c.prepare_cached(
            "UPDATE endpoints SET consecutive_failures = 0, failing_since = NULL,
                                  last_success_at = max(coalesce(last_success_at, 0), ?2)
             WHERE id = ?1",
        )?
        .execute(params![ENDPOINT, now])?;
        written += 3;
    }
    Ok(written)
}
