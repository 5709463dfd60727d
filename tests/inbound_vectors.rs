//! The inbound verifiers against data other people wrote (`../shared/vectors`), and one
//! conformance pass over every provider.
//!
//! - Every signature vector (providers.json, pubsub-jwt.json, the Standard Webhooks vectors)
//!   verifies with the clock set to the vector's own time.
//! - The payload corpus: the event id, type and time each sidecar documents are what the
//!   verifier extracts, and handshakes get the reply the provider expects.
//! - Conformance: for every provider in `all()`, a genuine request built from the provider's
//!   documented rule verifies, and a tampered body, a wrong secret and a missing credential
//!   are each rejected with their own code; timestamped schemes reject a stale request.
//!
//! Everything goes through one `check(what, settings, request, now, expect)`.

mod keys;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use keys::{EcKey, PUSH_ACCOUNT, TEST_KID, TEST_RSA_N};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

use hookrelay::inbound::{
    Handshake, InboundRequest, SourceSecret, SourceSettings, Verified, VerifyContext, all,
    verify_request,
};

// ---------------------------------------------------------------------------------------------
// Harness

const URL: &str = "https://hooks.example.com/in/src_01";
const NOW: i64 = 1_700_000_000;
const SECRET: &str = "right-secret";
const WRONG: &str = "wrong-secret";

#[derive(Debug, Clone)]
struct Request {
    method: &'static str,
    url: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Request {
    fn post(body: impl AsRef<[u8]>) -> Self {
        Request {
            method: "POST",
            url: URL.to_owned(),
            headers: HeaderMap::new(),
            body: body.as_ref().to_vec(),
        }
    }

    fn url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    /// Sets (replaces) a header. Values are taken as bytes: sidecar placeholders are not ASCII.
    fn header(mut self, name: &str, value: impl AsRef<str>) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
        let value = HeaderValue::from_bytes(value.as_ref().as_bytes()).unwrap();
        self.headers.insert(name, value);
        self
    }

    fn without(&self, name: &str) -> Self {
        let mut copy = self.clone();
        assert!(copy.headers.remove(name).is_some(), "no {name} to remove");
        copy
    }

    fn body(&self, body: impl AsRef<[u8]>) -> Self {
        Request {
            body: body.as_ref().to_vec(),
            ..self.clone()
        }
    }

    /// The same request with `tamper-me` in its body changed (same length, same structure).
    fn tampered(&self) -> Self {
        let text = String::from_utf8(self.body.clone()).unwrap();
        assert!(
            text.contains("tamper-me"),
            "fixture bodies carry `tamper-me`"
        );
        self.body(text.replacen("tamper-me", "tampered!", 1))
    }

    fn text(&self, name: &str) -> &str {
        self.headers[name].to_str().unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accepted,
    /// Accepted because the scheme does not cover what was changed (a token, an org id, a
    /// bearer token that says nothing about the body): documented, not a bug.
    AcceptedByDesign,
    Rejected(&'static str),
}

fn outcome(
    settings: &SourceSettings,
    request: &Request,
    now: i64,
) -> Result<Verified, &'static str> {
    let inbound = InboundRequest {
        method: request.method,
        url: &request.url,
        headers: &request.headers,
        body: &request.body,
    };
    let ctx = VerifyContext::at(chrono::DateTime::from_timestamp(now, 0).unwrap());
    verify_request(&inbound, settings, &ctx).map_err(|err| err.code())
}

/// Runs one case and asserts its outcome; answers the verified request when accepted.
fn check(
    what: &str,
    settings: &SourceSettings,
    request: &Request,
    now: i64,
    expect: Expect,
) -> Option<Verified> {
    let got = outcome(settings, request, now);
    match (expect, got) {
        (Expect::Accepted | Expect::AcceptedByDesign, Ok(verified)) => Some(verified),
        (Expect::Rejected(code), Err(got)) if got == code => None,
        (expect, got) => panic!("{what}: expected {expect:?}, got {got:?}"),
    }
}

fn settings(doc: Value) -> SourceSettings {
    serde_json::from_value(doc.clone()).unwrap_or_else(|err| panic!("settings {doc}: {err}"))
}

fn shared(name: &str) -> Vec<u8> {
    let path = format!("{}/../shared/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err} (shared/ beside the repo)"))
}

fn shared_json(name: &str) -> Value {
    serde_json::from_slice(&shared(name)).unwrap()
}

