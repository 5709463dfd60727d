//! The one place that knows HTTP status codes. Every error leaves as
//! `{"error": {"code": "snake_case", "message": "human text"}}`; a 500 logs its cause and
//! says nothing about it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Invalid;
use crate::service::{ReceiveError, ServiceError};
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `Retry-After` seconds, for a 503 (1 when unset).
    pub retry_after: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, snake_case.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.message)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Unauthorized => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or unknown API key: send `Authorization: Bearer <key>`",
            ),
            ServiceError::Forbidden => ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API key may not do that: it needs the admin key",
            ),
            ServiceError::NotFound(what) => ApiError::not_found(what),
            ServiceError::Invalid(i) => i.into(),
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Store(StoreError::Unavailable(why)) => {
                tracing::error!(error = %why, "store unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the store cannot take requests right now; retry later (with the same Idempotency-Key, a retry never creates a duplicate)",
                )
            }
            ServiceError::Store(other) => {
                tracing::error!(error = %other, source = ?std::error::Error::source(&other), "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl From<ReceiveError> for ApiError {
    fn from(e: ReceiveError) -> Self {
        match e {
            ReceiveError::UnknownSource => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_source",
                "no source has this id",
            ),
            ReceiveError::Disabled => ApiError::new(
                StatusCode::NOT_FOUND,
                "source_disabled",
                "this source is disabled",
            ),
            ReceiveError::TooLarge => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the request body is larger than this server accepts (max_body_bytes)",
            ),
            ReceiveError::Rejected(v) => {
                ApiError::new(StatusCode::UNAUTHORIZED, v.code(), v.to_string())
            }
            ReceiveError::Backlogged { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "backlogged",
                    "this source's destinations are backlogged: retry later",
                )
            },
            ReceiveError::Store(s) => ServiceError::Store(s).into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
            },
        };
        let mut resp = (self.status, Json(body)).into_response();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let secs = self.retry_after.unwrap_or(1);
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
