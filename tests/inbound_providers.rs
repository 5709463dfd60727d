//! The provider matrix through the real receive path (SPEC §4): for every provider in
//! `hookrelay::inbound::providers::all()`, real HTTP to `POST /in/{source}` on a spawned
//! server. A genuine request is accepted (2xx, `accepted` in the source's log) and its
//! normalised envelope reaches a real HTTP destination, signed for it; a tampered body, a wrong
//! secret, a missing credential and (for timestamped schemes) a stale timestamp are each
//! refused with their own reason, which the request log keeps.
//!
//! Every published vector (`../shared/vectors/providers.json`, `pubsub-jwt.json`,
//! `standard-webhooks.json`) is the genuine request of one case, at its own time through
//! `Settings::inbound_clock_offset`; its negative cases are signed at that same time by the
//! provider's documented rule. Providers without a vector are signed by that rule over the
//! documented sample payloads (`../shared/vectors/payloads/`).
//!
//! Not applicable by design, so not in the matrix: a tampered body for schemes that do not
//! cover the body (a GitLab secret token, Zoho tokens, a Salesforce organization id, a Pub/Sub
//! OIDC token), and staleness for schemes that sign no time.
//!
//! Everything goes through one `check(case)`; `cases()` is the table.

mod common;
mod keys;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use common::{Receiver, TestApp, spawn_app, spawn_app_with};
use hmac::{Hmac, Mac};
use keys::{EcKey, PUSH_ACCOUNT, TEST_KID, TEST_RSA_N};
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

const WAIT: Duration = Duration::from_secs(10);
const SECRET: &str = "right-secret";
const WRONG: &str = "wrong-secret";
/// The signing secret of the destination every case forwards to.
const DESTINATION_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The external base URL of cases whose provider signs the URL.
const PUBLIC: &str = "https://hooks.example.com";
/// How far back a stale request was signed: past every tolerance (Linear 60 s, the others
/// 300 s, a Pub/Sub token's `exp` plus its 60 s leeway).
const STALE_S: i64 = 7200;

// ---------------------------------------------------------------------------------------------
// Harness

/// One request to `/in/{source}`: what follows the path, the headers, the raw body.
#[derive(Debug, Clone, Default)]
struct Req {
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn post(body: impl AsRef<[u8]>) -> Req {
        Req {
            body: body.as_ref().to_vec(),
            ..Req::default()
        }
    }

    fn query(mut self, query: &str) -> Req {
        self.query = query.to_owned();
        self
    }

