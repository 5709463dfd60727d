//! The figures of a run against SPEC §9, the medians of several runs, the table and the JSON.

use serde::Serialize;

use crate::scenarios::{
    CeilingResult, ChildStats, CpuShare, DeliverResult, InboundResult, LatencyResult, ListResult,
    PublishResult,
};

/// Everything one pass over the selected scenarios measured.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunResult {
    pub ceiling: Option<CeilingResult>,
    pub publish: Option<PublishResult>,
    pub deliver: Option<DeliverResult>,
    pub fanout: Option<DeliverResult>,
    pub latency: Option<LatencyResult>,
    pub inbound: Option<InboundResult>,
    /// The inbound scenario without a destination.
    pub accept: Option<InboundResult>,
    pub list: Option<ListResult>,
    /// Idle RSS (largest of the scenarios' readings) and peak RSS (largest VmHWM), MB; with
    /// several instances, of the largest instance.
    pub rss_idle_mb: Option<f64>,
    pub rss_peak_mb: Option<f64>,
    pub rss_peak_scenario: Option<String>,
    /// With several instances: the same summed over the instances of a scenario (largest
    /// over the scenarios). `None` with one instance.
    pub rss_idle_sum_mb: Option<f64>,
    pub rss_peak_sum_mb: Option<f64>,
    /// Measurements thrown away and redone because other processes disturbed them.
    pub redone: Vec<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub enum Cmp {
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<=")]
    AtMost,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub key: &'static str,
    pub label: &'static str,
    pub unit: &'static str,
    pub value: Option<f64>,
    pub target_cmp: Option<Cmp>,
    pub target: Option<f64>,
    pub met: Option<bool>,
    /// value / sink ceiling, for throughput figures.
    pub of_ceiling: Option<f64>,
    /// Per-run values the median was taken from (medians only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<Option<f64>>,
}

struct Def {
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    target: Option<(Cmp, f64)>,
    vs_ceiling: bool,
}

const fn def(
    key: &'static str,
    label: &'static str,
    unit: &'static str,
    target: Option<(Cmp, f64)>,
    vs_ceiling: bool,
) -> Def {
    Def {
        key,
        label,
        unit,
        target,
        vs_ceiling,
    }
}

use Cmp::{AtLeast, AtMost};

const DEFS: &[Def] = &[
    def(
        "ceiling_rps",
        "1 sink ceiling, same load tool",
        "req/s",
        None,
        true,
    ),
    def(
        "publish_rps",
        "2 durable publish, workers off",
        "events/s",
        Some((AtLeast, 20_000.0)),
        true,
    ),
    def("publish_api_p50", "2   publish API p50", "ms", None, false),
    def("publish_api_p99", "2   publish API p99", "ms", None, false),
    def(
        "deliver_rps",
        "3 publish+deliver, 1 endpoint",
        "delivered/s",
        Some((AtLeast, 10_000.0)),
        true,
    ),
    def(
        "deliver_publish_rps",
        "3   publish rate meanwhile",
        "events/s",
        None,
        true,
    ),
    def(
        "deliver_drain_s",
        "3   backlog drain after publishing",
        "s",
        None,
        false,
    ),
    def(
        "fanout_rps",
        "4 fan-out to 10 endpoints",
        "deliveries/s",
        Some((AtLeast, 20_000.0)),
        true,
    ),
    def(
        "fanout_publish_rps",
        "4   publish rate meanwhile",
        "events/s",
        None,
        true,
    ),
    def(
        "fanout_drain_s",
        "4   backlog drain after publishing",
        "s",
        None,
        false,
    ),
    def(
        "latency_e2e_p50",
        "5 publish→receive p50",
        "ms",
        None,
        false,
    ),
    def(
        "latency_e2e_p99",
        "5 publish→receive p99",
        "ms",
        Some((AtMost, 25.0)),
        false,
    ),
    def(
        "latency_e2e_p999",
        "5 publish→receive p99.9",
        "ms",
        None,
        false,
    ),
    def("latency_api_p50", "5 publish API p50", "ms", None, false),
    def(
        "latency_api_p99",
        "5 publish API p99",
        "ms",
        Some((AtMost, 10.0)),
        false,
    ),
    def(
        "latency_achieved_rps",
        "5   achieved publish rate",
        "events/s",
        None,
        false,
    ),
    def(
        "rss_idle_mb",
        "6 RSS idle",
        "MB",
        Some((AtMost, 30.0)),
        false,
    ),
    def(
        "rss_peak_mb",
        "6 RSS peak (VmHWM)",
        "MB",
        Some((AtMost, 150.0)),
        false,
    ),
    def(
        "rss_idle_sum_mb",
        "6   RSS idle, all instances summed",
        "MB",
        None,
        false,
    ),
    def(
        "rss_peak_sum_mb",
        "6   RSS peak, all instances summed",
        "MB",
        None,
        false,
    ),
    def(
        "accept_rps",
        "7 inbound verify + durable accept, no destination",
        "req/s",
        Some((AtLeast, 20_000.0)),
        true,
    ),
    def("accept_api_p50", "7   accept API p50", "ms", None, false),
    def("accept_api_p99", "7   accept API p99", "ms", None, false),
    def(
        "inbound_rps",
        "7 inbound verify + accept + forward, 1 destination",
        "req/s",
        Some((AtLeast, 20_000.0)),
        true,
    ),
    def("inbound_api_p50", "7   inbound API p50", "ms", None, false),
    def("inbound_api_p99", "7   inbound API p99", "ms", None, false),
    def(
        "inbound_drain_s",
        "7   delivery backlog drain after",
        "s",
        None,
        false,
    ),
];

