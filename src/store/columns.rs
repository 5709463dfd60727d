//! What both backends share about rows: the column lists (the tables are the same on both)
//! and how values are stored. Times are milliseconds since the Unix epoch, so they
//! round-trip exactly on either backend; JSON-shaped fields are stored as JSON text.

use chrono::{DateTime, Utc};
use serde::Serialize;

pub fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub fn from_ms(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(v).unwrap_or_default()
}

pub fn json<T: Serialize + ?Sized>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

pub const ENDPOINT_COLUMNS: &str =
    "id, tenant_id, url, description, event_types, channels, secrets,
    headers, timeout_ms, rate_limit_per_s, disabled, metadata, retry_schedule,
    consecutive_failures, failing_since, last_success_at, last_failure_at, disabled_reason,
    disabled_at, created_at, updated_at, source_id";

pub const EVENT_COLUMNS: &str =
    "id, tenant_id, event_type, payload, channels, idempotency_key, created_at";

pub const DELIVERY_COLUMNS: &str = "id, tenant_id, event_id, endpoint_id, event_type, status,
    attempts, next_attempt_at, last_error, created_at, updated_at";

pub const ATTEMPT_COLUMNS: &str = "id, delivery_id, tenant_id, endpoint_id, attempt, url,
    started_at, duration_ms, succeeded, request_headers, response_status, response_headers,
    response_body, error_kind, error";

pub const SOURCE_COLUMNS: &str = "id, tenant_id, name, settings, allowed_event_types, destinations,
    enabled, dedup_window_s, unconfirmed_token, unconfirmed_token_at, created_at, updated_at";

pub const REQUEST_COLUMNS: &str = "id, tenant_id, source_id, received_at, outcome, reason,
    provider_event_id, event_type, dedup_key, headers, body, body_bytes, routed_events,
    routing_error";
