//! The receive path (SPEC §4): real HTTP to `/in/{source}` with providers' published vectors
//! and freshly signed requests; every rejection in the source's log with its reason;
//! duplicates acknowledged and not routed twice; forwarding through the delivery engine
//! (Standard Webhooks signatures, retries); publishing to subscribers; back-pressure; health.
//!
//! Published vectors carry old timestamps: those tests start the server with
//! `Settings::inbound_clock_offset` so that the verifiers' clock reads the vector's time.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{Answer, Receiver, TestApp, spawn_app, spawn_app_with};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(10);

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/providers.json"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn vector(provider: &str) -> Value {
    vectors()
        .into_iter()
        .find(|v| v["provider"] == provider)
        .unwrap_or_else(|| panic!("no {provider} vector"))
}

fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A server whose verifiers see `at` (UNIX seconds) as now.
async fn app_at(at: i64) -> TestApp {
    let offset = chrono::Duration::seconds(at - Utc::now().timestamp());
    spawn_app_with(|s| s.inbound_clock_offset = offset).await
}

async fn source(app: &TestApp, tenant: &str, body: Value) -> Value {
    let (s, src) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/sources"),
            &app.admin,
            body,
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{src}");
    src
}

/// Posts raw bytes with headers to `/in/{source}`.
async fn send(
    app: &TestApp,
    source: &str,
    headers: &[(&str, &str)],
    body: impl Into<Vec<u8>>,
) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let mut req = app
        .client
        .post(format!("{}/in/{source}", app.base))
        .body(body.into());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value, headers)
}

async fn requests(app: &TestApp, tenant: &str, source: &str, query: &str) -> Vec<Value> {
    let (s, list) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/sources/{source}/requests?{query}"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{list}");
    list["data"].as_array().unwrap().clone()
}