/// The list scenario's figures: p50 and p99 of each query, against issue 5's "the listing
/// endpoints answer in under 50 ms".
macro_rules! list_defs {
    ($($name:literal => $label:literal),* $(,)?) => {
        &[$(
            def(concat!("list_", $name, "_p50"), concat!("8 ", $label, " p50"), "ms",
                Some((AtMost, 50.0)), false),
            def(concat!("list_", $name, "_p99"), concat!("8   ", $label, " p99"), "ms",
                Some((AtMost, 50.0)), false),
        )*]
    };
}

const LIST_DEFS: &[Def] = list_defs![
    "events" => "GET events (first page of 50)",
    "events_deep" => "GET events, 10 pages deep (cursor)",
    "deliveries" => "GET deliveries",
    "deliveries_failed" => "GET deliveries?status=failed",
    "deliveries_succeeded" => "GET deliveries?status=succeeded",
    "deliveries_endpoint" => "GET deliveries?endpoint=",
    "deliveries_endpoint_failed" => "GET deliveries?endpoint=&status=failed",
    "deliveries_endpoint_new" => "GET deliveries?endpoint= (new endpoint)",
    "deliveries_pending" => "GET deliveries?status=pending",
    "deliveries_event" => "GET deliveries?event=",
    "delivery_attempts" => "GET deliveries/{id} (with attempts)",
    "endpoints" => "GET endpoints",
    "endpoint_stats" => "GET endpoints/{id}/stats (last 24 h)",
    "endpoint_stats_30d" => "GET endpoints/{id}/stats?since= (30 days)",
    "endpoint_health" => "GET endpoints/{id}/health",
];

fn list_value(run: &RunResult, key: &str) -> Option<f64> {
    let rest = key.strip_prefix("list_")?;
    let (name, pct) = rest.rsplit_once('_')?;
    let q = run.list.as_ref()?.queries.iter().find(|q| q.name == name)?;
    let l = q.latency?;
    match pct {
        "p50" => Some(l.p50_ms),
        "p99" => Some(l.p99_ms),
        _ => None,
    }
}

