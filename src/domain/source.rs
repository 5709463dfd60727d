//! Inbound sources (SPEC §2, §4): where a provider posts, how its requests are verified,
//! which of its events are taken and where they go; the log of every request; and the pure
//! rules about them (dedup keys, the normalised envelope, health from recent requests).
//!
//! Nothing here does I/O or reads the clock: callers pass `now`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::health::HealthStatus;
use crate::inbound::{SourceSecret, SourceSettings};

/// The default dedup window: a provider's retries within a day are not processed twice.
pub const DEFAULT_DEDUP_WINDOW_S: u64 = 86_400;

#[derive(Debug, Clone)]
pub struct Source {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    /// The verification settings, tagged by provider. Holds secrets: never shown.
    pub settings: SourceSettings,
    /// Event-type filter (same syntax as endpoints); events outside it are acknowledged and
    /// logged as `filtered`, never routed.
    pub allowed_event_types: Vec<String>,
    pub destinations: Vec<Destination>,
    pub enabled: bool,
    /// Requests repeating an event id (or, without one, a body) within this window are
    /// acknowledged as duplicates; 0 turns dedup off.
    pub dedup_window_s: u64,
    /// A token a provider sent unsigned during set-up (Notion), for an operator to confirm.
    pub unconfirmed_token: Option<(SourceSecret, DateTime<Utc>)>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Source {
    pub fn provider(&self) -> &'static str {
        self.settings.provider()
    }
}

/// Where an accepted inbound event goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Destination {
    /// POST the normalised envelope to `url` through the delivery engine (signatures,
    /// retries, attempt log), via a hidden endpoint of the tenant owned by the source.
    Http {
        url: String,
        /// Also carry the provider request's headers (credentials redacted) in the envelope.
        #[serde(default)]
        forward_headers: bool,
        /// The hidden endpoint that delivers to `url` (set by hookrelay).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_id: Option<String>,
        /// Forward up to `max_events` envelopes in one JSON array within `window_ms`,
        /// instead of one request per event.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        batch: Option<BatchSettings>,
    },
    /// Publish the envelope as an outbound event of the tenant, fanned out to its
    /// subscribers. `{event}` in `event_type` is replaced by the verified event type.
    Publish { event_type: String },
}

/// How an HTTP destination batches: a batch is sent once `max_events` events wait, or when
/// the oldest waiting one is `window_ms` old, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSettings {
    /// 2 to 1000.
    pub max_events: u32,
    /// 10 to 60000.
    pub window_ms: u64,
}

impl BatchSettings {
    pub const MAX_EVENTS: std::ops::RangeInclusive<u32> = 2..=1000;
    pub const WINDOW_MS: std::ops::RangeInclusive<u64> = 10..=60_000;

    pub fn is_valid(&self) -> bool {
        Self::MAX_EVENTS.contains(&self.max_events) && Self::WINDOW_MS.contains(&self.window_ms)
    }
}

/// The event type a batch of a provider's events is forwarded as.
pub fn batch_event_type(provider: &str) -> String {
    format!("{provider}.batch")
}

/// The payload of a batch: the items' envelopes (each a JSON document) as one JSON array,
/// in the order given.
pub fn batch_payload<S: AsRef<str>>(envelopes: &[S]) -> String {
    let mut out = String::with_capacity(
        envelopes
            .iter()
            .map(|e| e.as_ref().len() + 1)
            .sum::<usize>()
            + 2,
    );
    out.push('[');
    for (i, e) in envelopes.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(e.as_ref());
    }
    out.push(']');
    out
}

/// What became of one request to a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum InboundOutcome {
    /// Verified, stored and routed.
    Accepted,
    /// Refused: `reason` says why (a verification code, `disabled`, `too_large`,
    /// `rate_limited`).
    Rejected,
    /// Verified, but its event was seen within the dedup window: acknowledged, not routed.
    Duplicate,
    /// Verified, but its event type is not in the source's `allowed_event_types`:
    /// acknowledged, stored, not routed.
    Filtered,
    /// A provider's set-up exchange (challenge, ping, verification token): answered, not routed.
    Handshake,
}

impl InboundOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Filtered => "filtered",
            Self::Handshake => "handshake",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            "duplicate" => Self::Duplicate,
            "filtered" => Self::Filtered,
            "handshake" => Self::Handshake,
            _ => return None,
        })
    }
}

/// One request to a source, as its log keeps it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InboundRequestLog {
    pub id: String,
    pub source_id: String,
    #[serde(skip)]
    pub tenant_id: String,
    pub received_at: DateTime<Utc>,
    pub outcome: InboundOutcome,
    /// Why it was rejected (or what kind of handshake it was).
    pub reason: Option<String>,
    /// The provider's id of the event, when it gives one.
    pub provider_event_id: Option<String>,
    pub event_type: Option<String>,
    /// `id:<provider id>` or `sha256:<body hash>`: what dedup compared.
    pub dedup_key: Option<String>,
    /// Request headers; values of credential-bearing headers are redacted.
    pub headers: BTreeMap<String, String>,
    /// The start of the body (see `inbound.max_logged_body_bytes`); absent when it may carry
    /// a secret (a verification-token handshake).
    pub body: Option<String>,
    pub body_bytes: u64,
    /// The events this request was stored as (one per kind of destination).
    pub routed_events: Vec<String>,
    /// Why part of the routing could not be done (e.g. an unregistered event type).
    pub routing_error: Option<String>,
}