fn time(rfc3339: &str) -> chrono::DateTime<chrono::Utc> {
    rfc3339.parse().unwrap()
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

fn sign_github(r: Request, secret: &str) -> Request {
    let sig = hex(&hmac256(secret, &r.body));
    r.header("X-Hub-Signature-256", format!("sha256={sig}"))
}

fn sign_slack(r: Request, secret: &str, ts: i64) -> Request {
    let ts = ts.to_string();
    let sig = hex(&hmac256(
        secret,
        &cat(&[b"v0:", ts.as_bytes(), b":", &r.body]),
    ));
    r.header("X-Slack-Request-Timestamp", &ts)
        .header("X-Slack-Signature", format!("v0={sig}"))
}

fn sign_stripe(r: Request, secret: &str, ts: i64) -> Request {
    let sig = hex(&hmac256(
        secret,
        &cat(&[ts.to_string().as_bytes(), b".", &r.body]),
    ));
    r.header("Stripe-Signature", format!("t={ts},v1={sig},v0=ignored"))
}

fn sign_shopify(r: Request, secret: &str) -> Request {
    let sig = b64(&hmac256(secret, &r.body));
    r.header("X-Shopify-Hmac-Sha256", sig)
}

fn sign_notion(r: Request, secret: &str) -> Request {
    let sig = hex(&hmac256(secret, &r.body));
    r.header("X-Notion-Signature", format!("sha256={sig}"))
}

fn sign_square(r: Request, secret: &str) -> Request {
    let sig = b64(&hmac256(secret, &cat(&[r.url.as_bytes(), &r.body])));
    r.header("x-square-hmacsha256-signature", sig)
}

fn sign_zoom(r: Request, secret: &str, ts: i64) -> Request {
    let ts = ts.to_string();
    let sig = hex(&hmac256(
        secret,
        &cat(&[b"v0:", ts.as_bytes(), b":", &r.body]),
    ));
    r.header("x-zm-request-timestamp", &ts)
        .header("x-zm-signature", format!("v0={sig}"))
}

fn sign_linear(r: Request, secret: &str) -> Request {
    let sig = hex(&hmac256(secret, &r.body));
    r.header("Linear-Signature", sig)
}

/// Twilio: URL, then each form parameter's name and value sorted by name; JSON bodies put
/// their SHA-256 in the URL's `bodySHA256` and sign the URL alone.
fn sign_twilio(r: Request, secret: &str) -> Request {
    let mut content = r.url.clone();
    if !r.url.contains("bodySHA256=") {
        let mut params: Vec<(String, String)> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        params.sort();
        for (name, value) in params {
            content.push_str(&name);
            content.push_str(&value);
        }
    }
    let sig = b64(&hmac::<Hmac<sha1::Sha1>>(
        secret.as_bytes(),
        content.as_bytes(),
    ));
    r.header("X-Twilio-Signature", sig)
}

/// Standard Webhooks `v1`: the key is the base64 after `whsec_`.
fn sign_standard(r: Request, secret: &str, id: &str, ts: i64, prefix: &str) -> Request {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let content = format!("{id}.{ts}.");
    let sig = hmac::<Hmac<Sha256>>(&key, &cat(&[content.as_bytes(), &r.body]));
    r.header(&format!("{prefix}-id"), id)
        .header(&format!("{prefix}-timestamp"), ts.to_string())
        .header(&format!("{prefix}-signature"), format!("v1,{}", b64(&sig)))
}

fn whsec(fill: u8) -> String {
    format!("whsec_{}", b64(&[fill; 32]))
}

fn test_jwk(kid: &str, n: &str) -> Value {
    json!({"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"})
}

/// A JWT with `header` and `claims`, RS256-signed with the test key.
fn jwt(header: &Value, claims: &Value) -> String {
    keys::rs256_jwt(header, claims)
}

/// SendGrid's headers for `r`, signed by `key` at `ts`.
fn sign_sendgrid(key: &EcKey, r: Request, ts: i64) -> Request {
    let sig = key.sign_sendgrid(ts, &r.body);
    r.header("X-Twilio-Email-Event-Webhook-Timestamp", ts.to_string())
        .header("X-Twilio-Email-Event-Webhook-Signature", sig)
}

fn push_claims(iat: i64) -> Value {
    json!({
        "iss": "https://accounts.google.com", "aud": URL, "azp": "1234", "sub": "1234",
        "email": PUSH_ACCOUNT, "email_verified": true, "iat": iat, "exp": iat + 3600
    })
}

fn sign_pubsub(r: Request, claims: &Value) -> Request {
    let header = json!({"alg": "RS256", "kid": TEST_KID, "typ": "JWT"});
    r.header("Authorization", format!("Bearer {}", jwt(&header, claims)))
}

fn pubsub_settings(keys: Value) -> SourceSettings {
    settings(json!({
        "provider": "pubsub", "audience": URL, "service_accounts": [PUSH_ACCOUNT],
        "jwks": {"keys": keys}
    }))
}

fn secret_settings(provider: &str, secret: &str) -> SourceSettings {
    settings(json!({"provider": provider, "secrets": [secret]}))
}

// ---------------------------------------------------------------------------------------------
// Published vectors

/// The clock a vector was made at: its signed timestamp.
fn vector_time(v: &Value) -> i64 {
    let header = |name: &str| v["headers"][name].as_str().map(str::to_owned);
    let body = v["body"].as_str().unwrap_or("");
    match v["provider"].as_str().unwrap() {
        "slack" => header("X-Slack-Request-Timestamp")
            .unwrap()
            .parse()
            .unwrap(),
        "zoom" => header("x-zm-request-timestamp").unwrap().parse().unwrap(),
        "sendgrid" => header("X-Twilio-Email-Event-Webhook-Timestamp")
            .unwrap()
            .parse()
            .unwrap(),
        "stripe" => {
            let sig = header("Stripe-Signature").unwrap();
            sig.split(',')
                .find_map(|kv| kv.strip_prefix("t="))
                .unwrap()
                .parse()
                .unwrap()
        }
        "linear" => {
            let body: Value = serde_json::from_str(body).unwrap();
            body["webhookTimestamp"].as_i64().unwrap() / 1000
        }
        _ => NOW,
    }
}

fn vector_request(v: &Value) -> Request {
    let body = match &v["form"] {
        Value::Object(form) => url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form.iter().map(|(k, v)| (k, v.as_str().unwrap())))
            .finish(),
        _ => v["body"].as_str().unwrap().to_owned(),
    };
    let mut request = Request::post(body);
    if let Some(url) = v["url"].as_str() {
        request = request.url(url);
    }
    for (name, value) in v["headers"].as_object().unwrap() {
        request = request.header(name, value.as_str().unwrap());
    }
    request
}

fn vector_settings(v: &Value) -> SourceSettings {
    match (v["secret"].as_str(), v["public_key"].as_str()) {
        (Some(secret), _) => secret_settings(v["provider"].as_str().unwrap(), secret),
        (None, Some(key)) => settings(json!({"provider": v["provider"], "public_keys": [key]})),
        (None, None) => panic!("vector without a secret or key: {v}"),
    }
}

#[test]
fn every_provider_vector_verifies_at_its_own_time() {
    let doc = shared_json("providers.json");
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10);
    for v in vectors {
        let what = format!("{} ({})", v["provider"], v["source"]);
        let (settings, request, now) = (vector_settings(v), vector_request(v), vector_time(v));
        check(&what, &settings, &request, now, Expect::Accepted);
        let tampered = request.body(cat(&[&request.body, b" "]));
        check(
            &what,
            &settings,
            &tampered,
            now,
            Expect::Rejected("bad_signature"),
        );
    }
}

#[test]
fn timestamped_vectors_are_stale_a_second_past_their_tolerance() {
    let doc = shared_json("providers.json");
    let tolerance = [
        ("slack", 300),
        ("stripe", 300),
        ("zoom", 300),
        ("sendgrid", 300),
        ("linear", 60),
    ];
    for (provider, tolerance_s) in tolerance {
        let v = doc["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["provider"] == provider)
            .unwrap();
        let (settings, request, now) = (vector_settings(v), vector_request(v), vector_time(v));
        for edge in [now - tolerance_s, now + tolerance_s] {
            check(provider, &settings, &request, edge, Expect::Accepted);
        }
        for past in [now - tolerance_s - 1, now + tolerance_s + 1] {
            check(
                provider,
                &settings,
                &request,
                past,
                Expect::Rejected("stale_timestamp"),
            );
        }
    }
}

#[test]
fn zoom_answers_url_validation_with_the_documented_encrypted_token() {
    let body = shared("payloads/zoom/endpoint.url_validation.json");
    let request = sign_zoom(Request::post(body), "zoom_secret_token", NOW);
    let verified = check(
        "zoom url_validation",
        &secret_settings("zoom", "zoom_secret_token"),
        &request,
        NOW,
        Expect::Accepted,
    )
    .unwrap();
    assert_eq!(verified.handshake, Some(Handshake::Challenge));
    let reply = verified.reply.unwrap();
    assert_eq!(
        (reply.status, reply.content_type),
        (200, "application/json")
    );
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        reply,
        json!({
            "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
            "encryptedToken": "bd48235863f4a6323ccc4963c594908b7c97f88b4a6a95278f4f093690b12726"
        })
    );
}

