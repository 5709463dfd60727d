//! Bad input answers the error shape of SPEC §8 with a fitting status and a stable
//! `error.code`, and nothing rejected is stored. Each test is a table of
//! (method, path, body, status, code) rows; `check` is the one loop that drives them.
//! The tables skip rustfmt so that each row stays on one line.

mod common;

use std::time::Duration;

use common::{Receiver, TestApp, spawn_app, spawn_app_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ET: &str = "invoice.paid";

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

/// A request body.
#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// Sent as is, with this content type.
    Raw(&'static str, Vec<u8>),
}

const NONE: Body = Body::None;

fn j(v: Value) -> Body {
    Body::Json(v)
}

fn raw_json(text: &str) -> Body {
    Body::Raw("application/json", text.as_bytes().to_vec())
}

/// One bad request and the answer it must get.
#[derive(Debug, Clone)]
struct Bad {
    method: Method,
    path: String,
    body: Body,
    status: u16,
    code: &'static str,
}

fn bad(
    method: Method,
    path: impl Into<String>,
    body: Body,
    status: u16,
    code: &'static str,
) -> Bad {
    let path = path.into();
    Bad {
        method,
        path,
        body,
        status,
        code,
    }
}

async fn send(app: &TestApp, key: &str, c: &Bad) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(c.method.clone(), format!("{}{}", app.base, c.path))
        .bearer_auth(key);
    match &c.body {
        Body::None => {}
        Body::Json(v) => req = req.json(v),
        Body::Raw(ct, bytes) => req = req.header("content-type", *ct).body(bytes.clone()),
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The one loop: every case must answer its status, its `error.code` and a non-empty
/// `error.message`. Reports every mismatch at once.
async fn check(app: &TestApp, key: &str, cases: &[Bad]) {
    let mut failures = Vec::new();
    for c in cases {
        let (status, body) = send(app, key, c).await;
        let sent = match &c.body {
            Body::None => String::new(),
            Body::Json(v) => v.to_string(),
            Body::Raw(ct, b) => format!("[{ct}] {}", String::from_utf8_lossy(b)),
        };
        let what = format!("{} {} {}", c.method, c.path, truncate(&sent, 120));
        if status.as_u16() != c.status || body["error"]["code"] != c.code {
            failures.push(format!(
                "{what}\n    expected {} {}, got {status} {body}",
                c.status, c.code
            ));
        }
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if message.trim().is_empty() {
            failures.push(format!("{what}\n    no error.message in {body}"));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn truncate(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// An app with one tenant (`acme`), the event type `ET` and an endpoint subscribed to `*`.
struct World {
    app: TestApp,
    tenant: String,
    endpoint: String,
    receiver: Receiver,
}

impl World {
    fn endpoints(&self) -> String {
        format!("/api/v1/tenants/{}/endpoints", self.tenant)
    }

    fn endpoint(&self) -> String {
        format!("{}/{}", self.endpoints(), self.endpoint)
    }

    fn events(&self) -> String {
        format!("/api/v1/tenants/{}/events", self.tenant)
    }
}

async fn world_with(app: TestApp) -> World {
    app.event_type(ET).await;
    let tenant = app.tenant("acme").await;
    let receiver = Receiver::ok().await;
    let body = json!({"url": receiver.url(), "event_types": ["*"]});
    let ep = app.endpoint(&tenant, body).await;
    World {
        endpoint: ep["id"].as_str().unwrap().to_string(),
        app,
        tenant,
        receiver,
    }
}

async fn world() -> World {
    world_with(spawn_app().await).await
}

/// The JSON at `path` as the admin key sees it.
async fn read(app: &TestApp, path: &str) -> Value {
    let (s, body) = app.get(path, &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{path}: {body}");
    body
}

/// A valid endpoint body with `field` set to `value`.
fn endpoint_with(url: &str, field: &str, value: Value) -> Value {
    let mut body = json!({"url": url, "event_types": [ET]});
    body[field] = value;
    body
}

#[tokio::test]
async fn broken_json_answers_400_invalid_json() {
    let w = world().await;
    let (endpoints, endpoint, events) = (w.endpoints(), w.endpoint(), w.events());
    // Some of these fail a field check before the syntax error: still broken JSON, still 400.
    let broken = [
        "{",
        "{\"uid\": ",
        "{\"uid\": 5,",
        "{\"uid\": \"a\",}",
        "{'uid': 'a'}",
        "not json",
        "[1, 2",
        "{\"url\": \"x\"} trailing",
    ];
    let routes = [
        (POST, "/api/v1/tenants".to_string()),
        (POST, "/api/v1/event-types".to_string()),
        (POST, endpoints),
        (PATCH, endpoint.clone()),
        (POST, format!("{endpoint}/recover")),
        (POST, format!("{endpoint}/secret/rotate")),
        (POST, events),
    ];
    let mut cases = Vec::new();
    for (method, path) in &routes {
        for text in broken {
            cases.push(bad(
                method.clone(),
                path,
                raw_json(text),
                400,
                "invalid_json",
            ));
        }
    }
    check(&w.app, &w.app.admin, &cases).await;
}

#[tokio::test]
async fn a_body_of_the_wrong_shape_answers_422_invalid_body() {
    let w = world().await;
    let (t, url) = (&w.tenant, w.receiver.url());
    let (tenants, types) = ("/api/v1/tenants", "/api/v1/event-types");
    let (endpoints, endpoint, events) = (w.endpoints(), w.endpoint(), w.events());
    let (recover, rotate) = (
        format!("{endpoint}/recover"),
        format!("{endpoint}/secret/rotate"),
    );
    let e = |field: &str, value: Value| j(endpoint_with(&url, field, value));
    #[rustfmt::skip]
    let cases = vec![
        // Wrong field type.
        bad(POST, tenants, j(json!({"uid": 5, "name": "x"})), 422, "invalid_body"),
        bad(POST, tenants, j(json!(["acme2", "x"])), 422, "invalid_body"),
        bad(POST, tenants, j(json!("acme2")), 422, "invalid_body"),
        bad(POST, &endpoints, j(json!({"url": url, "event_types": ET})), 422, "invalid_body"),
        bad(POST, &endpoints, e("timeout_ms", json!("5s")), 422, "invalid_body"),
        bad(POST, &endpoints, e("timeout_ms", json!(-1)), 422, "invalid_body"),
        bad(POST, &endpoints, e("headers", json!({"x-a": 1})), 422, "invalid_body"),
        bad(POST, &endpoints, e("metadata", json!([1])), 422, "invalid_body"),
        bad(POST, &endpoints, e("disabled", json!("yes")), 422, "invalid_body"),
        bad(PATCH, &endpoint, j(json!({"rate_limit_per_s": "fast"})), 422, "invalid_body"),
        bad(POST, &events, j(json!({"type": 1, "payload": {}})), 422, "invalid_body"),
        bad(POST, &recover, j(json!({"since": "yesterday"})), 422, "invalid_body"),
        bad(POST, types, j(json!({"name": ["a"]})), 422, "invalid_body"),
        // Missing required field.
        bad(POST, tenants, j(json!({"name": "x"})), 422, "invalid_body"),
        bad(POST, tenants, j(json!({})), 422, "invalid_body"),
        bad(POST, &endpoints, j(json!({"event_types": [ET]})), 422, "invalid_body"),
        bad(POST, &endpoints, j(json!({"url": url})), 422, "invalid_body"),
        bad(POST, &events, j(json!({"payload": {}})), 422, "invalid_body"),
        bad(POST, &events, j(json!({"type": ET})), 422, "invalid_body"),
        bad(POST, &recover, j(json!({})), 422, "invalid_body"),
        bad(POST, types, j(json!({"description": "x"})), 422, "invalid_body"),
        // Unknown field: bodies deny unknown fields, so a typo is never silently dropped.
        bad(POST, tenants, j(json!({"uid": "acme2", "name": "x", "plan": "pro"})), 422, "invalid_body"),
        bad(POST, &endpoints, e("eventTypes", json!([ET])), 422, "invalid_body"),
        bad(POST, &endpoints, e("timeout", json!(1000)), 422, "invalid_body"),
        bad(PATCH, &endpoint, j(json!({"secret": "whsec_x"})), 422, "invalid_body"),
        bad(POST, &events, j(json!({"type": ET, "payload": {}, "idempotency_key": "k"})), 422, "invalid_body"),
        bad(POST, types, j(json!({"name": "a.b", "title": "x"})), 422, "invalid_body"),
        bad(PATCH, format!("{types}/{ET}"), j(json!({"name": "b.c"})), 422, "invalid_body"),
        bad(PATCH, format!("{tenants}/{t}"), j(json!({"id": "tn_x"})), 422, "invalid_body"),
        bad(POST, &rotate, j(json!({"grace": 5})), 422, "invalid_body"),
        bad(POST, format!("{endpoint}/test"), j(json!({"type": ET})), 422, "invalid_body"),
        bad(POST, format!("{tenants}/{t}/api-keys"), j(json!({"scope": "all"})), 422, "invalid_body"),
        bad(POST, format!("{events}/x/resend"), j(json!({"endpoint_id": "x"})), 422, "invalid_body"),
    ];
    let watched = [
        tenants.to_string(),
        endpoints.clone(),
        events.clone(),
        endpoint.clone(),
    ];
    let mut before = Vec::new();
    for path in &watched {
        before.push(read(&w.app, path).await);
    }
    check(&w.app, &w.app.admin, &cases).await;
    for (path, before) in watched.iter().zip(before) {
        assert_eq!(read(&w.app, path).await, before, "{path} changed");
    }
}

#[tokio::test]
async fn endpoint_urls_that_cannot_or_may_not_be_reached_are_refused() {
    let w = world().await;
    let (endpoints, endpoint) = (w.endpoints(), w.endpoint());
    #[rustfmt::skip]
    let urls = [
        ("not a url", "invalid_url"),
        ("", "invalid_url"),
        ("example.com/hook", "invalid_url"),
        ("/relative/hook", "invalid_url"),
        ("ftp://example.com/hook", "invalid_url"),
        ("file:///etc/passwd", "invalid_url"),
        ("javascript:alert(1)", "invalid_url"),
        ("https://user:pw@example.com/hook", "invalid_url"),
        ("https://user@example.com/hook", "invalid_url"),
        ("https://example.com/hook#frag", "invalid_url"),
        // Literal addresses outside the harness allow-list (127.0.0.1/32).
        ("http://127.0.0.2:9/hook", "url_blocked"),
        ("http://2130706434/hook", "url_blocked"), // 127.0.0.2 as one number
        ("http://10.0.0.1/hook", "url_blocked"),
        ("http://192.168.1.1/hook", "url_blocked"),
        ("http://169.254.169.254/latest/meta-data", "url_blocked"),
        ("http://0.0.0.0:80/", "url_blocked"),
        ("http://[::1]:80/", "url_blocked"),
        ("http://[::ffff:10.0.0.1]/", "url_blocked"),
        ("http://[fe80::1]/", "url_blocked"),
    ];
    let mut cases = Vec::new();
    for (url, code) in urls {
        let create = json!({"url": url, "event_types": [ET]});
        cases.push(bad(POST, &endpoints, j(create), 422, code));
        cases.push(bad(PATCH, &endpoint, j(json!({"url": url})), 422, code));
    }
    let (list_before, one_before) = (
        read(&w.app, &endpoints).await,
        read(&w.app, &endpoint).await,
    );
    check(&w.app, &w.app.admin, &cases).await;
    assert_eq!(
        read(&w.app, &endpoints).await,
        list_before,
        "a refused URL was stored"
    );
    assert_eq!(
        read(&w.app, &endpoint).await,
        one_before,
        "a refused URL was stored"
    );

    // Control: the harness allow-lists 127.0.0.1/32, and a public name is accepted.
    for url in ["http://127.0.0.1:9/hook", "https://example.com/hook?x=1"] {
        let body = json!({"url": url, "event_types": [ET]});
        let (s, ep) = w.app.post(&endpoints, &w.app.admin, body).await;
        assert_eq!(s, StatusCode::CREATED, "{url}: {ep}");
    }
}

#[tokio::test]
async fn https_only_mode_refuses_plain_http_urls() {
    let app = spawn_app_with(|s| s.https_only = true).await;
    app.event_type(ET).await;
    let tenant = app.tenant("acme").await;
    let ep = json!({"url": "https://example.com/a", "event_types": [ET]});
    let ep = app.endpoint(&tenant, ep).await;
    let endpoints = format!("/api/v1/tenants/{tenant}/endpoints");
    let endpoint = format!("{endpoints}/{}", ep["id"].as_str().unwrap());
    let url = "http://example.com/hook";
    #[rustfmt::skip]
    let cases = vec![
        bad(POST, &endpoints, j(json!({"url": url, "event_types": [ET]})), 422, "https_required"),
        bad(POST, &endpoints, j(json!({"url": "HTTP://example.com/", "event_types": [ET]})), 422, "https_required"),
        bad(PATCH, &endpoint, j(json!({"url": url})), 422, "https_required"),
        bad(POST, &endpoints, j(json!({"url": "ftp://example.com/", "event_types": [ET]})), 422, "invalid_url"),
    ];
    let (list_before, one_before) = (read(&app, &endpoints).await, read(&app, &endpoint).await);
    check(&app, &app.admin, &cases).await;
    assert_eq!(read(&app, &endpoints).await, list_before);
    assert_eq!(read(&app, &endpoint).await, one_before);
    // Control: https is accepted.
    let body = json!({"url": "https://example.com/hook", "event_types": [ET]});
    let (s, ep) = app.post(&endpoints, &app.admin, body).await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
}

#[tokio::test]
async fn event_type_filters_must_be_well_formed_and_registered() {
    let w = world().await;
    let (endpoints, endpoint, url) = (w.endpoints(), w.endpoint(), w.receiver.url());
    #[rustfmt::skip]
    let filters = [
        (json!(["no.such.type"]), "unknown_event_type"),
        (json!([ET, "invoice.pade"]), "unknown_event_type"),
        (json!([]), "invalid_event_type_filter"),
        (json!(["bad..name"]), "invalid_event_type_filter"),
        (json!([".leading"]), "invalid_event_type_filter"),
        (json!(["*.paid"]), "invalid_event_type_filter"),
        (json!(["invoice.*.paid"]), "invalid_event_type_filter"),
        (json!(["invoice*"]), "invalid_event_type_filter"),
        (json!(["**"]), "invalid_event_type_filter"),
        (json!(["has space"]), "invalid_event_type_filter"),
        (json!([""]), "invalid_event_type_filter"),
        (json!(["x".repeat(200)]), "invalid_event_type_filter"),
    ];
    let mut cases = Vec::new();
    for (filter, code) in filters {
        let create = json!({"url": url, "event_types": filter});
        cases.push(bad(POST, &endpoints, j(create), 422, code));
        let patch = json!({"event_types": filter});
        cases.push(bad(PATCH, &endpoint, j(patch), 422, code));
    }
    let (list_before, one_before) = (
        read(&w.app, &endpoints).await,
        read(&w.app, &endpoint).await,
    );
    check(&w.app, &w.app.admin, &cases).await;
    assert_eq!(read(&w.app, &endpoints).await, list_before);
    assert_eq!(read(&w.app, &endpoint).await, one_before);
    // Control: a wildcard needs no registered type, and `*` matches all.
    for filter in [
        json!(["nothing.here.*"]),
        json!(["*"]),
        json!([ET, "invoice.*"]),
    ] {
        let body = json!({"url": url, "event_types": filter});
        let (s, ep) = w.app.post(&endpoints, &w.app.admin, body).await;
        assert_eq!(s, StatusCode::CREATED, "{filter}: {ep}");
    }
}

#[tokio::test]
async fn rejected_publishes_store_nothing_and_accepted_ones_are_kept() {
    let w = world().await;
    let app = &w.app;
    app.event_type("invoice.voided").await;
    let (s, body) = app
        .delete("/api/v1/event-types/invoice.voided", &app.admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");

    let events = w.events();
    let deliveries = format!("/api/v1/tenants/{}/deliveries", w.tenant);
    let text = |ct| Body::Raw(ct, br#"{"type": "invoice.paid", "payload": {}}"#.to_vec());
    #[rustfmt::skip]
    let cases = vec![
        bad(POST, &events, j(json!({"type": "no.such.type", "payload": {}})), 422, "unknown_event_type"),
        bad(POST, &events, j(json!({"type": "invoice.*", "payload": {}})), 422, "unknown_event_type"),
        bad(POST, &events, j(json!({"type": "", "payload": {}})), 422, "unknown_event_type"),
        bad(POST, &events, j(json!({"type": "invoice.voided", "payload": {"n": 1}})), 422, "event_type_archived"),
        bad(POST, &events, j(json!({"type": ET, "payload": [1, 2]})), 422, "invalid_payload"),
        bad(POST, &events, j(json!({"type": ET, "payload": "text"})), 422, "invalid_payload"),
        bad(POST, &events, j(json!({"type": ET, "payload": 42})), 422, "invalid_payload"),
        bad(POST, &events, j(json!({"type": ET, "payload": null})), 422, "invalid_payload"),
        bad(POST, &events, j(json!({"type": ET, "payload": true})), 422, "invalid_payload"),
        bad(POST, &events, j(json!({"type": ET})), 422, "invalid_body"),
        bad(POST, &events, raw_json(r#"{"type": "invoice.paid", "payload": {"a": }}"#), 400, "invalid_json"),
        bad(POST, &events, text("text/plain"), 415, "unsupported_media_type"),
    ];
    let events_before = read(app, &events).await;
    let deliveries_before = read(app, &deliveries).await;
    check(app, &app.admin, &cases).await;
    assert_eq!(
        read(app, &events).await,
        events_before,
        "a rejected event was stored"
    );
    let after = read(app, &deliveries).await;
    assert_eq!(after, deliveries_before, "a rejected event made deliveries");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.receiver.count(), 0, "a rejected event was delivered");

    // Nothing accepted is lost: a good publish right after is stored, listed and delivered.
    let ev = app.publish(&w.tenant, ET, json!({"amount": 10})).await;
    let got = read(app, &format!("{events}/{}", ev["id"].as_str().unwrap())).await;
    assert_eq!(got["payload"], json!({"amount": 10}));
    let list = read(app, &events).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    w.receiver.wait_for(1, Duration::from_secs(10)).await;
}

#[tokio::test]
async fn endpoint_settings_out_of_range_are_refused() {
    let w = world().await;
    let (endpoints, endpoint, url) = (w.endpoints(), w.endpoint(), w.receiver.url());
    let rotate = format!("{endpoint}/secret/rotate");
    let e = |field: &str, value: Value| j(endpoint_with(&url, field, value));
    let p = |field: &str, value: Value| {
        let mut body = json!({});
        body[field] = value;
        j(body)
    };
    let short_key = "whsec_AAAAAAAAAAA="; // 8 bytes
    #[rustfmt::skip]
    let cases = vec![
        bad(POST, &endpoints, e("secret", json!("not-a-secret")), 422, "invalid_secret"),
        bad(POST, &endpoints, e("secret", json!("whsec_")), 422, "invalid_secret"),
        bad(POST, &endpoints, e("secret", json!("whsec_!!!not base64!!!")), 422, "invalid_secret"),
        bad(POST, &endpoints, e("secret", json!(short_key)), 422, "invalid_secret"),
        bad(POST, &endpoints, e("secret", json!("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")), 422, "invalid_secret"),
        bad(POST, &rotate, j(json!({"secret": "nope"})), 422, "invalid_secret"),
        bad(POST, &rotate, j(json!({"secret": short_key})), 422, "invalid_secret"),
        bad(POST, &endpoints, e("headers", json!({"webhook-signature": "v1,forged"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("headers", json!({"Webhook-Id": "msg_1"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("headers", json!({"webhook-timestamp": "1"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("headers", json!({"content-type": "text/plain"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("headers", json!({"Host": "evil.example"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("headers", json!({"bad header": "x"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("headers", json!({"x-ok": "line\nbreak"})), 422, "invalid_header"),
        bad(PATCH, &endpoint, p("headers", json!({"webhook-signature": "v1,forged"})), 422, "invalid_header"),
        bad(POST, &endpoints, e("timeout_ms", json!(0)), 422, "invalid_timeout"),
        bad(POST, &endpoints, e("timeout_ms", json!(99)), 422, "invalid_timeout"),
        bad(POST, &endpoints, e("timeout_ms", json!(120_001)), 422, "invalid_timeout"),
        bad(POST, &endpoints, e("timeout_ms", json!(u64::MAX)), 422, "invalid_timeout"),
        bad(PATCH, &endpoint, p("timeout_ms", json!(0)), 422, "invalid_timeout"),
        bad(POST, &endpoints, e("rate_limit_per_s", json!(0)), 422, "invalid_rate_limit"),
        bad(PATCH, &endpoint, p("rate_limit_per_s", json!(0)), 422, "invalid_rate_limit"),
        bad(POST, &endpoints, e("retry_schedule", json!(["5x"])), 422, "invalid_retry_schedule"),
        bad(POST, &endpoints, e("retry_schedule", json!(["soon"])), 422, "invalid_retry_schedule"),
        bad(POST, &endpoints, e("retry_schedule", json!(["5"])), 422, "invalid_retry_schedule"),
        bad(POST, &endpoints, e("retry_schedule", json!(["-5s"])), 422, "invalid_retry_schedule"),
        bad(POST, &endpoints, e("retry_schedule", json!(["8d"])), 422, "invalid_retry_schedule"),
        bad(POST, &endpoints, e("retry_schedule", json!(vec!["1s"; 21])), 422, "invalid_retry_schedule"),
        bad(PATCH, &endpoint, p("retry_schedule", json!(["5s", "later"])), 422, "invalid_retry_schedule"),
    ];
    let secret = format!("{endpoint}/secret");
    let watched = [endpoints.clone(), endpoint.clone(), secret];
    let mut before = Vec::new();
    for path in &watched {
        before.push(read(&w.app, path).await);
    }
    check(&w.app, &w.app.admin, &cases).await;
    for (path, before) in watched.iter().zip(before) {
        assert_eq!(read(&w.app, path).await, before, "{path} changed");
    }

    // Control: the limits themselves are accepted.
    let good = json!({
        "url": url, "event_types": [ET], "timeout_ms": 100, "rate_limit_per_s": 1,
        "retry_schedule": ["500ms", "5s", "7d"], "headers": {"x-custom": "1"},
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    });
    let (s, ep) = w.app.post(&endpoints, &w.app.admin, good).await;
    assert_eq!(s, StatusCode::CREATED, "{ep}");
}

#[tokio::test]
async fn an_oversized_body_answers_413_and_is_not_stored() {
    let w = world_with(spawn_app_with(|s| s.max_body_bytes = 1024).await).await;
    let app = &w.app;
    let (events, endpoints) = (w.events(), w.endpoints());
    let big = "x".repeat(4096);
    let url = w.receiver.url();
    #[rustfmt::skip]
    let cases = vec![
        bad(POST, &events, j(json!({"type": ET, "payload": {"blob": big}})), 413, "payload_too_large"),
        bad(POST, &endpoints, j(json!({"url": url, "event_types": [ET], "description": big})), 413, "payload_too_large"),
        bad(POST, "/api/v1/tenants", j(json!({"uid": "big", "name": big})), 413, "payload_too_large"),
    ];
    let events_before = read(app, &events).await;
    let endpoints_before = read(app, &endpoints).await;
    check(app, &app.admin, &cases).await;
    assert_eq!(read(app, &events).await, events_before);
    assert_eq!(read(app, &endpoints).await, endpoints_before);
    let (s, t) = app.get("/api/v1/tenants/big", &app.admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{t}");
    // Control: a body under the limit goes through.
    app.publish(&w.tenant, ET, json!({"blob": "x".repeat(100)}))
        .await;
}

#[tokio::test]
async fn a_body_that_is_not_json_answers_415() {
    let w = world().await;
    let events = w.events();
    let tenant = br#"{"uid": "acme2", "name": "x"}"#.to_vec();
    let event = format!(r#"{{"type": "{ET}", "payload": {{}}}}"#).into_bytes();
    let mut cases = Vec::new();
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "multipart/form-data; boundary=x",
    ] {
        let code = "unsupported_media_type";
        cases.push(bad(
            POST,
            "/api/v1/tenants",
            Body::Raw(ct, tenant.clone()),
            415,
            code,
        ));
        cases.push(bad(POST, &events, Body::Raw(ct, event.clone()), 415, code));
    }
    let before = read(&w.app, &events).await;
    check(&w.app, &w.app.admin, &cases).await;
    assert_eq!(read(&w.app, &events).await, before);
    let (s, b) = w.app.get("/api/v1/tenants/acme2", &w.app.admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

#[tokio::test]
async fn bad_pagination_and_filters_answer_400() {
    let w = world().await;
    let t = &w.tenant;
    let lists = [
        "/api/v1/tenants".to_string(),
        "/api/v1/event-types".to_string(),
        format!("/api/v1/tenants/{t}/endpoints"),
        format!("/api/v1/tenants/{t}/events"),
        format!("/api/v1/tenants/{t}/deliveries"),
        format!("/api/v1/tenants/{t}/operational-events"),
    ];
    let mut cases = Vec::new();
    for path in &lists {
        for limit in ["0", "251", "1000"] {
            let path = format!("{path}?limit={limit}");
            cases.push(bad(GET, path, NONE, 400, "invalid_limit"));
        }
    }
    for status in ["done", "PENDING_", "all", "1"] {
        let path = format!("/api/v1/tenants/{t}/deliveries?status={status}");
        cases.push(bad(GET, path, NONE, 400, "invalid_status"));
    }
    check(&w.app, &w.app.admin, &cases).await;
    // Control: the bounds themselves and every real status are accepted.
    for path in &lists {
        for limit in ["1", "250"] {
            read(&w.app, &format!("{path}?limit={limit}")).await;
        }
    }
    for status in ["pending", "succeeded", "failed", "cancelled"] {
        read(
            &w.app,
            &format!("/api/v1/tenants/{t}/deliveries?status={status}"),
        )
        .await;
    }
}

#[tokio::test]
async fn tenant_uids_must_be_valid_and_unique() {
    let w = world().await;
    let other = w.app.tenant("other").await;
    let tenants = "/api/v1/tenants";
    let other_path = format!("{tenants}/{other}");
    let uid = |uid: Value| j(json!({"uid": uid, "name": "n"}));
    #[rustfmt::skip]
    let cases = vec![
        bad(POST, tenants, uid(json!("acme")), 409, "already_exists"),
        bad(POST, tenants, uid(json!("other")), 409, "already_exists"),
        bad(PATCH, &other_path, j(json!({"uid": "acme"})), 409, "already_exists"),
        bad(POST, tenants, uid(json!("")), 422, "invalid_uid"),
        bad(POST, tenants, uid(json!("has space")), 422, "invalid_uid"),
        bad(POST, tenants, uid(json!("dots.not.allowed")), 422, "invalid_uid"),
        bad(POST, tenants, uid(json!("slash/uid")), 422, "invalid_uid"),
        bad(POST, tenants, uid(json!("tn_01HXYZ")), 422, "invalid_uid"),
        bad(POST, tenants, uid(json!("ümlaut")), 422, "invalid_uid"),
        bad(POST, tenants, uid(json!("a".repeat(65))), 422, "invalid_uid"),
        bad(PATCH, &other_path, j(json!({"uid": "bad uid"})), 422, "invalid_uid"),
    ];
    let before = read(&w.app, tenants).await;
    check(&w.app, &w.app.admin, &cases).await;
    let after = read(&w.app, tenants).await;
    assert_eq!(after, before, "a refused tenant was stored or changed");
    // Control: the 64-character limit itself is accepted.
    w.app.tenant(&"a".repeat(64)).await;
}

#[tokio::test]
async fn unknown_routes_answer_404_and_wrong_methods_405() {
    let w = world().await;
    let t = &w.tenant;
    let endpoint = w.endpoint();
    #[rustfmt::skip]
    let cases = vec![
        bad(GET, "/api/v1/nope", NONE, 404, "not_found"),
        bad(GET, "/api/v2/tenants", NONE, 404, "not_found"),
        bad(GET, "/nope", NONE, 404, "not_found"),
        bad(POST, "/api/v1/tenant", j(json!({"uid": "x", "name": "x"})), 404, "not_found"),
        bad(GET, format!("/api/v1/tenants/{t}/webhooks"), NONE, 404, "not_found"),
        bad(GET, format!("{endpoint}/nope"), NONE, 404, "not_found"),
        bad(DELETE, "/api/v1/tenants", NONE, 405, "method_not_allowed"),
        bad(PATCH, "/api/v1/event-types", j(json!({})), 405, "method_not_allowed"),
        bad(PUT, format!("/api/v1/tenants/{t}"), j(json!({"name": "x"})), 405, "method_not_allowed"),
        bad(PUT, &endpoint, j(json!({})), 405, "method_not_allowed"),
        bad(DELETE, format!("/api/v1/tenants/{t}/events"), NONE, 405, "method_not_allowed"),
        bad(GET, format!("{endpoint}/secret/rotate"), NONE, 405, "method_not_allowed"),
        bad(POST, format!("{endpoint}/stats"), NONE, 405, "method_not_allowed"),
    ];
    check(&w.app, &w.app.admin, &cases).await;
}

#[tokio::test]
async fn retrying_a_pending_delivery_answers_409_delivery_pending() {
    // Without delivery workers the delivery stays pending.
    let w = world_with(spawn_app_with(|s| s.delivery_enabled = false).await).await;
    let app = &w.app;
    let ev = app.publish(&w.tenant, ET, json!({"n": 1})).await;
    let query = format!("event={}", ev["id"].as_str().unwrap());
    let list = app.deliveries(&w.tenant, &query).await;
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "pending");
    let id = list[0]["id"].as_str().unwrap();
    let path = format!("/api/v1/tenants/{}/deliveries/{id}", w.tenant);
    let cases = vec![bad(
        POST,
        format!("{path}/retry"),
        NONE,
        409,
        "delivery_pending",
    )];
    let before = read(app, &path).await;
    check(app, &app.admin, &cases).await;
    let key = app.tenant_key(&w.tenant).await;
    check(app, &key, &cases).await;
    assert_eq!(
        read(app, &path).await,
        before,
        "the pending delivery changed"
    );
    assert_eq!(app.deliveries(&w.tenant, "").await.len(), 1);
}
