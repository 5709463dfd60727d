//! `/api/v1/tenants/{tenant}/sources`: inbound sources, their request log and health.
//! Verification settings are shown with every secret redacted.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiResult;
use super::extract::{Caller, JsonBody, PageParams, QueryParams};
use super::{AppState, ListResponse};
use crate::domain::source::{BatchSettings, Destination, InboundRequestLog, SourceHealth};
use crate::service::{DestinationSpec, NewSource, SourceChanges, SourceView};

pub fn router() -> axum::Router<AppState> {
    let base = "/api/v1/tenants/{tenant}/sources";
    axum::Router::new()
        .route(base, get(list_sources).post(create_source))
        .route(
            &format!("{base}/{{source}}"),
            get(get_source).patch(update_source).delete(delete_source),
        )
        .route(
            &format!("{base}/{{source}}/requests"),
            get(list_source_requests),
        )
        .route(&format!("{base}/{{source}}/health"), get(source_health))
}

/// A destination as sent: `{"type": "http", "url": ..., "forward_headers": false,
/// "secret": "whsec_..."?}` or `{"type": "publish", "event_type": "github.{event}"}`.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DestinationIn {
    Http {
        url: String,
        #[serde(default)]
        forward_headers: bool,
        /// Signing secret of the deliveries to `url` (`whsec_...`); generated when left
        /// out. Read it back with `GET .../endpoints/{endpoint_id}/secret`.
        secret: Option<String>,
        /// Forward up to `max_events` events in one JSON array within `window_ms`
        /// (2-1000 events, 10-60000 ms); without it, one request per event.
        batch: Option<BatchSettings>,
    },
    Publish {
        /// `{event}` is replaced by the provider's event type.
        event_type: String,
    },
}