/// What is shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Whether a header's value may carry a credential: such values never reach a log.
pub fn is_credential_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "signature",
        "token",
        "secret",
        "key",
        "cookie",
        "password",
        "hmac",
        "jwt",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// Headers as a log may show them: credential-bearing values replaced by `<redacted>`.
pub fn redact_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let shown = if is_credential_header(name) {
            REDACTED.to_string()
        } else {
            String::from_utf8_lossy(value).into_owned()
        };
        out.entry(name.to_string())
            .and_modify(|v: &mut String| {
                v.push_str(", ");
                v.push_str(&shown);
            })
            .or_insert(shown);
    }
    out
}

/// Verification settings as the API shows them: every secret or token value replaced.
pub fn redact_settings(settings: &SourceSettings) -> serde_json::Value {
    let mut v = serde_json::to_value(settings).unwrap_or(serde_json::Value::Null);
    redact_value(&mut v, false);
    v
}

fn redact_value(v: &mut serde_json::Value, secret: bool) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let k = k.to_ascii_lowercase();
                let is_secret = secret
                    || ((k.contains("secret") || k.contains("token") || k == "key")
                        && !k.contains("header"));
                redact_value(child, is_secret);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                redact_value(item, secret);
            }
        }
        serde_json::Value::String(s) if secret => *s = REDACTED.into(),
        _ => {}
    }
}

/// The dedup key of a request: the provider's event id, else the SHA-256 of the body.
pub fn dedup_key(provider_event_id: Option<&str>, body: &[u8]) -> String {
    match provider_event_id {
        Some(id) => format!("id:{id}"),
        None => format!("sha256:{}", hex(&Sha256::digest(body))),
    }
}

/// The dedup keys of a request: one per event of a batch when each has an id (the request
/// is a duplicate only when all were seen), else the request's single key.
pub fn dedup_keys(
    provider_event_id: Option<&str>,
    batch: &[crate::inbound::EventInfo],
    body: &[u8],
) -> Vec<String> {
    if !batch.is_empty() && batch.iter().all(|e| e.id.is_some()) {
        let mut keys: Vec<String> = batch
            .iter()
            .filter_map(|e| e.id.as_deref())
            .map(|id| dedup_key(Some(id), body))
            .collect();
        keys.sort();
        keys.dedup();
        return keys;
    }
    vec![dedup_key(provider_event_id, body)]
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The first `max` bytes of a body as text (cut on a character boundary).
pub fn body_excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(max)]).into_owned();
    text.trim_end_matches('\u{FFFD}').to_string()
}

/// The event type a `publish` destination publishes as: `{event}` replaced by the verified
/// event type (or `unknown`).
pub fn mapped_event_type(template: &str, event_type: Option<&str>) -> String {
    template.replace("{event}", event_type.unwrap_or("unknown"))
}

/// The normalised envelope an accepted inbound event is routed as.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub source: &'a str,
    pub provider: &'a str,
    pub event_id: Option<&'a str>,
    #[serde(rename = "type")]
    pub event_type: Option<&'a str>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub received_at: DateTime<Utc>,
    /// The provider's body: as JSON when it is JSON, else as a string.
    pub payload: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<&'a BTreeMap<String, String>>,
}

/// The provider's body as the envelope carries it.
pub fn payload_value(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// A source's health, from its recent requests.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SourceHealth {
    pub status: HealthStatus,
    /// The last accepted event.
    pub last_event_at: Option<DateTime<Utc>>,
    pub last_request_at: Option<DateTime<Utc>>,
    /// Accepted events in the last hour.
    pub events_last_hour: u64,
    /// Requests of the last hour, by outcome.
    pub requests_last_hour: BTreeMap<String, u64>,
    /// Rejections of the last 24 hours, by reason.
    pub rejections_by_reason: BTreeMap<String, u64>,
    /// When the current run of rejections began (no verified request since).
    pub failing_since: Option<DateTime<Utc>>,
    pub recommendations: Vec<String>,
}

/// The facts health is judged from (newest request first in `recent`).
#[derive(Debug, Clone, Default)]
pub struct SourceActivity {
    pub last_event_at: Option<DateTime<Utc>>,
    pub events_last_hour: u64,
    pub requests_last_hour: BTreeMap<String, u64>,
    pub rejections_by_reason: BTreeMap<String, u64>,
    /// (received_at, outcome, reason) of the most recent requests, newest first.
    pub recent: Vec<(DateTime<Utc>, InboundOutcome, Option<String>)>,
}

/// Rejections in a row (with no verified request between them) that make a source failing.
const FAILING_AFTER_REJECTIONS: usize = 3;

