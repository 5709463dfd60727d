//! The load generator: N clients, each a pooled hyper-util client that keeps one keep-alive
//! connection, either closed-loop (send, wait, send again) or open-loop at a fixed offered
//! rate (request i is due at start + i/rate, and its latency counts from that moment, so a
//! slow answer cannot hide the requests that should have been sent meanwhile).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{Barrier, watch};
use tokio::task::JoinSet;

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A keep-alive client that keeps at most one idle connection: used by one sequential
/// client, it holds exactly one connection.
pub fn new_client() -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .pool_idle_timeout(Duration::from_secs(300))
        .build(http)
}

/// One request made for a client: its id (kept for each answer that is as expected), extra
/// headers and body.
pub struct Made {
    pub id: Box<str>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// Makes request `n` of client `k` (each pair once): unique ids, per-request signatures.
pub type MakeRequest = dyn Fn(usize, u64) -> Made + Send + Sync;

/// What every request of a run looks like.
pub struct Target {
    /// Where to send: client k sends all its requests to `uris[k % uris.len()]` (several
    /// instances of hookrelay behind a connection-level balancer).
    pub uris: Vec<Uri>,
    /// Fetched (GET) once per client before the clock starts, to open its connection: client
    /// k fetches `warm_uris[k % warm_uris.len()]`, so give it one per entry of `uris`.
    pub warm_uris: Vec<Uri>,
    pub auth: Option<HeaderValue>,
    pub body: Bytes,
    pub expect: StatusCode,
    /// An answer counts only when its body also contains this (e.g. `"outcome":"accepted"`).
    pub expect_in_body: Option<&'static [u8]>,
    /// Builds each request's headers and body instead of `body`; the ids of the requests
    /// answered as expected are kept in `LoadOutcome::ids`.
    pub make: Option<Arc<MakeRequest>>,
}

impl Target {
    /// A target sending `body` as is (to each of `uris`, client by client).
    pub fn fixed(
        uris: Vec<Uri>,
        warm_uris: Vec<Uri>,
        auth: Option<HeaderValue>,
        body: Bytes,
        expect: StatusCode,
    ) -> Target {
        Target {
            uris,
            warm_uris,
            auth,
            body,
            expect,
            expect_in_body: None,
            make: None,
        }
    }

    /// Where client `k` sends its requests.
    pub fn uri(&self, k: usize) -> &Uri {
        &self.uris[k % self.uris.len()]
    }

    /// What client `k` fetches to open its connection.
    pub fn warm_uri(&self, k: usize) -> &Uri {
        &self.warm_uris[k % self.warm_uris.len()]
    }
}

#[derive(Default)]
pub struct LoadOutcome {
    pub ok: u64,
    pub transport_errors: u64,
    pub bad_status: BTreeMap<u16, u64>,
    /// Answers with the expected status whose body lacked `Target::expect_in_body`.
    pub wrong_answers: u64,
    pub first_error: Option<String>,
    /// Per successful request: microseconds from send (closed loop) or from the scheduled
    /// time (open loop) to the complete answer.
    pub latencies_us: Vec<u64>,
    /// Open loop with ids wanted: (event id from the answer, scheduled send time, API
    /// latency in microseconds). With `Target::make`: the made request's id, its send time
    /// and latency, for each request answered as expected.
    pub ids: Vec<(Box<str>, Instant, u64)>,
    /// Requests the open loop should have sent (rate × duration).
    pub offered: u64,
    pub start: Option<Instant>,
    pub elapsed: Duration,
}

impl LoadOutcome {
    pub fn failed(&self) -> u64 {
        self.transport_errors + self.wrong_answers + self.bad_status.values().sum::<u64>()
    }

