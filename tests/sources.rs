//! The sources API (SPEC §8): create, list, get, patch, delete; verification settings that
//! are validated by the provider's own schema and never shown back; and tenant isolation in
//! the style of `isolation.rs`: another tenant's source answers 404, never its data, and a
//! refused call changes nothing.

mod common;

use common::{TestApp, spawn_app};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const SECRET: &str = "gh-source-secret-do-not-show";

async fn github_source(app: &TestApp, tenant: &str, key: &str) -> Value {
    let (s, src) = app
        .request(
            Method::POST,
            &format!("/api/v1/tenants/{tenant}/sources"),
            Some(key),
            Some(json!({
                "name": "github",
                "provider": "github",
                "verification": {"secrets": [SECRET]},
                "destinations": [{"type": "http", "url": "http://127.0.0.1:9/hook"}],
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{src}");
    src
}

#[tokio::test]
async fn sources_are_created_listed_changed_and_deleted_without_showing_secrets() {
    let app = spawn_app().await;
    let tenant = app.tenant("crud").await;
    let src = github_source(&app, &tenant, &app.admin).await;
    let id = src["id"].as_str().unwrap();
    assert!(id.starts_with("src_"), "{src}");
    assert_eq!(src["provider"], "github");
    assert_eq!(src["allowed_event_types"], json!(["*"]));
    assert_eq!(src["dedup_window_s"], 86400);
    assert_eq!(src["enabled"], true);
    assert!(src["url"].as_str().unwrap().ends_with(&format!("/in/{id}")));
    assert_eq!(src["verification"]["secrets"], json!(["<redacted>"]));
    assert!(src["destinations"][0]["endpoint_id"].is_string(), "{src}");

    let base = format!("/api/v1/tenants/{tenant}/sources");
    let (s, list) = app.get(&base, &app.admin).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (s, one) = app.get(&format!("{base}/{id}"), &app.admin).await;
    assert_eq!(s, StatusCode::OK);
    for shown in [&src, &list, &one] {
        assert!(!shown.to_string().contains(SECRET), "{shown}");
    }

    let (s, patched) = app
        .patch(
            &format!("{base}/{id}"),
            &app.admin,
            json!({"name": "renamed", "allowed_event_types": ["push", "issues.*"],
                   "dedup_window_s": 60}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "renamed");
    assert_eq!(patched["dedup_window_s"], 60);
    // An unchanged HTTP destination keeps its endpoint.
    let (s, same) = app
        .patch(
            &format!("{base}/{id}"),
            &app.admin,
            json!({"destinations": [{"type": "http", "url": "http://127.0.0.1:9/hook"},
                                    {"type": "publish", "event_type": "github.{event}"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{same}");
    assert_eq!(
        same["destinations"][0]["endpoint_id"],
        src["destinations"][0]["endpoint_id"]
    );
    assert_eq!(same["destinations"][1]["type"], "publish");

    // Pagination.
    for n in 0..2 {
        let (s, _) = app
            .post(
                &base,
                &app.admin,
                json!({"name": format!("s{n}"), "verification": {"provider": "stripe", "secrets": ["whsec_x"]}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, page1) = app.get(&format!("{base}?limit=2"), &app.admin).await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 2);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(&format!("{base}?limit=2&cursor={cursor}"), &app.admin)
        .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());

    let (s, _) = app.delete(&format!("{base}/{id}"), &app.admin).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("{base}/{id}"), &app.admin).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, b) = app
        .request(Method::POST, &format!("/in/{id}"), None, Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
}

#[tokio::test]
async fn verification_settings_are_checked_against_the_provider() {
    let app = spawn_app().await;
    let tenant = app.tenant("checks").await;
    let base = format!("/api/v1/tenants/{tenant}/sources");
    for (body, code) in [
        (
            json!({"name": "x", "provider": "bitbucket", "verification": {"secrets": ["s"]}}),
            "unknown_provider",
        ),
        (
            json!({"name": "x", "verification": {"provider": "nope"}}),
            "unknown_provider",
        ),
        (
            json!({"name": "x", "provider": "github", "verification": {"secret": "s"}}),
            "invalid_verification",
        ),
        (
            json!({"name": "x", "verification": {"secrets": ["s"]}}),
            "provider_required",
        ),
        (
            json!({"name": "x", "provider": "github", "verification": {"provider": "slack", "secrets": ["s"]}}),
            "provider_mismatch",
        ),
        (
            json!({"name": "x", "provider": "github", "verification": {"secrets": ["s"]},
                   "allowed_event_types": ["bad type!"]}),
            "invalid_event_type_filter",
        ),
        (
            json!({"name": "x", "provider": "github", "verification": {"secrets": ["s"]},
                   "destinations": [{"type": "http", "url": "ftp://x"}]}),
            "invalid_url",
        ),
        (
            json!({"name": "", "provider": "github", "verification": {"secrets": ["s"]}}),
            "invalid_name",
        ),
        (
            json!({"name": "x", "provider": "github", "verification": {"secrets": ["<redacted>"]}}),
            "redacted_secret",
        ),
    ] {
        let (s, b) = app.post(&base, &app.admin, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {b}");
        assert_eq!(b["error"]["code"], code, "{body} -> {b}");
    }
    let (s, b) = app
        .get(&format!("{base}/src_x/requests?outcome=bogus"), &app.admin)
        .await;
    assert!(s.is_client_error(), "{b}");
}

#[tokio::test]
async fn another_tenants_source_answers_404_and_stays_unchanged() {
    let app = spawn_app().await;
    let a = app.tenant("owner").await;
    let b = app.tenant("intruder").await;
    let a_key = app.tenant_key(&a).await;
    let b_key = app.tenant_key(&b).await;
    let src = github_source(&app, &a, &a_key).await;
    let id = src["id"].as_str().unwrap().to_string();
    let snapshot = |app: &TestApp| {
        let (a, id) = (a.clone(), id.clone());
        let app_base = app.base.clone();
        let client = app.client.clone();
        let admin = app.admin.clone();
        async move {
            let mut out = Vec::new();
            for path in [
                format!("/api/v1/tenants/{a}/sources"),
                format!("/api/v1/tenants/{a}/sources/{id}"),
                format!("/api/v1/tenants/{a}/sources/{id}/requests"),
            ] {
                let v: Value = client
                    .get(format!("{app_base}{path}"))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                out.push(v);
            }
            out
        }
    };
    let before = snapshot(&app).await;
    let src_path = |t: &str| format!("/api/v1/tenants/{t}/sources/{id}");
    let cases: Vec<(Method, String, Option<Value>)> = [a.as_str(), b.as_str()]
        .iter()
        .flat_map(|t| {
            vec![
                (Method::GET, src_path(t), None),
                (Method::PATCH, src_path(t), Some(json!({"name": "stolen"}))),
                (Method::GET, format!("{}/requests", src_path(t)), None),
                (Method::GET, format!("{}/health", src_path(t)), None),
                (Method::DELETE, src_path(t), None),
            ]
        })
        .chain([
            (Method::GET, format!("/api/v1/tenants/{a}/sources"), None),
            (
                Method::POST,
                format!("/api/v1/tenants/{a}/sources"),
                Some(
                    json!({"name": "x", "provider": "github", "verification": {"secrets": ["s"]}}),
                ),
            ),
        ])
        .collect();
    for (method, path, body) in cases {
        let (s, resp) = app.request(method.clone(), &path, Some(&b_key), body).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{method} {path}: {resp}");
        let text = resp.to_string();
        assert!(!text.contains(&id) && !text.contains(SECRET), "{text}");
    }
    // Without a key: 401.
    let (s, _) = app
        .request(
            Method::GET,
            &format!("/api/v1/tenants/{a}/sources"),
            None,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(snapshot(&app).await, before);
    // The owner still reaches it with its own key.
    let (s, _) = app.get(&src_path(&a), &a_key).await;
    assert_eq!(s, StatusCode::OK);
}
