//! Outbound delivery end to end: a real hookrelay, real receivers on 127.0.0.1.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use common::{Answer, Receiver, spawn_app, spawn_app_with};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn secret(app: &common::TestApp, tenant: &str, endpoint: &str) -> String {
    let (s, b) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/endpoints/{endpoint}/secret"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["secret"].as_str().unwrap().to_string()
}

fn attempts(d: &Value) -> Vec<Value> {
    d["attempts"].as_array().unwrap().clone()
}

async fn only_delivery(app: &common::TestApp, tenant: &str, event: &str) -> String {
    let list = app.deliveries(tenant, &format!("event={event}")).await;
    assert_eq!(list.len(), 1, "{list:?}");
    list[0]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_delivery_verifies_with_the_standard_webhooks_library() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("acme").await;
    app.event_type("contact.created").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["contact.*"]}),
        )
        .await;
    let secret = secret(&app, &tenant, ep["id"].as_str().unwrap()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        // Odd spacing and unicode: the bytes published are the bytes signed and delivered.
        let payload = json!({"n": i, "name": "Ådа \u{1F600}", "nested": {"a": [1, 2.5, null]}});
        ids.push(app.publish(&tenant, "contact.created", payload).await["id"].clone());
    }
    let got = receiver.wait_for(5, WAIT).await;
    // An implementation from crates.io, not ours, checks every request.
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    for r in &got {
        verifier
            .verify(&r.body, &r.headers)
            .unwrap_or_else(|e| panic!("standardwebhooks rejected a delivery: {e:?}"));
        assert_eq!(r.headers["content-type"], "application/json");
        let id = r.headers["webhook-id"].to_str().unwrap();
        assert!(ids.iter().any(|i| i == id), "unknown webhook-id {id}");
    }
    // A tampered body fails the same check: the verifier is really checking.
    let mut tampered = got[0].body.to_vec();
    tampered[1] ^= 1;
    assert!(verifier.verify(&tampered, &got[0].headers).is_err());
}

#[tokio::test]
async fn the_payload_arrives_byte_for_byte_as_published() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("bytes").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let raw = r#"{"type":"a.b","payload":{ "z" : 1,   "a":"x\u00e9" }}"#;
    let resp = app
        .client
        .post(format!("{}/api/v1/tenants/{tenant}/events", app.base))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(&got[0].body[..], br#"{ "z" : 1,   "a":"x\u00e9" }"#);
}

