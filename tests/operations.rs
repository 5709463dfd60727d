//! Operations surface: health, readiness, metrics gauges, and an OpenAPI document that
//! matches the routes the server really serves.

mod common;

use axum::http::StatusCode;
use common::{spawn_app, spawn_app_with};
use serde_json::{Value, json};

#[tokio::test]
async fn health_and_ready_answer_without_a_key() {
    let app = spawn_app().await;
    let (s, b) = app
        .request(reqwest::Method::GET, "/health", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["status"], "ok");
    let (s, b) = app
        .request(reqwest::Method::GET, "/ready", None, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["store"], "ok");
    assert_eq!(b["workers"], "running");
}

#[tokio::test]
async fn queue_gauges_show_pending_work() {
    // No workers: what is published waits in the store.
    let app = spawn_app_with(|s| s.delivery_enabled = false).await;
    let tenant = app.tenant("gauges").await;
    app.event_type("a.b").await;
    app.endpoint(
        &tenant,
        json!({"url": "http://127.0.0.1:9/", "event_types": ["*"]}),
    )
    .await;
    for n in 0..3 {
        app.publish(&tenant, "a.b", json!({"n": n})).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let text = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("webhook_queue_depth 3"), "{text}");
    let age: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("webhook_oldest_pending_age_seconds "))
        .expect("oldest pending age gauge")
        .parse()
        .unwrap();
    assert!(age >= 1.0, "oldest pending age {age}");
}

/// Every route the server serves, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("post", "/api/v1/tenants"),
    ("get", "/api/v1/tenants"),
    ("get", "/api/v1/tenants/{tenant}"),
    ("patch", "/api/v1/tenants/{tenant}"),
    ("delete", "/api/v1/tenants/{tenant}"),
    ("post", "/api/v1/tenants/{tenant}/api-keys"),
    ("post", "/api/v1/event-types"),
    ("get", "/api/v1/event-types"),
    ("get", "/api/v1/event-types/{name}"),
    ("patch", "/api/v1/event-types/{name}"),
    ("delete", "/api/v1/event-types/{name}"),
    ("post", "/api/v1/tenants/{tenant}/endpoints"),
    ("get", "/api/v1/tenants/{tenant}/endpoints"),
    ("get", "/api/v1/tenants/{tenant}/endpoints/{endpoint}"),
    ("patch", "/api/v1/tenants/{tenant}/endpoints/{endpoint}"),
    ("delete", "/api/v1/tenants/{tenant}/endpoints/{endpoint}"),
    (
        "get",
        "/api/v1/tenants/{tenant}/endpoints/{endpoint}/secret",
    ),
    (
        "post",
        "/api/v1/tenants/{tenant}/endpoints/{endpoint}/secret/rotate",
    ),
    ("post", "/api/v1/tenants/{tenant}/endpoints/{endpoint}/test"),
    ("get", "/api/v1/tenants/{tenant}/endpoints/{endpoint}/stats"),
    (
        "get",
        "/api/v1/tenants/{tenant}/endpoints/{endpoint}/health",
    ),
    (
        "post",
        "/api/v1/tenants/{tenant}/endpoints/{endpoint}/recover",
    ),
    ("post", "/api/v1/tenants/{tenant}/events"),
    ("get", "/api/v1/tenants/{tenant}/events"),
    ("get", "/api/v1/tenants/{tenant}/events/{event}"),
    ("post", "/api/v1/tenants/{tenant}/events/{event}/resend"),
    ("get", "/api/v1/tenants/{tenant}/deliveries"),
    ("get", "/api/v1/tenants/{tenant}/deliveries/{delivery}"),
    (
        "post",
        "/api/v1/tenants/{tenant}/deliveries/{delivery}/retry",
    ),
    ("get", "/api/v1/tenants/{tenant}/operational-events"),
    ("post", "/api/v1/tenants/{tenant}/sources"),
    ("get", "/api/v1/tenants/{tenant}/sources"),
    ("get", "/api/v1/tenants/{tenant}/sources/{source}"),
    ("patch", "/api/v1/tenants/{tenant}/sources/{source}"),
    ("delete", "/api/v1/tenants/{tenant}/sources/{source}"),
    ("get", "/api/v1/tenants/{tenant}/sources/{source}/requests"),
    ("get", "/api/v1/tenants/{tenant}/sources/{source}/health"),
    ("post", "/in/{source}"),
];

