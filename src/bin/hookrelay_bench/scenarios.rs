//! The scenarios. Each hookrelay scenario starts its own child on a fresh data directory and
//! kills it at the end; all traffic stays on 127.0.0.1.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use serde::Serialize;

use crate::child::{self, ADMIN_KEY, ChildOptions, EVENT_TYPE, Hookrelay};
use crate::load::{self, LoadOutcome, Percentiles, Target, percentiles};
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
}

/// What the child process did during a scenario.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChildStats {
    /// VmRSS after start and setup, before any load, in MB.
    pub idle_rss_mb: Option<f64>,
    /// VmHWM at the end of the scenario, in MB.
    pub peak_rss_mb: Option<f64>,
    /// CPU used from the start of the load to the end of the scenario (drain included),
    /// in % of one core.
    pub cpu_pct: Option<f64>,
    /// Group commits of the SQLite writer over the child's life, and their mean size
    /// (writes per transaction), from its /metrics.
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

/// Where the machine's CPU went during a phase, in % of one core.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShare {
    /// The hookrelay child.
    pub hookrelay: Option<f64>,
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
}

impl Meter {
    fn now(hr: Option<&Hookrelay>) -> Meter {
        Meter {
            at: Instant::now(),
            machine: machine_busy_seconds(),
            bench: child::cpu_seconds("self"),
            child: hr.and_then(Hookrelay::cpu_seconds),
            disk_written: disk_written_bytes(),
            bench_written: child::written_bytes("self"),
            child_written: hr.and_then(|h| child::written_bytes(&h.pid.to_string())),
        }
    }

