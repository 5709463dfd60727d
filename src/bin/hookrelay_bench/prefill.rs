//! `--prefill N`: a store that already holds history before a scenario's measured phase.
//!
//! N events, each with one finished delivery and `--prefill-attempts` attempts, written
//! straight into the store (not through the API, which would take hours): on SQLite with
//! rusqlite into `<data dir>/hookrelay.db` while the child is stopped, on PostgreSQL with
//! `INSERT ... SELECT ... FROM generate_series(...)` through sqlx.
//!
//! The history is spread over the last two days (younger than the 30-day retention default)
//! and ends ten minutes ago; ids are real-looking ULIDs made from those times, so they sort
//! below anything the child makes. Half the events belong to the scenario's tenant, split
//! between its first endpoint (the one the scenario publishes to) and one more endpoint of
//! that tenant which takes only `bench.prefill` (so it gets none of the scenario's events);
//! the other half is spread over three more tenants with one such endpoint each. Each
//! delivery's last attempt succeeded after `attempts - 1` failed ones (HTTP 500), except two
//! deliveries in 10,000, which failed on every attempt (`status = 'failed'`: the rare case a
//! status filter looks for): one to the scenario's endpoint, one to another tenant's.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rusqlite::{Connection, params};
use serde::Serialize;

/// The event type of the prefilled endpoints that are not the scenario's: nothing the
/// scenarios publish goes to them.
pub const OTHER_TYPE: &str = "bench.prefill";
/// Of each this many deliveries, those at these offsets failed on every attempt: offset
/// 9996 is the scenario's endpoint (see [`slot`]), 9999 another tenant's.
pub const FAILED_EVERY: u64 = 10_000;
pub const FAILED_AT: [u64; 2] = [FAILED_EVERY - 4, FAILED_EVERY - 1];

/// Whether event `i`'s delivery failed.
fn failed(i: u64) -> bool {
    FAILED_AT.contains(&(i % FAILED_EVERY))
}
/// The history spans this long and ends this long ago.
const SPAN: Duration = Duration::from_secs(2 * 24 * 3600);
const END_AGO: Duration = Duration::from_secs(600);
/// Extra tenants (besides the scenario's).
const OTHER_TENANTS: usize = 3;

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spec {
    pub events: u64,
    pub attempts: u32,
    /// Bytes of each event's JSON payload.
    pub payload_bytes: usize,
}

/// What a fill wrote and how long it took.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FillStats {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub failed_deliveries: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
    /// Size of the store afterwards (SQLite file, or PostgreSQL database), MB.
    pub store_mb: Option<f64>,
}

