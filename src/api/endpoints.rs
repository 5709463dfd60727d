//! `/api/v1/tenants/{tenant}/endpoints`: subscriptions, their secrets, tests, statistics,
//! health and recovery.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiResult;
use super::events::EventOut;
use super::extract::{Caller, JsonBody, OptionalJson, PageParams, QueryParams};
use super::{AppState, ListResponse, double_option};
use crate::domain::Endpoint;
use crate::domain::health::EndpointHealth;
use crate::service::{EndpointChanges, EndpointStats, NewEndpoint};

pub fn router() -> axum::Router<AppState> {
    let base = "/api/v1/tenants/{tenant}/endpoints";
    axum::Router::new()
        .route(base, post(create_endpoint).get(list_endpoints))
        .route(
            &format!("{base}/{{endpoint}}"),
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route(&format!("{base}/{{endpoint}}/secret"), get(get_secret))
        .route(
            &format!("{base}/{{endpoint}}/secret/rotate"),
            post(rotate_secret),
        )
        .route(&format!("{base}/{{endpoint}}/test"), post(send_test))
        .route(&format!("{base}/{{endpoint}}/stats"), get(endpoint_stats))
        .route(&format!("{base}/{{endpoint}}/health"), get(endpoint_health))
        .route(&format!("{base}/{{endpoint}}/recover"), post(recover))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    pub url: String,
    /// Exact names, prefix wildcards (`contact.*`) or `*`.
    pub event_types: Vec<String>,
    pub description: Option<String>,
    pub channels: Option<Vec<String>>,
    /// `whsec_...`; generated when left out.
    pub secret: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_s: Option<u32>,
    pub disabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// Delays before each retry, e.g. `["5s", "5m", "1h"]`; the global schedule when left out.
    pub retry_schedule: Option<Vec<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub channels: Option<Vec<String>>,
    pub headers: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub timeout_ms: Option<Option<u64>>,
    #[serde(default, deserialize_with = "double_option")]
    pub rate_limit_per_s: Option<Option<u32>>,
    pub disabled: Option<bool>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    pub retry_schedule: Option<Option<Vec<String>>>,
}

/// An endpoint as the API shows it: never its secrets.
#[derive(Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    /// Values of headers whose names suggest credentials are redacted.
    pub headers: BTreeMap<String, String>,
    pub timeout_ms: Option<u64>,
    pub rate_limit_per_s: Option<u32>,
    pub disabled: bool,
    pub disabled_reason: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub retry_schedule: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "key",
        "token",
        "secret",
        "cookie",
        "password",
        "signature",
    ]
    .iter()
    .any(|w| n.contains(w))
}