#[tokio::test]
async fn filters_route_events_to_matching_endpoints_only() {
    let app = spawn_app().await;
    let (exact, prefix, all, other) = (
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
        Receiver::ok().await,
    );
    let tenant = app.tenant("filters").await;
    for t in ["invoice.paid", "contact.created", "contact.note.added"] {
        app.event_type(t).await;
    }
    app.endpoint(
        &tenant,
        json!({"url": exact.url(), "event_types": ["invoice.paid"]}),
    )
    .await;
    app.endpoint(
        &tenant,
        json!({"url": prefix.url(), "event_types": ["contact.*"]}),
    )
    .await;
    app.endpoint(&tenant, json!({"url": all.url(), "event_types": ["*"]}))
        .await;
    app.endpoint(
        &tenant,
        json!({"url": other.url(), "event_types": ["*"], "channels": ["eu"]}),
    )
    .await;
    app.publish(&tenant, "invoice.paid", json!({})).await;
    app.publish(&tenant, "contact.created", json!({})).await;
    app.publish(&tenant, "contact.note.added", json!({})).await;
    all.wait_for(3, WAIT).await;
    prefix.wait_for(2, WAIT).await;
    exact.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(exact.count(), 1);
    assert_eq!(prefix.count(), 2);
    assert_eq!(all.count(), 3);
    // The channel-scoped endpoint gets only events on its channel.
    assert_eq!(other.count(), 0);
    let (s, _) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/events"),
            &app.admin,
            json!({"type": "invoice.paid", "payload": {}, "channels": ["eu"]}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    other.wait_for(1, WAIT).await;
}

#[tokio::test]
async fn retries_follow_the_schedule_until_the_receiver_succeeds() {
    let app = spawn_app().await; // schedule: 100 ms, 200 ms, no jitter
    let receiver = Receiver::start(vec![
        Answer::status(500),
        Answer::status(502),
        Answer::status(200),
    ])
    .await;
    let tenant = app.tenant("retry").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({"x": 1})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let a = attempts(&d);
    assert_eq!(a.len(), 3, "{d:#}");
    assert_eq!(d["attempt_count"], 3);
    assert_eq!(a[0]["response_status"], 500);
    assert_eq!(a[0]["error_kind"], "http_status");
    assert_eq!(a[1]["response_status"], 502);
    assert_eq!(a[2]["response_status"], 200);
    assert_eq!(a[2]["succeeded"], true);
    let got = receiver.received();
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(
        gap1 >= Duration::from_millis(95),
        "first retry after {gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(195),
        "second retry after {gap2:?}"
    );
    // Every attempt of one delivery carries the same webhook-id, so receivers can dedupe.
    assert!(
        got.iter()
            .all(|r| r.headers["webhook-id"] == got[0].headers["webhook-id"])
    );
}

#[tokio::test]
async fn retry_after_on_429_delays_the_next_attempt() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![
        Answer::status(429).header("retry-after", "1"),
        Answer::status(200),
    ])
    .await;
    let tenant = app.tenant("ra").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    app.publish(&tenant, "a.b", json!({})).await;
    let got = receiver.wait_for(2, WAIT).await;
    let gap = got[1].at - got[0].at;
    // The schedule alone would retry after 100 ms.
    assert!(
        gap >= Duration::from_millis(990),
        "retried after {gap:?} despite Retry-After: 1"
    );
}

#[tokio::test]
async fn a_spent_schedule_dead_letters_and_a_manual_retry_revives_it() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![
        Answer::status(500),
        Answer::status(500),
        Answer::status(500),
        Answer::status(200),
    ])
    .await;
    let tenant = app.tenant("dead").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "failed")
        .await;
    assert_eq!(attempts(&d).len(), 3, "1 attempt + 2 retries: {d:#}");
    assert!(d["next_attempt_at"].is_null());
    let failed = app.deliveries(&tenant, "status=failed").await;
    assert_eq!(failed.len(), 1);

    let (s, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/deliveries/{id}/retry"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(attempts(&d).len(), 4);
    assert_eq!(receiver.count(), 4);
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let app = spawn_app().await;
    let target = Receiver::ok().await;
    let receiver = Receiver::start(vec![
        Answer::status(307).header("location", target.url()),
        Answer::status(200),
    ])
    .await;
    let tenant = app.tenant("redirect").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let a = attempts(&d);
    assert_eq!(a[0]["response_status"], 307);
    assert_eq!(a[0]["succeeded"], false);
    assert_eq!(target.count(), 0, "the redirect was followed");
}

#[tokio::test]
async fn a_slow_receiver_times_out_and_the_attempt_says_so() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![]).await;
    let receiver = Receiver::start(vec![Answer::status(200).delay(Duration::from_secs(2))]).await;
    let tenant = app.tenant("slow").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"], "timeout_ms": 200}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "failed")
        .await;
    let a = attempts(&d);
    assert_eq!(a[0]["error_kind"], "timeout", "{d:#}");
    let ms = a[0]["duration_ms"].as_u64().unwrap();
    assert!((190..1500).contains(&ms), "timed out after {ms} ms");
}

#[tokio::test]
async fn a_refused_connection_is_recorded_as_connect() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![]).await;
    // Bind and drop: nothing listens on this port any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tenant = app.tenant("refused").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": format!("http://127.0.0.1:{port}/"), "event_types": ["*"]}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "failed")
        .await;
    assert_eq!(attempts(&d)[0]["error_kind"], "connect", "{d:#}");
}

