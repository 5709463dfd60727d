//! `POST /in/{source}`: the public receive URL providers post to. No bearer token: the
//! provider's signature is the credential. The handler only reads the raw body (bounded by
//! `max_body_bytes`) and hands the request to `Service::receive`; what it answers is the
//! service's reply, or an error in the API's shape with the verifier's reason code.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::{BodyExt, Limited};

use super::AppState;
use super::error::ApiResult;
use crate::service::ReceivedRequest;

pub fn router() -> axum::Router<AppState> {
    axum::Router::new().route("/in/{source}", post(receive))
}

#[utoipa::path(post, path = "/in/{source}", tag = "inbound", security(()),
    params(("source" = String, Path)),
    request_body(content = String, description = "the provider's request, verified byte for byte"),
    responses(
        (status = 200, description = "stored (or a duplicate, filtered, or a handshake answered)"),
        (status = 401, body = super::error::ErrorBody, description = "verification failed; the code is the reason"),
        (status = 404, body = super::error::ErrorBody, description = "unknown or disabled source"),
        (status = 413, body = super::error::ErrorBody),
        (status = 503, body = super::error::ErrorBody, description = "the source's destinations are backlogged; see Retry-After"),
    ))]
pub async fn receive(
    State(state): State<AppState>,
    Path(source_id): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = state.max_body_bytes;
    let body = if declared.is_some_and(|n| n > limit as u64) {
        None
    } else {
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Some(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => None,
            Err(e) => {
                return Err(super::error::ApiError::bad_request(
                    "invalid_body",
                    format!("could not read the body: {e}"),
                ));
            }
        }
    };
    let req = ReceivedRequest {
        source_id,
        method: parts.method.as_str().to_string(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default(),
        host: parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body_len_hint: declared.unwrap_or(limit as u64 + 1),
        headers: parts.headers,
        body,
    };
    let reply = state.service.receive(req).await?;
    let mut resp = Response::new(Body::from(reply.body));
    *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(reply.content_type),
    );
    Ok(resp.into_response())
}
