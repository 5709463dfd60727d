//! Tenant isolation (SPEC §2, §8): a tenant key reaches only its own tenant. Every other
//! tenant's resource answers 404 exactly like one that does not exist, never its data, and a
//! refused call changes nothing. Admin-only routes answer 403 to tenant keys; a missing or
//! unknown key answers 401.
//!
//! The route tables below are the data; `check` is the one loop that drives them.

mod common;

use std::time::Duration;

use common::{Receiver, TestApp, spawn_app};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{Value, json};

const EVENT_TYPE: &str = "order.created";

/// One request of a table.
#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn case(method: Method, path: impl Into<String>, body: Option<Value>) -> Case {
    Case {
        method,
        path: path.into(),
        body,
    }
}

/// A tenant with one endpoint, one published event and its succeeded delivery.
struct Fixture {
    id: String,
    uid: String,
    key: String,
    endpoint: String,
    event: String,
    delivery: String,
    secret: String,
    receiver: Receiver,
}

impl Fixture {
    async fn new(app: &TestApp, uid: &str) -> Fixture {
        let id = app.tenant(uid).await;
        let key = app.tenant_key(&id).await;
        let receiver = Receiver::ok().await;
        let ep = app
            .endpoint(
                &id,
                json!({"url": receiver.url(), "event_types": [EVENT_TYPE], "description": uid}),
            )
            .await;
        let endpoint = ep["id"].as_str().unwrap().to_string();
        let (s, secret) = app
            .get(
                &format!("/api/v1/tenants/{id}/endpoints/{endpoint}/secret"),
                &app.admin,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{secret}");
        let secret = secret["secret"].as_str().unwrap().to_string();
        let ev = app.publish(&id, EVENT_TYPE, json!({"owner": uid})).await;
        let event = ev["id"].as_str().unwrap().to_string();
        let deliveries = app.deliveries(&id, &format!("event={event}")).await;
        assert_eq!(deliveries.len(), 1, "{deliveries:?}");
        let delivery = deliveries[0]["id"].as_str().unwrap().to_string();
        app.wait_delivery(&id, &delivery, Duration::from_secs(10), |d| {
            d["status"] == "succeeded"
        })
        .await;
        assert_eq!(receiver.count(), 1);
        Fixture {
            id,
            uid: uid.to_string(),
            key,
            endpoint,
            event,
            delivery,
            secret,
            receiver,
        }
    }

    /// Strings that must never appear in an answer given to another tenant.
    fn private_strings(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.uid.clone(),
            self.key.clone(),
            self.endpoint.clone(),
            self.event.clone(),
            self.delivery.clone(),
            self.secret.clone(),
            self.receiver.url(),
        ]
    }

    /// Everything the admin key can see of this tenant, to compare before and after.
    async fn snapshot(&self, app: &TestApp) -> Value {
        let t = &self.id;
        let ep = &self.endpoint;
        let mut snap = serde_json::Map::new();
        for path in [
            format!("/api/v1/tenants/{t}"),
            format!("/api/v1/tenants/{t}/endpoints"),
            format!("/api/v1/tenants/{t}/endpoints/{ep}"),
            format!("/api/v1/tenants/{t}/endpoints/{ep}/secret"),
            format!("/api/v1/tenants/{t}/events"),
            format!("/api/v1/tenants/{t}/deliveries"),
            format!("/api/v1/tenants/{t}/deliveries/{}", self.delivery),
            format!("/api/v1/tenants/{t}/operational-events"),
        ] {
            let (s, body) = app.get(&path, &app.admin).await;
            assert_eq!(s, StatusCode::OK, "{path}: {body}");
            snap.insert(path, body);
        }
        snap.insert("received".into(), json!(self.receiver.count()));
        Value::Object(snap)
    }
}

/// The resource ids a route table names.
struct Ids<'a> {
    endpoint: &'a str,
    event: &'a str,
    delivery: &'a str,
}

impl<'a> From<&'a Fixture> for Ids<'a> {
    fn from(f: &'a Fixture) -> Self {
        Ids {
            endpoint: &f.endpoint,
            event: &f.event,
            delivery: &f.delivery,
        }
    }
}