#[test]
fn the_pubsub_vector_verifies_for_its_audience_only() {
    let doc = shared_json("pubsub-jwt.json");
    let token = doc["jwt"].as_str().unwrap();
    let request = Request::post(shared("payloads/google-pubsub/push.wrapped.json"))
        .header("Authorization", format!("Bearer {token}"));
    let for_audience = |audience: &str| {
        settings(json!({
            "provider": "pubsub", "audience": audience,
            "service_accounts": ["pubsub-push@my-project.iam.gserviceaccount.com"],
            "jwks": {"keys": [doc["jwk"]]}
        }))
    };
    let right = for_audience("https://gateway.example.com/push/pubsub");
    let iat = 1_700_000_000;
    let verified = check(
        "pubsub vector",
        &right,
        &request,
        iat + 60,
        Expect::Accepted,
    )
    .unwrap();
    assert_eq!(verified.event.id.as_deref(), Some("2070443601311540"));
    for other in [
        "https://gateway.example.com/push/other",
        "https://gateway.example.com/push/pubsub/",
        "",
    ] {
        let what = format!("pubsub vector for audience {other:?}");
        check(
            &what,
            &for_audience(other),
            &request,
            iat + 60,
            Expect::Rejected("bad_audience"),
        );
    }
    // exp is 1700003600; the default leeway is 60 s.
    check(
        "at exp + leeway",
        &right,
        &request,
        1_700_003_660,
        Expect::Accepted,
    );
    check(
        "past exp",
        &right,
        &request,
        1_700_003_661,
        Expect::Rejected("stale_timestamp"),
    );
    check(
        "issued in the future",
        &right,
        &request,
        iat - 61,
        Expect::Rejected("stale_timestamp"),
    );
}