#[tokio::test]
async fn a_failed_tls_handshake_is_recorded_as_tls() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![]).await;
    // The receiver speaks plain HTTP, so an https:// URL fails in the handshake.
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("tls").await;
    app.event_type("a.b").await;
    let url = format!("https://127.0.0.1:{}/hook", receiver.addr.port());
    app.endpoint(&tenant, json!({"url": url, "event_types": ["*"]}))
        .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "failed")
        .await;
    assert_eq!(attempts(&d)[0]["error_kind"], "tls", "{d:#}");
}

#[tokio::test]
async fn recover_retries_failed_deliveries_since_a_time() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![]).await;
    let receiver = Receiver::start(vec![Answer::status(500)]).await;
    let tenant = app.tenant("recover").await;
    app.event_type("a.b").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["*"]}),
        )
        .await;
    let ep = ep["id"].as_str().unwrap();
    let before_all = chrono::Utc::now() - chrono::Duration::seconds(1);
    let old = app.publish(&tenant, "a.b", json!({"n": 0})).await;
    receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let since = chrono::Utc::now();
    for n in 1..=3 {
        app.publish(&tenant, "a.b", json!({"n": n})).await;
    }
    receiver.wait_for(4, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while app.deliveries(&tenant, "status=failed").await.len() < 4 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    receiver.answer_from_now(vec![Answer::status(200)]);
    let (s, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/recover"),
            &app.admin,
            json!({"since": since.to_rfc3339()}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    assert_eq!(b["recovered"], 3);
    receiver.wait_for(7, WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while app.deliveries(&tenant, "status=succeeded").await.len() < 3 {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The delivery from before `since` stays failed.
    let old_id = only_delivery(&app, &tenant, old["id"].as_str().unwrap()).await;
    let (_, d) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/deliveries/{old_id}"),
            &app.admin,
        )
        .await;
    assert_eq!(d["status"], "failed");
    let (_, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/recover"),
            &app.admin,
            json!({"since": before_all.to_rfc3339()}),
        )
        .await;
    assert_eq!(b["recovered"], 1);
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_event_and_creates_nothing() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("idem").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let send = |payload: Value| {
        app.client
            .post(format!("{}/api/v1/tenants/{tenant}/events", app.base))
            .bearer_auth(&app.admin)
            .header("idempotency-key", "order-42")
            .json(&json!({"type": "a.b", "payload": payload}))
            .send()
    };
    let first = send(json!({"n": 1})).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let second = send(json!({"n": 2})).await.unwrap();
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(second["payload"], json!({"n": 1}));
    let (_, events) = app
        .get(&format!("/api/v1/tenants/{tenant}/events"), &app.admin)
        .await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.count(), 1);
    // The key is per tenant: another tenant may use the same one.
    let other = app.tenant("idem2").await;
    let (s, _) = app
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/tenants/{other}/events"),
            Some(&app.admin),
            Some(json!({"type": "a.b", "payload": {}})),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_rotation_signs_with_both_secrets_during_the_grace() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("rotate").await;
    app.event_type("a.b").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["*"]}),
        )
        .await;
    let ep = ep["id"].as_str().unwrap();
    let old = secret(&app, &tenant, ep).await;
    let (s, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/secret/rotate"),
            &app.admin,
            json!({"grace_s": 3600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert!(
        !b.to_string().contains("whsec_"),
        "rotation must not reveal secrets: {b}"
    );
    let new = secret(&app, &tenant, ep).await;
    assert_ne!(old, new);
    app.publish(&tenant, "a.b", json!({})).await;
    let got = receiver.wait_for(1, WAIT).await;
    let sigs = got[0].headers["webhook-signature"].to_str().unwrap();
    assert_eq!(sigs.split(' ').count(), 2, "{sigs}");
    for s in [&old, &new] {
        standardwebhooks::Webhook::new(s)
            .unwrap()
            .verify(&got[0].body, &got[0].headers)
            .unwrap();
    }
    // With no grace (an emergency rotation) every older secret stops signing at once.
    app.post(
        &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/secret/rotate"),
        &app.admin,
        json!({"grace_s": 0}),
    )
    .await;
    let newest = secret(&app, &tenant, ep).await;
    app.publish(&tenant, "a.b", json!({})).await;
    let got = receiver.wait_for(2, WAIT).await;
    let sigs = got[1].headers["webhook-signature"].to_str().unwrap();
    assert_eq!(sigs.split(' ').count(), 1, "{sigs}");
    standardwebhooks::Webhook::new(&newest)
        .unwrap()
        .verify(&got[1].body, &got[1].headers)
        .unwrap();
    for revoked in [&old, &new] {
        assert!(
            standardwebhooks::Webhook::new(revoked)
                .unwrap()
                .verify(&got[1].body, &got[1].headers)
                .is_err(),
            "a revoked secret still signs"
        );
    }
}

#[tokio::test]
async fn deliveries_to_addresses_outside_the_allow_list_are_blocked_at_connect_time() {
    // Loopback is not allow-listed at all here.
    let app = spawn_app_with(|s| {
        s.allow_nets = vec![];
        s.retry_schedule = vec![];
    })
    .await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("ssrf").await;
    app.event_type("a.b").await;
    // A literal is refused when the endpoint is registered...
    let (s, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/endpoints"),
            &app.admin,
            json!({"url": "http://127.0.0.2:9/", "event_types": ["*"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(b["error"]["code"], "url_blocked");
    // ...and a name is checked on the address it resolves to, when connecting.
    let url = format!("http://localhost:{}/hook", receiver.addr.port());
    app.endpoint(&tenant, json!({"url": url, "event_types": ["*"]}))
        .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "failed")
        .await;
    assert_eq!(attempts(&d)[0]["error_kind"], "blocked", "{d:#}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        receiver.count(),
        0,
        "a blocked request reached the receiver"
    );
}

#[tokio::test]
async fn the_http_client_refuses_an_address_left_out_of_the_allow_list() {
    use hookrelay::delivery::client::{HttpSender, Outgoing, SendError};
    use hookrelay::delivery::ssrf::AddressPolicy;
    let receiver = Receiver::ok().await;
    let only_127_0_0_1 = AddressPolicy::new(vec!["127.0.0.1/32".parse().unwrap()]);
    let sender = HttpSender::new(only_127_0_0_1, 4);
    let send = |host: &str| {
        sender.send(Outgoing {
            url: format!("http://{host}:{}/hook", receiver.addr.port()),
            headers: vec![],
            body: "{}".into(),
            timeout: Duration::from_secs(2),
            max_response_body: 100,
        })
    };
    // 127.0.0.2 is loopback too, and would answer: only the policy stops it.
    assert!(matches!(
        send("127.0.0.2").await,
        Err(SendError::Blocked(_))
    ));
    assert!(matches!(
        send("[::ffff:127.0.0.2]").await,
        Err(SendError::Blocked(_))
    ));
    assert_eq!(receiver.count(), 0);
    assert_eq!(send("127.0.0.1").await.unwrap().status, 200);
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn the_concurrency_cap_holds() {
    let app = spawn_app_with(|s| s.concurrency = 3).await;
    let receiver =
        Receiver::start(vec![Answer::status(200).delay(Duration::from_millis(100))]).await;
    let tenant = app.tenant("cap").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    for n in 0..15 {
        app.publish(&tenant, "a.b", json!({"n": n})).await;
    }
    receiver.wait_for(15, WAIT).await;
    let max = receiver.max_in_flight.load(Ordering::SeqCst);
    assert!(max <= 3, "{max} requests in flight with a cap of 3");
    assert!(
        max >= 2,
        "the cap should still allow parallel attempts (saw {max})"
    );
}

#[tokio::test]
async fn an_endpoint_rate_limit_spaces_requests() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("rate").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"], "rate_limit_per_s": 5}),
    )
    .await;
    for n in 0..10 {
        app.publish(&tenant, "a.b", json!({"n": n})).await;
    }
    let got = receiver.wait_for(10, WAIT).await;
    let span = got[9].at - got[0].at;
    // A burst of 5, then 5 more at 200 ms spacing.
    assert!(
        span >= Duration::from_millis(900),
        "10 requests at 5/s took only {span:?}"
    );
}

#[tokio::test]
async fn custom_headers_are_sent_and_redacted_in_the_log() {
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("headers").await;
    app.event_type("a.b").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["*"],
                   "headers": {"X-Api-Key": "s3cr3t-value", "X-Team": "blue"}}),
        )
        .await;
    assert!(!ep.to_string().contains("s3cr3t-value"), "{ep}");
    assert_eq!(ep["headers"]["X-Team"], "blue");
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let got = receiver.wait_for(1, WAIT).await;
    assert_eq!(got[0].headers["x-api-key"], "s3cr3t-value");
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert!(
        !d.to_string().contains("s3cr3t-value"),
        "the attempt log leaks a header: {d}"
    );
}

#[tokio::test]
async fn test_send_and_resend_reach_only_that_endpoint() {
    let app = spawn_app().await;
    let (one, two) = (Receiver::ok().await, Receiver::ok().await);
    let tenant = app.tenant("test-send").await;
    app.event_type("a.b").await;
    let ep1 = app
        .endpoint(&tenant, json!({"url": one.url(), "event_types": ["a.b"]}))
        .await;
    app.endpoint(&tenant, json!({"url": two.url(), "event_types": ["a.b"]}))
        .await;
    let ep1 = ep1["id"].as_str().unwrap();
    let (s, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep1}/test"),
            &app.admin,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let got = one.wait_for(1, WAIT).await;
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(
        body,
        json!({"sample": true}),
        "the event type's sample is sent"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(two.count(), 0);

    let ev = app.publish(&tenant, "a.b", json!({"n": 1})).await;
    one.wait_for(2, WAIT).await;
    two.wait_for(1, WAIT).await;
    let (s, b) = app
        .post(
            &format!(
                "/api/v1/tenants/{tenant}/events/{}/resend",
                ev["id"].as_str().unwrap()
            ),
            &app.admin,
            json!({"endpoint": ep1}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let got = one.wait_for(3, WAIT).await;
    assert_eq!(got[2].headers["webhook-id"], ev["id"].as_str().unwrap());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(two.count(), 1);
}

#[tokio::test]
async fn a_continuously_failing_endpoint_is_disabled_and_says_why() {
    let app = spawn_app_with(|s| {
        s.auto_disable_after = Duration::from_millis(300);
        s.retry_schedule = vec![Duration::from_millis(100); 10];
        s.failing_after_failures = 3;
    })
    .await;
    let receiver = Receiver::start(vec![Answer::status(500)]).await;
    let tenant = app.tenant("disable").await;
    app.event_type("a.b").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["*"]}),
        )
        .await;
    let ep = ep["id"].as_str().unwrap();
    app.publish(&tenant, "a.b", json!({})).await;
    let deadline = std::time::Instant::now() + WAIT;
    let endpoint = loop {
        let (_, e) = app
            .get(
                &format!("/api/v1/tenants/{tenant}/endpoints/{ep}"),
                &app.admin,
            )
            .await;
        if e["disabled"] == true {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "never disabled: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        endpoint["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed since")
    );
    let (_, ops) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/operational-events"),
            &app.admin,
        )
        .await;
    let ops = ops["data"].as_array().unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["kind"], "endpoint.disabled");
    assert_eq!(ops[0]["endpoint_id"], ep);
    let (_, health) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/health"),
            &app.admin,
        )
        .await;
    assert_eq!(health["status"], "disabled");
    let advice = health["recommendations"].to_string();
    assert!(advice.contains("re-enable"), "{advice}");
    assert!(advice.contains("server errors"), "{advice}");
    // The delivery is dead-lettered, not lost: re-enable and recover brings it back.
    receiver.answer_from_now(vec![Answer::status(200)]);
    let (s, _) = app
        .patch(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}"),
            &app.admin,
            json!({"disabled": false}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, b) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/recover"),
            &app.admin,
            json!({"since": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(b["recovered"], 1, "{b}");
    let deadline = std::time::Instant::now() + WAIT;
    while app.deliveries(&tenant, "status=succeeded").await.is_empty() {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let (_, health) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/health"),
            &app.admin,
        )
        .await;
    assert_ne!(health["status"], "disabled");
    assert_eq!(health["consecutive_failures"], 0);
}

#[tokio::test]
async fn health_and_stats_reflect_recent_attempts() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![]).await;
    let receiver = Receiver::start(vec![
        Answer::status(200),
        Answer::status(200),
        Answer::status(200),
        Answer::status(401),
    ])
    .await;
    let tenant = app.tenant("stats").await;
    app.event_type("a.b").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["*"]}),
        )
        .await;
    let ep = ep["id"].as_str().unwrap();
    let (_, health) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/health"),
            &app.admin,
        )
        .await;
    assert_eq!(health["status"], "healthy");
    for n in 0..4 {
        app.publish(&tenant, "a.b", json!({"n": n})).await;
        receiver.wait_for(n + 1, WAIT).await;
    }
    let deadline = std::time::Instant::now() + WAIT;
    let stats = loop {
        let (_, s) = app
            .get(
                &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/stats"),
                &app.admin,
            )
            .await;
        // Counts and attempts are read one after the other: wait until both show all four.
        if s["recent_attempts"] == 4 && s["deliveries"]["pending"] == 0 {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(stats["deliveries"]["succeeded"], 3);
    assert_eq!(stats["deliveries"]["failed"], 1);
    assert_eq!(stats["deliveries"]["total"], 4);
    assert_eq!(stats["success_rate"], 0.75);
    assert!(stats["latency_ms"]["p99"].is_u64());
    assert!(stats["last_delivery_at"].is_string());
    let (_, health) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}/health"),
            &app.admin,
        )
        .await;
    assert_eq!(health["status"], "degraded");
    assert!(
        health["recommendations"].to_string().contains("secret"),
        "{health}"
    );
}