impl From<DestinationIn> for DestinationSpec {
    fn from(d: DestinationIn) -> Self {
        match d {
            DestinationIn::Http {
                url,
                forward_headers,
                secret,
                batch,
            } => DestinationSpec::Http {
                url,
                forward_headers,
                secret,
                batch,
            },
            DestinationIn::Publish { event_type } => DestinationSpec::Publish { event_type },
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceIn {
    pub name: String,
    /// The provider preset (`github`, `slack`, `stripe`, ...); may instead be given as
    /// `verification.provider`.
    pub provider: Option<String>,
    /// The provider's verification settings, e.g. `{"secrets": ["..."]}`.
    #[schema(value_type = Option<Object>)]
    pub verification: Option<serde_json::Value>,
    /// Event-type filter, as for endpoints; default `["*"]`.
    pub allowed_event_types: Option<Vec<String>>,
    pub destinations: Option<Vec<DestinationIn>>,
    pub enabled: Option<bool>,
    /// Default 86400; 0 turns dedup off.
    pub dedup_window_s: Option<u64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    pub name: Option<String>,
    /// Replaces the verification settings as a whole (provider included).
    #[schema(value_type = Option<Object>)]
    pub verification: Option<serde_json::Value>,
    pub allowed_event_types: Option<Vec<String>>,
    /// Replaces the destinations; an HTTP destination whose URL is kept keeps its endpoint.
    pub destinations: Option<Vec<DestinationIn>>,
    pub enabled: Option<bool>,
    pub dedup_window_s: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct UnconfirmedTokenOut {
    /// Sent unsigned by the provider during set-up: paste it back into the provider's
    /// console and add it to the verification settings only if you expected it.
    pub token: String,
    pub received_at: DateTime<Utc>,
}

/// A source as the API shows it: secrets redacted.
#[derive(Serialize, ToSchema)]
pub struct SourceOut {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub provider: String,
    /// The verification settings with every secret replaced by `<redacted>`.
    #[schema(value_type = Object)]
    pub verification: serde_json::Value,
    pub allowed_event_types: Vec<String>,
    pub destinations: Vec<Destination>,
    pub enabled: bool,
    pub dedup_window_s: u64,
    /// Where the provider must post (`public_url` + `/in/{id}`).
    pub url: String,
    pub unconfirmed_verification_token: Option<UnconfirmedTokenOut>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SourceView> for SourceOut {
    fn from(v: SourceView) -> Self {
        let s = v.source;
        SourceOut {
            provider: s.provider().to_string(),
            id: s.id,
            tenant_id: s.tenant_id,
            name: s.name,
            verification: v.verification,
            allowed_event_types: s.allowed_event_types,
            destinations: s.destinations,
            enabled: s.enabled,
            dedup_window_s: s.dedup_window_s,
            url: v.url,
            unconfirmed_verification_token: v
                .unconfirmed_token
                .map(|(token, received_at)| UnconfirmedTokenOut { token, received_at }),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct RequestsParams {
    /// `accepted`, `rejected`, `duplicate`, `filtered` or `handshake`.
    pub outcome: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

type SourcePath = Path<(String, String)>;

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/sources", tag = "sources", request_body = SourceIn,
    params(("tenant" = String, Path)), responses((status = 201, body = SourceOut), (status = 422, body = super::error::ErrorBody)))]
pub async fn create_source(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    JsonBody(b): JsonBody<SourceIn>,
) -> ApiResult<(StatusCode, Json<SourceOut>)> {
    let new = NewSource {
        name: b.name,
        provider: b.provider,
        verification: b.verification,
        allowed_event_types: b.allowed_event_types,
        destinations: b
            .destinations
            .map(|d| d.into_iter().map(Into::into).collect()),
        enabled: b.enabled,
        dedup_window_s: b.dedup_window_s,
    };
    let source = state.service.create_source(&who, &tenant, new).await?;
    Ok((StatusCode::CREATED, Json(source.into())))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sources", tag = "sources",
    params(("tenant" = String, Path), PageParams), responses((status = 200, body = ListResponse<SourceOut>)))]
pub async fn list_sources(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    QueryParams(params): QueryParams<PageParams>,
) -> ApiResult<Json<ListResponse<SourceOut>>> {
    let page = state
        .service
        .list_sources(&who, &tenant, params.page()?)
        .await?;
    Ok(Json(page.map(SourceOut::from).into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sources/{source}", tag = "sources",
    params(("tenant" = String, Path), ("source" = String, Path)), responses((status = 200, body = SourceOut)))]
pub async fn get_source(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): SourcePath,
) -> ApiResult<Json<SourceOut>> {
    Ok(Json(
        state.service.get_source(&who, &tenant, &id).await?.into(),
    ))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}/sources/{source}", tag = "sources", request_body = SourcePatch,
    params(("tenant" = String, Path), ("source" = String, Path)), responses((status = 200, body = SourceOut)))]
pub async fn update_source(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): SourcePath,
    JsonBody(b): JsonBody<SourcePatch>,
) -> ApiResult<Json<SourceOut>> {
    let changes = SourceChanges {
        name: b.name,
        verification: b.verification,
        allowed_event_types: b.allowed_event_types,
        destinations: b
            .destinations
            .map(|d| d.into_iter().map(Into::into).collect()),
        enabled: b.enabled,
        dedup_window_s: b.dedup_window_s,
    };
    let source = state
        .service
        .update_source(&who, &tenant, &id, changes)
        .await?;
    Ok(Json(source.into()))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}/sources/{source}", tag = "sources",
    params(("tenant" = String, Path), ("source" = String, Path)),
    responses((status = 204, description = "deleted with its log; pending deliveries to its destinations are cancelled")))]
pub async fn delete_source(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): SourcePath,
) -> ApiResult<StatusCode> {
    state.service.delete_source(&who, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sources/{source}/requests", tag = "sources",
    params(("tenant" = String, Path), ("source" = String, Path), RequestsParams),
    responses((status = 200, body = ListResponse<InboundRequestLog>)))]
pub async fn list_source_requests(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): SourcePath,
    QueryParams(params): QueryParams<RequestsParams>,
) -> ApiResult<Json<ListResponse<InboundRequestLog>>> {
    let paging = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    };
    let page = state
        .service
        .list_source_requests(
            &who,
            &tenant,
            &id,
            params.outcome.as_deref(),
            paging.page()?,
        )
        .await?;
    Ok(Json(page.into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/sources/{source}/health", tag = "sources",
    params(("tenant" = String, Path), ("source" = String, Path)), responses((status = 200, body = SourceHealth)))]
pub async fn source_health(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): SourcePath,
) -> ApiResult<Json<SourceHealth>> {
    Ok(Json(state.service.source_health(&who, &tenant, &id).await?))
}