/// Where event `i` goes: 0 is the scenario's endpoint, 1 the scenario tenant's other
/// endpoint, 2.. one endpoint of each other tenant (tenant `slot - 1`).
fn slot(i: u64) -> usize {
    if i.is_multiple_of(2) {
        ((i / 2) % 2) as usize
    } else {
        2 + ((i / 2) % OTHER_TENANTS as u64) as usize
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `prefix_<ULID>` of time `ms` whose random part is `n` (unique per kind): ids of one kind
/// sort as their times, then as `n`.
fn id(prefix: &str, ms: u64, n: u64) -> String {
    format!("{prefix}_{}", ulid::Ulid::from_parts(ms, u128::from(n)))
}

/// A JSON object of exactly `bytes` bytes (at least its fixed part).
fn payload(bytes: usize) -> String {
    let head = r#"{"prefill":true,"pad":""#;
    let tail = r#""}"#;
    let pad = bytes.saturating_sub(head.len() + tail.len());
    format!("{head}{}{tail}", "x".repeat(pad))
}

const ENDPOINT_COLUMNS: &str = "id, tenant_id, url, description, event_types, channels, secrets, \
     headers, timeout_ms, rate_limit_per_s, disabled, metadata, retry_schedule, \
     consecutive_failures, failing_since, last_success_at, last_failure_at, disabled_reason, \
     disabled_at, created_at, updated_at, source_id";

/// Fills the SQLite store `db` (its child stopped) with `spec`'s history for the tenant
/// whose uid is `tenant_uid`, set up through the API beforehand with at least one endpoint.
/// Blocking: run it on a blocking thread.
pub fn fill_sqlite(db: &Path, tenant_uid: &str, spec: Spec) -> anyhow::Result<FillStats> {
    let started = Instant::now();
    let mut conn = Connection::open(db).with_context(|| format!("opening {}", db.display()))?;
    // A throw-away file: no journal, no fsync, a large cache for the indexes.
    conn.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA locking_mode = EXCLUSIVE;
         PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;",
    )?;
    let tenant: String = conn
        .query_row("SELECT id FROM tenants WHERE uid = ?1", [tenant_uid], |r| {
            r.get(0)
        })
        .with_context(|| format!("tenant {tenant_uid} not set up"))?;
    let (endpoint, url): (String, String) = conn
        .query_row(
            "SELECT id, url FROM endpoints WHERE tenant_id = ?1 AND source_id IS NULL ORDER BY id LIMIT 1",
            [&tenant],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("the scenario's tenant has no endpoint")?;
    let end = now_ms() - END_AGO.as_millis() as u64;
    let start = end - SPAN.as_millis() as u64;
    // Tenants and endpoints older than the history: copies of the scenario's own rows.
    let mut tenants = vec![tenant.clone()];
    let mut endpoints = vec![(endpoint.clone(), tenant.clone(), url.clone())];
    let tx = conn.transaction()?;
    for t in 0..=OTHER_TENANTS {
        let at = start - 3_600_000 + t as u64 * 1000;
        let tenant_id = if t == 0 {
            tenant.clone()
        } else {
            let tid = id("tn", at, 1 << 40 | t as u64);
            tx.execute(
                "INSERT INTO tenants (id, uid, name, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![
                    tid,
                    format!("prefill-{t}"),
                    format!("Prefill {t}"),
                    at as i64
                ],
            )?;
            tenants.push(tid.clone());
            tid
        };
        let eid = id("ep", at + 1, 1 << 40 | t as u64);
        let eurl = format!("{url}-prefill-{t}");
        tx.execute(
            &format!(
                "INSERT INTO endpoints ({ENDPOINT_COLUMNS})
                 SELECT ?1, ?2, ?3, description, ?4, channels, secrets, headers, timeout_ms,
                   rate_limit_per_s, disabled, metadata, retry_schedule, 0, NULL, NULL, NULL,
                   NULL, NULL, ?5, ?5, NULL
                 FROM endpoints WHERE id = ?6"
            ),
            params![
                eid,
                tenant_id,
                eurl,
                format!(r#"["{OTHER_TYPE}"]"#),
                (at + 1) as i64,
                endpoint
            ],
        )?;
        endpoints.push((eid, tenant_id, eurl));
    }
    tx.commit()?;

    let body = payload(spec.payload_bytes);
    let attempts = spec.attempts.max(1);
    let step = (SPAN.as_millis() as u64 / spec.events.max(1)).max(1);
    let mut stats = FillStats::default();
    let batch = 20_000u64;
    let mut last_report = Instant::now();
    let mut i = 0u64;
    while i < spec.events {
        let tx = conn.transaction()?;
        {
            let mut ev = tx.prepare_cached(
                "INSERT INTO events (id, tenant_id, event_type, payload, channels,
                   idempotency_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, '[]', NULL, ?5)",
            )?;
            let mut dl = tx.prepare_cached(
                "INSERT INTO deliveries (id, tenant_id, event_id, endpoint_id, event_type,
                   status, attempts, next_attempt_at, lease_owner, lease_until, last_error,
                   created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL, NULL, ?8, ?9, ?10)",
            )?;
            let mut at = tx.prepare_cached(
                "INSERT INTO attempts (id, delivery_id, tenant_id, endpoint_id, attempt, url,
                   started_at, duration_ms, succeeded, request_headers, response_status,
                   response_headers, response_body, error_kind, error)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,
                   '{\"content-type\":\"text/plain\"}', ?12, ?13, ?14)",
            )?;
            for i in i..(i + batch).min(spec.events) {
                let ms = start + i * step;
                let (endpoint_id, tenant_id, url) = &endpoints[slot(i)];
                let event_type = if slot(i) == 0 {
                    crate::child::EVENT_TYPE
                } else {
                    OTHER_TYPE
                };
                let event_id = id("msg", ms, i);
                ev.execute(params![event_id, tenant_id, event_type, body, ms as i64])?;
                let failed = failed(i);
                let delivery_id = id("dlv", ms + 1, i);
                let finished = ms + 1 + u64::from(attempts) * 1000;
                dl.execute(params![
                    delivery_id,
                    tenant_id,
                    event_id,
                    endpoint_id,
                    event_type,
                    if failed { "failed" } else { "succeeded" },
                    attempts,
                    failed.then_some("HTTP 500"),
                    (ms + 1) as i64,
                    finished as i64,
                ])?;
                let headers = format!(
                    r#"{{"content-type":"application/json","webhook-id":"{event_id}","webhook-timestamp":"{}"}}"#,
                    ms / 1000
                );
                for k in 1..=attempts {
                    let ok = k == attempts && !failed;
                    let t = ms + 2 + u64::from(k - 1) * 1000;
                    at.execute(params![
                        id("atm", t, i * 64 + u64::from(k)),
                        delivery_id,
                        tenant_id,
                        endpoint_id,
                        k,
                        url,
                        t as i64,
                        12,
                        ok,
                        headers,
                        if ok { 200 } else { 500 },
                        if ok { "ok" } else { "internal error" },
                        (!ok).then_some("http_status"),
                        (!ok).then_some("HTTP 500"),
                    ])?;
                }
                stats.events += 1;
                stats.deliveries += 1;
                stats.failed_deliveries += u64::from(failed);
                stats.attempts += u64::from(attempts);
            }
        }
        tx.commit()?;
        i = (i + batch).min(spec.events);
        if last_report.elapsed() >= Duration::from_secs(5) || i == spec.events {
            last_report = Instant::now();
            let s = started.elapsed().as_secs_f64();
            eprintln!(
                "   prefill: {i} of {} events ({:.0}%), {:.0} rows/s, {s:.0} s",
                spec.events,
                i as f64 * 100.0 / spec.events as f64,
                (stats.events + stats.deliveries + stats.attempts) as f64 / s
            );
        }
    }
    // Back to the journal mode the child uses; everything in the main file.
    drop(conn);
    let conn = Connection::open(db)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if mode != "wal" {
        bail!("could not set {} back to WAL (got {mode})", db.display());
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    drop(conn);
    stats.seconds = started.elapsed().as_secs_f64();
    stats.rows_per_s =
        (stats.events + stats.deliveries + stats.attempts) as f64 / stats.seconds.max(1e-9);
    stats.store_mb = std::fs::metadata(db).ok().map(|m| m.len() as f64 / 1e6);
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_look_real_and_sort_by_time() {
        let a = id("msg", 1_700_000_000_000, 5);
        let b = id("msg", 1_700_000_000_001, 0);
        assert_eq!(a.len(), 4 + 26);
        assert!(a < b);
        assert!(a.parse::<String>().is_ok() && a.starts_with("msg_"));
        assert!(ulid::Ulid::from_string(&a[4..]).is_ok());
    }

    #[test]
    fn slots_cover_the_scenario_endpoint_and_the_others() {
        let counts = (0..1200).fold([0; 2 + OTHER_TENANTS], |mut c, i| {
            c[slot(i)] += 1;
            c
        });
        assert_eq!(counts, [300, 300, 200, 200, 200]);
        let failed: Vec<u64> = (0..20_000).filter(|i| failed(*i)).collect();
        assert_eq!(failed, [9996, 9999, 19996, 19999]);
        assert_eq!(slot(9996), 0);
        assert!(slot(9999) >= 2);
        assert_eq!(payload(300).len(), 300);
    }
}