#[tokio::test]
async fn metrics_count_deliveries_retries_and_statuses() {
    let app = spawn_app().await;
    let receiver = Receiver::start(vec![Answer::status(503), Answer::status(200)]).await;
    let tenant = app.tenant("metrics").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    app.wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "webhook_deliveries_total{status=\"succeeded\"}",
        "webhook_retries_total",
        "webhook_delivery_http_status{code=\"503\"}",
        "webhook_delivery_http_status{code=\"200\"}",
        "webhook_delivery_duration_seconds_bucket",
        "webhook_queue_depth 0",
        "webhook_oldest_pending_age_seconds 0",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics:\n{text}");
    }
}

#[tokio::test]
async fn a_deleted_endpoint_gets_no_more_attempts() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![Duration::from_millis(300)]).await;
    let receiver = Receiver::start(vec![Answer::status(500)]).await;
    let tenant = app.tenant("deleted").await;
    app.event_type("a.b").await;
    let ep = app
        .endpoint(
            &tenant,
            json!({"url": receiver.url(), "event_types": ["*"]}),
        )
        .await;
    let ep = ep["id"].as_str().unwrap();
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    receiver.wait_for(1, WAIT).await;
    let (s, _) = app
        .delete(
            &format!("/api/v1/tenants/{tenant}/endpoints/{ep}"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    app.wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "cancelled")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_attempts_and_restarts_clean() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![Duration::from_millis(100)]).await;
    let receiver =
        Receiver::start(vec![Answer::status(200).delay(Duration::from_millis(500))]).await;
    let tenant = app.tenant("shutdown").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let ev = app.publish(&tenant, "a.b", json!({})).await;
    receiver.wait_for(1, WAIT).await;
    // Stop while the receiver is still answering the attempt.
    let dir = app.stop().await;
    let settings = common::test_settings(dir.path());
    let app = common::start(settings, dir).await;
    let id = only_delivery(&app, &tenant, ev["id"].as_str().unwrap()).await;
    let d = app
        .wait_delivery(&tenant, &id, WAIT, |d| d["status"] == "succeeded")
        .await;
    assert_eq!(
        attempts(&d).len(),
        1,
        "the in-flight attempt was finished and recorded: {d:#}"
    );
    assert_eq!(receiver.count(), 1);
}

