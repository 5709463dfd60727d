//! The HTTP API of SPEC §8. Handlers are thin: they turn requests into calls on
//! `service::Service` and results into JSON; `error.rs` maps every failure once.

pub mod deliveries;
pub mod endpoints;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod openapi;
pub mod ops;
pub mod receive;
pub mod sources;
pub mod tenants;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use self::error::ApiError;
use crate::domain::Page;
use crate::service::Service;

#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub metrics: PrometheusHandle,
    pub workers_running: Arc<AtomicBool>,
    /// This process's id (leases carry it).
    pub instance: Arc<str>,
    /// Largest request body taken, in bytes (the receive path reads raw bodies itself).
    pub max_body_bytes: usize,
}

/// A page of a listing: `{"data": [...], "next_cursor": "..." | null}`.
#[derive(Serialize, ToSchema)]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for ListResponse<T> {
    fn from(p: Page<T>) -> Self {
        ListResponse {
            data: p.data,
            next_cursor: p.next_cursor,
        }
    }
}

/// Tells a field left out (`None`) from a field set to null (`Some(None)`).
pub fn double_option<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// The HTTP API. With `serve_api` false (a delivery-only instance) only the operational
/// routes (`/health`, `/ready`, `/metrics`, `/openapi.json`) are served.
pub fn router(state: AppState, max_body_bytes: usize, serve_api: bool) -> axum::Router {
    let mut router = axum::Router::new().merge(ops::router());
    if serve_api {
        router = router
            .merge(tenants::router())
            .merge(event_types::router())
            .merge(endpoints::router())
            .merge(events::router())
            .merge(deliveries::router())
            .merge(sources::router())
            .merge(receive::router());
    }
    router
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