fn value(run: &RunResult, key: &str) -> Option<f64> {
    if key.starts_with("list_") {
        return list_value(run, key);
    }
    let d = |r: &Option<DeliverResult>, f: fn(&DeliverResult) -> f64| r.as_ref().map(f);
    match key {
        "ceiling_rps" => run.ceiling.as_ref().map(|c| c.load.per_s),
        "publish_rps" => run.publish.as_ref().map(|p| p.load.per_s),
        "publish_api_p50" => run.publish.as_ref()?.load.api.map(|a| a.p50_ms),
        "publish_api_p99" => run.publish.as_ref()?.load.api.map(|a| a.p99_ms),
        "deliver_rps" => d(&run.deliver, |r| r.delivered_per_s),
        "deliver_publish_rps" => d(&run.deliver, |r| r.publish.per_s),
        "deliver_drain_s" => d(&run.deliver, |r| r.drain_s),
        "fanout_rps" => d(&run.fanout, |r| r.delivered_per_s),
        "fanout_publish_rps" => d(&run.fanout, |r| r.publish.per_s),
        "fanout_drain_s" => d(&run.fanout, |r| r.drain_s),
        "latency_e2e_p50" => run.latency.as_ref()?.end_to_end.map(|p| p.p50_ms),
        "latency_e2e_p99" => run.latency.as_ref()?.end_to_end.map(|p| p.p99_ms),
        "latency_e2e_p999" => run.latency.as_ref()?.end_to_end.map(|p| p.p999_ms),
        "latency_api_p50" => run.latency.as_ref()?.publish.api.map(|p| p.p50_ms),
        "latency_api_p99" => run.latency.as_ref()?.publish.api.map(|p| p.p99_ms),
        "latency_achieved_rps" => run.latency.as_ref().map(|l| l.publish.per_s),
        "inbound_rps" => run.inbound.as_ref().map(|i| i.load.per_s),
        "inbound_api_p50" => run.inbound.as_ref()?.load.api.map(|a| a.p50_ms),
        "inbound_api_p99" => run.inbound.as_ref()?.load.api.map(|a| a.p99_ms),
        "inbound_drain_s" => run.inbound.as_ref().map(|i| i.drain_s),
        "accept_rps" => run.accept.as_ref().map(|i| i.load.per_s),
        "accept_api_p50" => run.accept.as_ref()?.load.api.map(|a| a.p50_ms),
        "accept_api_p99" => run.accept.as_ref()?.load.api.map(|a| a.p99_ms),
        "rss_idle_mb" => run.rss_idle_mb,
        "rss_peak_mb" => run.rss_peak_mb,
        "rss_idle_sum_mb" => run.rss_idle_sum_mb,
        "rss_peak_sum_mb" => run.rss_peak_sum_mb,
        _ => None,
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The figures of each run's median (a single run is its own median).
pub fn figures(runs: &[RunResult]) -> Vec<Figure> {
    let ceiling = median(
        runs.iter()
            .filter_map(|r| value(r, "ceiling_rps"))
            .collect(),
    );
    DEFS.iter()
        .chain(LIST_DEFS)
        .filter_map(|d| {
            let per_run: Vec<Option<f64>> = runs.iter().map(|r| value(r, d.key)).collect();
            let v = median(per_run.iter().flatten().copied().collect())?;
            Some(Figure {
                key: d.key,
                label: d.label,
                unit: d.unit,
                value: Some(v),
                target_cmp: d.target.map(|t| t.0),
                target: d.target.map(|t| t.1),
                met: d.target.map(|(cmp, t)| match cmp {
                    AtLeast => v >= t,
                    AtMost => v <= t,
                }),
                of_ceiling: if d.vs_ceiling {
                    ceiling.map(|c| v / c)
                } else {
                    None
                },
                runs: if runs.len() > 1 { per_run } else { Vec::new() },
            })
        })
        .collect()
}

fn number(v: f64, unit: &str) -> String {
    if unit == "ms" || unit == "s" || unit == "MB" {
        format!("{v:.2}")
    } else {
        let n = v.round() as i64;
        let s = n.abs().to_string();
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    }
}

/// The line above each table: what was measured, so tables of different runs compare.
pub fn heading(
    backend: &str,
    instances: usize,
    prefill: Option<crate::prefill::Spec>,
    server: Option<String>,
) -> String {
    let mut h = format!(
        "backend: {backend} · {instances} hookrelay instance{}",
        if instances == 1 { "" } else { "s" }
    );
    match prefill {
        Some(p) => h.push_str(&format!(
            " · prefilled store: {} events, {} deliveries, {} attempts",
            number(p.events as f64, ""),
            number(p.events as f64, ""),
            number((p.events * u64::from(p.attempts)) as f64, "")
        )),
        None => h.push_str(" · empty store"),
    }
    if let Some(server) = server {
        h.push_str(&format!(" · {server}"));
    }
    if instances > 1 {
        h.push_str(" · RSS rows: the largest instance, unless marked summed");
    }
    h
}

pub fn table(figures: &[Figure]) -> String {
    let mut rows = vec![[
        "figure".to_string(),
        "value".to_string(),
        "SPEC §9 target".to_string(),
        "met?".to_string(),
        "of ceiling".to_string(),
    ]];
    for f in figures {
        let value = f
            .value
            .map(|v| format!("{} {}", number(v, f.unit), f.unit))
            .unwrap_or_else(|| "—".into());
        let target = match (f.target_cmp, f.target) {
            (Some(AtLeast), Some(t)) => format!("≥ {} {}", number(t, f.unit), f.unit),
            (Some(AtMost), Some(t)) => format!("≤ {} {}", number(t, f.unit), f.unit),
            _ => "—".into(),
        };
        let met = match f.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "—",
        };
        let ceiling = f
            .of_ceiling
            .map(|c| format!("{:.1}%", c * 100.0))
            .unwrap_or_else(|| "—".into());
        rows.push([f.label.to_string(), value, target, met.to_string(), ceiling]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w - cell.chars().count();
                if c == 1 {
                    format!("{}{cell}", " ".repeat(pad))
                } else {
                    format!("{cell}{}", " ".repeat(pad))
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 8));
            out.push('\n');
        }
    }
    out
}

