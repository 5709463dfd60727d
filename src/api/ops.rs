//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use super::AppState;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

#[derive(Serialize, ToSchema)]
pub struct Status {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<&'static str>,
    /// This process's id: the owner recorded on the deliveries it has claimed.
    pub instance: String,
}

#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Status)))]
pub async fn health(State(state): State<AppState>) -> Json<Status> {
    Json(Status {
        status: "ok",
        store: None,
        workers: None,
        instance: state.instance.to_string(),
    })
}

#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Status), (status = 503, body = Status)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Status>) {
    let store_ok = state.service.store().ping().await.is_ok();
    let workers_ok = state.workers_running.load(Ordering::Relaxed);
    let ok = store_ok && workers_ok;
    let status = Status {
        status: if ok { "ready" } else { "not_ready" },
        store: Some(if store_ok { "ok" } else { "unreachable" }),
        workers: Some(if workers_ok { "running" } else { "stopped" }),
        instance: state.instance.to_string(),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(status))
}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    crate::telemetry::update_queue_gauges(&**state.service.store()).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "this document")))]
pub async fn openapi() -> impl IntoResponse {
    Json(super::openapi::ApiDoc::openapi())
}
