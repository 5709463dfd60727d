//! Retention: history past `retention.max_age` is deleted (events with their deliveries and
//! attempts, inbound request logs), while work that is still pending is kept.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::{Answer, Receiver, spawn_app_with};
use serde_json::json;

const MAX_AGE: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn history_past_the_retention_age_goes_and_pending_work_stays() {
    let app = spawn_app_with(|s| {
        s.retention_max_age = Some(MAX_AGE);
        s.retention_interval = Duration::from_millis(100);
        // A failed attempt waits an hour for its retry: pending all through the test.
        s.retry_schedule = vec![Duration::from_secs(3600)];
    })
    .await;
    let ok = Receiver::ok().await;
    let failing = Receiver::start(vec![Answer::status(503)]).await;
    let tenant = app.tenant("retention").await;
    app.event_type("old.done").await;
    app.event_type("old.pending").await;
    app.endpoint(
        &tenant,
        json!({"url": ok.url(), "event_types": ["old.done"]}),
    )
    .await;
    app.endpoint(
        &tenant,
        json!({"url": failing.url(), "event_types": ["old.pending"]}),
    )
    .await;
    let done = app.publish(&tenant, "old.done", json!({"n": 1})).await;
    let pending = app.publish(&tenant, "old.pending", json!({"n": 2})).await;
    let done_id = done["id"].as_str().unwrap().to_string();
    let pending_id = pending["id"].as_str().unwrap().to_string();
    ok.wait_for(1, Duration::from_secs(5)).await;
    failing.wait_for(1, Duration::from_secs(5)).await;
    let done_delivery = app.deliveries(&tenant, &format!("event={done_id}")).await;
    assert_eq!(done_delivery.len(), 1);
    let done_delivery = done_delivery[0]["id"].as_str().unwrap().to_string();
    app.wait_delivery(&tenant, &done_delivery, Duration::from_secs(5), |d| {
        d["status"] == "succeeded"
    })
    .await;

    // Past the age, the finished event goes with its delivery and attempts.
    let deadline = Instant::now() + MAX_AGE + Duration::from_secs(5);
    loop {
        let (s, _) = app
            .get(
                &format!("/api/v1/tenants/{tenant}/events/{done_id}"),
                &app.admin,
            )
            .await;
        if s == StatusCode::NOT_FOUND {
            break;
        }
        assert_eq!(s, StatusCode::OK);
        assert!(Instant::now() < deadline, "the old event was never purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, _) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/deliveries/{done_delivery}"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "its delivery is gone too");

    // The event whose delivery is still pending is as old, and stays, with its delivery.
    let (s, ev) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/events/{pending_id}"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{ev}");
    let kept = app
        .deliveries(&tenant, &format!("event={pending_id}"))
        .await;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["status"], "pending");
    assert!(
        kept[0]["attempt_count"].as_u64().unwrap() >= 1,
        "{}",
        kept[0]
    );

    // New history is not touched.
    let fresh = app.publish(&tenant, "old.done", json!({"n": 3})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _) = app
        .get(
            &format!(
                "/api/v1/tenants/{tenant}/events/{}",
                fresh["id"].as_str().unwrap()
            ),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (_, metrics) = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    let purged = metrics
        .lines()
        .find(|l| l.starts_with("hookrelay_retention_purged_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(purged >= 1.0, "purge counted in the metrics: {purged}");
}

#[tokio::test]
async fn inbound_request_logs_past_the_age_are_purged() {
    let app = spawn_app_with(|s| {
        s.retention_max_age = Some(MAX_AGE);
        s.retention_interval = Duration::from_millis(100);
    })
    .await;
    let tenant = app.tenant("retention-in").await;
    let (s, source) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/sources"),
            &app.admin,
            json!({"name": "gh", "provider": "github", "verification": {"secrets": ["s3cr3t"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{source}");
    let source_id = source["id"].as_str().unwrap().to_string();
    // An unsigned request is rejected and logged.
    let resp = app
        .client
        .post(format!("{}/in/{source_id}", app.base))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let log = format!("/api/v1/tenants/{tenant}/sources/{source_id}/requests");
    let (s, list) = app.get(&log, &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");

    let deadline = Instant::now() + MAX_AGE + Duration::from_secs(5);
    loop {
        let (_, list) = app.get(&log, &app.admin).await;
        if list["data"].as_array().unwrap().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the request log was never purged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The source itself stays.
    let (s, _) = app
        .get(
            &format!("/api/v1/tenants/{tenant}/sources/{source_id}"),
            &app.admin,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}