/// Every tenant-scoped route a tenant key may use, under tenant `t`. Only the tenant is named.
fn tenant_level_routes(t: &str, endpoint_url: &str) -> Vec<Case> {
    let base = format!("/api/v1/tenants/{t}");
    vec![
        case(Method::GET, base.clone(), None),
        case(Method::GET, format!("{base}/endpoints"), None),
        case(
            Method::POST,
            format!("{base}/endpoints"),
            Some(json!({"url": endpoint_url, "event_types": [EVENT_TYPE]})),
        ),
        case(
            Method::POST,
            format!("{base}/events"),
            Some(json!({"type": EVENT_TYPE, "payload": {"injected": true}})),
        ),
        case(Method::GET, format!("{base}/events"), None),
        case(Method::GET, format!("{base}/deliveries"), None),
        case(Method::GET, format!("{base}/operational-events"), None),
    ]
}

/// Every tenant-scoped route that names a resource, under tenant `t`. Deleting the endpoint
/// comes last so that a table run with the owner's key reaches every route.
fn resource_routes(t: &str, ids: &Ids) -> Vec<Case> {
    let ep = format!("/api/v1/tenants/{t}/endpoints/{}", ids.endpoint);
    let ev = format!("/api/v1/tenants/{t}/events/{}", ids.event);
    let del = format!("/api/v1/tenants/{t}/deliveries/{}", ids.delivery);
    vec![
        case(Method::GET, ep.clone(), None),
        case(
            Method::PATCH,
            ep.clone(),
            Some(json!({"description": "changed"})),
        ),
        case(Method::GET, format!("{ep}/secret"), None),
        case(
            Method::POST,
            format!("{ep}/secret/rotate"),
            Some(json!({"grace_s": 0})),
        ),
        case(Method::POST, format!("{ep}/test"), Some(json!({}))),
        case(Method::GET, format!("{ep}/stats"), None),
        case(Method::GET, format!("{ep}/health"), None),
        case(
            Method::POST,
            format!("{ep}/recover"),
            Some(json!({"since": "2000-01-01T00:00:00Z"})),
        ),
        case(Method::GET, ev.clone(), None),
        case(
            Method::POST,
            format!("{ev}/resend"),
            Some(json!({"endpoint": ids.endpoint})),
        ),
        case(Method::GET, del.clone(), None),
        case(Method::POST, format!("{del}/retry"), None),
        case(Method::DELETE, ep, None),
    ]
}

/// All of `tenant_level_routes` and `resource_routes`, the endpoint deletion last.
fn all_routes(t: &str, ids: &Ids, endpoint_url: &str) -> Vec<Case> {
    let mut cases = tenant_level_routes(t, endpoint_url);
    cases.extend(resource_routes(t, ids));
    cases
}

async fn send(app: &TestApp, key: &str, c: &Case) -> (StatusCode, Value) {
    app.request(c.method.clone(), &c.path, Some(key), c.body.clone())
        .await
}

