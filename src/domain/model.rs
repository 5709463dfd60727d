//! The resources of SPEC §2 as plain data.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::secret::SecretSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Tenant(String),
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Tenant {
    pub id: String,
    pub uid: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    /// `None` for an admin key.
    pub tenant_id: Option<String>,
    pub name: Option<String>,
    /// The first characters of the key, to tell keys apart; never the key.
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventType {
    pub name: String,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub sample: Option<serde_json::Value>,
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    pub secrets: SecretSet,
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_s: Option<u32>,
    pub disabled: bool,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Overrides the global retry delays, e.g. `["1m", "10m"]`.
    pub retry_schedule: Option<Vec<String>>,
    /// Set when the endpoint is the hidden target of an inbound source's HTTP destination:
    /// such endpoints are not listed and never take part in a fan-out.
    pub source_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub health: EndpointHealthState,
}

/// Counters kept on the endpoint row and updated with every recorded attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointHealthState {
    pub consecutive_failures: u32,
    /// Start of the current run of failures without a success in between.
    pub failing_since: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    /// The payload exactly as published: the bytes that are signed and delivered.
    pub payload: String,
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: [Self; 4] = [
        Self::Pending,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    pub tenant_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    #[serde(rename = "attempt_count")]
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Why an attempt failed before or instead of an HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptErrorKind {
    /// No complete answer within the endpoint's timeout.
    Timeout,
    /// The connection was refused or reset.
    Connect,
    /// The host name did not resolve.
    Dns,
    /// The TLS handshake failed.
    Tls,
    /// The address is private, loopback or otherwise not allowed (SSRF protection).
    Blocked,
    /// The receiver answered with a status other than 2xx (3xx included: no redirects).
    HttpStatus,
    /// The endpoint was disabled or deleted before the attempt.
    EndpointUnavailable,
    Other,
}

impl AttemptErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Blocked => "blocked",
            Self::HttpStatus => "http_status",
            Self::EndpointUnavailable => "endpoint_unavailable",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "timeout" => Self::Timeout,
            "connect" => Self::Connect,
            "dns" => Self::Dns,
            "tls" => Self::Tls,
            "blocked" => Self::Blocked,
            "http_status" => Self::HttpStatus,
            "endpoint_unavailable" => Self::EndpointUnavailable,
            _ => Self::Other,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub endpoint_id: String,
    /// 1 for the first try.
    pub attempt: u32,
    pub url: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub succeeded: bool,
    pub request_headers: BTreeMap<String, String>,
    pub response_status: Option<u16>,
    pub response_headers: BTreeMap<String, String>,
    /// The start of the response body (see `delivery.max_response_body_bytes`).
    pub response_body: Option<String>,
    pub error_kind: Option<AttemptErrorKind>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OperationalEvent {
    pub id: String,
    pub tenant_id: String,
    /// e.g. `endpoint.disabled`.
    pub kind: String,
    pub endpoint_id: Option<String>,
    pub message: String,
    pub created_at: DateTime<Utc>,
}

/// One page of a listing; `next_cursor` is the id to pass as `cursor` for the next page.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, id: impl Fn(&T) -> String) -> Self {
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(id)
        } else {
            None
        };
        Page {
            data: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub limit: usize,
    /// Exclusive: rows strictly older than this id.
    pub cursor: Option<&'a str>,
}
