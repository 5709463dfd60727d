//! `/api/v1/tenants/{tenant}/deliveries`: the delivery log with every attempt, manual retry,
//! and the tenant's operational events.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult};
use super::extract::{Caller, PageParams, QueryParams};
use super::{AppState, ListResponse};
use crate::domain::{Attempt, Delivery, DeliveryStatus, OperationalEvent};
use crate::store::DeliveryFilter;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/tenants/{tenant}/deliveries", get(list_deliveries))
        .route(
            "/api/v1/tenants/{tenant}/deliveries/{delivery}",
            get(get_delivery),
        )
        .route(
            "/api/v1/tenants/{tenant}/deliveries/{delivery}/retry",
            post(retry_delivery),
        )
        .route(
            "/api/v1/tenants/{tenant}/operational-events",
            get(list_operational_events),
        )
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct DeliveryListParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// pending, succeeded, failed or cancelled.
    pub status: Option<String>,
    /// An endpoint id.
    pub endpoint: Option<String>,
    /// An event id.
    pub event: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// Oldest first.
    pub attempts: Vec<Attempt>,
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/deliveries", tag = "deliveries",
    params(("tenant" = String, Path), DeliveryListParams), responses((status = 200, body = ListResponse<Delivery>)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    QueryParams(p): QueryParams<DeliveryListParams>,
) -> ApiResult<Json<ListResponse<Delivery>>> {
    let status = match p.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                "status must be pending, succeeded, failed or cancelled",
            )
        })?),
    };
    let filter = DeliveryFilter {
        status,
        endpoint_id: p.endpoint.filter(|s| !s.is_empty()),
        event_id: p.event.filter(|s| !s.is_empty()),
    };
    let page = PageParams {
        limit: p.limit,
        cursor: p.cursor,
    };
    let list = state
        .service
        .list_deliveries(&who, &tenant, filter, page.page()?)
        .await?;
    Ok(Json(list.into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/deliveries/{delivery}", tag = "deliveries",
    params(("tenant" = String, Path), ("delivery" = String, Path)), responses((status = 200, body = DeliveryDetail)))]
pub async fn get_delivery(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<Json<DeliveryDetail>> {
    let (delivery, attempts) = state.service.get_delivery(&who, &tenant, &id).await?;
    Ok(Json(DeliveryDetail { delivery, attempts }))
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/deliveries/{delivery}/retry", tag = "deliveries",
    params(("tenant" = String, Path), ("delivery" = String, Path)),
    responses((status = 202, body = Delivery), (status = 409, body = super::error::ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, Json<Delivery>)> {
    let d = state.service.retry_delivery(&who, &tenant, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(d)))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}/operational-events", tag = "deliveries",
    params(("tenant" = String, Path), PageParams), responses((status = 200, body = ListResponse<OperationalEvent>)))]
pub async fn list_operational_events(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    QueryParams(p): QueryParams<PageParams>,
) -> ApiResult<Json<ListResponse<OperationalEvent>>> {
    let list = state
        .service
        .list_operational_events(&who, &tenant, p.page()?)
        .await?;
    Ok(Json(list.into()))
}
