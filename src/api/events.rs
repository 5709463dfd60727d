//! `/api/v1/tenants/{tenant}/events`: publishing and the event log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, JsonBody, PageParams, QueryParams};
use super::{AppState, ListResponse};
use crate::domain::{Delivery, Event};
use crate::service::{NewEvent, Published};

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v1/tenants/{tenant}/events",
            post(publish).get(list_events),
        )
        .route("/api/v1/tenants/{tenant}/events/{event}", get(get_event))
        .route(
            "/api/v1/tenants/{tenant}/events/{event}/resend",
            post(resend),
        )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    /// A registered event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// A JSON object, delivered byte for byte as sent.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    #[serde(default)]
    pub channels: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventOut {
    pub id: String,
    pub tenant_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub channels: Vec<String>,
    pub idempotency_key: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Deliveries this publish created (absent when listing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliveries: Option<usize>,
}

impl From<Event> for EventOut {
    fn from(e: Event) -> Self {
        EventOut {
            payload: RawValue::from_string(e.payload)
                .unwrap_or_else(|_| RawValue::from_string("null".into()).expect("literal JSON")),
            id: e.id,
            tenant_id: e.tenant_id,
            event_type: e.event_type,
            channels: e.channels,
            idempotency_key: e.idempotency_key,
            created_at: e.created_at,
            deliveries: None,
        }
    }
}

impl EventOut {
    pub fn from_published(p: Published) -> Self {
        let n = p.deliveries.len();
        let mut out = EventOut::from(p.event);
        if !p.replayed {
            out.deliveries = Some(n);
        }
        out
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResendIn {
    pub endpoint: String,
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/events", tag = "events", request_body = EventIn,
    params(("tenant" = String, Path), ("Idempotency-Key" = Option<String>, Header, description = "a repeat returns the first event")),
    responses((status = 202, body = EventOut, description = "stored durably with its deliveries"),
              (status = 200, body = EventOut, description = "the idempotency key was used before: the first event"),
              (status = 422, body = super::error::ErrorBody)))]
pub async fn publish(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<EventIn>,
) -> ApiResult<Response> {
    let idempotency_key = match headers.get(IDEMPOTENCY_KEY) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    ApiError::bad_request(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be ASCII",
                    )
                })?
                .to_string(),
        ),
    };
    let new = NewEvent {
        event_type: body.event_type,
        payload: body.payload.get().to_string(),
        channels: body.channels,
        idempotency_key,
    };
    let published = state.service.publish(&who, &tenant, new).await?;
    let replayed = published.replayed;
    let out = EventOut::from_published(published);
    let mut resp = if replayed {
        (StatusCode::OK, Json(out)).into_response()
    } else {
        (StatusCode::ACCEPTED, Json(out)).into_response()
    };
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/events", tag = "events",
    params(("tenant" = String, Path), PageParams), responses((status = 200, body = ListResponse<EventOut>)))]
pub async fn list_events(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
) -> ApiResult<Json<ListResponse<EventOut>>> {
    let page = state
        .service
        .list_events(&who, &tenant, params.page()?)
        .await?;
    Ok(Json(page.map(EventOut::from).into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/events/{event}", tag = "events",
    params(("tenant" = String, Path), ("event" = String, Path)), responses((status = 200, body = EventOut)))]
pub async fn get_event(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<EventOut>> {
    Ok(Json(
        state.service.get_event(&who, &tenant, &id).await?.into(),
    ))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/events/{event}/resend", tag = "events", request_body = ResendIn,
    params(("tenant" = String, Path), ("event" = String, Path)), responses((status = 202, body = Delivery)))]
pub async fn resend(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ResendIn>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let d = state
        .service
        .resend(&who, &tenant, &id, &body.endpoint)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}