pub fn assess_source(source: &Source, activity: SourceActivity) -> SourceHealth {
    let streak: Vec<_> = activity
        .recent
        .iter()
        .take_while(|(_, outcome, _)| *outcome == InboundOutcome::Rejected)
        .collect();
    let failing_since = streak.last().map(|(at, _, _)| *at);
    let recent_rejections = activity
        .recent
        .iter()
        .filter(|(_, o, _)| *o == InboundOutcome::Rejected)
        .count();
    let status = if !source.enabled {
        HealthStatus::Disabled
    } else if streak.len() >= FAILING_AFTER_REJECTIONS {
        HealthStatus::Failing
    } else if recent_rejections > 0 {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    let mut recommendations = Vec::new();
    if !source.enabled {
        recommendations.push(
            "The source is disabled: requests are refused. Enable it to receive events.".into(),
        );
    }
    if activity.recent.is_empty() {
        recommendations.push(format!(
            "No request has arrived yet: point the provider at /in/{} on this server's public URL.",
            source.id
        ));
    }
    // The reason most of the current run of rejections share says what to fix.
    let mut by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, reason) in &streak {
        *by_reason
            .entry(reason.as_deref().unwrap_or("unknown"))
            .or_default() += 1;
    }
    if let (Some((reason, _)), Some(since)) = (
        by_reason.iter().max_by_key(|(_, n)| **n),
        failing_since.filter(|_| status == HealthStatus::Failing),
    ) {
        recommendations.push(advice(reason, since, source.provider()));
    } else if status == HealthStatus::Degraded {
        let worst = activity
            .rejections_by_reason
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(r, _)| r.as_str());
        if let Some(reason) = worst {
            recommendations.push(format!(
                "Some requests are rejected (mostly `{reason}`) while others pass: check the \
                 request log (?outcome=rejected) for where they come from."
            ));
        }
    }
    SourceHealth {
        status,
        last_event_at: activity.last_event_at,
        last_request_at: activity.recent.first().map(|(at, _, _)| *at),
        events_last_hour: activity.events_last_hour,
        requests_last_hour: activity.requests_last_hour,
        rejections_by_reason: activity.rejections_by_reason,
        failing_since: failing_since.filter(|_| status == HealthStatus::Failing),
        recommendations,
    }
}

fn advice(reason: &str, since: DateTime<Utc>, provider: &str) -> String {
    let since = since.to_rfc3339();
    match reason {
        "bad_signature" | "bad_token" => format!(
            "Every request since {since} fails the signature check: the secret was probably \
             rotated at {provider}. Add the new secret to the source's verification settings \
             (several secrets may be listed while a rotation is under way)."
        ),
        "missing_signature" | "missing_token" | "missing_timestamp" => format!(
            "Requests since {since} arrive without the {provider} signature headers: check that \
             the provider is {provider}, that its signing is turned on, and that no proxy strips \
             headers."
        ),
        "stale_timestamp" => format!(
            "Requests since {since} carry timestamps outside the tolerance: they are replays, or \
             this server's clock is off (check NTP)."
        ),
        "too_large" => format!(
            "Requests since {since} are larger than max_body_bytes: raise it if these payloads \
             are expected."
        ),
        "rate_limited" => format!(
            "Requests since {since} are refused because this source's destinations are \
             backlogged: check the destinations' delivery health."
        ),
        "disabled" => {
            format!("The source has refused requests since {since} because it is disabled.")
        }
        "misconfigured" => format!(
            "Requests since {since} cannot be verified because the source's settings are \
             incomplete: review its verification settings."
        ),
        other => format!(
            "Every request since {since} is rejected with `{other}`: see the request log \
             (?outcome=rejected) for details."
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_shown_without_secrets() {
        let settings: SourceSettings = serde_json::from_value(json!({
            "provider": "gitlab", "secrets": ["tok1"], "signing_secrets": ["whsec_x"]
        }))
        .unwrap();
        let shown = redact_settings(&settings).to_string();
        assert!(
            !shown.contains("tok1") && !shown.contains("whsec_x"),
            "{shown}"
        );
        assert!(shown.contains("gitlab"), "{shown}");
    }

    #[test]
    fn credential_headers_are_redacted() {
        let h = redact_headers([
            ("x-hub-signature-256", b"sha256=abc".as_slice()),
            ("content-type", b"application/json".as_slice()),
        ]);
        assert_eq!(h["x-hub-signature-256"], "<redacted>");
        assert_eq!(h["content-type"], "application/json");
    }

    #[test]
    fn batch_payload_is_a_json_array_in_order() {
        let p = batch_payload(&[r#"{"a":1}"#, r#"{"a":2}"#]);
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(v, json!([{"a": 1}, {"a": 2}]));
        assert!(
            BatchSettings {
                max_events: 2,
                window_ms: 10
            }
            .is_valid()
        );
        assert!(
            !BatchSettings {
                max_events: 1,
                window_ms: 10
            }
            .is_valid()
        );
        assert!(
            !BatchSettings {
                max_events: 2,
                window_ms: 60_001
            }
            .is_valid()
        );
    }

    #[test]
    fn dedup_keys_prefer_the_provider_id() {
        assert_eq!(dedup_key(Some("e1"), b"x"), "id:e1");
        assert_eq!(
            dedup_key(None, b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