/// Things worth a look that the table does not show: failures, losses, duplicates, logs.
pub fn notes(run: &RunResult) -> Vec<String> {
    let mut notes: Vec<String> = run
        .redone
        .iter()
        .map(|r| format!("measured again: {r}"))
        .collect();
    let mut load = |name: &str, errors: &Option<String>| {
        if let Some(e) = errors {
            notes.push(format!("{name}: {e}"));
        }
    };
    if let Some(c) = &run.ceiling {
        load("ceiling", &c.load.errors);
    }
    if let Some(p) = &run.publish {
        load("publish", &p.load.errors);
    }
    for (name, r) in [("deliver", &run.deliver), ("fanout", &run.fanout)] {
        if let Some(r) = r {
            load(name, &r.publish.errors);
        }
    }
    if let Some(l) = &run.latency {
        load("latency", &l.publish.errors);
    }
    for (name, i) in [("inbound", &run.inbound), ("accept", &run.accept)] {
        if let Some(i) = i {
            load(name, &i.load.errors);
        }
    }
    if let Some(l) = &run.list {
        for q in &l.queries {
            if let Some(e) = &q.error {
                notes.push(format!("list {}: {} failed, first: {e}", q.name, q.failed));
            }
        }
    }
    for (name, r) in [("deliver", &run.deliver), ("fanout", &run.fanout)] {
        let Some(r) = r else { continue };
        if !r.drained {
            notes.push(format!(
                "{name}: backlog not drained: {} of {} deliveries arrived",
                r.delivered, r.expected
            ));
        }
        if r.duplicates > 0 {
            notes.push(format!("{name}: {} duplicate deliveries", r.duplicates));
        }
    }
    if let Some(l) = &run.latency {
        if l.undelivered > 0 {
            notes.push(format!(
                "latency: {} published events never reached the sink",
                l.undelivered
            ));
        }
        if l.duplicates > 0 {
            notes.push(format!("latency: {} duplicate deliveries", l.duplicates));
        }
        if l.publish.ok + l.publish.failed < l.offered {
            notes.push(format!(
                "latency: only {} of {} offered requests were sent",
                l.publish.ok + l.publish.failed,
                l.offered
            ));
        }
    }
    if let Some(i) = &run.inbound {
        if i.undelivered > 0 {
            notes.push(format!(
                "inbound: {} of {} accepted requests never reached the sink{}",
                i.undelivered,
                i.load.ok,
                if i.drained { "" } else { " (gave up waiting)" }
            ));
        }
        if i.unexpected > 0 {
            notes.push(format!(
                "inbound: the sink got {} envelopes of requests not answered as accepted",
                i.unexpected
            ));
        }
        if i.duplicates > 0 {
            notes.push(format!("inbound: {} duplicate deliveries", i.duplicates));
        }
    }
    let children = [
        ("publish", run.publish.as_ref().map(|r| &r.child)),
        ("deliver", run.deliver.as_ref().map(|r| &r.child)),
        ("fanout", run.fanout.as_ref().map(|r| &r.child)),
        ("latency", run.latency.as_ref().map(|r| &r.child)),
        ("inbound", run.inbound.as_ref().map(|r| &r.child)),
        ("accept", run.accept.as_ref().map(|r| &r.child)),
        ("list", run.list.as_ref().map(|r| &r.child)),
    ];
    for (name, child) in children {
        let Some(c) = child else { continue };
        if c.log_problem_lines > 0 {
            notes.push(format!(
                "{name}: hookrelay logged {} WARN/ERROR lines, first: {}",
                c.log_problem_lines,
                c.log_problems.first().map(String::as_str).unwrap_or("")
            ));
        }
    }
    notes
}