#[test]
fn every_standard_webhooks_vector_verifies_under_both_header_names() {
    let doc = shared_json("standard-webhooks.json");
    let symmetric = doc["symmetric"].as_array().unwrap();
    assert!(symmetric.len() >= 2);
    for v in symmetric {
        let ts = v["timestamp"].as_i64().unwrap();
        let settings = settings(json!({"provider": "standard_webhooks", "secrets": [v["secret"]]}));
        for prefix in ["webhook", "svix"] {
            let request = Request::post(v["payload"].as_str().unwrap())
                .header(&format!("{prefix}-id"), v["id"].as_str().unwrap())
                .header(&format!("{prefix}-timestamp"), ts.to_string())
                .header(
                    &format!("{prefix}-signature"),
                    v["expected"].as_str().unwrap(),
                );
            let what = format!("{} ({prefix}-*)", v["source"]);
            let verified = check(&what, &settings, &request, ts, Expect::Accepted).unwrap();
            assert_eq!(verified.event.id.as_deref(), v["id"].as_str());
        }
    }

    // v1a: the public key is the second half of the whsk_ secret (seed || public key).
    for v in doc["asymmetric"].as_array().unwrap() {
        let whsk = STANDARD
            .decode(v["secret"].as_str().unwrap().trim_start_matches("whsk_"))
            .unwrap();
        let public_key = format!("whpk_{}", b64(&whsk[32..]));
        let ts = v["timestamp"].as_i64().unwrap();
        let settings =
            settings(json!({"provider": "standard_webhooks", "public_keys": [public_key]}));
        let request = Request::post(v["payload"].as_str().unwrap())
            .header("webhook-id", v["id"].as_str().unwrap())
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", v["expected"].as_str().unwrap());
        check(
            "standard webhooks v1a",
            &settings,
            &request,
            ts,
            Expect::Accepted,
        );
        let tampered = request.body(cat(&[&request.body, b" "]));
        check(
            "v1a tampered",
            &settings,
            &tampered,
            ts,
            Expect::Rejected("bad_signature"),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The payload corpus: documented event facts

/// One documented sample: what its sidecar says the verifier must extract.
struct Documented {
    file: &'static str,
    id: Option<&'static str>,
    event_type: Option<&'static str>,
    occurred_at: Option<&'static str>,
    /// `(id, type)` per event for batch bodies.
    batch: &'static [(&'static str, &'static str)],
}

const fn doc(
    file: &'static str,
    id: Option<&'static str>,
    event_type: Option<&'static str>,
    occurred_at: Option<&'static str>,
) -> Documented {
    Documented {
        file,
        id,
        event_type,
        occurred_at,
        batch: &[],
    }
}

const GITHUB_DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";
const SENDGRID_TYPES: [&str; 11] = [
    "processed",
    "deferred",
    "delivered",
    "open",
    "click",
    "bounce",
    "dropped",
    "spamreport",
    "unsubscribe",
    "group_unsubscribe",
    "group_resubscribe",
];

const DOCUMENTED: &[Documented] = &[
    doc(
        "github/ping.json",
        Some(GITHUB_DELIVERY),
        Some("ping"),
        None,
    ),
    doc(
        "github/push.json",
        Some(GITHUB_DELIVERY),
        Some("push"),
        Some("2019-05-15T15:20:57Z"),
    ),
    doc(
        "github/pull_request.opened.json",
        Some(GITHUB_DELIVERY),
        Some("pull_request.opened"),
        Some("2019-05-15T15:20:33Z"),
    ),
    doc(
        "gitlab/push_hook.json",
        Some("f5e5f430-f57b-4e6e-9fac-d9128cd7232f"),
        Some("Push Hook"),
        None,
    ),
    doc(
        "google-pubsub/push.wrapped.json",
        Some("2070443601311540"),
        None,
        Some("2021-02-26T19:13:55.749Z"),
    ),
    doc(
        "linear/comment.create.json",
        Some("234d1a4e-b617-4388-90fe-adc3633d6b72"),
        Some("Comment.create"),
        Some("2020-01-23T12:53:18.084Z"),
    ),
    doc(
        "notion/page.created.json",
        Some("367cba44-b6f3-4c92-81e7-6a2e9659efd4"),
        Some("page.created"),
        Some("2024-12-05T23:55:34.285Z"),
    ),
    doc(
        "notion/page.content_updated.json",
        Some("56c3e00c-4f0c-4566-9676-4b058a50a03d"),
        Some("page.content_updated"),
        Some("2024-12-05T19:49:36.997Z"),
    ),
    doc("notion/verification.json", None, None, None),
    Documented {
        batch: &[
            ("04l1I000000fztEQAQ", "Contact"),
            ("04l1I000000fzt9QAA", "Contact"),
        ],
        ..doc(
            "salesforce/outbound_message.contact.xml",
            None,
            Some("Contact"),
            None,
        )
    },
    doc(
        "sendgrid/processed.json",
        Some("rbtnWrG1DVDGGGFHFyun0A=="),
        Some("processed"),
        Some("2017-12-15T00:59:29Z"),
    ),
    doc(
        "sendgrid/delivered.json",
        Some("rWVYmVk90MjZJ9iohOBa3w=="),
        Some("delivered"),
        Some("2017-12-15T00:59:29Z"),
    ),
    doc("sendgrid/event_batch.all_types.json", None, None, None),
    doc(
        "shopify/products.update.json",
        Some("b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"),
        Some("products/update"),
        Some("2023-03-29T18:00:27.877041743Z"),
    ),
    doc(
        "slack/event_callback.message.json",
        Some("Ev123ABC456"),
        Some("message"),
        Some("2012-12-14T20:38:43Z"),
    ),
    doc(
        "slack/url_verification.json",
        None,
        Some("url_verification"),
        None,
    ),
    doc(
        "square/payment.created.json",
        Some("13b867cf-db3d-4b1c-90b6-2f32a9d78124"),
        Some("payment.created"),
        Some("2020-02-06T21:27:30.792Z"),
    ),
    doc(
        "stripe/event.setup_intent.created.json",
        Some("evt_1NG8Du2eZvKYlo2CUI79vXWy"),
        Some("setup_intent.created"),
        Some("2023-06-06T22:19:30Z"),
    ),
    doc(
        "twilio/incoming_sms.txt",
        Some("SM1521fa559fb923c1ed64f56cd1bed8ef"),
        Some("message.received"),
        None,
    ),
    doc(
        "zoom/endpoint.url_validation.json",
        None,
        Some("endpoint.url_validation"),
        Some("2022-06-06T08:24:09.680Z"),
    ),
    doc(
        "zoom/meeting.started.json",
        None,
        Some("meeting.started"),
        Some("2021-11-02T20:43:19.302Z"),
    ),
];

/// The doc example verification token Notion's sidecar signatures were computed with.
const NOTION_DOC_TOKEN: &str = "secret_tMrlL1qK5vuQAh1b6cZGhFChZTSYJlce98V0pYn7yBl";

/// A sample as it would arrive: the sidecar's headers, signed with a test secret by the
/// provider's documented rule (sidecar signatures are placeholders, except Notion's, which
/// verify as they are). Answers the settings that accept it and the clock to use.
fn arrive(file: &str) -> (SourceSettings, Request, i64) {
    let body = shared(&format!("payloads/{file}"));
    let sidecar_name = format!("payloads/{}.meta.json", file.rsplit_once('.').unwrap().0);
    let sidecar = shared_json(&sidecar_name);
    let mut request = Request::post(&body);
    for (name, value) in sidecar["headers"].as_object().unwrap() {
        if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("host") {
            request = request.header(name, value.as_str().unwrap());
        }
    }
    let provider = file.split('/').next().unwrap();
    match provider {
        "github" => (
            secret_settings("github", SECRET),
            sign_github(request, SECRET),
            NOW,
        ),
        "gitlab" => (
            secret_settings("gitlab", SECRET),
            request.header("X-Gitlab-Token", SECRET),
            NOW,
        ),
        "google-pubsub" => (
            pubsub_settings(json!([test_jwk(TEST_KID, TEST_RSA_N)])),
            sign_pubsub(request, &push_claims(NOW)),
            NOW,
        ),
        "linear" => {
            let sent_at = serde_json::from_slice::<Value>(&body).unwrap()["webhookTimestamp"]
                .as_i64()
                .unwrap();
            (
                secret_settings("linear", SECRET),
                sign_linear(request, SECRET),
                sent_at / 1000,
            )
        }
        "notion" => (secret_settings("notion", NOTION_DOC_TOKEN), request, NOW),
        "salesforce" => (
            settings(json!({"provider": "salesforce", "organization_ids": ["012345678901234"]})),
            request,
            NOW,
        ),
        "sendgrid" => {
            let key = EcKey::generate();
            let settings =
                settings(json!({"provider": "sendgrid", "public_keys": [key.spki_base64()]}));
            (settings, sign_sendgrid(&key, request, NOW), NOW)
        }
        "shopify" => (
            secret_settings("shopify", SECRET),
            sign_shopify(request, SECRET),
            NOW,
        ),
        "slack" => (
            secret_settings("slack", SECRET),
            sign_slack(request, SECRET, NOW),
            NOW,
        ),
        "square" => (
            secret_settings("square", SECRET),
            sign_square(request, SECRET),
            NOW,
        ),
        "stripe" => (
            secret_settings("stripe", SECRET),
            sign_stripe(request, SECRET, NOW),
            NOW,
        ),
        "twilio" => (
            secret_settings("twilio", SECRET),
            sign_twilio(request, SECRET),
            NOW,
        ),
        "zoom" => (
            secret_settings("zoom", SECRET),
            sign_zoom(request, SECRET, NOW),
            NOW,
        ),
        other => panic!("no signer for {other}"),
    }
}

#[test]
fn documented_event_ids_types_and_times_are_extracted() {
    for documented in DOCUMENTED {
        let (settings, request, now) = arrive(documented.file);
        let verified = check(documented.file, &settings, &request, now, Expect::Accepted).unwrap();
        let event = &verified.event;
        assert_eq!(event.id.as_deref(), documented.id, "{} id", documented.file);
        assert_eq!(
            event.event_type.as_deref(),
            documented.event_type,
            "{} type",
            documented.file
        );
        assert_eq!(
            event.occurred_at,
            documented.occurred_at.map(time),
            "{} time",
            documented.file
        );
        if !documented.batch.is_empty() {
            let batch: Vec<_> = verified
                .batch
                .iter()
                .map(|e| (e.id.as_deref().unwrap(), e.event_type.as_deref().unwrap()))
                .collect();
            assert_eq!(batch, documented.batch, "{} batch", documented.file);
        }
    }
}

#[test]
fn a_sendgrid_batch_lists_every_event_and_claims_no_single_id() {
    let (settings, request, now) = arrive("sendgrid/event_batch.all_types.json");
    let verified = check("sendgrid batch", &settings, &request, now, Expect::Accepted).unwrap();
    let types: Vec<_> = verified
        .batch
        .iter()
        .map(|e| e.event_type.as_deref().unwrap())
        .collect();
    assert_eq!(types, SENDGRID_TYPES);
    for event in &verified.batch {
        // The doc sample's ids are all the placeholder "sg_event_id": a dedupe trap the caller
        // must handle per element; the verifier reports them as they are.
        assert_eq!(event.id.as_deref(), Some("sg_event_id"));
        assert_eq!(event.occurred_at, Some(time("2017-12-15T00:59:29Z")));
    }
    assert_eq!(verified.event, Default::default());
}

#[test]
fn handshakes_get_the_replies_their_providers_expect() {
    let (settings, request, now) = arrive("slack/url_verification.json");
    let slack = check(
        "slack challenge",
        &settings,
        &request,
        now,
        Expect::Accepted,
    )
    .unwrap();
    assert_eq!(slack.handshake, Some(Handshake::Challenge));
    let reply = slack.reply.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.body,
        b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let (settings, request, now) = arrive("github/ping.json");
    let ping = check("github ping", &settings, &request, now, Expect::Accepted).unwrap();
    assert_eq!(ping.handshake, Some(Handshake::Ping));
    assert!(ping.reply.is_none());

    let (settings, request, now) = arrive("salesforce/outbound_message.contact.xml");
    let salesforce = check("salesforce", &settings, &request, now, Expect::Accepted).unwrap();
    assert!(
        salesforce.is_event(),
        "an outbound message is routed and acknowledged"
    );
    let reply = salesforce.reply.unwrap();
    assert_eq!(
        (reply.status, reply.content_type),
        (200, "text/xml; charset=utf-8")
    );
    assert_eq!(
        reply.body,
        shared("payloads/salesforce/outbound_message.ack_response.xml")
    );
}

#[test]
fn notion_verification_is_held_unconfirmed_and_never_needs_a_signature() {
    let body = shared("payloads/notion/verification.json");
    let expected = Some(Handshake::UnconfirmedToken(SourceSecret::new(
        NOTION_DOC_TOKEN,
    )));
    // With no token configured yet (the real first contact), unsigned, or signed: the same.
    let (_, signed, now) = arrive("notion/verification.json");
    let unsigned = Request::post(&body);
    for settings in [
        secret_settings("notion", "not-yet-known"),
        secret_settings("notion", NOTION_DOC_TOKEN),
    ] {
        for request in [&unsigned, &signed] {
            let verified = check(
                "notion verification",
                &settings,
                request,
                now,
                Expect::Accepted,
            )
            .unwrap();
            assert_eq!(verified.handshake, expected);
            assert!(!verified.is_event());
            assert!(
                !format!("{verified:?}").contains(NOTION_DOC_TOKEN),
                "redacted in Debug"
            );
        }
    }
    // Anything else in the body makes it an event, which must be signed.
    let smuggled = Request::post(r#"{"verification_token":"x","type":"page.deleted"}"#);
    check(
        "notion token plus event",
        &secret_settings("notion", NOTION_DOC_TOKEN),
        &smuggled,
        now,
        Expect::Rejected("missing_signature"),
    );
}

// ---------------------------------------------------------------------------------------------
// Conformance over `all()`

/// A provider's genuine request and how it must fail when broken.
struct Fixture {
    label: &'static str,
    settings: SourceSettings,
    /// The same settings with another secret or key.
    wrong_secret: SourceSettings,
    wrong_code: &'static str,
    genuine: Request,
    now: i64,
    /// The genuine request without its credential, and the code that earns.
    missing: (Request, &'static str),
    tampered: Expect,
    /// For timestamped schemes: a clock at which the genuine request is stale.
    stale_at: Option<i64>,
}

impl Fixture {
    fn hmac(
        label: &'static str,
        settings: SourceSettings,
        wrong_secret: SourceSettings,
        genuine: Request,
        credential: &str,
    ) -> Self {
        Fixture {
            label,
            settings,
            wrong_secret,
            wrong_code: "bad_signature",
            missing: (genuine.without(credential), "missing_signature"),
            genuine,
            now: NOW,
            tampered: Expect::Rejected("bad_signature"),
            stale_at: None,
        }
    }

    fn stale_after(mut self, tolerance_s: i64) -> Self {
        self.stale_at = Some(self.now + tolerance_s + 1);
        self
    }
}

const JSON_BODY: &str = r#"{"id":"evt_1","type":"thing.happened","note":"tamper-me"}"#;

fn fixtures(provider: &str) -> Vec<Fixture> {
    let plain = |p: &'static str| (secret_settings(p, SECRET), secret_settings(p, WRONG));
    let body = Request::post(JSON_BODY);
    match provider {
        "generic" => {
            let sha512 = json!({
                "provider": "generic", "header": "X-Signature", "algorithm": "sha512",
                "encoding": "base64", "prefix": "sha512=",
                "signed_content": "{id}.{timestamp}.{url}.{body}",
                "timestamp_header": "X-Timestamp", "id_header": "X-Event-Id",
                "event_type_header": "X-Event-Type"
            });
            let with_secret = |doc: &Value, secret: &str| {
                let mut doc = doc.clone();
                doc["secrets"] = json!([secret]);
                settings(doc)
            };
            let content = format!("evt_1.{NOW}.{URL}.{JSON_BODY}");
            let sig = b64(&hmac::<Hmac<Sha512>>(SECRET.as_bytes(), content.as_bytes()));
            let timed = body
                .clone()
                .header("X-Timestamp", NOW.to_string())
                .header("X-Event-Id", "evt_1")
                .header("X-Event-Type", "thing.happened")
                .header("X-Signature", format!("sha512={sig}"));
            let sha1 =
                json!({"provider": "generic", "header": "X-Hook-Signature", "algorithm": "sha1"});
            let sig = hex(&hmac::<Hmac<sha1::Sha1>>(
                SECRET.as_bytes(),
                JSON_BODY.as_bytes(),
            ));
            let untimed = body.clone().header("X-Hook-Signature", sig);
            vec![
                Fixture::hmac(
                    "generic sha512/base64/prefix, {id}.{timestamp}.{url}.{body}",
                    with_secret(&sha512, SECRET),
                    with_secret(&sha512, WRONG),
                    timed,
                    "X-Signature",
                )
                .stale_after(300),
                Fixture::hmac(
                    "generic sha1/hex, {body}",
                    with_secret(&sha1, SECRET),
                    with_secret(&sha1, WRONG),
                    untimed,
                    "X-Hook-Signature",
                ),
            ]
        }
        "github" => {
            let (right, wrong) = plain("github");
            vec![Fixture::hmac(
                "github",
                right,
                wrong,
                sign_github(body, SECRET),
                "X-Hub-Signature-256",
            )]
        }
        "gitlab" => {
            let (right, wrong) = plain("gitlab");
            let token = body.clone().header("X-Gitlab-Token", SECRET);
            let signing =
                |s: String| settings(json!({"provider": "gitlab", "signing_secrets": [s]}));
            let signed = sign_standard(body, &whsec(1), "msg_1", NOW, "webhook");
            vec![
                Fixture {
                    label: "gitlab secret token",
                    settings: right,
                    wrong_secret: wrong,
                    wrong_code: "bad_token",
                    missing: (token.without("X-Gitlab-Token"), "missing_token"),
                    genuine: token,
                    now: NOW,
                    tampered: Expect::AcceptedByDesign,
                    stale_at: None,
                },
                Fixture::hmac(
                    "gitlab signing token (Standard Webhooks)",
                    signing(whsec(1)),
                    signing(whsec(2)),
                    signed,
                    "webhook-signature",
                )
                .stale_after(300),
            ]
        }
        "linear" => {
            let (right, wrong) = plain("linear");
            let body = format!(
                r#"{{"action":"create","type":"Issue","data":{{"title":"tamper-me"}},"webhookTimestamp":{}}}"#,
                NOW * 1000
            );
            let genuine = sign_linear(Request::post(body), SECRET);
            vec![Fixture::hmac("linear", right, wrong, genuine, "Linear-Signature").stale_after(60)]
        }
        "notion" => {
            let (right, wrong) = plain("notion");
            vec![Fixture::hmac(
                "notion",
                right,
                wrong,
                sign_notion(body, SECRET),
                "X-Notion-Signature",
            )]
        }
        "pubsub" => {
            let right = pubsub_settings(json!([test_jwk(TEST_KID, TEST_RSA_N)]));
            // Another key under the same kid: the signature cannot verify.
            let other_n = shared_json("pubsub-jwt.json")["jwk"]["n"].clone();
            let wrong = pubsub_settings(json!([test_jwk(TEST_KID, other_n.as_str().unwrap())]));
            let genuine = sign_pubsub(body, &push_claims(NOW));
            vec![Fixture {
                label: "pubsub OIDC JWT",
                settings: right,
                wrong_secret: wrong,
                wrong_code: "bad_signature",
                missing: (genuine.without("Authorization"), "missing_token"),
                genuine,
                now: NOW,
                tampered: Expect::AcceptedByDesign,
                stale_at: Some(NOW + 3600 + 61),
            }]
        }
        "salesforce" => {
            let xml = String::from_utf8(shared("payloads/salesforce/outbound_message.contact.xml"))
                .unwrap()
                .replace("Jeraldine", "tamper-me");
            let org =
                |id: &str| settings(json!({"provider": "salesforce", "organization_ids": [id]}));
            let with_hmac = |secret: &str| {
                settings(json!({
                    "provider": "salesforce", "organization_ids": ["012345678901234"],
                    "hmac": {"header": "X-Signature", "encoding": "base64"}, "secrets": [secret]
                }))
            };
            let plain_request = Request::post(&xml);
            let signed = plain_request
                .clone()
                .header("X-Signature", b64(&hmac256(SECRET, xml.as_bytes())));
            let without_org = plain_request
                .body(xml.replace("<OrganizationId>012345678901234</OrganizationId>", ""));
            vec![
                Fixture {
                    label: "salesforce organization id",
                    settings: org("012345678901234"),
                    wrong_secret: org("00D000000000001"),
                    wrong_code: "bad_organization",
                    // Salesforce sends no credential header; the credential is the org id.
                    missing: (without_org, "malformed"),
                    genuine: plain_request,
                    now: NOW,
                    tampered: Expect::AcceptedByDesign,
                    stale_at: None,
                },
                Fixture::hmac(
                    "salesforce organization id + HMAC header",
                    with_hmac(SECRET),
                    with_hmac(WRONG),
                    signed,
                    "X-Signature",
                ),
            ]
        }
        "sendgrid" => {
            let (key, other) = (EcKey::generate(), EcKey::generate());
            let with_key = |k: &EcKey| {
                settings(json!({"provider": "sendgrid", "public_keys": [k.spki_base64()]}))
            };
            let body =
                Request::post(r#"[{"event":"delivered","sg_event_id":"tamper-me","timestamp":1}]"#);
            vec![
                Fixture::hmac(
                    "sendgrid ECDSA P-256",
                    with_key(&key),
                    with_key(&other),
                    sign_sendgrid(&key, body, NOW),
                    "X-Twilio-Email-Event-Webhook-Signature",
                )
                .stale_after(300),
            ]
        }
        "shopify" => {
            let (right, wrong) = plain("shopify");
            vec![Fixture::hmac(
                "shopify",
                right,
                wrong,
                sign_shopify(body, SECRET),
                "X-Shopify-Hmac-Sha256",
            )]
        }
        "slack" => {
            let (right, wrong) = plain("slack");
            let genuine = sign_slack(body, SECRET, NOW);
            vec![
                Fixture::hmac("slack v0", right, wrong, genuine, "X-Slack-Signature")
                    .stale_after(300),
            ]
        }
        "square" => {
            let (right, wrong) = plain("square");
            let genuine = sign_square(body, SECRET);
            vec![Fixture::hmac(
                "square",
                right,
                wrong,
                genuine,
                "x-square-hmacsha256-signature",
            )]
        }
        "standard_webhooks" => {
            let with =
                |s: String| settings(json!({"provider": "standard_webhooks", "secrets": [s]}));
            let ed = Ed25519KeyPair::from_pkcs8(
                Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .unwrap()
                    .as_ref(),
            )
            .unwrap();
            let other = Ed25519KeyPair::from_pkcs8(
                Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .unwrap()
                    .as_ref(),
            )
            .unwrap();
            let with_key = |k: &Ed25519KeyPair| {
                let key = format!("whpk_{}", b64(k.public_key().as_ref()));
                settings(json!({"provider": "standard_webhooks", "public_keys": [key]}))
            };
            let content = cat(&[format!("msg_1.{NOW}.").as_bytes(), JSON_BODY.as_bytes()]);
            let v1a = body
                .clone()
                .header("webhook-id", "msg_1")
                .header("webhook-timestamp", NOW.to_string())
                .header(
                    "webhook-signature",
                    format!("v1a,{}", b64(ed.sign(&content).as_ref())),
                );
            vec![
                Fixture::hmac(
                    "standard webhooks v1 (webhook-*)",
                    with(whsec(1)),
                    with(whsec(2)),
                    sign_standard(body.clone(), &whsec(1), "msg_1", NOW, "webhook"),
                    "webhook-signature",
                )
                .stale_after(300),
                Fixture::hmac(
                    "standard webhooks v1 (svix-*)",
                    with(whsec(1)),
                    with(whsec(2)),
                    sign_standard(body, &whsec(1), "msg_1", NOW, "svix"),
                    "svix-signature",
                )
                .stale_after(300),
                Fixture::hmac(
                    "standard webhooks v1a (ed25519)",
                    with_key(&ed),
                    with_key(&other),
                    v1a,
                    "webhook-signature",
                )
                .stale_after(300),
            ]
        }
        "stripe" => {
            let (right, wrong) = plain("stripe");
            let genuine = sign_stripe(body, SECRET, NOW);
            vec![
                Fixture::hmac("stripe", right, wrong, genuine, "Stripe-Signature").stale_after(300),
            ]
        }
        "twilio" => {
            let (right, wrong) = plain("twilio");
            let form = Request::post(
                "MessageSid=SM1&SmsStatus=received&Body=tamper-me&From=%2B15551234567",
            )
            .url(format!("{URL}?foo=1&bar=2"))
            .header("Content-Type", "application/x-www-form-urlencoded");
            let digest = hex(&Sha256::digest(JSON_BODY.as_bytes()));
            let json_body = body.url(format!("{URL}?bodySHA256={digest}"));
            vec![
                Fixture::hmac(
                    "twilio form",
                    right.clone(),
                    wrong.clone(),
                    sign_twilio(form, SECRET),
                    "X-Twilio-Signature",
                ),
                Fixture::hmac(
                    "twilio JSON (bodySHA256)",
                    right,
                    wrong,
                    sign_twilio(json_body, SECRET),
                    "X-Twilio-Signature",
                ),
            ]
        }
        "zoho" => {
            let zoho = |scheme: Value, secret: &str| {
                settings(json!({"provider": "zoho", "secrets": [secret], "scheme": scheme}))
            };
            let notification = |token: Option<&str>| {
                let mut doc = json!({
                    "module": "Leads", "operation": "insert", "server_time": NOW * 1000,
                    "ids": ["tamper-me"], "channel_id": "1000000068001"
                });
                if let Some(token) = token {
                    doc["token"] = json!(token);
                }
                Request::post(doc.to_string())
            };
            let field = notification(Some(SECRET));
            let header = notification(None).header("X-Zoho-Token", SECRET);
            let unsigned = notification(None);
            let hmac_scheme = json!({"hmac": {"header": "X-Zoho-Signature", "algorithm": "sha256", "encoding": "hex"}});
            let signed = unsigned
                .clone()
                .header("X-Zoho-Signature", hex(&hmac256(SECRET, &unsigned.body)));
            let default_scheme = settings(json!({"provider": "zoho", "secrets": [SECRET]}));
            vec![
                Fixture {
                    label: "zoho token in the body (default)",
                    settings: default_scheme,
                    wrong_secret: zoho(json!({"token_field": "token"}), WRONG),
                    wrong_code: "bad_token",
                    missing: (unsigned.clone(), "missing_token"),
                    genuine: field,
                    now: NOW,
                    tampered: Expect::AcceptedByDesign,
                    stale_at: None,
                },
                Fixture {
                    label: "zoho token in a header",
                    settings: zoho(json!({"token_header": "X-Zoho-Token"}), SECRET),
                    wrong_secret: zoho(json!({"token_header": "X-Zoho-Token"}), WRONG),
                    wrong_code: "bad_token",
                    missing: (header.without("X-Zoho-Token"), "missing_token"),
                    genuine: header,
                    now: NOW,
                    tampered: Expect::AcceptedByDesign,
                    stale_at: None,
                },
                Fixture::hmac(
                    "zoho HMAC header",
                    zoho(hmac_scheme.clone(), SECRET),
                    zoho(hmac_scheme, WRONG),
                    signed,
                    "X-Zoho-Signature",
                ),
            ]
        }
        "zoom" => {
            let (right, wrong) = plain("zoom");
            let genuine = sign_zoom(body, SECRET, NOW);
            vec![Fixture::hmac("zoom v0", right, wrong, genuine, "x-zm-signature").stale_after(300)]
        }
        other => panic!("no conformance fixture for provider `{other}`: add one"),
    }
}

#[test]
fn every_provider_rejects_tampering_wrong_secrets_missing_credentials_and_staleness() {
    let mut matrix = vec![format!(
        "{:<58} {:<9} {:<18} {:<18} {:<18} {}",
        "provider / scheme",
        "genuine",
        "tampered body",
        "wrong secret",
        "missing credential",
        "stale"
    )];
    for verifier in all() {
        let fixtures = fixtures(verifier.name());
        assert!(!fixtures.is_empty(), "{}", verifier.name());
        for f in fixtures {
            assert_eq!(f.settings.provider(), verifier.name(), "{}", f.label);
            let case = |what: &str| format!("{}: {what}", f.label);
            check(
                &case("genuine"),
                &f.settings,
                &f.genuine,
                f.now,
                Expect::Accepted,
            );
            check(
                &case("tampered body"),
                &f.settings,
                &f.genuine.tampered(),
                f.now,
                f.tampered,
            );
            check(
                &case("wrong secret"),
                &f.wrong_secret,
                &f.genuine,
                f.now,
                Expect::Rejected(f.wrong_code),
            );
            let (missing, missing_code) = &f.missing;
            check(
                &case("missing credential"),
                &f.settings,
                missing,
                f.now,
                Expect::Rejected(missing_code),
            );
            assert_ne!(f.wrong_code, *missing_code, "{}: distinct codes", f.label);
            if let Some(stale_at) = f.stale_at {
                check(
                    &case("stale"),
                    &f.settings,
                    &f.genuine,
                    stale_at,
                    Expect::Rejected("stale_timestamp"),
                );
            }
            let shown = |e: Expect| match e {
                Expect::Accepted => "accepted".to_owned(),
                Expect::AcceptedByDesign => "n/a (not signed)".to_owned(),
                Expect::Rejected(code) => code.to_owned(),
            };
            matrix.push(format!(
                "{:<58} {:<9} {:<18} {:<18} {:<18} {}",
                f.label,
                "accepted",
                shown(f.tampered),
                f.wrong_code,
                missing_code,
                f.stale_at
                    .map_or("n/a (no timestamp)", |_| "stale_timestamp"),
            ));
        }
    }
    println!("{}", matrix.join("\n"));
}

#[test]
fn settings_for_another_provider_are_a_misconfiguration() {
    for verifier in all() {
        let foreign = if verifier.name() == "github" {
            secret_settings("shopify", SECRET)
        } else {
            secret_settings("github", SECRET)
        };
        let request = sign_github(Request::post(JSON_BODY), SECRET);
        let inbound = InboundRequest {
            method: "POST",
            url: URL,
            headers: &request.headers,
            body: &request.body,
        };
        let ctx = VerifyContext::at(chrono::DateTime::from_timestamp(NOW, 0).unwrap());
        let err = verifier.verify(&inbound, &foreign, &ctx).unwrap_err();
        assert_eq!(err.code(), "misconfigured", "{}", verifier.name());
    }
}

#[test]
fn pubsub_accepts_only_rs256_tokens_from_google_for_a_verified_service_account() {
    let settings = pubsub_settings(json!([test_jwk(TEST_KID, TEST_RSA_N)]));
    let body = Request::post(JSON_BODY);
    let claims = push_claims(NOW);
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut claims = claims.clone();
        edit(&mut claims);
        sign_pubsub(body.clone(), &claims)
    };
    let unsigned = |alg: &str| {
        let header = json!({"alg": alg, "kid": TEST_KID, "typ": "JWT"});
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(hmac256(TEST_RSA_N, b"forged"))
        );
        body.clone()
            .header("Authorization", format!("Bearer {token}"))
    };
    let other_kid = {
        let header = json!({"alg": "RS256", "kid": "rotated-away"});
        body.clone()
            .header("Authorization", format!("Bearer {}", jwt(&header, &claims)))
    };
    let claims_swapped = {
        // A genuine signature over other claims.
        let genuine = with(&|_| {});
        let token = genuine
            .text("authorization")
            .trim_start_matches("Bearer ")
            .to_owned();
        let parts: Vec<&str> = token.split('.').collect();
        let mut forged = claims.clone();
        forged["email"] = json!("attacker@evil.example");
        let forged = URL_SAFE_NO_PAD.encode(forged.to_string());
        body.clone().header(
            "Authorization",
            format!("Bearer {}.{forged}.{}", parts[0], parts[2]),
        )
    };
    let cases: Vec<(&str, Request, Expect)> = vec![
        ("genuine", with(&|_| {}), Expect::Accepted),
        (
            "issuer without https://",
            with(&|c| c["iss"] = json!("accounts.google.com")),
            Expect::Accepted,
        ),
        (
            "audience in a list",
            with(&|c| c["aud"] = json!(["x", URL])),
            Expect::Accepted,
        ),
        (
            "alg none",
            unsigned("none"),
            Expect::Rejected("unsupported_algorithm"),
        ),
        (
            "alg HS256",
            unsigned("HS256"),
            Expect::Rejected("unsupported_algorithm"),
        ),
        (
            "kid not in the JWKS",
            other_kid,
            Expect::Rejected("unknown_key"),
        ),
        (
            "claims swapped under a genuine signature",
            claims_swapped,
            Expect::Rejected("bad_signature"),
        ),
        (
            "another issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            Expect::Rejected("bad_issuer"),
        ),
        (
            "another audience",
            with(&|c| c["aud"] = json!("https://other.example")),
            Expect::Rejected("bad_audience"),
        ),
        (
            "another service account",
            with(&|c| c["email"] = json!("other@x.iam.gserviceaccount.com")),
            Expect::Rejected("bad_email"),
        ),
        (
            "unverified email",
            with(&|c| c["email_verified"] = json!(false)),
            Expect::Rejected("bad_email"),
        ),
        (
            "no exp",
            with(&|c| drop(c.as_object_mut().unwrap().remove("exp"))),
            Expect::Rejected("missing_timestamp"),
        ),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(NOW + 61)),
            Expect::Rejected("stale_timestamp"),
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(NOW - 61)),
            Expect::Rejected("stale_timestamp"),
        ),
        (
            "not bearer",
            body.clone().header("Authorization", "Basic dXNlcjpwYXNz"),
            Expect::Rejected("malformed"),
        ),
        (
            "not a JWT",
            body.clone().header("Authorization", "Bearer abc"),
            Expect::Rejected("malformed"),
        ),
    ];
    for (what, request, expect) in cases {
        check(what, &settings, &request, NOW, expect);
    }
}

#[test]
fn rotation_accepts_the_old_and_the_new_secret_together() {
    let both = settings(json!({"provider": "github", "secrets": ["old-secret", "new-secret"]}));
    for secret in ["old-secret", "new-secret"] {
        let request = sign_github(Request::post(JSON_BODY), secret);
        check(secret, &both, &request, NOW, Expect::Accepted);
    }
    let request = sign_github(Request::post(JSON_BODY), "retired-secret");
    check(
        "retired",
        &both,
        &request,
        NOW,
        Expect::Rejected("bad_signature"),
    );
}

#[test]
fn malformed_credentials_are_malformed_not_bad() {
    let cases: Vec<(SourceSettings, Request, &str)> = vec![
        (
            secret_settings("github", SECRET),
            Request::post(JSON_BODY).header("X-Hub-Signature-256", "sha1=abc"),
            "malformed",
        ),
        (
            secret_settings("github", SECRET),
            Request::post(JSON_BODY).header("X-Hub-Signature-256", "sha256=zz"),
            "malformed",
        ),
        (
            secret_settings("shopify", SECRET),
            Request::post(JSON_BODY).header("X-Shopify-Hmac-Sha256", "%%%"),
            "malformed",
        ),
        (
            secret_settings("slack", SECRET),
            Request::post(JSON_BODY)
                .header("X-Slack-Signature", "v0=00")
                .header("X-Slack-Request-Timestamp", "soon"),
            "malformed",
        ),
        (
            secret_settings("slack", SECRET),
            Request::post(JSON_BODY).header("X-Slack-Signature", "v0=00"),
            "missing_timestamp",
        ),
        (
            secret_settings("stripe", SECRET),
            Request::post(JSON_BODY).header("Stripe-Signature", "v1=00"),
            "missing_timestamp",
        ),
        (
            secret_settings("stripe", SECRET),
            Request::post(JSON_BODY).header("Stripe-Signature", format!("t={NOW},v0=00")),
            "missing_signature",
        ),
        (
            secret_settings("linear", SECRET),
            sign_linear(Request::post(r#"{"type":"Issue"}"#), SECRET),
            "missing_timestamp",
        ),
    ];
    for (settings, request, code) in cases {
        let what = format!("{} {:?}", settings.provider(), request.headers);
        check(&what, &settings, &request, NOW, Expect::Rejected(code));
    }
}