    fn since(&self, start: &Meter) -> CpuShare {
        let wall = self.at.duration_since(start.at).as_secs_f64().max(1e-9);
        let delta = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
        let pct = |d: Option<f64>| d.map(|d| d / wall * 100.0);
        let machine = delta(self.machine, start.machine);
        let bench = delta(self.bench, start.bench);
        let child = delta(self.child, start.child);
        let other = machine
            .zip(bench)
            .map(|(m, b)| (m - b - child.unwrap_or(0.0)).max(0.0));
        let written = delta(self.disk_written, start.disk_written);
        let ours = delta(self.bench_written, start.bench_written).unwrap_or(0.0)
            + delta(self.child_written, start.child_written).unwrap_or(0.0);
        CpuShare {
            hookrelay: pct(child),
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
        let m0 = Meter::now(None);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let other = Meter::now(None).since(&m0).other?;
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

impl Ctx {
    fn child_options(&self, delivery_enabled: bool) -> ChildOptions {
        ChildOptions {
            data_root: self.data_root.clone(),
            delivery_enabled,
            delivery_concurrency: self.delivery_concurrency,
            rust_log: self.rust_log.clone(),
        }
    }

    fn publish_target(&self, hr: &Hookrelay, url: &str) -> anyhow::Result<Arc<Target>> {
        Ok(Arc::new(Target::fixed(
            url.parse()?,
            format!("{}/health", hr.base()).parse()?,
            Some(HeaderValue::from_str(&format!("Bearer {ADMIN_KEY}"))?),
            self.body.clone(),
            StatusCode::ACCEPTED,
        )))
    }

    /// Starts a child, sets it up with `endpoints` endpoints and notes its idle RSS.
    async fn start_child(
        &self,
        delivery_enabled: bool,
        endpoints: usize,
    ) -> anyhow::Result<(Hookrelay, String, ChildStats)> {
        let hr = Hookrelay::start(&self.hookrelay, &self.child_options(delivery_enabled)).await?;
        let url = hr.set_up(self.sink.addr, endpoints).await?;
        // Let start-up work settle before calling the process idle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stats = ChildStats {
            idle_rss_mb: hr.vm_mb("VmRSS"),
            ..ChildStats::default()
        };
        Ok((hr, url, stats))
    }

    async fn finish_child(&self, hr: Hookrelay, stats: &mut ChildStats) {
        stats.peak_rss_mb = hr.vm_mb("VmHWM");
        if let Some(text) = hr.metrics().await {
            let count = child::metric_sum(&text, "hookrelay_store_group_commit_size_count");
            let sum = child::metric_sum(&text, "hookrelay_store_group_commit_size_sum");
            stats.group_commits = count;
            stats.group_commit_mean_size = sum.zip(count).map(|(s, c)| s / c.max(1.0));
            stats.retries = child::metric_sum(&text, "webhook_retries_total");
            stats.deliveries_total = child::metric_sum(&text, "webhook_deliveries_total");
        }
        let (n, lines) = hr.log_problems(5);
        stats.log_problem_lines = n;
        stats.log_problems = lines;
        hr.stop().await;
    }

    /// 1. The sink alone under the same load tool: the machine's HTTP baseline.
    pub async fn ceiling(&self) -> anyhow::Result<CeilingResult> {
        self.sink.state.reset(0);
        let target = Arc::new(Target::fixed(
            format!("http://{}/ceiling", self.sink.addr).parse()?,
            format!("http://{}/warm", self.sink.addr).parse()?,
            Some(HeaderValue::from_str(&format!("Bearer {ADMIN_KEY}"))?),
            self.body.clone(),
            StatusCode::OK,
        ));
        let m0 = Meter::now(None);
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let cpu = Meter::now(None).since(&m0);
        Ok(CeilingResult {
            load: LoadStats::of(&out, cpu),
        })
    }

    /// 2. Durable publish with the delivery workers off.
    pub async fn publish(&self) -> anyhow::Result<PublishResult> {
        let (hr, url, mut child) = self.start_child(false, 1).await?;
        let target = self.publish_target(&hr, &url)?;
        let m0 = Meter::now(Some(&hr));
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let cpu = Meter::now(Some(&hr)).since(&m0);
        child.cpu_pct = cpu.hookrelay;
        self.finish_child(hr, &mut child).await;
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
        let m0 = Meter::now(Some(&hr));
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let m1 = Meter::now(Some(&hr));
        let publish_end = m1.at;
        let expected = out.ok * endpoints as u64;
        let drained = self.drain(expected).await;
        child.cpu_pct = Meter::now(Some(&hr)).since(&m0).hookrelay;
        let duplicates = self
            .sink
            .state
            .duplicates
            .load(std::sync::atomic::Ordering::Relaxed);
        let seen = self.sink.state.take();
        let start = out.start.context("load run has a start")?;
        let last = seen.values().copied().max().unwrap_or(start);
        let window = last.saturating_duration_since(start);
        self.finish_child(hr, &mut child).await;
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
        let m0 = Meter::now(Some(&hr));
        let out = load::open_loop(target, self.clients, self.rate, self.duration, true).await?;
        let cpu = Meter::now(Some(&hr)).since(&m0);
        self.drain(out.ids.len() as u64).await;
        child.cpu_pct = cpu.hookrelay;
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
        self.finish_child(hr, &mut child).await;
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
    /// afterwards every accepted one must reach the sink.
    pub async fn inbound(&self) -> anyhow::Result<InboundResult> {
        let hr = Hookrelay::start(&self.hookrelay, &self.child_options(true)).await?;
        let url = hr.set_up_inbound(self.sink.addr, INBOUND_SECRET).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut child = ChildStats {
            idle_rss_mb: hr.vm_mb("VmRSS"),
            ..ChildStats::default()
        };
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
            uri: url.parse()?,
            warm_uri: format!("{}/health", hr.base()).parse()?,
            auth: None,
            body: Bytes::new(),
            expect: StatusCode::OK,
            expect_in_body: Some(br#""outcome":"accepted""#),
            make: Some(make),
        });
        self.sink.state.reset(self.sink_capacity(25_000.0, 1));
        let m0 = Meter::now(Some(&hr));
        let out = load::closed_loop(target, self.clients, self.duration).await?;
        let m1 = Meter::now(Some(&hr));
        let drained = self.drain(out.ids.len() as u64).await;
        child.cpu_pct = Meter::now(Some(&hr)).since(&m0).hookrelay;
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
        self.finish_child(hr, &mut child).await;
        Ok(InboundResult {
            load: LoadStats::of(&out, m1.since(&m0)),
            delivered,
            undelivered: out.ids.len() as u64 - delivered,
            unexpected: seen.len() as u64 - delivered,
            duplicates,
            drained,
            drain_s: last.saturating_duration_since(m1.at).as_secs_f64(),
            end_to_end: percentiles(e2e),
            sign_us,
            child,
        })
    }

    /// 6 alone: start, set up, note idle RSS, stop.
    pub async fn idle(&self) -> anyhow::Result<ChildStats> {
        let (hr, _, mut child) = self.start_child(true, 1).await?;
        self.finish_child(hr, &mut child).await;
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
