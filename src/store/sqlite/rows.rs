//! Column lists and row → domain conversions. JSON-shaped fields are stored as JSON text.

use chrono::{DateTime, Utc};
use rusqlite::Row;
use rusqlite::types::Type;
use serde::de::DeserializeOwned;

use crate::domain::{
    Attempt, AttemptErrorKind, Delivery, DeliveryStatus, Endpoint, EndpointHealthState, Event,
    EventType, Tenant,
};

pub use crate::store::columns::*;

fn parse_json<T: DeserializeOwned>(r: &Row<'_>, idx: usize) -> rusqlite::Result<T> {
    let text: String = r.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

fn opt_json<T: DeserializeOwned>(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<T>> {
    match r.get::<_, Option<String>>(idx)? {
        None => Ok(None),
        Some(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e))),
    }
}

fn opt_time(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    Ok(r.get::<_, Option<i64>>(idx)?.map(from_ms))
}

pub fn tenant_row(r: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: r.get(0)?,
        uid: r.get(1)?,
        name: r.get(2)?,
        created_at: from_ms(r.get(3)?),
        updated_at: from_ms(r.get(4)?),
    })
}

pub fn event_type_row(r: &Row<'_>) -> rusqlite::Result<EventType> {
    Ok(EventType {
        name: r.get(0)?,
        description: r.get(1)?,
        schema: opt_json(r, 2)?,
        sample: opt_json(r, 3)?,
        archived: r.get(4)?,
        created_at: from_ms(r.get(5)?),
        updated_at: from_ms(r.get(6)?),
    })
}

pub fn endpoint_row(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    Ok(Endpoint {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        url: r.get(2)?,
        description: r.get(3)?,
        event_types: parse_json(r, 4)?,
        channels: parse_json(r, 5)?,
        secrets: parse_json(r, 6)?,
        headers: parse_json(r, 7)?,
        timeout_ms: r.get::<_, Option<i64>>(8)?.map(|v| v.max(0) as u64),
        rate_limit_per_s: r.get(9)?,
        disabled: r.get(10)?,
        metadata: parse_json(r, 11)?,
        retry_schedule: opt_json(r, 12)?,
        health: EndpointHealthState {
            consecutive_failures: r.get(13)?,
            failing_since: opt_time(r, 14)?,
            last_success_at: opt_time(r, 15)?,
            last_failure_at: opt_time(r, 16)?,
            disabled_reason: r.get(17)?,
            disabled_at: opt_time(r, 18)?,
        },
        created_at: from_ms(r.get(19)?),
        updated_at: from_ms(r.get(20)?),
        source_id: r.get(21)?,
    })
}

pub fn event_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        event_type: r.get(2)?,
        payload: r.get(3)?,
        channels: parse_json(r, 4)?,
        idempotency_key: r.get(5)?,
        created_at: from_ms(r.get(6)?),
    })
}

pub fn delivery_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let status: String = r.get(5)?;
    Ok(Delivery {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        event_id: r.get(2)?,
        endpoint_id: r.get(3)?,
        event_type: r.get(4)?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                Type::Text,
                format!("status {status}").into(),
            )
        })?,
        attempts: r.get(6)?,
        next_attempt_at: opt_time(r, 7)?,
        last_error: r.get(8)?,
        created_at: from_ms(r.get(9)?),
        updated_at: from_ms(r.get(10)?),
    })
}

pub fn attempt_row(r: &Row<'_>) -> rusqlite::Result<Attempt> {
    Ok(Attempt {
        id: r.get(0)?,
        delivery_id: r.get(1)?,
        endpoint_id: r.get(3)?,
        attempt: r.get(4)?,
        url: r.get(5)?,
        started_at: from_ms(r.get(6)?),
        duration_ms: r.get::<_, i64>(7)? as u64,
        succeeded: r.get(8)?,
        request_headers: parse_json(r, 9)?,
        response_status: r.get(10)?,
        response_headers: parse_json(r, 11)?,
        response_body: r.get(12)?,
        error_kind: r
            .get::<_, Option<String>>(13)?
            .map(|k| AttemptErrorKind::parse(&k)),
        error: r.get(14)?,
    })
}