    pub fn per_sec(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn merge(&mut self, other: LoadOutcome) {
        self.ok += other.ok;
        self.transport_errors += other.transport_errors;
        self.wrong_answers += other.wrong_answers;
        for (k, v) in other.bad_status {
            *self.bad_status.entry(k).or_default() += v;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.latencies_us.extend(other.latencies_us);
        self.ids.extend(other.ids);
    }

    pub fn error_summary(&self) -> Option<String> {
        if self.failed() == 0 {
            return None;
        }
        let statuses: Vec<String> = self
            .bad_status
            .iter()
            .map(|(s, n)| format!("{n}×{s}"))
            .collect();
        let wrong = if self.wrong_answers > 0 {
            format!(", {} unexpected answers", self.wrong_answers)
        } else {
            String::new()
        };
        Some(format!(
            "{} failed ({} transport errors{}{}{wrong}); first: {}",
            self.failed(),
            self.transport_errors,
            if statuses.is_empty() { "" } else { ", " },
            statuses.join(", "),
            self.first_error.as_deref().unwrap_or("?")
        ))
    }
}

async fn send(
    client: &HttpClient,
    target: &Target,
    uri: &Uri,
    made: Option<Made>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let mut req = Request::post(uri.clone()).header(CONTENT_TYPE, "application/json");
    if let Some(auth) = &target.auth {
        req = req.header(AUTHORIZATION, auth.clone());
    }
    let body = match made {
        Some(made) => {
            for (name, value) in made.headers {
                req = req.header(name, value);
            }
            made.body
        }
        None => target.body.clone(),
    };
    let resp = client.request(req.body(Full::new(body))?).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn warm_up(client: &HttpClient, uri: &Uri) -> anyhow::Result<()> {
    let req = Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .body(Full::new(Bytes::new()))?;
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("warm-up GET {uri}"))?;
    resp.into_body().collect().await?;
    Ok(())
}

fn micros(d: Duration) -> u64 {
    d.as_micros().min(u64::MAX as u128) as u64
}

/// The event id in a publish answer (`{"id":"evt_...",...}`), without a full JSON parse.
fn event_id(body: &[u8]) -> Option<Box<str>> {
    const KEY: &[u8] = b"\"id\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len])
        .ok()
        .map(Into::into)
}

enum Mode {
    Closed {
        duration: Duration,
    },
    Open {
        rate: f64,
        total: u64,
        want_ids: bool,
    },
}

/// `clients` clients sending back to back for `duration`.
pub async fn closed_loop(
    target: Arc<Target>,
    clients: usize,
    duration: Duration,
) -> anyhow::Result<LoadOutcome> {
    run(target, clients, Mode::Closed { duration }).await
}

/// `rate` requests/s for `duration`, spread over `clients` clients (client k sends requests
/// k, k+clients, k+2·clients, ...). With `want_ids`, keeps each answer's event id.
pub async fn open_loop(
    target: Arc<Target>,
    clients: usize,
    rate: f64,
    duration: Duration,
    want_ids: bool,
) -> anyhow::Result<LoadOutcome> {
    let total = (rate * duration.as_secs_f64()).round().max(1.0) as u64;
    let mut out = run(
        target,
        clients,
        Mode::Open {
            rate,
            total,
            want_ids,
        },
    )
    .await?;
    out.offered = total;
    Ok(out)
}

async fn run(target: Arc<Target>, clients: usize, mode: Mode) -> anyhow::Result<LoadOutcome> {
    let clients = clients.max(1);
    if target.uris.is_empty() || target.warm_uris.is_empty() {
        anyhow::bail!("a load target needs at least one URI");
    }
    let mode = Arc::new(mode);
    // Every client opens its connection first; the clock starts once all have.
    let barrier = Arc::new(Barrier::new(clients + 1));
    let (start_tx, start_rx) = watch::channel(None::<Instant>);
    let mut tasks = JoinSet::new();
    for k in 0..clients {
        let target = target.clone();
        let mode = mode.clone();
        let barrier = barrier.clone();
        let mut start_rx = start_rx.clone();
        tasks.spawn(async move {
            let client = new_client();
            let uri = target.uri(k).clone();
            let warm = warm_up(&client, target.warm_uri(k)).await;
            barrier.wait().await;
            warm?;
            let start = start_rx
                .wait_for(Option::is_some)
                .await
                .map(|s| s.expect("checked"))
                .context("start signal lost")?;
            let mut out = LoadOutcome::default();
            match &*mode {
                Mode::Closed { duration } => {
                    let deadline = start + *duration;
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let made = target.make.as_ref().map(|make| make(k, n));
                        n += 1;
                        let id = made.as_ref().map(|m| m.id.clone());
                        let t0 = Instant::now();
                        let result = send(&client, &target, &uri, made).await;
                        note(&mut out, result, &target, t0, Sent::from(id)).await;
                    }
                }
                Mode::Open {
                    rate,
                    total,
                    want_ids,
                } => {
                    let mut i = k as u64;
                    while i < *total {
                        let due = start + Duration::from_secs_f64(i as f64 / rate);
                        tokio::time::sleep_until(due.into()).await;
                        let made = target.make.as_ref().map(|make| make(k, i));
                        let sent = match made.as_ref() {
                            Some(m) => Sent::Id(m.id.clone()),
                            None if *want_ids => Sent::FromAnswer,
                            None => Sent::Untracked,
                        };
                        let result = send(&client, &target, &uri, made).await;
                        note(&mut out, result, &target, due, sent).await;
                        i += clients as u64;
                    }
                }
            }
            anyhow::Ok((out, Instant::now()))
        });
    }
    barrier.wait().await;
    // A little slack so the open loop's first requests are not already late.
    let start = Instant::now() + Duration::from_millis(2);
    let _ = start_tx.send(Some(start));
    let mut total = LoadOutcome {
        start: Some(start),
        ..LoadOutcome::default()
    };
    let mut end = start;
    while let Some(joined) = tasks.join_next().await {
        let (out, finished) = joined.context("load client panicked")??;
        end = end.max(finished);
        total.merge(out);
    }
    total.elapsed = end.saturating_duration_since(start);
    Ok(total)
}

/// Which id to keep for a request answered as expected.
enum Sent {
    Untracked,
    /// The event id in the answer.
    FromAnswer,
    /// The id of the made request.
    Id(Box<str>),
}

impl From<Option<Box<str>>> for Sent {
    fn from(id: Option<Box<str>>) -> Sent {
        id.map_or(Sent::Untracked, Sent::Id)
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

async fn note(
    out: &mut LoadOutcome,
    result: anyhow::Result<(StatusCode, Bytes)>,
    target: &Target,
    since: Instant,
    sent: Sent,
) {
    match result {
        Ok((status, body))
            if status == target.expect
                && target
                    .expect_in_body
                    .is_none_or(|want| contains(&body, want)) =>
        {
            let took = micros(since.elapsed());
            out.ok += 1;
            out.latencies_us.push(took);
            match sent {
                Sent::Untracked => {}
                Sent::Id(id) => out.ids.push((id, since, took)),
                Sent::FromAnswer => match event_id(&body) {
                    Some(id) => out.ids.push((id, since, took)),
                    None => {
                        out.first_error
                            .get_or_insert_with(|| "answer without an event id".into());
                    }
                },
            }
        }
        Ok((status, body)) if status == target.expect => {
            out.wrong_answers += 1;
            out.first_error.get_or_insert_with(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                format!("HTTP {status} but not the expected answer: {text}")
            });
        }
        Ok((status, body)) => {
            *out.bad_status.entry(status.as_u16()).or_default() += 1;
            out.first_error.get_or_insert_with(|| {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                format!("HTTP {status}: {text}")
            });
        }
        Err(e) => {
            out.transport_errors += 1;
            out.first_error.get_or_insert_with(|| format!("{e:#}"));
            // Do not spin on a refused connection.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Percentiles of latencies in microseconds, in milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    pub count: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn percentiles(mut us: Vec<u64>) -> Option<Percentiles> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * us.len() as f64).ceil() as usize).clamp(1, us.len());
        us[rank - 1] as f64 / 1000.0
    };
    Some(Percentiles {
        count: us.len(),
        p50_ms: at(0.50),
        p90_ms: at(0.90),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: us[us.len() - 1] as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_event_id() {
        let body = br#"{"id":"evt_01ABC","tenant_id":"tn_1","type":"x"}"#;
        assert_eq!(event_id(body).as_deref(), Some("evt_01ABC"));
        assert_eq!(event_id(b"{}"), None);
    }

    #[test]
    fn percentiles_by_rank() {
        let p = percentiles((1..=1000).map(|v| v * 1000).collect()).unwrap();
        assert_eq!(p.p50_ms, 500.0);
        assert_eq!(p.p99_ms, 990.0);
        assert_eq!(p.p999_ms, 999.0);
        assert_eq!(p.max_ms, 1000.0);
    }
}
