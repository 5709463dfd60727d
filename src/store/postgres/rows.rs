//! Row → domain conversions for PostgreSQL. The columns are those of `store::columns`, in
//! the same order as on SQLite.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::domain::{
    Attempt, AttemptErrorKind, Delivery, DeliveryStatus, Endpoint, EndpointHealthState, Event,
    EventType, Tenant,
};
pub use crate::store::columns::*;

pub type RowResult<T> = std::result::Result<T, sqlx::Error>;

fn corrupt(idx: usize, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: idx.to_string(),
        source: e.into(),
    }
}

pub fn json_col<T: DeserializeOwned>(r: &PgRow, idx: usize) -> RowResult<T> {
    let text: &str = r.try_get(idx)?;
    serde_json::from_str(text).map_err(|e| corrupt(idx, e))
}

pub fn opt_json<T: DeserializeOwned>(r: &PgRow, idx: usize) -> RowResult<Option<T>> {
    match r.try_get::<Option<&str>, _>(idx)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| corrupt(idx, e)),
    }
}

pub fn time(r: &PgRow, idx: usize) -> RowResult<DateTime<Utc>> {
    Ok(from_ms(r.try_get(idx)?))
}

pub fn opt_time(r: &PgRow, idx: usize) -> RowResult<Option<DateTime<Utc>>> {
    Ok(r.try_get::<Option<i64>, _>(idx)?.map(from_ms))
}

/// An INTEGER column holding a count or a small number.
pub fn uint(r: &PgRow, idx: usize) -> RowResult<u32> {
    Ok(r.try_get::<i32, _>(idx)?.max(0) as u32)
}

pub fn tenant_row(r: &PgRow) -> RowResult<Tenant> {
    Ok(Tenant {
        id: r.try_get(0)?,
        uid: r.try_get(1)?,
        name: r.try_get(2)?,
        created_at: time(r, 3)?,
        updated_at: time(r, 4)?,
    })
}

pub fn event_type_row(r: &PgRow) -> RowResult<EventType> {
    Ok(EventType {
        name: r.try_get(0)?,
        description: r.try_get(1)?,
        schema: opt_json(r, 2)?,
        sample: opt_json(r, 3)?,
        archived: r.try_get(4)?,
        created_at: time(r, 5)?,
        updated_at: time(r, 6)?,
    })
}

pub fn endpoint_row(r: &PgRow) -> RowResult<Endpoint> {
    Ok(Endpoint {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        url: r.try_get(2)?,
        description: r.try_get(3)?,
        event_types: json_col(r, 4)?,
        channels: json_col(r, 5)?,
        secrets: json_col(r, 6)?,
        headers: json_col(r, 7)?,
        timeout_ms: r.try_get::<Option<i64>, _>(8)?.map(|v| v.max(0) as u64),
        rate_limit_per_s: r.try_get::<Option<i32>, _>(9)?.map(|v| v.max(0) as u32),
        disabled: r.try_get(10)?,
        metadata: json_col(r, 11)?,
        retry_schedule: opt_json(r, 12)?,
        health: EndpointHealthState {
            consecutive_failures: uint(r, 13)?,
            failing_since: opt_time(r, 14)?,
            last_success_at: opt_time(r, 15)?,
            last_failure_at: opt_time(r, 16)?,
            disabled_reason: r.try_get(17)?,
            disabled_at: opt_time(r, 18)?,
        },
        created_at: time(r, 19)?,
        updated_at: time(r, 20)?,
        source_id: r.try_get(21)?,
    })
}

pub fn event_row(r: &PgRow) -> RowResult<Event> {
    Ok(Event {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        event_type: r.try_get(2)?,
        payload: r.try_get(3)?,
        channels: json_col(r, 4)?,
        idempotency_key: r.try_get(5)?,
        created_at: time(r, 6)?,
    })
}

pub fn delivery_row(r: &PgRow) -> RowResult<Delivery> {
    let status: &str = r.try_get(5)?;
    Ok(Delivery {
        id: r.try_get(0)?,
        tenant_id: r.try_get(1)?,
        event_id: r.try_get(2)?,
        endpoint_id: r.try_get(3)?,
        event_type: r.try_get(4)?,
        status: DeliveryStatus::parse(status)
            .ok_or_else(|| corrupt(5, format!("status {status}")))?,
        attempts: uint(r, 6)?,
        next_attempt_at: opt_time(r, 7)?,
        last_error: r.try_get(8)?,
        created_at: time(r, 9)?,
        updated_at: time(r, 10)?,
    })
}

pub fn attempt_row(r: &PgRow) -> RowResult<Attempt> {
    Ok(Attempt {
        id: r.try_get(0)?,
        delivery_id: r.try_get(1)?,
        endpoint_id: r.try_get(3)?,
        attempt: uint(r, 4)?,
        url: r.try_get(5)?,
        started_at: time(r, 6)?,
        duration_ms: r.try_get::<i64, _>(7)?.max(0) as u64,
        succeeded: r.try_get(8)?,
        request_headers: json_col(r, 9)?,
        response_status: r.try_get::<Option<i32>, _>(10)?.map(|v| v as u16),
        response_headers: json_col(r, 11)?,
        response_body: r.try_get(12)?,
        error_kind: r
            .try_get::<Option<&str>, _>(13)?
            .map(AttemptErrorKind::parse),
        error: r.try_get(14)?,
    })
}