impl From<Endpoint> for EndpointOut {
    fn from(e: Endpoint) -> Self {
        EndpointOut {
            headers: e
                .headers
                .into_iter()
                .map(|(k, v)| {
                    let v = if looks_secret(&k) {
                        "<redacted>".to_string()
                    } else {
                        v
                    };
                    (k, v)
                })
                .collect(),
            id: e.id,
            tenant_id: e.tenant_id,
            url: e.url,
            description: e.description,
            event_types: e.event_types,
            channels: e.channels,
            timeout_ms: e.timeout_ms,
            rate_limit_per_s: e.rate_limit_per_s,
            disabled: e.disabled,
            disabled_reason: e.health.disabled_reason,
            metadata: e.metadata,
            retry_schedule: e.retry_schedule,
            created_at: e.created_at,
            updated_at: e.updated_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SecretOut {
    /// The current signing secret.
    pub secret: String,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// How long the old secret keeps signing alongside the new one (default 24h).
    pub grace_s: Option<u64>,
    /// The new secret (`whsec_...`); generated when left out.
    pub secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RotateOut {
    /// Until then requests carry both signatures.
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestIn {
    /// Defaults to the first registered event type the endpoint's filter names.
    pub event_type: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverIn {
    /// Failed deliveries created at or after this time are retried.
    pub since: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct RecoverOut {
    pub recovered: usize,
}

type EndpointPath = Path<(String, String)>;

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/endpoints", tag = "endpoints", request_body = EndpointIn,
    params(("tenant" = String, Path)), responses((status = 201, body = EndpointOut), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_endpoint(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    JsonBody(b): JsonBody<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let new = NewEndpoint {
        url: b.url,
        event_types: b.event_types,
        description: b.description,
        channels: b.channels,
        secret: b.secret,
        headers: b.headers,
        timeout_ms: b.timeout_ms,
        rate_limit_per_s: b.rate_limit_per_s,
        disabled: b.disabled,
        metadata: b.metadata,
        retry_schedule: b.retry_schedule,
    };
    let ep = state.service.create_endpoint(&who, &tenant, new).await?;
    Ok((StatusCode::CREATED, Json(ep.into())))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/endpoints", tag = "endpoints",
    params(("tenant" = String, Path), PageParams), responses((status = 200, body = ListResponse<EndpointOut>)))]
pub async fn list_endpoints(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let page = state
        .service
        .list_endpoints(&who, &tenant, params.page()?)
        .await?;
    Ok(Json(page.map(EndpointOut::from).into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}", tag = "endpoints",
    params(("tenant" = String, Path), ("endpoint" = String, Path)), responses((status = 200, body = EndpointOut)))]
pub async fn get_endpoint(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
) -> ApiResult<Json<EndpointOut>> {
    Ok(Json(
        state.service.get_endpoint(&who, &tenant, &id).await?.into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}", tag = "endpoints", request_body = EndpointPatch,
    params(("tenant" = String, Path), ("endpoint" = String, Path)), responses((status = 200, body = EndpointOut)))]
pub async fn update_endpoint(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
    JsonBody(b): JsonBody<EndpointPatch>,
) -> ApiResult<Json<EndpointOut>> {
    let changes = EndpointChanges {
        url: b.url,
        event_types: b.event_types,
        description: b.description,
        channels: b.channels,
        headers: b.headers,
        timeout_ms: b.timeout_ms,
        rate_limit_per_s: b.rate_limit_per_s,
        disabled: b.disabled,
        metadata: b.metadata,
        retry_schedule: b.retry_schedule,
    };
    let ep = state
        .service
        .update_endpoint(&who, &tenant, &id, changes)
        .await?;
    Ok(Json(ep.into()))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}", tag = "endpoints",
    params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 204, description = "deleted; its pending deliveries are cancelled")))]
pub async fn delete_endpoint(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
) -> ApiResult<StatusCode> {
    state.service.delete_endpoint(&who, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/secret", tag = "endpoints",
    params(("tenant" = String, Path), ("endpoint" = String, Path)), responses((status = 200, body = SecretOut)))]
pub async fn get_secret(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
) -> ApiResult<Json<SecretOut>> {
    let ep = state.service.get_endpoint(&who, &tenant, &id).await?;
    Ok(Json(SecretOut {
        secret: ep.secrets.current.expose().to_string(),
    }))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/secret/rotate", tag = "endpoints",
    request_body = RotateIn, params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 200, body = RotateOut)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
    OptionalJson(b): OptionalJson<RotateIn>,
) -> ApiResult<Json<RotateOut>> {
    let until = state
        .service
        .rotate_secret(&who, &tenant, &id, b.grace_s, b.secret)
        .await?;
    Ok(Json(RotateOut {
        previous_secret_expires_at: until,
    }))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/test", tag = "endpoints",
    request_body = TestIn, params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 202, body = EventOut)))]
pub async fn send_test(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
    OptionalJson(b): OptionalJson<TestIn>,
) -> ApiResult<(StatusCode, Json<EventOut>)> {
    let published = state
        .service
        .send_test(&who, &tenant, &id, b.event_type)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EventOut::from_published(published)),
    ))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StatsParams {
    /// RFC 3339; the deliveries counted were made at or after it. Default: 24 hours before
    /// `until`.
    pub since: Option<DateTime<Utc>>,
    /// RFC 3339; the deliveries counted were made before it. Default: now.
    pub until: Option<DateTime<Utc>>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/stats", tag = "endpoints",
    params(("tenant" = String, Path), ("endpoint" = String, Path), StatsParams),
    responses((status = 200, body = EndpointStats)))]
pub async fn endpoint_stats(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
    QueryParams(p): QueryParams<StatsParams>,
) -> ApiResult<Json<EndpointStats>> {
    Ok(Json(
        state
            .service
            .endpoint_stats(&who, &tenant, &id, p.since, p.until)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/health", tag = "endpoints",
    params(("tenant" = String, Path), ("endpoint" = String, Path)), responses((status = 200, body = EndpointHealth)))]
pub async fn endpoint_health(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
) -> ApiResult<Json<EndpointHealth>> {
    Ok(Json(
        state.service.endpoint_health(&who, &tenant, &id).await?,
    ))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/endpoints/{endpoint}/recover", tag = "endpoints",
    request_body = RecoverIn, params(("tenant" = String, Path), ("endpoint" = String, Path)),
    responses((status = 202, body = RecoverOut)))]
pub async fn recover(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): EndpointPath,
    JsonBody(b): JsonBody<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let recovered = state.service.recover(&who, &tenant, &id, b.since).await?;
    Ok((StatusCode::ACCEPTED, Json(RecoverOut { recovered })))
}
