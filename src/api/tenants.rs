//! `/api/v1/tenants` and tenant API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{Caller, JsonBody, PageParams, QueryParams};
use super::{AppState, ListResponse};
use crate::domain::{ApiKey, Tenant};

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/api/v1/tenants", post(create_tenant).get(list_tenants))
        .route(
            "/api/v1/tenants/{tenant}",
            get(get_tenant).patch(update_tenant).delete(delete_tenant),
        )
        .route("/api/v1/tenants/{tenant}/api-keys", post(create_api_key))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantIn {
    /// Your own unique id for the tenant: 1-64 letters, digits, `_` or `-`.
    pub uid: String,
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantPatch {
    pub uid: Option<String>,
    pub name: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyIn {
    pub name: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeyOut {
    pub id: String,
    /// The bearer token. Shown this once: only its hash is stored.
    pub key: String,
    #[serde(flatten)]
    pub meta: ApiKey,
}

#[utoipa::path(post, path = "/api/v1/tenants", tag = "tenants", request_body = TenantIn,
    responses((status = 201, body = Tenant), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_tenant(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<TenantIn>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    let tenant = state
        .service
        .create_tenant(&who, &body.uid, &body.name)
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

#[utoipa::path(get, path = "/api/v1/tenants", tag = "tenants", params(PageParams),
    responses((status = 200, body = ListResponse<Tenant>)))]
pub async fn list_tenants(
    State(state): State<AppState>,
    Caller(who): Caller,
    QueryParams(params): QueryParams<PageParams>,
) -> ApiResult<Json<ListResponse<Tenant>>> {
    let page = state.service.list_tenants(&who, params.page()?).await?;
    Ok(Json(page.into()))
}

#[utoipa::path(get, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id or uid")),
    responses((status = 200, body = Tenant), (status = 404, body = super::error::ErrorBody)))]
pub async fn get_tenant(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
) -> ApiResult<Json<Tenant>> {
    Ok(Json(state.service.tenant_for(&who, &tenant).await?))
}

#[utoipa::path(patch, path = "/api/v1/tenants/{tenant}", tag = "tenants", request_body = TenantPatch,
    params(("tenant" = String, Path, description = "tenant id or uid")),
    responses((status = 200, body = Tenant)))]
pub async fn update_tenant(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    JsonBody(body): JsonBody<TenantPatch>,
) -> ApiResult<Json<Tenant>> {
    let t = state
        .service
        .update_tenant(&who, &tenant, body.uid.as_deref(), body.name.as_deref())
        .await?;
    Ok(Json(t))
}

#[utoipa::path(delete, path = "/api/v1/tenants/{tenant}", tag = "tenants",
    params(("tenant" = String, Path, description = "tenant id or uid")),
    responses((status = 204, description = "deleted with everything it owned")))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
) -> ApiResult<StatusCode> {
    state.service.delete_tenant(&who, &tenant).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/tenants/{tenant}/api-keys", tag = "tenants", request_body = ApiKeyIn,
    params(("tenant" = String, Path, description = "tenant id or uid")),
    responses((status = 201, body = ApiKeyOut)))]
pub async fn create_api_key(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(tenant): Path<String>,
    super::extract::OptionalJson(body): super::extract::OptionalJson<ApiKeyIn>,
) -> ApiResult<(StatusCode, Json<ApiKeyOut>)> {
    let created = state
        .service
        .create_api_key(&who, &tenant, body.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyOut {
            id: created.meta.id.clone(),
            key: created.key,
            meta: created.meta,
        }),
    ))
}