    /// Sets (replaces, whatever the case) a header.
    fn header(mut self, name: &str, value: impl Into<String>) -> Req {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Every header of a vector's `headers` object.
    fn headers(self, headers: &Value) -> Req {
        headers
            .as_object()
            .unwrap()
            .iter()
            .fold(self, |r, (k, v)| r.header(k, v.as_str().unwrap()))
    }

    fn without(&self, name: &str) -> Req {
        let mut copy = self.clone();
        let before = copy.headers.len();
        copy.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        assert!(copy.headers.len() < before, "no {name} to remove");
        copy
    }

    fn body(&self, body: impl AsRef<[u8]>) -> Req {
        Req {
            body: body.as_ref().to_vec(),
            ..self.clone()
        }
    }

    /// The same request with one character of its body changed, mid-body: a digit becomes
    /// another digit, a letter changes case, so the body keeps its shape.
    fn tampered(&self) -> Req {
        let mut body = self.body.clone();
        let at = (body.len() / 2..body.len())
            .chain(0..body.len() / 2)
            .find(|&i| body[i].is_ascii_alphanumeric())
            .expect("a body with something to change");
        body[at] = match body[at] {
            b'9' => b'0',
            d @ b'0'..=b'8' => d + 1,
            c => c ^ 0x20,
        };
        self.body(body)
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// Stored and routed, with the provider's event id and type as the envelope carries them.
    Accepted {
        id: Option<String>,
        kind: Option<String>,
    },
    /// Refused with this reason (401, `error.code`, and the request log's `reason`).
    Rejected(&'static str),
}

struct Step {
    what: &'static str,
    req: Req,
    expect: Expect,
}

fn genuine(req: Req, id: Option<&str>, kind: Option<&str>) -> Step {
    Step {
        what: "genuine",
        req,
        expect: Expect::Accepted {
            id: id.map(str::to_owned),
            kind: kind.map(str::to_owned),
        },
    }
}

fn rejected(what: &'static str, req: Req, reason: &'static str) -> Step {
    Step {
        what,
        req,
        expect: Expect::Rejected(reason),
    }
}

/// The matrix of a scheme that signs the body: the genuine request, then the same request
/// with its body tampered, signed with the wrong secret, without its signature header, and
/// (when the scheme signs a time) signed too long ago.
fn signed(genuine: Step, wrong: Req, signature_header: &str, stale: Option<Req>) -> Vec<Step> {
    let tampered = genuine.req.tampered();
    let missing = genuine.req.without(signature_header);
    let mut steps = vec![
        genuine,
        rejected("tampered body", tampered, "bad_signature"),
        rejected("wrong secret", wrong, "bad_signature"),
        rejected("missing credential", missing, "missing_signature"),
    ];
    if let Some(stale) = stale {
        steps.push(rejected("stale timestamp", stale, "stale_timestamp"));
    }
    steps
}

/// What a case's requests may depend on: the URL the provider calls (for schemes that sign
/// it) and the time the verifiers see.
struct Target {
    url: String,
    now: i64,
}

impl Target {
    fn url(&self, query: &str) -> String {
        format!("{}{query}", self.url)
    }
}

type Steps = Box<dyn Fn(&Target) -> Vec<Step> + Send + Sync>;

struct Case {
    label: String,
    provider: &'static str,
    /// The source's `verification` settings.
    verification: Value,
    /// The verifiers' clock (UNIX seconds) for vectors; the real time otherwise.
    clock: Option<i64>,
    public_url: Option<&'static str>,
    steps: Steps,
}

impl Case {
    fn new(
        label: impl Into<String>,
        provider: &'static str,
        verification: Value,
        steps: impl Fn(&Target) -> Vec<Step> + Send + Sync + 'static,
    ) -> Case {
        Case {
            label: label.into(),
            provider,
            verification,
            clock: None,
            public_url: None,
            steps: Box::new(steps),
        }
    }

    fn at(mut self, clock: i64) -> Case {
        self.clock = Some(clock);
        self
    }

    fn public_url(mut self, url: &'static str) -> Case {
        self.public_url = Some(url);
        self
    }
}

async fn send(app: &TestApp, source: &str, req: &Req) -> (StatusCode, Value) {
    let mut builder = app
        .client
        .post(format!("{}/in/{source}{}", app.base, req.query))
        .body(req.body.clone());
    for (k, v) in &req.headers {
        builder = builder.header(k, v);
    }
    let resp = builder.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
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

async fn metrics(app: &TestApp) -> String {
    let resp = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

/// Runs one case through a fresh server and answers its row of the matrix.
/// Credentials that some schemes carry inside the body (Slack's legacy form `token`, Zoho's
/// registered token, Salesforce's `SessionId`): never logged, never forwarded.
const IN_BODY_CREDENTIALS: &[&str] = &[
    "xyzz0WbapA4vBCDEFasx0q6G",
    "right-secret",
    "00D000000000000!PLACEHOLDER_SESSION_ID",
];

/// The body as the log and the destinations may show it.
fn shown(text: String) -> String {
    IN_BODY_CREDENTIALS
        .iter()
        .fold(text, |t, secret| t.replace(secret, "REDACTED"))
}

async fn check(case: Case) -> String {
    let Case {
        label,
        provider,
        verification,
        clock,
        public_url,
        steps,
    } = case;
    let app = spawn_app_with(|s| {
        if let Some(at) = clock {
            s.inbound_clock_offset = chrono::Duration::seconds(at - Utc::now().timestamp());
        }
        s.public_url = public_url.map(str::to_owned);
    })
    .await;
    let tenant = app.tenant("matrix").await;
    let receiver = Receiver::ok().await;
    let (s, src) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/sources"),
            &app.admin,
            json!({
                "name": label, "provider": provider, "verification": verification,
                "destinations": [{"type": "http", "url": receiver.url(), "secret": DESTINATION_SECRET}]
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{label}: {src}");
    let id = src["id"].as_str().unwrap().to_owned();
    let url = format!("{}/in/{id}", public_url.unwrap_or(&app.base));
    if public_url.is_some() {
        assert_eq!(src["url"], url, "{label}: the source's public URL");
    }
    let target = Target {
        url,
        now: clock.unwrap_or_else(|| Utc::now().timestamp()),
    };
    let steps = steps(&target);
    assert_eq!(
        steps
            .iter()
            .filter(|s| matches!(s.expect, Expect::Accepted { .. }))
            .count(),
        1,
        "{label}: one genuine request per case"
    );

    let mut reasons = Vec::new();
    for step in &steps {
        let what = format!("{label}: {}", step.what);
        let (status, body) = send(&app, &id, &step.req).await;
        match &step.expect {
            Expect::Accepted { .. } => {
                assert!(status.is_success(), "{what}: {status} {body}");
                if let Some(outcome) = body.get("outcome") {
                    assert_eq!(outcome, "accepted", "{what}: {body}");
                }
            }
            Expect::Rejected(reason) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
                assert_eq!(body["error"]["code"], *reason, "{what}: {body}");
                reasons.push(*reason);
            }
        }
    }

    // The request log: the genuine request accepted with its facts, every other one
    // rejected with its own reason (newest first).
    let step = steps
        .iter()
        .find(|s| matches!(s.expect, Expect::Accepted { .. }))
        .unwrap();
    let Expect::Accepted { id: event_id, kind } = &step.expect else {
        unreachable!()
    };
    let accepted = requests(&app, &tenant, &id, "outcome=accepted").await;
    assert_eq!(accepted.len(), 1, "{label}: {accepted:?}");
    let entry = &accepted[0];
    assert_eq!(
        entry["provider_event_id"],
        json!(event_id),
        "{label}: {entry}"
    );
    assert_eq!(entry["event_type"], json!(kind), "{label}: {entry}");
    assert_eq!(entry["body"], shown(step.req.text()), "{label}");
    let logged: Vec<String> = requests(&app, &tenant, &id, "outcome=rejected")
        .await
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = reasons.clone();
    expected.reverse();
    assert_eq!(logged, expected, "{label}: rejection reasons in the log");

    // The destination: exactly one delivery, signed for it, carrying the normalised envelope.
    let got = receiver.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        receiver.count(),
        1,
        "{label}: only the genuine request routes"
    );
    standardwebhooks::Webhook::new(DESTINATION_SECRET)
        .unwrap()
        .verify(&got[0].body, &got[0].headers)
        .unwrap_or_else(|e| panic!("{label}: the forward does not verify: {e:?}"));
    let envelope: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(envelope["source"], id, "{label}: {envelope}");
    assert_eq!(envelope["provider"], provider, "{label}");
    assert_eq!(envelope["event_id"], json!(event_id), "{label}: {envelope}");
    assert_eq!(envelope["type"], json!(kind), "{label}: {envelope}");
    let shown_body = shown(step.req.text());
    let payload = serde_json::from_str(&shown_body).unwrap_or_else(|_| json!(shown_body));
    assert_eq!(envelope["payload"], payload, "{label}: the payload");
    for secret in IN_BODY_CREDENTIALS {
        for (what, text) in [
            ("log", entry.to_string()),
            ("forward", envelope.to_string()),
        ] {
            assert!(
                !text.contains(secret),
                "{label}: the {what} shows a credential"
            );
        }
    }

    // Verification latency is measured per provider.
    let text = metrics(&app).await;
    let count = format!("webhook_inbound_verify_duration_seconds_count{{provider=\"{provider}\"}}");
    assert!(
        text.lines().any(|l| l.starts_with(&count)),
        "{label}: no {count} in /metrics"
    );

    let cells: Vec<String> = steps
        .iter()
        .map(|s| match &s.expect {
            Expect::Accepted { .. } => format!("{}: accepted", s.what),
            Expect::Rejected(reason) => format!("{}: {reason}", s.what),
        })
        .collect();
    format!("{label:<52} {}", cells.join(" | "))
}

fn shared(name: &str) -> Vec<u8> {
    let path = format!("{}/../shared/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err} (shared/ beside the repo)"))
}

fn shared_json(name: &str) -> Value {
    serde_json::from_slice(&shared(name)).unwrap()
}

fn payload(name: &str) -> Vec<u8> {
    shared(&format!("payloads/{name}"))
}

// ---------------------------------------------------------------------------------------------
// The providers' documented constructions, written apart from the verifiers.

fn hmac<M: Mac + hmac::digest::KeyInit>(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut mac = <M as Mac>::new_from_slice(key).unwrap();
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

fn hmac256(key: &str, content: &[u8]) -> Vec<u8> {
    hmac::<Hmac<Sha256>>(key.as_bytes(), content)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn sign_github(r: Req, secret: &str) -> Req {
    let sig = hex(&hmac256(secret, &r.body));
    r.header("X-Hub-Signature-256", format!("sha256={sig}"))
}

/// Slack and Zoom: `v0=` + hex HMAC of `v0:{ts}:{body}`, in their own header names.
fn sign_v0(r: Req, secret: &str, ts: i64, headers: [&str; 2]) -> Req {
    let ts = ts.to_string();
    let sig = hex(&hmac256(
        secret,
        &cat(&[b"v0:", ts.as_bytes(), b":", &r.body]),
    ));
    let [timestamp_header, signature_header] = headers;
    r.header(timestamp_header, &ts)
        .header(signature_header, format!("v0={sig}"))
}

fn sign_slack(r: Req, secret: &str, ts: i64) -> Req {
    sign_v0(
        r,
        secret,
        ts,
        ["X-Slack-Request-Timestamp", "X-Slack-Signature"],
    )
}

fn sign_zoom(r: Req, secret: &str, ts: i64) -> Req {
    sign_v0(r, secret, ts, ["x-zm-request-timestamp", "x-zm-signature"])
}

fn sign_stripe(r: Req, secret: &str, ts: i64) -> Req {
    let sig = hex(&hmac256(
        secret,
        &cat(&[ts.to_string().as_bytes(), b".", &r.body]),
    ));
    r.header("Stripe-Signature", format!("t={ts},v1={sig}"))
}

fn sign_shopify(r: Req, secret: &str) -> Req {
    let sig = b64(&hmac256(secret, &r.body));
    r.header("X-Shopify-Hmac-Sha256", sig)
}

fn sign_notion(r: Req, secret: &str) -> Req {
    let sig = hex(&hmac256(secret, &r.body));
    r.header("X-Notion-Signature", format!("sha256={sig}"))
}

fn sign_square(r: Req, url: &str, secret: &str) -> Req {
    let sig = b64(&hmac256(secret, &cat(&[url.as_bytes(), &r.body])));
    r.header("x-square-hmacsha256-signature", sig)
}

fn sign_linear(r: Req, secret: &str) -> Req {
    let sig = hex(&hmac256(secret, &r.body));
    r.header("Linear-Signature", sig)
}

/// Twilio: base64 HMAC-SHA1 of the URL, then each form parameter's name and value sorted by
/// name; a JSON body puts its SHA-256 in the URL's `bodySHA256` and the URL alone is signed.
fn twilio_signature(url: &str, body: &[u8], secret: &str) -> String {
    let mut content = url.to_owned();
    if !url.contains("bodySHA256=") {
        let mut params: Vec<(String, String)> =
            url::form_urlencoded::parse(body).into_owned().collect();
        params.sort();
        for (name, value) in params {
            content.push_str(&name);
            content.push_str(&value);
        }
    }
    b64(&hmac::<Hmac<sha1::Sha1>>(
        secret.as_bytes(),
        content.as_bytes(),
    ))
}

fn sign_twilio(r: Req, url: &str, secret: &str) -> Req {
    let sig = twilio_signature(url, &r.body, secret);
    r.header("X-Twilio-Signature", sig)
}

/// Standard Webhooks `v1` under `{prefix}-id/-timestamp/-signature`: the key is the base64
/// after `whsec_`.
fn sign_standard(r: Req, secret: &str, id: &str, ts: i64, prefix: &str) -> Req {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let content = cat(&[format!("{id}.{ts}.").as_bytes(), &r.body]);
    let sig = hmac::<Hmac<Sha256>>(&key, &content);
    r.header(&format!("{prefix}-id"), id)
        .header(&format!("{prefix}-timestamp"), ts.to_string())
        .header(&format!("{prefix}-signature"), format!("v1,{}", b64(&sig)))
}

/// Standard Webhooks `v1a`: ed25519 over the same content.
fn sign_standard_ed25519(r: Req, key: &Ed25519KeyPair, id: &str, ts: i64) -> Req {
    let content = cat(&[format!("{id}.{ts}.").as_bytes(), &r.body]);
    r.header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header(
            "webhook-signature",
            format!("v1a,{}", b64(key.sign(&content).as_ref())),
        )
}

fn whsec(fill: u8) -> String {
    format!("whsec_{}", b64(&[fill; 32]))
}

fn ed25519_generate() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn whpk(key: &Ed25519KeyPair) -> String {
    format!("whpk_{}", b64(key.public_key().as_ref()))
}

fn test_jwk() -> Value {
    json!({"kty": "RSA", "kid": TEST_KID, "alg": "RS256", "use": "sig", "n": TEST_RSA_N, "e": "AQAB"})
}

/// A JWT naming `kid`, RS256-signed with the test key (whatever key `kid` names).
fn jwt(kid: &str, claims: &Value) -> String {
    keys::rs256_jwt(&json!({"alg": "RS256", "kid": kid, "typ": "JWT"}), claims)
}

/// SendGrid's headers for `r`, signed by `key` at `ts`.
fn sign_sendgrid(key: &EcKey, r: Req, ts: i64) -> Req {
    let sig = key.sign_sendgrid(ts, &r.body);
    r.header("X-Twilio-Email-Event-Webhook-Timestamp", ts.to_string())
        .header("X-Twilio-Email-Event-Webhook-Signature", sig)
}

/// The claims of a Pub/Sub push token issued at `iat`, valid for an hour.
fn push_claims(audience: &str, email: &str, iat: i64) -> Value {
    json!({
        "iss": "https://accounts.google.com", "aud": audience, "azp": "1234", "sub": "1234",
        "email": email, "email_verified": true, "iat": iat, "exp": iat + 3600
    })
}

fn bearer(r: Req, token: &str) -> Req {
    r.header("Authorization", format!("Bearer {token}"))
}

/// Pub/Sub: what a token signed by a key the source trusts proves, and what it does not.
fn pubsub_steps(
    genuine: Step,
    audience: &str,
    email: &str,
    now: i64,
    kid_of_other_key: &str,
) -> Vec<Step> {
    let body = genuine.req.clone().without("Authorization");
    let mut steps = vec![genuine];
    steps.extend([
        rejected(
            "forged token (wrong key)",
            bearer(
                body.clone(),
                &jwt(kid_of_other_key, &push_claims(audience, email, now)),
            ),
            "bad_signature",
        ),
        rejected("missing credential", body.clone(), "missing_token"),
        rejected(
            "stale timestamp",
            bearer(
                body.clone(),
                &jwt(TEST_KID, &push_claims(audience, email, now - STALE_S)),
            ),
            "stale_timestamp",
        ),
        rejected(
            "other audience",
            bearer(
                body.clone(),
                &jwt(
                    TEST_KID,
                    &push_claims("https://elsewhere.example.com/push", email, now),
                ),
            ),
            "bad_audience",
        ),
        rejected(
            "other service account",
            bearer(
                body,
                &jwt(
                    TEST_KID,
                    &push_claims(audience, "intruder@evil.iam.gserviceaccount.com", now),
                ),
            ),
            "bad_email",
        ),
    ]);
    steps
}

// ---------------------------------------------------------------------------------------------
// The table

/// Every case: one per published vector, then requests signed by each provider's documented
/// rule.
fn cases() -> Vec<Case> {
    let mut cases = vector_cases();
    cases.extend(signed_cases());
    cases
}

/// One case per vector in the three vector files; a vector the table does not know fails.
fn vector_cases() -> Vec<Case> {
    let mut cases: Vec<Case> = shared_json("providers.json")["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| provider_vector(v.clone()))
        .collect();
    cases.push(pubsub_vector(shared_json("pubsub-jwt.json")));
    let standard = shared_json("standard-webhooks.json");
    for v in standard["symmetric"].as_array().unwrap() {
        cases.push(standard_webhooks_vector(v.clone()));
    }
    for v in standard["asymmetric"].as_array().unwrap() {
        cases.push(standard_webhooks_ed25519_vector(v.clone()));
    }
    cases
}

fn provider_vector(v: Value) -> Case {
    let provider = v["provider"].as_str().unwrap().to_owned();
    let label = format!("vector {provider} ({})", v["kind"].as_str().unwrap());
    let secret = v["secret"].as_str().unwrap_or("").to_owned();
    let body = v["body"].as_str().unwrap_or("").to_owned();
    let published = Req::post(&body).headers(&v["headers"]);
    let settings = json!({"secrets": [secret]});
    let header_time = |name: &str| -> i64 { v["headers"][name].as_str().unwrap().parse().unwrap() };
    match provider.as_str() {
        "github" => Case::new(label, "github", settings, move |_| {
            let wrong = sign_github(Req::post(&body), WRONG);
            signed(
                genuine(published.clone(), None, None),
                wrong,
                "X-Hub-Signature-256",
                None,
            )
        }),
        "slack" => {
            let ts = header_time("X-Slack-Request-Timestamp");
            Case::new(label, "slack", settings, move |_| {
                let wrong = sign_slack(Req::post(&body), WRONG, ts);
                let stale = sign_slack(Req::post(&body), &secret, ts - STALE_S);
                // A slash command: a form without event facts.
                signed(
                    genuine(published.clone(), None, None),
                    wrong,
                    "X-Slack-Signature",
                    Some(stale),
                )
            })
            .at(ts)
        }
        "stripe" => {
            let sig = v["headers"]["Stripe-Signature"].as_str().unwrap();
            let ts: i64 = sig
                .split(',')
                .find_map(|kv| kv.strip_prefix("t="))
                .unwrap()
                .parse()
                .unwrap();
            Case::new(label, "stripe", settings, move |_| {
                let wrong = sign_stripe(Req::post(&body), WRONG, ts);
                let stale = sign_stripe(Req::post(&body), &secret, ts - STALE_S);
                signed(
                    genuine(published.clone(), Some("evt_test_webhook"), None),
                    wrong,
                    "Stripe-Signature",
                    Some(stale),
                )
            })
            .at(ts)
        }
        "shopify" => Case::new(label, "shopify", settings, move |_| {
            let wrong = sign_shopify(Req::post(&body), WRONG);
            signed(
                genuine(published.clone(), None, None),
                wrong,
                "X-Shopify-Hmac-Sha256",
                None,
            )
        }),
        "notion" => Case::new(label, "notion", settings, move |_| {
            let wrong = sign_notion(Req::post(&body), WRONG);
            signed(
                genuine(published.clone(), Some("e1"), Some("page.created")),
                wrong,
                "X-Notion-Signature",
                None,
            )
        }),
        "zoom" => {
            let ts = header_time("x-zm-request-timestamp");
            Case::new(label, "zoom", settings, move |_| {
                let wrong = sign_zoom(Req::post(&body), WRONG, ts);
                let stale = sign_zoom(Req::post(&body), &secret, ts - STALE_S);
                signed(
                    genuine(published.clone(), None, Some("meeting.started")),
                    wrong,
                    "x-zm-signature",
                    Some(stale),
                )
            })
            .at(ts)
        }
        "linear" => {
            let sent_ms = serde_json::from_str::<Value>(&body).unwrap()["webhookTimestamp"]
                .as_i64()
                .unwrap();
            let ts = sent_ms / 1000;
            Case::new(label, "linear", settings, move |_| {
                let wrong = sign_linear(Req::post(&body), WRONG);
                let old = body.replace(&sent_ms.to_string(), &((ts - STALE_S) * 1000).to_string());
                let stale = sign_linear(Req::post(old), &secret);
                signed(
                    genuine(published.clone(), None, Some("Issue.create")),
                    wrong,
                    "Linear-Signature",
                    Some(stale),
                )
            })
            .at(ts)
        }
        "square" => {
            // The signature covers the notification URL as registered: set it, so the
            // published request verifies byte for byte at /in/{source}.
            let url = v["url"].as_str().unwrap().to_owned();
            let settings = json!({"secrets": [secret], "notification_url": url});
            Case::new(label, "square", settings, move |_| {
                let wrong = sign_square(Req::post(&body), &url, WRONG);
                signed(
                    genuine(
                        published.clone(),
                        Some("ac3ac95b-f97d-458c-a6e6-18981597e05f"),
                        Some("webhooks.test_notification"),
                    ),
                    wrong,
                    "x-square-hmacsha256-signature",
                    None,
                )
            })
        }
        "twilio" => {
            // Twilio signs the URL it called. The published one ends in /myapp.php, which no
            // /in/{source} URL can be, so the published token, form and query are re-signed
            // for this source's URL with the rule that reproduces the published signature.
            let published_url = v["url"].as_str().unwrap().to_owned();
            let form = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(
                    v["form"]
                        .as_object()
                        .unwrap()
                        .iter()
                        .map(|(k, v)| (k, v.as_str().unwrap())),
                )
                .finish();
            assert_eq!(
                twilio_signature(&published_url, form.as_bytes(), &secret),
                v["headers"]["X-Twilio-Signature"].as_str().unwrap(),
                "the Twilio rule reproduces the published signature"
            );
            let query = published_url[published_url.find('?').unwrap()..].to_owned();
            Case::new(label, "twilio", settings, move |t| {
                let url = t.url(&query);
                let base = Req::post(&form)
                    .query(&query)
                    .header("Content-Type", "application/x-www-form-urlencoded");
                signed(
                    genuine(
                        sign_twilio(base.clone(), &url, &secret),
                        Some("CA1234567890ABCDE"),
                        None,
                    ),
                    sign_twilio(base, &url, WRONG),
                    "X-Twilio-Signature",
                    None,
                )
            })
            .public_url("https://mycompany.com")
        }
        "sendgrid" => {
            // The published key verifies the published request; a second configured key (one
            // made here) signs the stale request, so it is refused for its time alone.
            let ts = header_time("X-Twilio-Email-Event-Webhook-Timestamp");
            let configured = EcKey::generate();
            let settings = json!({"public_keys": [v["public_key"], configured.spki_base64()]});
            Case::new(label, "sendgrid", settings, move |_| {
                let wrong = sign_sendgrid(&EcKey::generate(), Req::post(&body), ts);
                let stale = sign_sendgrid(&configured, Req::post(&body), ts - STALE_S);
                // One event object rather than SendGrid's array: no batch facts.
                signed(
                    genuine(published.clone(), None, None),
                    wrong,
                    "X-Twilio-Email-Event-Webhook-Signature",
                    Some(stale),
                )
            })
            .at(ts)
        }
        other => panic!("a vector for `{other}` is not in the matrix: add it"),
    }
}

/// The Pub/Sub vector: its token, its key, its audience and account. The test key is trusted
/// too, so the negative cases can be signed.
fn pubsub_vector(v: Value) -> Case {
    let token = v["jwt"].as_str().unwrap().to_owned();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let audience = claims["aud"].as_str().unwrap().to_owned();
    let email = claims["email"].as_str().unwrap().to_owned();
    let vector_kid = v["jwk"]["kid"].as_str().unwrap().to_owned();
    let settings = json!({
        "audience": audience, "service_accounts": [email],
        "jwks": {"keys": [v["jwk"], test_jwk()]}
    });
    let iat = claims["iat"].as_i64().unwrap();
    Case::new("vector pubsub (SELF)", "pubsub", settings, move |t| {
        let body = Req::post(payload("google-pubsub/push.wrapped.json"));
        let genuine = genuine(bearer(body, &token), Some("2070443601311540"), None);
        pubsub_steps(genuine, &audience, &email, t.now, &vector_kid)
    })
    .at(iat + 60)
}

fn standard_webhooks_vector(v: Value) -> Case {
    let secret = v["secret"].as_str().unwrap().to_owned();
    let id = v["id"].as_str().unwrap().to_owned();
    let ts = v["timestamp"].as_i64().unwrap();
    let body = v["payload"].as_str().unwrap().to_owned();
    let expected = v["expected"].as_str().unwrap().to_owned();
    let label = format!("vector standard_webhooks v1 {id}");
    let settings = json!({"secrets": [secret]});
    Case::new(label, "standard_webhooks", settings, move |_| {
        let published = Req::post(&body)
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", &expected);
        signed(
            genuine(published, Some(&id), None),
            sign_standard(Req::post(&body), &whsec(2), &id, ts, "webhook"),
            "webhook-signature",
            Some(sign_standard(
                Req::post(&body),
                &secret,
                &id,
                ts - STALE_S,
                "webhook",
            )),
        )
    })
    .at(ts)
}

/// The ed25519 vector: the secret is `whsk_` + base64(seed ‖ public key); the source is
/// configured with the public half as `whpk_`.
fn standard_webhooks_ed25519_vector(v: Value) -> Case {
    let secret = STANDARD
        .decode(v["secret"].as_str().unwrap().trim_start_matches("whsk_"))
        .unwrap();
    let (seed, public) = secret.split_at(32);
    let key = Ed25519KeyPair::from_seed_and_public_key(seed, public).unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    let ts = v["timestamp"].as_i64().unwrap();
    let body = v["payload"].as_str().unwrap().to_owned();
    let expected = v["expected"].as_str().unwrap().to_owned();
    let settings = json!({"public_keys": [whpk(&key)]});
    Case::new(
        format!("vector standard_webhooks v1a {id}"),
        "standard_webhooks",
        settings,
        move |_| {
            let published = Req::post(&body)
                .header("webhook-id", &id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", &expected);
            signed(
                genuine(published, Some(&id), None),
                sign_standard_ed25519(Req::post(&body), &ed25519_generate(), &id, ts),
                "webhook-signature",
                Some(sign_standard_ed25519(
                    Req::post(&body),
                    &key,
                    &id,
                    ts - STALE_S,
                )),
            )
        },
    )
    .at(ts)
}

/// Providers' documented rules over their documented sample payloads, at the real time.
fn signed_cases() -> Vec<Case> {
    let secret = || json!({"secrets": [SECRET]});
    vec![
        Case::new(
            "generic sha256/hex, {timestamp}.{body}",
            "generic",
            json!({
                "secrets": [SECRET], "header": "X-Signature", "prefix": "sha256=",
                "signed_content": "{timestamp}.{body}", "timestamp_header": "X-Timestamp",
                "id_header": "X-Event-Id", "event_type_header": "X-Event-Type"
            }),
            |t| {
                let body = r#"{"order":{"id":1042,"total":"19.99"}}"#;
                let sign = |secret: &str, ts: i64| {
                    let content = format!("{ts}.{body}");
                    Req::post(body)
                        .header("X-Event-Id", "evt_1042")
                        .header("X-Event-Type", "order.paid")
                        .header("X-Timestamp", ts.to_string())
                        .header(
                            "X-Signature",
                            format!("sha256={}", hex(&hmac256(secret, content.as_bytes()))),
                        )
                };
                signed(
                    genuine(sign(SECRET, t.now), Some("evt_1042"), Some("order.paid")),
                    sign(WRONG, t.now),
                    "X-Signature",
                    Some(sign(SECRET, t.now - STALE_S)),
                )
            },
        ),
        Case::new(
            "generic sha512/base64, {id}.{timestamp}.{url}.{body}",
            "generic",
            json!({
                "secrets": [SECRET], "header": "X-Hook-Signature", "algorithm": "sha512",
                "encoding": "base64", "prefix": "v1=",
                "signed_content": "{id}.{timestamp}.{url}.{body}",
                "timestamp_header": "X-Hook-Timestamp", "id_header": "X-Hook-Id"
            }),
            |t| {
                let body = r#"{"ticket":77,"status":"closed"}"#;
                let query = "?tenant=acme";
                let url = t.url(query);
                let sign = |secret: &str, ts: i64| {
                    let content = format!("hk_77.{ts}.{url}.{body}");
                    let mac = hmac::<Hmac<Sha512>>(secret.as_bytes(), content.as_bytes());
                    Req::post(body)
                        .query(query)
                        .header("X-Hook-Id", "hk_77")
                        .header("X-Hook-Timestamp", ts.to_string())
                        .header("X-Hook-Signature", format!("v1={}", b64(&mac)))
                };
                signed(
                    genuine(sign(SECRET, t.now), Some("hk_77"), None),
                    sign(WRONG, t.now),
                    "X-Hook-Signature",
                    Some(sign(SECRET, t.now - STALE_S)),
                )
            },
        )
        .public_url(PUBLIC),
        Case::new("github push", "github", secret(), |_| {
            let base = Req::post(payload("github/push.json"))
                .header("Content-Type", "application/json")
                .header("X-GitHub-Event", "push")
                .header("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
            signed(
                genuine(
                    sign_github(base.clone(), SECRET),
                    Some("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
                    Some("push"),
                ),
                sign_github(base, WRONG),
                "X-Hub-Signature-256",
                None,
            )
        }),
        Case::new("gitlab secret token", "gitlab", secret(), |_| {
            let base = gitlab_push();
            vec![
                genuine(
                    base.clone().header("X-Gitlab-Token", SECRET),
                    Some("f5e5f430-f57b-4e6e-9fac-d9128cd7232f"),
                    Some("Push Hook"),
                ),
                rejected(
                    "wrong secret",
                    base.clone().header("X-Gitlab-Token", WRONG),
                    "bad_token",
                ),
                rejected("missing credential", base, "missing_token"),
            ]
        }),
        Case::new(
            "gitlab signing token (Standard Webhooks)",
            "gitlab",
            json!({"signing_secrets": [whsec(1)]}),
            |t| {
                let id = "f5e5f430-f57b-4e6e-9fac-d9128cd7232f";
                let sign =
                    |secret: &str, ts: i64| sign_standard(gitlab_push(), secret, id, ts, "webhook");
                signed(
                    genuine(sign(&whsec(1), t.now), Some(id), Some("Push Hook")),
                    sign(&whsec(2), t.now),
                    "webhook-signature",
                    Some(sign(&whsec(1), t.now - STALE_S)),
                )
            },
        ),
        Case::new("linear comment.create", "linear", secret(), |t| {
            let sent_at = |ts: i64| {
                let mut doc: Value =
                    serde_json::from_slice(&payload("linear/comment.create.json")).unwrap();
                doc["webhookTimestamp"] = json!(ts * 1000);
                Req::post(doc.to_string())
                    .header("Linear-Delivery", "234d1a4e-b617-4388-90fe-adc3633d6b72")
                    .header("Linear-Event", "Comment")
            };
            signed(
                genuine(
                    sign_linear(sent_at(t.now), SECRET),
                    Some("234d1a4e-b617-4388-90fe-adc3633d6b72"),
                    Some("Comment.create"),
                ),
                sign_linear(sent_at(t.now), WRONG),
                "Linear-Signature",
                Some(sign_linear(sent_at(t.now - STALE_S), SECRET)),
            )
        }),
        Case::new("notion page.created", "notion", secret(), |_| {
            let base = Req::post(payload("notion/page.created.json"));
            signed(
                genuine(
                    sign_notion(base.clone(), SECRET),
                    Some("367cba44-b6f3-4c92-81e7-6a2e9659efd4"),
                    Some("page.created"),
                ),
                sign_notion(base, WRONG),
                "X-Notion-Signature",
                None,
            )
        }),
        Case::new(
            "pubsub OIDC push",
            "pubsub",
            json!({
                "audience": format!("{PUBLIC}/push/pubsub"), "service_accounts": [PUSH_ACCOUNT],
                "jwks": {"keys": [test_jwk(), shared_json("pubsub-jwt.json")["jwk"]]}
            }),
            |t| {
                let audience = format!("{PUBLIC}/push/pubsub");
                let body = Req::post(payload("google-pubsub/push.wrapped.json"));
                let token = jwt(TEST_KID, &push_claims(&audience, PUSH_ACCOUNT, t.now));
                let genuine = genuine(bearer(body, &token), Some("2070443601311540"), None);
                // The vector's key is trusted too: a token naming it but signed with the test
                // key is a forgery.
                pubsub_steps(genuine, &audience, PUSH_ACCOUNT, t.now, "test-kid-1")
            },
        ),
        Case::new(
            "salesforce organization id",
            "salesforce",
            json!({"organization_ids": ["012345678901234"]}),
            |_| {
                let xml = salesforce_xml();
                let base = Req::post(&xml).header("Content-Type", "text/xml; charset=utf-8");
                vec![
                    genuine(base.clone(), None, Some("Contact")),
                    rejected(
                        "wrong secret (another org)",
                        base.body(xml.replace("012345678901234", "00D000000000001")),
                        "bad_organization",
                    ),
                    rejected(
                        "missing credential",
                        base.body(
                            xml.replace("<OrganizationId>012345678901234</OrganizationId>", ""),
                        ),
                        "malformed",
                    ),
                ]
            },
        ),
        Case::new(
            "salesforce organization id + HMAC header",
            "salesforce",
            json!({
                "organization_ids": ["012345678901234"], "secrets": [SECRET],
                "hmac": {"header": "X-Salesforce-Signature", "encoding": "base64"}
            }),
            |_| {
                let base = Req::post(salesforce_xml());
                let sign = |secret: &str| {
                    let sig = b64(&hmac256(secret, &base.body));
                    base.clone().header("X-Salesforce-Signature", sig)
                };
                signed(
                    genuine(sign(SECRET), None, Some("Contact")),
                    sign(WRONG),
                    "X-Salesforce-Signature",
                    None,
                )
            },
        ),
        {
            let key = EcKey::generate();
            let settings = json!({"public_keys": [key.spki_base64()]});
            Case::new("sendgrid delivered", "sendgrid", settings, move |t| {
                let base = Req::post(payload("sendgrid/delivered.json"));
                signed(
                    genuine(
                        sign_sendgrid(&key, base.clone(), t.now),
                        Some("rWVYmVk90MjZJ9iohOBa3w=="),
                        Some("delivered"),
                    ),
                    sign_sendgrid(&EcKey::generate(), base.clone(), t.now),
                    "X-Twilio-Email-Event-Webhook-Signature",
                    Some(sign_sendgrid(&key, base, t.now - STALE_S)),
                )
            })
        },
        Case::new("shopify products/update", "shopify", secret(), |_| {
            let base = Req::post(payload("shopify/products.update.json"))
                .header("X-Shopify-Topic", "products/update")
                .header(
                    "X-Shopify-Webhook-Id",
                    "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
                )
                .header("X-Shopify-Triggered-At", "2023-03-29T18:00:27.877041743Z");
            signed(
                genuine(
                    sign_shopify(base.clone(), SECRET),
                    Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
                    Some("products/update"),
                ),
                sign_shopify(base, WRONG),
                "X-Shopify-Hmac-Sha256",
                None,
            )
        }),
        Case::new("slack event_callback", "slack", secret(), |t| {
            let base = Req::post(payload("slack/event_callback.message.json"));
            signed(
                genuine(
                    sign_slack(base.clone(), SECRET, t.now),
                    Some("Ev123ABC456"),
                    Some("message"),
                ),
                sign_slack(base.clone(), WRONG, t.now),
                "X-Slack-Signature",
                Some(sign_slack(base, SECRET, t.now - STALE_S)),
            )
        }),
        Case::new(
            "square payment.created (public URL)",
            "square",
            secret(),
            |t| {
                let base = Req::post(payload("square/payment.created.json"));
                signed(
                    genuine(
                        sign_square(base.clone(), &t.url(""), SECRET),
                        Some("13b867cf-db3d-4b1c-90b6-2f32a9d78124"),
                        Some("payment.created"),
                    ),
                    sign_square(base, &t.url(""), WRONG),
                    "x-square-hmacsha256-signature",
                    None,
                )
            },
        )
        .public_url(PUBLIC),
        Case::new(
            "standard_webhooks v1 (webhook-*)",
            "standard_webhooks",
            json!({"secrets": [whsec(1)]}),
            |t| standard_webhooks_fresh(t, "webhook"),
        ),
        Case::new(
            "standard_webhooks v1 (svix-*)",
            "standard_webhooks",
            json!({"secrets": [whsec(1)]}),
            |t| standard_webhooks_fresh(t, "svix"),
        ),
        Case::new("stripe setup_intent.created", "stripe", secret(), |t| {
            let base = Req::post(payload("stripe/event.setup_intent.created.json"));
            signed(
                genuine(
                    sign_stripe(base.clone(), SECRET, t.now),
                    Some("evt_1NG8Du2eZvKYlo2CUI79vXWy"),
                    Some("setup_intent.created"),
                ),
                sign_stripe(base.clone(), WRONG, t.now),
                "Stripe-Signature",
                Some(sign_stripe(base, SECRET, t.now - STALE_S)),
            )
        }),
        Case::new("twilio incoming SMS (form)", "twilio", secret(), |t| {
            let query = "?channel=sms";
            let url = t.url(query);
            let base = Req::post(payload("twilio/incoming_sms.txt"))
                .query(query)
                .header("Content-Type", "application/x-www-form-urlencoded");
            signed(
                genuine(
                    sign_twilio(base.clone(), &url, SECRET),
                    Some("SM1521fa559fb923c1ed64f56cd1bed8ef"),
                    Some("message.received"),
                ),
                sign_twilio(base, &url, WRONG),
                "X-Twilio-Signature",
                None,
            )
        })
        .public_url(PUBLIC),
        Case::new("twilio JSON (bodySHA256)", "twilio", secret(), |t| {
            let body = r#"{"event":"studio.flow.completed","sid":"FN123"}"#;
            let query = format!("?bodySHA256={}", hex(&Sha256::digest(body)));
            let url = t.url(&query);
            let base = Req::post(body)
                .query(&query)
                .header("Content-Type", "application/json");
            signed(
                genuine(sign_twilio(base.clone(), &url, SECRET), None, None),
                sign_twilio(base, &url, WRONG),
                "X-Twilio-Signature",
                None,
            )
        })
        .public_url(PUBLIC),
        Case::new("zoho token in the body (default)", "zoho", secret(), |t| {
            let with = |token: Option<&str>| Req::post(zoho_notification(t.now, token));
            vec![
                genuine(with(Some(SECRET)), None, Some("Leads.insert")),
                rejected("wrong secret", with(Some(WRONG)), "bad_token"),
                rejected("missing credential", with(None), "missing_token"),
            ]
        }),
        Case::new(
            "zoho token in a header",
            "zoho",
            json!({"secrets": [SECRET], "scheme": {"token_header": "X-Zoho-Token"}}),
            |t| {
                let base = Req::post(zoho_notification(t.now, None));
                vec![
                    genuine(
                        base.clone().header("X-Zoho-Token", SECRET),
                        None,
                        Some("Leads.insert"),
                    ),
                    rejected(
                        "wrong secret",
                        base.clone().header("X-Zoho-Token", WRONG),
                        "bad_token",
                    ),
                    rejected("missing credential", base, "missing_token"),
                ]
            },
        ),
        Case::new(
            "zoho HMAC header",
            "zoho",
            json!({"secrets": [SECRET], "scheme": {"hmac": {"header": "X-Zoho-Signature"}}}),
            |t| {
                let base = Req::post(zoho_notification(t.now, None));
                let sign = |secret: &str| {
                    let sig = hex(&hmac256(secret, &base.body));
                    base.clone().header("X-Zoho-Signature", sig)
                };
                signed(
                    genuine(sign(SECRET), None, Some("Leads.insert")),
                    sign(WRONG),
                    "X-Zoho-Signature",
                    None,
                )
            },
        ),
        Case::new("zoom meeting.started", "zoom", secret(), |t| {
            let base = Req::post(payload("zoom/meeting.started.json"));
            signed(
                genuine(
                    sign_zoom(base.clone(), SECRET, t.now),
                    None,
                    Some("meeting.started"),
                ),
                sign_zoom(base.clone(), WRONG, t.now),
                "x-zm-signature",
                Some(sign_zoom(base, SECRET, t.now - STALE_S)),
            )
        }),
    ]
}

fn gitlab_push() -> Req {
    Req::post(payload("gitlab/push_hook.json"))
        .header("Content-Type", "application/json")
        .header("X-Gitlab-Event", "Push Hook")
        .header(
            "X-Gitlab-Event-UUID",
            "13792a34-cac6-4fda-95a8-c58e00a3954e",
        )
        .header("Idempotency-Key", "f5e5f430-f57b-4e6e-9fac-d9128cd7232f")
}

fn salesforce_xml() -> String {
    String::from_utf8(payload("salesforce/outbound_message.contact.xml")).unwrap()
}

fn zoho_notification(now: i64, token: Option<&str>) -> String {
    let mut doc = json!({
        "module": "Leads", "operation": "insert", "server_time": now * 1000,
        "ids": ["4150868000001234567"], "channel_id": "1000000068001",
        "resource_uri": "https://www.zohoapis.com/crm/v8/Leads"
    });
    if let Some(token) = token {
        doc["token"] = json!(token);
    }
    doc.to_string()
}

fn standard_webhooks_fresh(t: &Target, prefix: &str) -> Vec<Step> {
    let body = r#"{"type":"invoice.paid","timestamp":"2026-01-01T00:00:00Z","data":{"id":"inv_1","amount":1200}}"#;
    let sign =
        |secret: &str, ts: i64| sign_standard(Req::post(body), secret, "msg_2f9Pq", ts, prefix);
    signed(
        genuine(
            sign(&whsec(1), t.now),
            Some("msg_2f9Pq"),
            Some("invoice.paid"),
        ),
        sign(&whsec(2), t.now),
        &format!("{prefix}-signature"),
        Some(sign(&whsec(1), t.now - STALE_S)),
    )
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn every_provider_accepts_genuine_requests_and_rejects_the_rest_through_the_receive_path() {
    let cases = cases();
    for verifier in hookrelay::inbound::providers::all() {
        assert!(
            cases.iter().any(|c| c.provider == verifier.name()),
            "no case for provider `{}`: add one",
            verifier.name()
        );
    }
    let mut runs = tokio::task::JoinSet::new();
    for (n, case) in cases.into_iter().enumerate() {
        let label = case.label.clone();
        runs.spawn(async move { (n, label, check(case).await) });
    }
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    while let Some(joined) = runs.join_next().await {
        match joined {
            Ok((n, _, row)) => rows.push((n, row)),
            Err(err) => failures.push(err.to_string()),
        }
    }
    rows.sort();
    println!(
        "{}",
        rows.into_iter()
            .map(|(_, row)| row)
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn every_published_vector_is_a_case() {
    let providers = shared_json("providers.json")["vectors"]
        .as_array()
        .unwrap()
        .len();
    let standard = shared_json("standard-webhooks.json");
    let standard = standard["symmetric"].as_array().unwrap().len()
        + standard["asymmetric"].as_array().unwrap().len();
    let pubsub = 1;
    let vectors = vector_cases();
    assert_eq!(vectors.len(), providers + standard + pubsub);
    assert!(vectors.iter().all(|c| c.label.starts_with("vector ")));
}

#[tokio::test]
async fn verification_latency_is_a_histogram_per_provider_in_metrics() {
    let app = spawn_app().await;
    let tenant = app.tenant("latency").await;
    let (s, src) = app
        .post(
            &format!("/api/v1/tenants/{tenant}/sources"),
            &app.admin,
            json!({"name": "gh", "provider": "github", "verification": {"secrets": [SECRET]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{src}");
    let id = src["id"].as_str().unwrap();
    let req = sign_github(
        Req::post(r#"{"n":1}"#).header("X-GitHub-Event", "push"),
        SECRET,
    );
    let (s, b) = send(&app, id, &req).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    // A rejected request is timed too.
    let (s, _) = send(&app, id, &req.tampered()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let text = metrics(&app).await;
    assert!(
        text.contains("# TYPE webhook_inbound_verify_duration_seconds histogram"),
        "{text}"
    );
    let series: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("webhook_inbound_verify_duration_seconds")
                && l.contains("provider=\"github\"")
        })
        .collect();
    assert!(
        series.iter().any(|l| l.contains("le=\"0.0001\"")),
        "the configured buckets: {series:#?}"
    );
    assert!(
        series.iter().any(|l| l.contains("le=\"+Inf\"")),
        "{series:#?}"
    );
    let count: f64 = series
        .iter()
        .find(|l| l.starts_with("webhook_inbound_verify_duration_seconds_count"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no _count: {series:#?}"));
    assert!(count >= 2.0, "{series:#?}");
}