fn headers_of(v: &Value) -> Vec<(String, String)> {
    v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

/// Sends a provider vector as published and expects it accepted.
async fn vector_is_accepted(provider: &str, at: Option<i64>, verification: Value) {
    let v = vector(provider);
    let app = match at {
        Some(at) => app_at(at).await,
        None => spawn_app().await,
    };
    let tenant = app.tenant(&format!("vec-{provider}")).await;
    let src = source(
        &app,
        &tenant,
        json!({"name": provider, "provider": provider, "verification": verification}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let headers = headers_of(&v);
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = v["body"].as_str().unwrap().to_string();
    let (s, b, _) = send(&app, id, &refs, body.clone()).await;
    assert_eq!(s, StatusCode::OK, "{provider}: {b}");
    let log = requests(&app, &tenant, id, "").await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["outcome"], "accepted", "{provider}: {:?}", log[0]);
    // The log keeps the request, never the signature.
    for (name, value) in log[0]["headers"].as_object().unwrap() {
        if name.contains("signature") || name.contains("hmac") {
            assert_eq!(value, "<redacted>", "{name}");
        }
    }
    // Slack's form body carries a legacy verification token: the log shows it redacted.
    let expected = if provider == "slack" {
        body.replace("xyzz0WbapA4vBCDEFasx0q6G", "REDACTED")
    } else {
        body.clone()
    };
    assert_eq!(log[0]["body"], expected.as_str());
    // Tampered, the same request is refused with the reason in the log.
    let mut tampered = body.into_bytes();
    tampered[0] ^= 1;
    let (s, b, _) = send(&app, id, &refs, tampered).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{provider}: {b}");
    assert_eq!(b["error"]["code"], "bad_signature", "{provider}: {b}");
    let rejected = requests(&app, &tenant, id, "outcome=rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["reason"], "bad_signature");
}

#[tokio::test]
async fn receive_accepts_githubs_published_vector() {
    let v = vector("github");
    vector_is_accepted("github", None, json!({"secrets": [v["secret"]]})).await;
}

#[tokio::test]
async fn receive_accepts_slacks_published_vector_at_its_time() {
    let v = vector("slack");
    let ts: i64 = v["headers"]["X-Slack-Request-Timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    vector_is_accepted("slack", Some(ts), json!({"secrets": [v["secret"]]})).await;
}

#[tokio::test]
async fn receive_accepts_stripes_vector_at_its_time() {
    let v = vector("stripe");
    vector_is_accepted(
        "stripe",
        Some(1_700_000_000),
        json!({"secrets": [v["secret"]]}),
    )
    .await;
}

#[tokio::test]
async fn receive_accepts_shopify_notion_zoom_and_linear_vectors() {
    for (provider, at) in [
        ("shopify", None),
        ("notion", None),
        ("zoom", Some(1_700_000_000)),
        ("linear", Some(1_700_000_000)),
    ] {
        let v = vector(provider);
        vector_is_accepted(provider, at, json!({"secrets": [v["secret"]]})).await;
    }
}

#[tokio::test]
async fn receive_rejects_a_stale_slack_timestamp() {
    // Without the injected clock the published request is years old: a replay.
    let v = vector("slack");
    let app = spawn_app().await;
    let tenant = app.tenant("stale").await;
    let src = source(
        &app,
        &tenant,
        json!({"name": "s", "verification": {"provider": "slack", "secrets": [v["secret"]]}}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let headers = headers_of(&v);
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let (s, b, _) = send(&app, id, &refs, v["body"].as_str().unwrap().to_string()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(b["error"]["code"], "stale_timestamp");
    let log = requests(&app, &tenant, id, "outcome=rejected").await;
    assert_eq!(log[0]["reason"], "stale_timestamp");
}

/// A GitHub source with fresh signed requests.
struct Github {
    app: TestApp,
    tenant: String,
    id: String,
}

const GH_SECRET: &str = "gh-secret";

impl Github {
    async fn new(app: TestApp, extra: Value) -> Github {
        let tenant = app.tenant("gh").await;
        let mut body = json!({"name": "github", "provider": "github",
            "verification": {"secrets": [GH_SECRET]}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let src = source(&app, &tenant, body).await;
        let id = src["id"].as_str().unwrap().to_string();
        Github { app, tenant, id }
    }

    async fn push(&self, delivery: &str, body: &str) -> (StatusCode, Value) {
        self.event("push", delivery, body).await
    }

    async fn event(&self, event: &str, delivery: &str, body: &str) -> (StatusCode, Value) {
        let sig = format!("sha256={}", hmac_hex(GH_SECRET, body.as_bytes()));
        let (s, b, _) = send(
            &self.app,
            &self.id,
            &[
                ("x-github-event", event),
                ("x-github-delivery", delivery),
                ("x-hub-signature-256", &sig),
                ("content-type", "application/json"),
            ],
            body.to_string(),
        )
        .await;
        (s, b)
    }

    async fn log(&self, query: &str) -> Vec<Value> {
        requests(&self.app, &self.tenant, &self.id, query).await
    }
}

#[tokio::test]
async fn wrong_secret_and_missing_header_are_rejected_with_their_reasons() {
    let gh = Github::new(spawn_app().await, json!({})).await;
    let body = r#"{"ref":"main"}"#;
    let wrong = format!("sha256={}", hmac_hex("not-the-secret", body.as_bytes()));
    let (s, b, _) = send(
        &gh.app,
        &gh.id,
        &[("x-github-event", "push"), ("x-hub-signature-256", &wrong)],
        body,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "bad_signature");
    let (s, b, _) = send(&gh.app, &gh.id, &[("x-github-event", "push")], body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{b}");
    assert_eq!(b["error"]["code"], "missing_signature");
    let reasons: Vec<_> = gh
        .log("outcome=rejected")
        .await
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["missing_signature", "bad_signature"]);
    // Nothing was stored as an event.
    let (_, events) = gh
        .app
        .get(
            &format!("/api/v1/tenants/{}/events", gh.tenant),
            &gh.app.admin,
        )
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn unknown_disabled_and_oversized_requests_are_refused() {
    let gh = Github::new(spawn_app_with(|s| s.max_body_bytes = 1024).await, json!({})).await;
    let (s, b, _) = send(&gh.app, "src_nope", &[], "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(b["error"]["code"], "unknown_source");

    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(4096));
    let (s, b) = gh.push("d-big", &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{b}");

    let (s, _) = gh
        .app
        .patch(
            &format!("/api/v1/tenants/{}/sources/{}", gh.tenant, gh.id),
            &gh.app.admin,
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = gh.push("d-off", "{}").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert_eq!(b["error"]["code"], "source_disabled");

    let reasons: Vec<_> = gh
        .log("outcome=rejected")
        .await
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(reasons, ["disabled", "too_large"]);
}

#[tokio::test]
async fn a_forward_reaches_the_destination_signed_and_retried() {
    let receiver = Receiver::start(vec![Answer::status(500), Answer::status(200)]).await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let gh = Github::new(
        spawn_app().await,
        json!({"destinations": [{"type": "http", "url": receiver.url(), "secret": secret}]}),
    )
    .await;
    let body = r#"{"action":"opened","number":7}"#;
    let (s, b) = gh.event("pull_request", "delivery-1", body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcome"], "accepted");
    let got = receiver.wait_for(2, WAIT).await;
    let verifier = standardwebhooks::Webhook::new(secret).unwrap();
    for r in &got {
        verifier
            .verify(&r.body, &r.headers)
            .unwrap_or_else(|e| panic!("standardwebhooks rejected a forward: {e:?}"));
    }
    // Both attempts carry the same webhook-id: one delivery, retried.
    assert_eq!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    let envelope: Value = serde_json::from_slice(&got[1].body).unwrap();
    assert_eq!(envelope["source"], gh.id.as_str());
    assert_eq!(envelope["provider"], "github");
    assert_eq!(envelope["event_id"], "delivery-1");
    assert_eq!(envelope["type"], "pull_request.opened");
    assert_eq!(envelope["payload"]["number"], 7);
    assert!(envelope.get("headers").is_none());
    // The delivery log shows it like any other delivery, succeeded after a retry.
    let log = gh.log("").await;
    let event = log[0]["routed_events"][0].as_str().unwrap();
    let deliveries = gh
        .app
        .deliveries(&gh.tenant, &format!("event={event}"))
        .await;
    assert_eq!(deliveries.len(), 1);
    let d = gh
        .app
        .wait_delivery(
            &gh.tenant,
            deliveries[0]["id"].as_str().unwrap(),
            WAIT,
            |d| d["status"] == "succeeded",
        )
        .await;
    assert_eq!(d["attempt_count"], 2, "{d}");
    // The hidden endpoint is not among the tenant's endpoints.
    let (_, eps) = gh
        .app
        .get(
            &format!("/api/v1/tenants/{}/endpoints", gh.tenant),
            &gh.app.admin,
        )
        .await;
    assert_eq!(eps["data"].as_array().unwrap().len(), 0, "{eps}");
}

#[tokio::test]
async fn duplicates_are_acknowledged_and_not_routed_twice() {
    let receiver = Receiver::ok().await;
    let gh = Github::new(
        spawn_app().await,
        json!({"destinations": [{"type": "http", "url": receiver.url()}]}),
    )
    .await;
    let (s, first) = gh.push("same-delivery", r#"{"n":1}"#).await;
    assert_eq!(s, StatusCode::OK, "{first}");
    let (s, again) = gh.push("same-delivery", r#"{"n":1}"#).await;
    assert_eq!(s, StatusCode::OK, "{again}");
    assert_eq!(again["outcome"], "duplicate");
    receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);
    let dups = gh.log("outcome=duplicate").await;
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0]["routed_events"].as_array().unwrap().len(), 0);
    assert_eq!(gh.log("outcome=accepted").await.len(), 1);
}

#[tokio::test]
async fn without_an_event_id_the_same_body_is_a_duplicate() {
    let v = vector("shopify");
    let app = spawn_app().await;
    let tenant = app.tenant("shop").await;
    let src = source(
        &app,
        &tenant,
        json!({"name": "s", "provider": "shopify", "verification": {"secrets": [v["secret"]]}}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let headers = headers_of(&v);
    let refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let body = v["body"].as_str().unwrap().to_string();
    let (_, a, _) = send(&app, id, &refs, body.clone()).await;
    let (_, b, _) = send(&app, id, &refs, body).await;
    assert_eq!(a["outcome"], "accepted", "{a}");
    assert_eq!(b["outcome"], "duplicate", "{b}");
}

#[tokio::test]
async fn publish_destinations_fan_out_to_subscribers_and_note_unknown_types() {
    let subscriber = Receiver::ok().await;
    let gh = Github::new(
        spawn_app().await,
        json!({"destinations": [{"type": "publish", "event_type": "github.{event}"}]}),
    )
    .await;
    gh.app.event_type("github.push").await;
    gh.app
        .endpoint(
            &gh.tenant,
            json!({"url": subscriber.url(), "event_types": ["github.*"]}),
        )
        .await;
    let (s, b) = gh.push("p-1", r#"{"ref":"main"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = subscriber.wait_for(1, WAIT).await;
    let envelope: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(envelope["type"], "push");
    assert_eq!(envelope["payload"]["ref"], "main");

    // An event type nobody registered: accepted, the routing error is in the log.
    let (s, b) = gh.event("issues", "p-2", r#"{"title":"x"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let log = gh.log("outcome=accepted").await;
    assert!(
        log[0]["routing_error"]
            .as_str()
            .unwrap()
            .contains("github.issues"),
        "{:?}",
        log[0]
    );
    assert_eq!(subscriber.count(), 1);
}

#[tokio::test]
async fn events_outside_the_allowed_types_are_acknowledged_and_filtered() {
    let receiver = Receiver::ok().await;
    let gh = Github::new(
        spawn_app().await,
        json!({"allowed_event_types": ["push"],
               "destinations": [{"type": "http", "url": receiver.url()}]}),
    )
    .await;
    let (s, b) = gh.event("star", "f-1", r#"{"action":"created"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["outcome"], "filtered");
    let (s, _) = gh.push("f-2", "{}").await;
    assert_eq!(s, StatusCode::OK);
    receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);
    assert_eq!(gh.log("outcome=filtered").await.len(), 1);
}

#[tokio::test]
async fn a_backlogged_source_answers_503_with_retry_after() {
    // No workers: what is accepted stays pending.
    let app = spawn_app_with(|s| {
        s.delivery_enabled = false;
        s.inbound_max_pending = 1;
    })
    .await;
    let gh = Github::new(
        app,
        json!({"destinations": [{"type": "http", "url": "http://127.0.0.1:9/"}]}),
    )
    .await;
    let (s, b) = gh.push("b-1", "{}").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let sig = format!("sha256={}", hmac_hex(GH_SECRET, b"{\"n\":2}"));
    let (s, b, headers) = send(
        &gh.app,
        &gh.id,
        &[
            ("x-github-event", "push"),
            ("x-github-delivery", "b-2"),
            ("x-hub-signature-256", &sig),
        ],
        "{\"n\":2}",
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(headers["retry-after"], "30");
    let rejected = gh.log("outcome=rejected").await;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0]["reason"], "rate_limited");
    // Nothing else was stored: one event only.
    let (_, events) = gh
        .app
        .get(
            &format!("/api/v1/tenants/{}/events", gh.tenant),
            &gh.app.admin,
        )
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_installation_wide_backlog_bound_refuses_every_source() {
    // No workers, a generous per-source bound and an overall bound of one pending delivery.
    let app = spawn_app_with(|s| {
        s.delivery_enabled = false;
        s.inbound_max_pending_total = 1;
    })
    .await;
    let gh = Github::new(
        app,
        json!({"destinations": [{"type": "http", "url": "http://127.0.0.1:9/"}]}),
    )
    .await;
    let (s, b) = gh.push("t-1", "{}").await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // The overall count is refreshed at most every 100 ms.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let sig = format!("sha256={}", hmac_hex(GH_SECRET, b"{\"n\":2}"));
    let (s, b, headers) = send(
        &gh.app,
        &gh.id,
        &[
            ("x-github-event", "push"),
            ("x-github-delivery", "t-2"),
            ("x-hub-signature-256", &sig),
        ],
        "{\"n\":2}",
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        gh.log("outcome=rejected").await[0]["reason"],
        "rate_limited"
    );
    // What was accepted is still there, pending.
    let pending = gh.app.deliveries(&gh.tenant, "status=pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
}

#[tokio::test]
async fn slack_url_verification_is_answered_with_the_challenge() {
    let app = spawn_app().await;
    let tenant = app.tenant("slack").await;
    let secret = "slack-signing-secret";
    let src = source(
        &app,
        &tenant,
        json!({"name": "s", "provider": "slack", "verification": {"secrets": [secret]}}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let body = r#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let ts = Utc::now().timestamp().to_string();
    let sig = format!(
        "v0={}",
        hmac_hex(secret, format!("v0:{ts}:{body}").as_bytes())
    );
    let (s, b, _) = send(
        &app,
        id,
        &[
            ("x-slack-request-timestamp", &ts),
            ("x-slack-signature", &sig),
            ("content-type", "application/json"),
        ],
        body,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        b.to_string()
            .contains("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"),
        "{b}"
    );
    let log = requests(&app, &tenant, id, "outcome=handshake").await;
    assert_eq!(log[0]["reason"], "challenge");
}

#[tokio::test]
async fn a_notion_verification_token_is_kept_for_the_operator_never_trusted() {
    let app = spawn_app().await;
    let tenant = app.tenant("notion").await;
    let src = source(
        &app,
        &tenant,
        json!({"name": "n", "provider": "notion", "verification": {"secrets": []}}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let (s, b, _) = send(
        &app,
        id,
        &[("content-type", "application/json")],
        r#"{"verification_token":"secret_tok_123"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, shown) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/sources/{id}"),
            &app.admin,
        )
        .await;
    assert_eq!(
        shown["unconfirmed_verification_token"]["token"], "secret_tok_123",
        "{shown}"
    );
    // Not adopted: a request signed with it still fails.
    let body = r#"{"id":"e1","type":"page.created"}"#;
    let sig = format!("sha256={}", hmac_hex("secret_tok_123", body.as_bytes()));
    let (s, _, _) = send(&app, id, &[("x-notion-signature", &sig)], body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // The handshake's body (the token) is not in the log.
    let log = requests(&app, &tenant, id, "outcome=handshake").await;
    assert_eq!(log[0]["reason"], "verification_token");
    assert!(log[0]["body"].is_null(), "{:?}", log[0]);
    // Once the operator configures it, requests pass and it is no longer shown.
    let (s, _) = app
        .patch(
            &format!("/api/v1/tenants/{tenant}/sources/{id}"),
            &app.admin,
            json!({"verification": {"provider": "notion", "secrets": ["secret_tok_123"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b, _) = send(&app, id, &[("x-notion-signature", &sig)], body).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (_, shown) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/sources/{id}"),
            &app.admin,
        )
        .await;
    assert!(!shown.to_string().contains("secret_tok_123"), "{shown}");
}

#[tokio::test]
async fn health_says_the_secret_was_probably_rotated() {
    let gh = Github::new(spawn_app().await, json!({})).await;
    let (s, _) = gh.push("ok-1", "{}").await;
    assert_eq!(s, StatusCode::OK);
    let path = format!("/api/v1/tenants/{}/sources/{}/health", gh.tenant, gh.id);
    let (_, h) = gh.app.get(&path, &gh.app.admin).await;
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["events_last_hour"], 1);
    for n in 0..3 {
        let body = format!("{{\"n\":{n}}}");
        let sig = format!("sha256={}", hmac_hex("rotated-at-github", body.as_bytes()));
        send(
            &gh.app,
            &gh.id,
            &[("x-github-event", "push"), ("x-hub-signature-256", &sig)],
            body,
        )
        .await;
    }
    let (_, h) = gh.app.get(&path, &gh.app.admin).await;
    assert_eq!(h["status"], "failing", "{h}");
    assert_eq!(h["rejections_by_reason"]["bad_signature"], 3, "{h}");
    assert!(
        h["recommendations"][0]
            .as_str()
            .unwrap()
            .contains("rotated"),
        "{h}"
    );
    assert!(h["failing_since"].is_string(), "{h}");
}

#[tokio::test]
async fn a_ping_is_answered_and_not_routed() {
    let receiver = Receiver::ok().await;
    let gh = Github::new(
        spawn_app().await,
        json!({"destinations": [{"type": "http", "url": receiver.url()}]}),
    )
    .await;
    let (s, b) = gh
        .event("ping", "ping-1", r#"{"zen":"Keep it logically awesome."}"#)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let log = gh.log("outcome=handshake").await;
    assert_eq!(log[0]["reason"], "ping");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 0);
}

#[tokio::test]
async fn url_signed_providers_are_checked_against_the_public_url() {
    use base64::Engine;
    let app = spawn_app_with(|s| s.public_url = Some("https://hooks.example.com/".into())).await;
    let tenant = app.tenant("twilio").await;
    let token = "twilio-auth-token";
    let src = source(
        &app,
        &tenant,
        json!({"name": "t", "provider": "twilio", "verification": {"secrets": [token]}}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    assert_eq!(
        src["url"],
        format!("https://hooks.example.com/in/{id}"),
        "{src}"
    );
    let url = format!("https://hooks.example.com/in/{id}?foo=1");
    let form = [
        ("Body", "hi"),
        ("From", "+12349013030"),
        ("MessageSid", "SM1"),
    ];
    let mut signed = url.clone();
    for (k, v) in form {
        signed.push_str(k);
        signed.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(signed.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let body = "Body=hi&From=%2B12349013030&MessageSid=SM1";
    let resp = app
        .client
        .post(format!("{}/in/{id}?foo=1", app.base))
        .header("x-twilio-signature", &sig)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "{}",
        resp.text().await.unwrap()
    );
    // The same signature for another query string is refused.
    let resp = app
        .client
        .post(format!("{}/in/{id}?foo=2", app.base))
        .header("x-twilio-signature", &sig)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn forwarded_headers_are_carried_redacted_and_the_destination_is_managed_by_its_source() {
    let receiver = Receiver::ok().await;
    let gh = Github::new(
        spawn_app().await,
        json!({"destinations": [{"type": "http", "url": receiver.url(), "forward_headers": true}]}),
    )
    .await;
    let (s, b) = gh.push("h-1", r#"{"ref":"main"}"#).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let got = receiver.wait_for(1, WAIT).await;
    let envelope: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(envelope["headers"]["x-github-event"], "push", "{envelope}");
    assert_eq!(envelope["headers"]["x-hub-signature-256"], "<redacted>");

    // The destination's signing secret is readable like any endpoint's, and verifies.
    let (_, src) = gh
        .app
        .get(
            &format!("/api/v1/tenants/{}/sources/{}", gh.tenant, gh.id),
            &gh.app.admin,
        )
        .await;
    let ep = src["destinations"][0]["endpoint_id"].as_str().unwrap();
    let ep_path = format!("/api/v1/tenants/{}/endpoints/{ep}", gh.tenant);
    let (s, secret) = gh
        .app
        .get(&format!("{ep_path}/secret"), &gh.app.admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{secret}");
    standardwebhooks::Webhook::new(secret["secret"].as_str().unwrap())
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .unwrap();
    // It changes only with its source.
    let (s, b) = gh
        .app
        .patch(&ep_path, &gh.app.admin, json!({"description": "x"}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "managed_by_source");
    let (s, _) = gh.app.delete(&ep_path, &gh.app.admin).await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Removing the destination removes the endpoint.
    let (s, _) = gh
        .app
        .patch(
            &format!("/api/v1/tenants/{}/sources/{}", gh.tenant, gh.id),
            &gh.app.admin,
            json!({"destinations": []}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = gh.app.get(&ep_path, &gh.app.admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn inbound_requests_are_counted_in_metrics() {
    let gh = Github::new(spawn_app().await, json!({})).await;
    gh.push("m-1", "{}").await;
    send(&gh.app, &gh.id, &[("x-github-event", "push")], "{}").await;
    let text = gh
        .app
        .client
        .get(format!("{}/metrics", gh.app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("webhook_inbound_requests_total") && l.contains(&gh.id))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("outcome=\"accepted\"")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("outcome=\"rejected\"") && l.contains("missing_signature")),
        "{lines:?}"
    );
}

#[tokio::test]
async fn a_batch_is_a_duplicate_only_when_every_event_in_it_was_seen() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/vectors/payloads/salesforce/outbound_message.contact.xml"
    );
    let xml = std::fs::read_to_string(path).unwrap();
    let app = spawn_app().await;
    let tenant = app.tenant("sf").await;
    let src = source(
        &app,
        &tenant,
        json!({"name": "sf", "provider": "salesforce",
               "verification": {"organization_ids": ["012345678901234"]}}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let post = |body: String| send(&app, id, &[("content-type", "text/xml")], body);
    let (s, ack, _) = post(xml.clone()).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ack.as_str().unwrap().contains("<Ack>true</Ack>"), "{ack}");
    // Salesforce's retry of the same notifications, byte-different: still a duplicate, and
    // still acknowledged as Salesforce requires.
    let (s, ack, _) = post(xml.replace("\n   <Notification>", "\n    <Notification>")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ack.as_str().unwrap().contains("<Ack>true</Ack>"), "{ack}");
    // One new notification among seen ones: accepted.
    let (s, _, _) = post(xml.replace("04l1I000000fzt9QAA", "04l1I000000fzzzQAA")).await;
    assert_eq!(s, StatusCode::OK);
    let outcomes: Vec<_> = requests(&app, &tenant, id, "")
        .await
        .iter()
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(outcomes, ["accepted", "duplicate", "accepted"]);
}