#[tokio::test]
async fn concurrent_publishes_with_one_idempotency_key_create_one_event() {
    // Publishes that arrive together are committed together (group commit on both
    // backends): a key repeated inside one batch must still create a single event.
    let app = spawn_app().await;
    let receiver = Receiver::ok().await;
    let tenant = app.tenant("idem-race").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": receiver.url(), "event_types": ["*"]}),
    )
    .await;
    let url = format!("{}/api/v1/tenants/{tenant}/events", app.base);
    let mut sends = Vec::new();
    for n in 0..32 {
        let req = app
            .client
            .post(&url)
            .bearer_auth(&app.admin)
            .json(&json!({"type": "a.b", "payload": {"n": n}}));
        // Every other publish carries the same key; the rest carry none.
        let req = if n % 2 == 0 {
            req.header("idempotency-key", "race-1")
        } else {
            req
        };
        sends.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap();
            (n, status, body["id"].as_str().unwrap().to_string())
        }));
    }
    let mut keyed_ids = std::collections::HashSet::new();
    let mut created_keyed = 0;
    for s in sends {
        let (n, status, id) = s.await.unwrap();
        if n % 2 == 0 {
            assert!(status == 202 || status == 200, "{status}");
            created_keyed += usize::from(status == 202);
            keyed_ids.insert(id);
        } else {
            assert_eq!(status, 202);
        }
    }
    assert_eq!(created_keyed, 1, "one keyed publish created the event");
    assert_eq!(
        keyed_ids.len(),
        1,
        "every keyed publish names the same event"
    );
    receiver.wait_for(17, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.count(), 17, "16 unkeyed events and one keyed");
}

