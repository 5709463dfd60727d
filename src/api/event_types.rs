//! `/api/v1/event-types`: the catalogue of what can be published.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ApiResult;
use super::extract::{Caller, JsonBody, PageParams, QueryParams};
use super::{AppState, ListResponse, double_option};
use crate::domain::EventType;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/api/v1/event-types",
            get(list_event_types).post(create_event_type),
        )
        .route(
            "/api/v1/event-types/{name}",
            get(get_event_type)
                .patch(update_event_type)
                .delete(delete_event_type),
        )
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypeIn {
    /// e.g. `contact.created`.
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A JSON Schema describing the payload.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<serde_json::Value>,
    /// An example payload, sent by the endpoint test action.
    #[schema(value_type = Option<Object>)]
    pub sample: Option<serde_json::Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventTypePatch {
    pub description: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Object>)]
    pub sample: Option<Option<serde_json::Value>>,
    pub archived: Option<bool>,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
pub struct ListEventTypesParams {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    /// Include archived types.
    #[serde(default)]
    pub include_archived: bool,
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
pub struct DeleteParams {
    /// Remove the type from the catalogue instead of archiving it.
    #[serde(default)]
    pub expunge: bool,
}

#[utoipa::path(post, path = "/api/v1/event-types", tag = "event-types", request_body = EventTypeIn,
    responses((status = 201, body = EventType), (status = 409, body = super::error::ErrorBody)))]
pub async fn create_event_type(
    State(state): State<AppState>,
    Caller(who): Caller,
    JsonBody(body): JsonBody<EventTypeIn>,
) -> ApiResult<(StatusCode, Json<EventType>)> {
    let et = state
        .service
        .create_event_type(&who, &body.name, body.description, body.schema, body.sample)
        .await?;
    Ok((StatusCode::CREATED, Json(et)))
}

#[utoipa::path(get, path = "/api/v1/event-types", tag = "event-types", params(ListEventTypesParams),
    responses((status = 200, body = ListResponse<EventType>)))]
pub async fn list_event_types(
    State(state): State<AppState>,
    Caller(_who): Caller,
    QueryParams(params): QueryParams<ListEventTypesParams>,
) -> ApiResult<Json<ListResponse<EventType>>> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor.clone(),
    };
    let list = state
        .service
        .list_event_types(page.page()?, params.include_archived)
        .await?;
    Ok(Json(list.into()))
}

#[utoipa::path(get, path = "/api/v1/event-types/{name}", tag = "event-types",
    params(("name" = String, Path)), responses((status = 200, body = EventType)))]
pub async fn get_event_type(
    State(state): State<AppState>,
    Caller(_who): Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<EventType>> {
    Ok(Json(state.service.get_event_type(&name).await?))
}

#[utoipa::path(patch, path = "/api/v1/event-types/{name}", tag = "event-types", request_body = EventTypePatch,
    params(("name" = String, Path)), responses((status = 200, body = EventType)))]
pub async fn update_event_type(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<EventTypePatch>,
) -> ApiResult<Json<EventType>> {
    let et = state
        .service
        .update_event_type(
            &who,
            &name,
            body.description,
            body.schema,
            body.sample,
            body.archived,
        )
        .await?;
    Ok(Json(et))
}

#[utoipa::path(delete, path = "/api/v1/event-types/{name}", tag = "event-types",
    params(("name" = String, Path), DeleteParams),
    responses((status = 204, description = "archived (or removed with expunge=true)")))]
pub async fn delete_event_type(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    QueryParams(params): QueryParams<DeleteParams>,
) -> ApiResult<StatusCode> {
    state
        .service
        .delete_event_type(&who, &name, params.expunge)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