/// Where CPU went in each scenario's load phase (% of one core: hookrelay, this process,
/// everything else) and the child's mean group commit size.
pub fn cpu_line(run: &RunResult) -> String {
    let pct = |v: Option<f64>| v.map(|v| format!("{v:.0}%")).unwrap_or_else(|| "?".into());
    let share = |c: &CpuShare| {
        let db = match (c.postgres, c.postgres_disk_write_mb_s) {
            (Some(cpu), w) => format!(
                "postgres {cpu:.0}% ({} MB/s written) ",
                w.map(|v| format!("{v:.1}")).unwrap_or_else(|| "?".into())
            ),
            _ => String::new(),
        };
        format!(
            "hookrelay {} {db}bench {} other {} (+{} MB/s other disk writes)",
            pct(c.hookrelay),
            pct(c.bench),
            pct(c.other),
            c.other_disk_write_mb_s
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "?".into())
        )
    };
    let gc = |c: &ChildStats| {
        c.group_commit_mean_size
            .map(|m| format!(", {m:.1} writes/commit"))
            .unwrap_or_default()
    };
    let mut parts = Vec::new();
    if let Some(c) = &run.ceiling {
        parts.push(format!("ceiling: {}", share(&c.load.cpu)));
    }
    if let Some(p) = &run.publish {
        parts.push(format!("publish: {}{}", share(&p.load.cpu), gc(&p.child)));
    }
    for (name, r) in [("deliver", &run.deliver), ("fanout", &run.fanout)] {
        if let Some(r) = r {
            parts.push(format!("{name}: {}{}", share(&r.publish.cpu), gc(&r.child)));
        }
    }
    if let Some(l) = &run.latency {
        parts.push(format!(
            "latency: {}{}",
            share(&l.publish.cpu),
            gc(&l.child)
        ));
    }
    for (name, i) in [("inbound", &run.inbound), ("accept", &run.accept)] {
        if let Some(i) = i {
            parts.push(format!(
                "{name}: {}{}, {:.1} µs/request building and signing",
                share(&i.load.cpu),
                gc(&i.child),
                i.sign_us
            ));
        }
    }
    parts.join("\n  ")
}

/// What PostgreSQL did per scenario: transactions and WAL per accepted request, and where
/// its active backends waited. Empty on SQLite.
pub fn pg_lines(run: &RunResult) -> Vec<String> {
    let mut lines = Vec::new();
    let mut add = |name: &str, child: &ChildStats, requests: u64| {
        let Some(pg) = &child.postgres else { return };
        let per = |v: f64| v / (requests.max(1) as f64);
        let total: u64 = pg.waits.iter().map(|w| w.1).sum();
        let waits: Vec<String> = pg
            .waits
            .iter()
            .take(5)
            .map(|(w, n)| format!("{w} {:.0}%", *n as f64 * 100.0 / total.max(1) as f64))
            .collect();
        lines.push(format!(
            "{name}: {} commits ({:.2}/request), {} rollbacks, {} deadlocks, {:.1} rows inserted \
             + {:.1} updated + {:.1} deleted /request, WAL {:.1} KB/request ({:.1} full-page \
             images/request, {} WAL fsyncs); active backends {:.1} on average (max {}): {}",
            pg.commits,
            per(pg.commits as f64),
            pg.rollbacks,
            pg.deadlocks,
            per(pg.tup_inserted as f64),
            per(pg.tup_updated as f64),
            per(pg.tup_deleted as f64),
            per(pg.wal_bytes) / 1e3,
            per(pg.wal_fpi as f64),
            pg.wal_sync,
            total as f64 / pg.samples.max(1) as f64,
            pg.max_active,
            waits.join(", ")
        ));
    };
    if let Some(p) = &run.publish {
        add("publish", &p.child, p.load.ok);
    }
    for (name, r) in [("deliver", &run.deliver), ("fanout", &run.fanout)] {
        if let Some(r) = r {
            add(name, &r.child, r.publish.ok);
        }
    }
    if let Some(l) = &run.latency {
        add("latency", &l.child, l.publish.ok);
    }
    for (name, i) in [("inbound", &run.inbound), ("accept", &run.accept)] {
        if let Some(i) = i {
            add(name, &i.child, i.load.ok);
        }
    }
    lines
}

/// Each scenario's load-phase CPU and disk shares, to judge how quiet the machine was.
pub fn shares(run: &RunResult) -> Vec<(&'static str, CpuShare)> {
    let mut shares = Vec::new();
    if let Some(c) = &run.ceiling {
        shares.push(("ceiling", c.load.cpu));
    }
    if let Some(p) = &run.publish {
        shares.push(("publish", p.load.cpu));
    }
    if let Some(r) = &run.deliver {
        shares.push(("deliver", r.publish.cpu));
    }
    if let Some(r) = &run.fanout {
        shares.push(("fanout", r.publish.cpu));
    }
    if let Some(l) = &run.latency {
        shares.push(("latency", l.publish.cpu));
    }
    if let Some(i) = &run.inbound {
        shares.push(("inbound", i.load.cpu));
    }
    if let Some(i) = &run.accept {
        shares.push(("accept", i.load.cpu));
    }
    if let Some(l) = &run.list {
        shares.push(("list", l.cpu));
    }
    shares
}
