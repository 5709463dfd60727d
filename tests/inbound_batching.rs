//! Batched HTTP destinations: up to `max_events` envelopes forwarded in one JSON array,
//! sent as soon as enough wait or when the oldest is `window_ms` old; the waiting events
//! are durable (they survive a restart) and the batch is an ordinary signed delivery.

mod common;

use std::time::{Duration, Instant};

use common::{Receiver, TestApp, spawn_app};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(10);
const GH_SECRET: &str = "gh-secret";
const DEST_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hmac_hex(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn create_source(app: &TestApp, tenant: &str, destinations: Value) -> (StatusCode, Value) {
    app.post(
        &format!("/api/v1/tenants/{tenant}/sources"),
        &app.admin,
        json!({"name": "github", "provider": "github",
            "verification": {"secrets": [GH_SECRET]}, "destinations": destinations}),
    )
    .await
}

async fn batched_source(app: &TestApp, tenant: &str, url: String, window_ms: u64) -> String {
    let (s, src) = create_source(
        app,
        tenant,
        json!([{"type": "http", "url": url, "secret": DEST_SECRET,
            "batch": {"max_events": 3, "window_ms": window_ms}}]),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{src}");
    assert_eq!(
        src["destinations"][0]["batch"],
        json!({"max_events": 3, "window_ms": window_ms})
    );
    src["id"].as_str().unwrap().to_string()
}

/// Sends a signed GitHub `push` with delivery id `delivery`.
async fn push(app: &TestApp, source: &str, delivery: &str, n: u32) {
    let body = json!({"ref": "main", "n": n}).to_string();
    let sig = format!("sha256={}", hmac_hex(GH_SECRET, body.as_bytes()));
    let resp = app
        .client
        .post(format!("{}/in/{source}", app.base))
        .header("x-github-event", "push")
        .header("x-github-delivery", delivery)
        .header("x-hub-signature-256", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let b: Value = resp.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{b}");
    assert_eq!(b["outcome"], "accepted", "{b}");
}

/// Verifies a forwarded batch and returns its envelopes' event ids.
fn batch_ids(r: &common::Received) -> Vec<String> {
    standardwebhooks::Webhook::new(DEST_SECRET)
        .unwrap()
        .verify(&r.body, &r.headers)
        .unwrap_or_else(|e| panic!("standardwebhooks rejected a batch: {e:?}"));
    let batch: Value = serde_json::from_slice(&r.body).unwrap();
    batch
        .as_array()
        .unwrap_or_else(|| panic!("a batch is a JSON array: {batch}"))
        .iter()
        .map(|e| {
            assert_eq!(e["provider"], "github", "{e}");
            assert_eq!(e["type"], "push", "{e}");
            e["event_id"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn events_are_forwarded_in_batches_by_size_then_by_window() {
    let receiver = Receiver::ok().await;
    let app = spawn_app().await;
    let tenant = app.tenant("batching").await;
    // A window far longer than the pushes take, so the two triggers cannot be confused
    // even on a loaded machine.
    let id = batched_source(&app, &tenant, receiver.url(), 3000).await;

    let started = Instant::now();
    for n in 1..=5 {
        push(&app, &id, &format!("d-{n}"), n).await;
    }
    // The third event fills a batch: sent at once, well before the window.
    let first = receiver.wait_for(1, WAIT).await;
    let first_at = first[0].at.duration_since(started);
    assert!(
        first_at < Duration::from_millis(2000),
        "a full batch waits for no window: {first_at:?}"
    );
    assert_eq!(batch_ids(&first[0]), ["d-1", "d-2", "d-3"]);
    let batch: Value = serde_json::from_slice(&first[0].body).unwrap();
    assert_eq!(batch[2]["payload"]["n"], 3);

    // The other two go when the oldest of them is 3 s old.
    let got = receiver.wait_for(2, WAIT).await;
    let second_at = got[1].at.duration_since(started);
    assert!(
        second_at >= Duration::from_millis(2900),
        "a partial batch waits for its window: {second_at:?}"
    );
    assert_eq!(batch_ids(&got[1]), ["d-4", "d-5"]);
    assert_ne!(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 2, "exactly two batches");

    // Five requests accepted; the batches are deliveries like any other.
    let (s, log) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/sources/{id}/requests?outcome=accepted"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    assert_eq!(log["data"].as_array().unwrap().len(), 5, "{log}");
    let deliveries = app.deliveries(&tenant, "").await;
    let batches: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["event_type"] == "github.batch")
        .collect();
    assert_eq!(batches.len(), 2, "{deliveries:?}");
    assert!(
        batches.iter().all(|d| d["status"] == "succeeded"),
        "{batches:?}"
    );
}

#[tokio::test]
async fn bad_batch_settings_are_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant("batching-bad").await;
    for batch in [
        json!({"max_events": 1, "window_ms": 300}),
        json!({"max_events": 1001, "window_ms": 300}),
        json!({"max_events": 3, "window_ms": 9}),
        json!({"max_events": 3, "window_ms": 60001}),
    ] {
        let (s, b) = create_source(
            &app,
            &tenant,
            json!([{"type": "http", "url": "http://127.0.0.1:9/x", "batch": batch}]),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{batch}: {b}");
        assert_eq!(b["error"]["code"], "invalid_batch", "{batch}: {b}");
    }
    // The bounds themselves are fine.
    for batch in [
        json!({"max_events": 2, "window_ms": 10}),
        json!({"max_events": 1000, "window_ms": 60000}),
    ] {
        let (s, b) = create_source(
            &app,
            &tenant,
            json!([{"type": "http", "url": "http://127.0.0.1:9/x", "batch": batch}]),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{batch}: {b}");
    }
}

#[tokio::test]
async fn waiting_events_survive_a_restart() {
    let receiver = Receiver::ok().await;
    let app = spawn_app().await;
    let tenant = app.tenant("batching-restart").await;
    // Long enough that the stop surely comes first, even on a loaded machine.
    let id = batched_source(&app, &tenant, receiver.url(), 5_000).await;
    push(&app, &id, "r-1", 1).await;
    push(&app, &id, "r-2", 2).await;
    let dir = app.stop().await;
    assert_eq!(receiver.count(), 0, "nothing was due before the stop");

    let app = common::start(common::test_settings(dir.path()), dir).await;
    let got = receiver.wait_for(1, 2 * WAIT).await;
    assert_eq!(batch_ids(&got[0]), ["r-1", "r-2"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 1);
    drop(app);
}
