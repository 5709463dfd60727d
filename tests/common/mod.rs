//! Shared test harness: a real hookrelay on 127.0.0.1 port 0 with its own store (a SQLite
//! directory, or a PostgreSQL schema when `HOOKRELAY_TEST_DATABASE_URL` is set: see
//! `postgres.rs`), a JSON client, and real HTTP receivers that record what they get.
#![allow(dead_code)]

pub mod postgres;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use hookrelay::app::App;
use hookrelay::config::{Config, Settings};
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub const ADMIN_KEY: &str = "hr_test_admin_key_0123456789abcdefghij";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// Settings for tests: loopback 127.0.0.1 allowed, fast polling, a short retry schedule.
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut s = Config::default().settings().expect("default settings");
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.data_dir = dir.to_path_buf();
    s.database_url = postgres::database_url_for(dir);
    s.database_pool_size = 4;
    s.admin_key = Some(ADMIN_KEY.into());
    s.allow_nets = vec!["127.0.0.1/32".parse().unwrap()];
    s.poll_interval = Duration::from_millis(50);
    s.retry_schedule = vec![Duration::from_millis(100), Duration::from_millis(200)];
    s.retry_jitter = 0.0;
    s.default_timeout = Duration::from_secs(5);
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    tweak(&mut settings);
    start(settings, dir).await
}

pub async fn start(settings: Settings, dir: tempfile::TempDir) -> TestApp {
    let app = App::build(settings).await.expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        admin: ADMIN_KEY.to_string(),
        client: reqwest::Client::new(),
        dir,
        stop: Some(stop),
        handle: Some(handle),
    }
}

impl TestApp {
    /// Stops the server gracefully and hands back its data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ran");
        }
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.dir, dir)
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
        let text = resp.text().await.unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, Some(key), None)
            .await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PATCH, path, Some(key), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, path, Some(key), None)
            .await
    }

    /// Creates a tenant and returns its id.
    pub async fn tenant(&self, uid: &str) -> String {
        let (s, t) = self
            .post(
                "/api/v1/tenants",
                &self.admin,
                json!({"uid": uid, "name": uid}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        t["id"].as_str().unwrap().to_string()
    }

    /// A tenant-scoped API key.
    pub async fn tenant_key(&self, tenant: &str) -> String {
        let (s, k) = self
            .post(
                &format!("/api/v1/tenants/{tenant}/api-keys"),
                &self.admin,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        k["key"].as_str().unwrap().to_string()
    }

    pub async fn event_type(&self, name: &str) {
        let (s, b) = self
            .post(
                "/api/v1/event-types",
                &self.admin,
                json!({"name": name, "description": "test", "sample": {"sample": true}}),
            )
            .await;
        assert!(
            s == StatusCode::CREATED || s == StatusCode::CONFLICT,
            "{s} {b}"
        );
    }

    /// Creates an endpoint and returns its JSON.
    pub async fn endpoint(&self, tenant: &str, body: Value) -> Value {
        let (s, ep) = self
            .post(
                &format!("/api/v1/tenants/{tenant}/endpoints"),
                &self.admin,
                body,
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{ep}");
        ep
    }

    pub async fn publish(&self, tenant: &str, event_type: &str, payload: Value) -> Value {
        let (s, ev) = self
            .post(
                &format!("/api/v1/tenants/{tenant}/events"),
                &self.admin,
                json!({"type": event_type, "payload": payload}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{ev}");
        ev
    }

    pub async fn deliveries(&self, tenant: &str, query: &str) -> Vec<Value> {
        let (s, list) = self
            .get(
                &format!("/api/v1/tenants/{tenant}/deliveries?{query}"),
                &self.admin,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{list}");
        list["data"].as_array().unwrap().clone()
    }

    /// Polls a delivery until `pred` holds or `timeout` passes; returns it with its attempts.
    pub async fn wait_delivery(
        &self,
        tenant: &str,
        delivery: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (s, d) = self
                .get(
                    &format!("/api/v1/tenants/{tenant}/deliveries/{delivery}"),
                    &self.admin,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{d}");
            if pred(&d) {
                return d;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on delivery: {d:#}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

/// A real HTTP server on 127.0.0.1 that records every request and answers from a script:
/// the n-th request gets the n-th scripted answer, later ones get the last answer.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<Answer>>>,
    in_flight: Arc<std::sync::atomic::AtomicUsize>,
    /// The most requests it was answering at once.
    pub max_in_flight: Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Answer {
            status,
            headers: vec![],
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

impl Receiver {
    pub async fn start(script: Vec<Answer>) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            addr,
            requests: Arc::default(),
            script: Arc::new(Mutex::new(if script.is_empty() {
                vec![Answer::status(200)]
            } else {
                script
            })),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(receiver.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        receiver
    }

    pub async fn ok() -> Receiver {
        Self::start(vec![Answer::status(200)]).await
    }

    /// Replaces the script: the next request gets the first answer again.
    pub fn answer_from_now(&self, script: Vec<Answer>) {
        let done = self.count();
        let mut s = self.script.lock().unwrap();
        let mut padded = vec![script[0].clone(); done];
        padded.extend(script);
        *s = padded;
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn received(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "receiver got {} of {n} requests in {timeout:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    use std::sync::atomic::Ordering;
    let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    r.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let answer = {
        let mut reqs = r.requests.lock().unwrap();
        reqs.push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        let script = r.script.lock().unwrap();
        script[(reqs.len() - 1).min(script.len() - 1)].clone()
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    r.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut resp = (StatusCode::from_u16(answer.status).unwrap(), "ok").into_response();
    for (k, v) in answer.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

/// The real `hookrelay` binary, started on `port` (0: any free port, read back from its log,
/// so no other test can take the port in between).
pub struct Server {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Server {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        // Only what the test says: nothing inherited from the shell's HOOKRELAY_* variables.
        for (name, _) in std::env::vars() {
            if name.starts_with("HOOKRELAY_") {
                cmd.env_remove(name);
            }
        }
        cmd.arg("serve")
            .env("HOOKRELAY_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKRELAY_DATA_DIR", dir)
            .env("HOOKRELAY_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = postgres::database_url_for(dir) {
            cmd.env("HOOKRELAY_DATABASE_URL", url)
                .env("HOOKRELAY_DATABASE_POOL_SIZE", "8");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the hookrelay binary starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                panic!("hookrelay exited before listening: {:?}", child.try_wait());
            };
            let Ok(entry) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if entry["fields"]["message"] == "hookrelay listening" {
                break entry["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