#[tokio::test]
async fn the_openapi_document_lists_exactly_the_served_routes() {
    let app = spawn_app().await;
    let (s, doc) = app
        .request(reqwest::Method::GET, "/openapi.json", None, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    for (method, path) in ROUTES {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is served but not documented"
        );
    }
    for (method, path) in &documented {
        assert!(
            ROUTES.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is documented but not in the route list"
        );
        // The server really answers it: not the router's "no such route" fallback.
        let concrete = path
            .replace("{tenant}", "t")
            .replace("{endpoint}", "e")
            .replace("{event}", "m")
            .replace("{delivery}", "d")
            .replace("{name}", "n");
        let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let (_, body) = app
            .request(m, &concrete, Some(&app.admin), Some(json!({})))
            .await;
        assert_ne!(
            body.pointer("/error/message").and_then(Value::as_str),
            Some("no such route"),
            "{method} {path} is documented but not served"
        );
    }
    // Every error response the document names has the error schema.
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// The real binary without a configured admin key: the first start prints a generated key
/// once and stores only its hash; a restart prints nothing and the key still works.
#[tokio::test]
async fn a_generated_admin_key_is_printed_once_and_stored_only_as_a_hash() {
    use std::io::Read;

    let dir = tempfile::tempdir().unwrap();
    let read_stdout = |server: &mut common::Server| {
        server.kill();
        let mut out = String::new();
        server
            .child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        out
    };
    let client = reqwest::Client::new();
    // Without HOOKRELAY_ADMIN_KEY (the harness never sets it for the binary).
    let mut first = common::Server::start(dir.path(), 0, &[]);
    let base = first.base();
    let list = |k: String| {
        client
            .get(format!("{base}/api/v1/tenants"))
            .bearer_auth(k)
            .send()
    };
    let printed = {
        // The key is printed before the server listens, so it is in the pipe already.
        let out = read_stdout(&mut first);
        out.split_whitespace()
            .find(|w| w.starts_with("hr_"))
            .map(|k| k.trim_end_matches('`').to_string())
            .expect("the first start prints a key")
    };
    let port = first.addr.port();

    // Only the hash is stored.
    if let Some(url) = common::postgres::database_url_for(dir.path()) {
        let stored = common::postgres::query_strings(&url, "SELECT value FROM settings");
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert!(
            !stored[0].contains(&printed),
            "the admin key is stored in clear"
        );
        assert_eq!(stored[0].len(), 64, "a SHA-256 hex digest: {}", stored[0]);
    } else {
        let db = std::fs::read(dir.path().join("hookrelay.db")).unwrap();
        let wal = std::fs::read(dir.path().join("hookrelay.db-wal")).unwrap_or_default();
        for bytes in [&db, &wal] {
            assert!(
                !bytes
                    .windows(printed.len())
                    .any(|w| w == printed.as_bytes()),
                "the admin key is stored in clear"
            );
        }
    }

    let mut second = common::Server::start(dir.path(), port, &[]);
    assert_eq!(list(printed.clone()).await.unwrap().status(), 200);
    assert_eq!(list("hr_wrong".into()).await.unwrap().status(), 401);
    let out = read_stdout(&mut second);
    assert!(!out.contains("hr_"), "a restart printed a key again: {out}");
}

#[test]
fn migrate_applies_the_postgresql_schema_once_and_needs_a_database() {
    use std::process::Command;
    let run = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
        for (name, _) in std::env::vars() {
            if name.starts_with("HOOKRELAY_") {
                cmd.env_remove(name);
            }
        }
        cmd.arg("migrate").envs(env.iter().copied());
        cmd.output().expect("hookrelay runs")
    };
    let out = run(&[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HOOKRELAY_DATABASE_URL"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::postgres::database_url_for(dir.path()) else {
        eprintln!("the PostgreSQL half runs in the PostgreSQL pass of scripts/test");
        return;
    };
    for _ in 0..2 {
        let out = run(&[("HOOKRELAY_DATABASE_URL", &url)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("schema at version 2"), "{stdout}");
    }
    let versions = common::postgres::query_strings(
        &url,
        "SELECT version::text FROM hookrelay_migrations ORDER BY version",
    );
    assert_eq!(versions, ["1", "2"], "each applied once");
}