/// What a table of cases must answer.
#[derive(Clone, Copy)]
enum Expect {
    /// This status with this `error.code` and a non-empty message.
    Error(StatusCode, &'static str),
    /// Any 2xx.
    Success,
}

/// The one loop: sends every case with `key`, checks the answer against `expect` and, for
/// errors, that the body contains none of `hidden`. Reports every mismatch at once.
async fn check(app: &TestApp, key: &str, cases: &[Case], expect: Expect, hidden: &[String]) {
    let mut failures = Vec::new();
    for c in cases {
        let (status, body) = send(app, key, c).await;
        let what = format!("{} {}", c.method, c.path);
        match expect {
            Expect::Success => {
                if !status.is_success() {
                    failures.push(format!("{what}: expected 2xx, got {status} {body}"));
                }
            }
            Expect::Error(want, code) => {
                if status != want || body["error"]["code"] != code {
                    failures.push(format!(
                        "{what}: expected {want} {code}, got {status} {body}"
                    ));
                }
                if body["error"]["message"].as_str().is_none_or(str::is_empty) {
                    failures.push(format!("{what}: no error.message in {body}"));
                }
                let text = body.to_string();
                for secret in hidden {
                    if text.contains(secret.as_str()) {
                        failures.push(format!("{what}: answer reveals `{secret}`: {text}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

async fn two_tenants() -> (TestApp, Fixture, Fixture) {
    let app = spawn_app().await;
    app.event_type(EVENT_TYPE).await;
    let a = Fixture::new(&app, "alpha-co").await;
    let b = Fixture::new(&app, "beta-co").await;
    (app, a, b)
}

/// Lets a wrongly accepted delivery reach its receiver before state is compared.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

const NOT_FOUND: Expect = Expect::Error(StatusCode::NOT_FOUND, "not_found");
const FORBIDDEN: Expect = Expect::Error(StatusCode::FORBIDDEN, "forbidden");

#[tokio::test]
async fn another_tenants_key_gets_404_on_every_route_and_changes_nothing() {
    let (app, a, b) = two_tenants().await;
    let (a_before, b_before) = (a.snapshot(&app).await, b.snapshot(&app).await);

    // B's key on A's routes, A named by id and by uid; and the other way round.
    for tenant_ref in [&a.id, &a.uid] {
        let cases = all_routes(tenant_ref, &Ids::from(&a), &a.receiver.url());
        check(&app, &b.key, &cases, NOT_FOUND, &a.private_strings()).await;
    }
    for tenant_ref in [&b.id, &b.uid] {
        let cases = all_routes(tenant_ref, &Ids::from(&b), &b.receiver.url());
        check(&app, &a.key, &cases, NOT_FOUND, &b.private_strings()).await;
    }

    settle().await;
    assert_eq!(a.snapshot(&app).await, a_before, "tenant A changed");
    assert_eq!(b.snapshot(&app).await, b_before, "tenant B changed");

    // Control: the same tables with the owner's key reach every route, so the 404s above come
    // from isolation and not from a wrong path or id.
    let cases = all_routes(&a.uid, &Ids::from(&a), &a.receiver.url());
    check(&app, &a.key, &cases, Expect::Success, &[]).await;
    let cases = all_routes(&b.id, &Ids::from(&b), &b.receiver.url());
    check(&app, &b.key, &cases, Expect::Success, &[]).await;
}

#[tokio::test]
async fn own_tenant_path_with_another_tenants_resource_ids_answers_404() {
    let (app, a, b) = two_tenants().await;
    let (a_before, b_before) = (a.snapshot(&app).await, b.snapshot(&app).await);

    for tenant_ref in [&a.id, &a.uid] {
        let mut cases = resource_routes(tenant_ref, &Ids::from(&b));
        // A's own event resent to B's endpoint.
        cases.push(case(
            Method::POST,
            format!("/api/v1/tenants/{tenant_ref}/events/{}/resend", a.event),
            Some(json!({"endpoint": b.endpoint})),
        ));
        check(&app, &a.key, &cases, NOT_FOUND, &b.private_strings()).await;
        // The admin key is bound by the tenant in the path just the same.
        check(&app, &app.admin, &cases, NOT_FOUND, &b.private_strings()).await;
    }

    // Filtering A's delivery log by B's ids finds nothing.
    for query in [
        format!("endpoint={}", b.endpoint),
        format!("event={}", b.event),
    ] {
        let (s, list) = app
            .get(
                &format!("/api/v1/tenants/{}/deliveries?{query}", a.id),
                &a.key,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["data"], json!([]), "{query}: {list}");
        for secret in b.private_strings() {
            assert!(!list.to_string().contains(&secret), "{query}: {list}");
        }
    }

    settle().await;
    assert_eq!(a.snapshot(&app).await, a_before, "tenant A changed");
    assert_eq!(b.snapshot(&app).await, b_before, "tenant B changed");
}

#[tokio::test]
async fn tenant_keys_get_403_on_admin_only_routes_and_change_nothing() {
    let (app, a, b) = two_tenants().await;
    let (a_before, b_before) = (a.snapshot(&app).await, b.snapshot(&app).await);
    let (_, tenants_before) = app.get("/api/v1/tenants", &app.admin).await;
    let (_, type_before) = app
        .get(&format!("/api/v1/event-types/{EVENT_TYPE}"), &app.admin)
        .await;

    let catalogue = vec![
        case(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"uid": "gamma-co", "name": "gamma"})),
        ),
        case(
            Method::POST,
            "/api/v1/event-types",
            Some(json!({"name": "order.shipped", "description": "x"})),
        ),
        case(
            Method::PATCH,
            format!("/api/v1/event-types/{EVENT_TYPE}"),
            Some(json!({"description": "changed", "archived": true})),
        ),
        case(
            Method::DELETE,
            format!("/api/v1/event-types/{EVENT_TYPE}"),
            None,
        ),
        case(
            Method::DELETE,
            format!("/api/v1/event-types/{EVENT_TYPE}?expunge=true"),
            None,
        ),
    ];
    let own_tenant = |t: &str| {
        vec![
            case(
                Method::PATCH,
                format!("/api/v1/tenants/{t}"),
                Some(json!({"name": "changed"})),
            ),
            case(Method::POST, format!("/api/v1/tenants/{t}/api-keys"), None),
            case(
                Method::POST,
                format!("/api/v1/tenants/{t}/api-keys"),
                Some(json!({"name": "mine"})),
            ),
            case(Method::DELETE, format!("/api/v1/tenants/{t}"), None),
        ]
    };

    check(&app, &a.key, &catalogue, FORBIDDEN, &[]).await;
    for tenant_ref in [&a.id, &a.uid] {
        check(&app, &a.key, &own_tenant(tenant_ref), FORBIDDEN, &[]).await;
    }

    // B's key on A's admin-only routes answers 404, as for any other tenant's resource: not
    // even A's existence is confirmed.
    for tenant_ref in [&a.id, &a.uid] {
        for c in own_tenant(tenant_ref) {
            let (s, body) = send(&app, &b.key, &c).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{} {}: {body}", c.method, c.path);
            assert_eq!(body["error"]["code"], "not_found");
            let text = body.to_string();
            for secret in a.private_strings() {
                assert!(!text.contains(&secret), "{}: reveals {secret}", c.path);
            }
        }
    }

    settle().await;
    assert_eq!(a.snapshot(&app).await, a_before, "tenant A changed");
    assert_eq!(b.snapshot(&app).await, b_before, "tenant B changed");
    let (_, tenants_after) = app.get("/api/v1/tenants", &app.admin).await;
    assert_eq!(tenants_after, tenants_before, "the tenant list changed");
    let (s, type_after) = app
        .get(&format!("/api/v1/event-types/{EVENT_TYPE}"), &app.admin)
        .await;
    assert_eq!(s, StatusCode::OK, "{type_after}");
    assert_eq!(type_after, type_before, "the event type changed");
    let (s, other) = app
        .get("/api/v1/event-types/order.shipped", &app.admin)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{other}");
    // Keys minted by refused calls would show up as working keys; none was minted, and the
    // tenant keys still work.
    for f in [&a, &b] {
        let (s, t) = app.get(&format!("/api/v1/tenants/{}", f.uid), &f.key).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        assert_eq!(t["id"], f.id.as_str());
    }
}

#[tokio::test]
async fn a_tenant_key_lists_only_its_own_tenant() {
    let (app, a, b) = two_tenants().await;
    for (me, other) in [(&a, &b), (&b, &a)] {
        for query in ["", "?limit=1", "?limit=250"] {
            let (s, list) = app.get(&format!("/api/v1/tenants{query}"), &me.key).await;
            assert_eq!(s, StatusCode::OK, "{list}");
            let data = list["data"].as_array().expect("a list");
            assert_eq!(data.len(), 1, "{list}");
            assert_eq!(data[0]["id"], me.id.as_str(), "{list}");
            assert_eq!(data[0]["uid"], me.uid.as_str(), "{list}");
            assert!(list["next_cursor"].is_null(), "{list}");
            for secret in other.private_strings() {
                assert!(!list.to_string().contains(&secret), "{list}");
            }
        }
    }
    // Control: the admin key sees both.
    let (s, list) = app.get("/api/v1/tenants", &app.admin).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        ids.contains(&a.id.as_str()) && ids.contains(&b.id.as_str()),
        "{list}"
    );
}

/// What goes in the `Authorization` header, or `None` for no header at all.
const BAD_AUTH: &[Option<&str>] = &[
    None,
    Some(""),
    Some("Bearer"),
    Some("Bearer "),
    Some("Bearer    "),
    Some("Bearer garbage"),
    Some("Bearer hr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    Some("Basic aHI6c2VjcmV0"),
    Some(common::ADMIN_KEY),
    Some("Token hr_test_admin_key_0123456789abcdefghij"),
];

#[tokio::test]
async fn missing_garbage_or_empty_bearer_tokens_get_401_with_www_authenticate() {
    let (app, a, _b) = two_tenants().await;
    let a_before = a.snapshot(&app).await;
    let (_, tenants_before) = app.get("/api/v1/tenants", &app.admin).await;
    let t = &a.id;
    let long = format!("Bearer {}", "x".repeat(300));
    let routes = vec![
        case(Method::GET, "/api/v1/tenants", None),
        case(
            Method::POST,
            "/api/v1/tenants",
            Some(json!({"uid": "intruder", "name": "intruder"})),
        ),
        case(Method::GET, "/api/v1/event-types", None),
        case(Method::GET, format!("/api/v1/tenants/{}", a.uid), None),
        case(Method::GET, format!("/api/v1/tenants/{t}/endpoints"), None),
        case(
            Method::GET,
            format!("/api/v1/tenants/{t}/endpoints/{}/secret", a.endpoint),
            None,
        ),
        case(
            Method::POST,
            format!("/api/v1/tenants/{t}/events"),
            Some(json!({"type": EVENT_TYPE, "payload": {}})),
        ),
        case(
            Method::POST,
            format!("/api/v1/tenants/{t}/deliveries/{}/retry", a.delivery),
            None,
        ),
        case(
            Method::DELETE,
            format!("/api/v1/tenants/{t}/endpoints/{}", a.endpoint),
            None,
        ),
    ];

    let mut failures = Vec::new();
    let auths = BAD_AUTH.iter().copied().chain([Some(long.as_str())]);
    for auth in auths {
        for c in &routes {
            let mut req = app
                .client
                .request(c.method.clone(), format!("{}{}", app.base, c.path));
            if let Some(h) = auth {
                req = req.header("authorization", h);
            }
            if let Some(b) = &c.body {
                req = req.json(b);
            }
            let resp = req.send().await.expect("request sent");
            let status = resp.status();
            let www = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let what = format!("{} {} with {auth:?}", c.method, c.path);
            if status != StatusCode::UNAUTHORIZED || body["error"]["code"] != "unauthorized" {
                failures.push(format!("{what}: got {status} {body}"));
            }
            if body["error"]["message"].as_str().is_none_or(str::is_empty) {
                failures.push(format!("{what}: no error.message in {body}"));
            }
            if !www.as_deref().is_some_and(|v| v.starts_with("Bearer")) {
                failures.push(format!("{what}: WWW-Authenticate is {www:?}"));
            }
            for secret in a.private_strings() {
                if body.to_string().contains(&secret) {
                    failures.push(format!("{what}: reveals {secret}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    settle().await;
    assert_eq!(a.snapshot(&app).await, a_before, "tenant A changed");
    let (_, tenants_after) = app.get("/api/v1/tenants", &app.admin).await;
    assert_eq!(tenants_after, tenants_before, "a tenant was created");
}

#[tokio::test]
async fn a_deleted_tenants_key_no_longer_authenticates() {
    let (app, a, b) = two_tenants().await;
    let (s, body) = app
        .delete(&format!("/api/v1/tenants/{}", b.id), &app.admin)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{body}");
    // A tenant recreated with the same uid is a new tenant: the old key must not reach it.
    let again = app.tenant(&b.uid).await;
    for path in [
        "/api/v1/tenants".to_string(),
        format!("/api/v1/tenants/{}", b.uid),
        format!("/api/v1/tenants/{again}/endpoints"),
        format!("/api/v1/tenants/{}/endpoints", a.id),
    ] {
        let (s, body) = app.get(&path, &b.key).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{path}: {body}");
    }
    let (s, body) = app.get(&format!("/api/v1/tenants/{}", a.id), &a.key).await;
    assert_eq!(s, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_same_idempotency_key_in_another_tenant_makes_a_new_event_there() {
    let (app, a, b) = two_tenants().await;
    let publish = |f: &Fixture, n: u32| {
        app.client
            .post(format!("{}/api/v1/tenants/{}/events", app.base, f.id))
            .bearer_auth(&f.key)
            .header("idempotency-key", "order-1")
            .json(&json!({"type": EVENT_TYPE, "payload": {"n": n}}))
            .send()
    };
    let first = publish(&a, 1).await.unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let first: Value = first.json().await.unwrap();
    let other = publish(&b, 2).await.unwrap();
    assert_eq!(
        other.status(),
        StatusCode::ACCEPTED,
        "B's publish was taken for a replay"
    );
    let other: Value = other.json().await.unwrap();
    assert_ne!(other["id"], first["id"]);
    assert_eq!(other["tenant_id"], b.id.as_str());
    assert_eq!(other["payload"], json!({"n": 2}));
    for secret in a.private_strings() {
        assert!(!other.to_string().contains(&secret), "{other}");
    }
    // Within A the key still replays A's event.
    let again = publish(&a, 3).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
}