/// Every combination of the delivery log's filters, paged three at a time, returns exactly
/// the rows of the unfiltered log that match, newest first. Each combination is answered by
/// its own index (the endpoint's statuses merged, the partial index of unfinished rows, the
/// event index), so this checks each plan against the plain one.
#[tokio::test]
async fn delivery_listing_filters_agree_with_the_unfiltered_log() {
    let app = spawn_app_with(|s| s.retry_schedule = vec![]).await;
    let ok = Receiver::ok().await;
    let bad = Receiver::start(vec![Answer::status(500)]).await;
    let slow = Receiver::start(vec![Answer::status(200).delay(Duration::from_secs(120))]).await;
    let tenant = app.tenant("filters").await;
    let other = app.tenant("filters-other").await;
    app.event_type("a.b").await;
    let mut endpoints = Vec::new();
    for url in [ok.url(), bad.url(), slow.url(), slow.url()] {
        // Long enough for the slow receiver's deliveries to stay pending throughout.
        let ep = app
            .endpoint(
                &tenant,
                json!({"url": url, "event_types": ["*"], "timeout_ms": 120_000}),
            )
            .await;
        endpoints.push(ep["id"].as_str().unwrap().to_string());
    }
    app.endpoint(&other, json!({"url": ok.url(), "event_types": ["*"]}))
        .await;
    let before = chrono::Utc::now() - chrono::TimeDelta::milliseconds(5);
    let mut events = Vec::new();
    for n in 0..5 {
        let ev = app.publish(&tenant, "a.b", json!({"n": n})).await;
        events.push(ev["id"].as_str().unwrap().to_string());
        app.publish(&other, "a.b", json!({"n": n})).await;
    }
    // The fourth endpoint's deliveries are in flight when it is deleted: cancelled.
    slow.wait_for(10, WAIT).await;
    let (s, b) = app
        .delete(
            &format!("/api/v1/tenants/{tenant}/endpoints/{}", endpoints[3]),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{b}");

    let all_pages = |query: String| {
        let app = &app;
        let tenant = &tenant;
        async move {
            let mut ids = Vec::new();
            let mut rows = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = match &cursor {
                    Some(c) => format!("{query}&limit=3&cursor={c}"),
                    None => format!("{query}&limit=3"),
                };
                let (s, list) = app
                    .get(
                        &format!("/api/v1/tenants/{tenant}/deliveries?{page}"),
                        &app.admin,
                    )
                    .await;
                assert_eq!(s, StatusCode::OK, "{query}: {list}");
                for d in list["data"].as_array().unwrap() {
                    ids.push(d["id"].as_str().unwrap().to_string());
                    rows.push(d.clone());
                }
                match list["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
                assert!(ids.len() <= 40, "{query}: paging does not end");
            }
            (ids, rows)
        }
    };
    let deadline = std::time::Instant::now() + WAIT;
    let full = loop {
        let (_, rows) = all_pages(String::new()).await;
        let count = |status: &str| rows.iter().filter(|d| d["status"] == status).count();
        if count("succeeded") == 5 && count("failed") == 5 && count("cancelled") == 5 {
            assert_eq!(count("pending"), 5, "the slow endpoint's are in flight");
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:#?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(full.len(), 20, "the other tenant's are not listed");
    let full_ids: Vec<&str> = full.iter().map(|d| d["id"].as_str().unwrap()).collect();
    let mut sorted = full_ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(full_ids, sorted, "newest first");

    let statuses = [
        None,
        Some("pending"),
        Some("succeeded"),
        Some("failed"),
        Some("cancelled"),
    ];
    let endpoint_filters = std::iter::once(None).chain(endpoints.iter().map(Some));
    let mut checked = 0;
    for endpoint in endpoint_filters {
        for status in statuses {
            for event in [None, Some(&events[2])] {
                let mut query = String::from("x=1");
                if let Some(e) = endpoint {
                    query.push_str(&format!("&endpoint={e}"));
                }
                if let Some(s) = status {
                    query.push_str(&format!("&status={s}"));
                }
                if let Some(e) = event {
                    query.push_str(&format!("&event={e}"));
                }
                let expected: Vec<String> = full
                    .iter()
                    .filter(|d| endpoint.is_none_or(|e| d["endpoint_id"] == **e))
                    .filter(|d| status.is_none_or(|s| d["status"] == s))
                    .filter(|d| event.is_none_or(|e| d["event_id"] == **e))
                    .map(|d| d["id"].as_str().unwrap().to_string())
                    .collect();
                let (ids, _) = all_pages(query.clone()).await;
                assert_eq!(ids, expected, "{query}");
                checked += usize::from(!expected.is_empty());
            }
        }
    }
    // Without endpoint: 5 statuses x 2; per endpoint: no status and its own, x 2.
    assert_eq!(checked, 10 + 4 * 4, "combinations that match something");

    // Endpoint statistics count the deliveries made within a window.
    let stats = |query: String| {
        let app = &app;
        let path = format!(
            "/api/v1/tenants/{tenant}/endpoints/{}/stats?{query}",
            endpoints[1]
        );
        async move { app.get(&path, &app.admin).await }
    };
    let (s, all) = stats(String::new()).await;
    assert_eq!(s, StatusCode::OK, "{all}");
    assert_eq!(all["deliveries"]["failed"], 5, "{all}");
    assert_eq!(all["deliveries"]["total"], 5, "{all}");
    let at = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    let (_, earlier) = stats(format!("until={}", at(before))).await;
    assert_eq!(earlier["deliveries"]["total"], 0, "{earlier}");
    let echoed = chrono::DateTime::parse_from_rfc3339(earlier["until"].as_str().unwrap()).unwrap();
    assert_eq!(at(echoed.to_utc()), at(before), "{earlier}");
    let (_, since) = stats(format!("since={}", at(before))).await;
    assert_eq!(since["deliveries"]["failed"], 5, "{since}");
    let (s, b) = stats(format!("since={0}&until={0}", at(before))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    assert_eq!(b["error"]["code"], "invalid_window", "{b}");
    let (s, b) = stats("since=yesterday".into()).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    assert_eq!(b["error"]["code"], "invalid_query", "{b}");
}
