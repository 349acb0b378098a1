//! What every request passes through: request ids and request logs, request-head limits, JSON
//! errors under `/api/v1`, and the security headers of every answer.

use super::metrics;
use crate::error::{with_request_id, ApiError, PageError};
use axum::extract::Request;
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{from_fn, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use sha2::{Digest, Sha256};
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_http::LatencyUnit;
use tracing::Level;

/// Longest accepted request target (path and query), in bytes.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most bytes of request headers, counted as sent (`name: value\r\n`).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most request header lines.
pub const MAX_HEADERS: usize = 100;

/// Wraps the whole router: security headers outermost so every answer has them, then the
/// request id, the request log, the id's scope for error bodies, metrics and the head limits.
pub fn wrap(router: Router) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request| {
            tracing::info_span!(
                "request",
                method = %req.method(),
                path = req.uri().path(),
                request_id = id_of(req),
            )
        })
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .latency_unit(LatencyUnit::Millis),
        )
        // Failures are the logged responses above and, for faults, error.rs's own log line.
        .on_failure(());
    let security_headers = [
        (header::CONTENT_SECURITY_POLICY, content_security_policy()),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    ];
    let router = router
        .layer(from_fn(limit_head))
        .layer(from_fn(metrics::track))
        .layer(from_fn(scope_request_id))
        .layer(trace)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));
    security_headers
        .into_iter()
        .fold(router, |router, (name, value): (HeaderName, _)| {
            // A handler that sets one of these itself (a feed's narrower policy) keeps its own.
            router.layer(SetResponseHeaderLayer::if_not_present(name, value))
        })
}

/// Scripts and wasm from this site only; the one inline script allowed is the island loader, by
/// its hash, so injected markup can neither run script nor frame the pages.
fn content_security_policy() -> HeaderValue {
    let loader = Sha256::digest(trellis_app::pages::island_loader_script());
    let hash = base64::engine::general_purpose::STANDARD.encode(loader);
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' 'sha256-{hash}'; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
         base-uri 'none'; form-action 'self'"
    );
    HeaderValue::from_str(&policy).expect("the policy is plain ASCII")
}

fn id_of(req: &Request) -> &str {
    req.extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
}

/// Makes the request id available to the error answers built while handling the request.
async fn scope_request_id(req: Request, next: Next) -> Response {
    let id = id_of(&req).to_string();
    with_request_id(id, next.run(req)).await
}

/// Refuses a request head over the limits with a typed answer. hyper's own limits are set far
/// higher (see `edge`), because hyper refuses without a body.
async fn limit_head(req: Request, next: Next) -> Response {
    let uri_bytes = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let error = if uri_bytes > MAX_URI_BYTES {
        ApiError::UriTooLong {
            limit: MAX_URI_BYTES,
        }
    } else if header_bytes > MAX_HEADER_BYTES || req.headers().len() > MAX_HEADERS {
        ApiError::HeadersTooLarge {
            limit: MAX_HEADER_BYTES,
            count: MAX_HEADERS,
        }
    } else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        error.into_response()
    } else {
        PageError(error).into_response()
    }
}

/// Gives every API error a JSON body: answers made outside the handlers (a wrong method, an
/// extractor's rejection) come from axum bodiless or as plain text.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    // axum adds the `Allow` header of a 405 outside this layer.
    let error = if status == StatusCode::METHOD_NOT_ALLOWED {
        ApiError::MethodNotAllowed(method)
    } else {
        let text = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let message = if text.is_empty() {
            status.canonical_reason().unwrap_or("refused").to_string()
        } else {
            text
        };
        ApiError::Rejected { status, message }
    };
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn plain_text_rejections_become_typed_json() {
        let api = Router::new()
            .route(
                "/",
                get(|| async { (StatusCode::BAD_REQUEST, "bad query: x") }),
            )
            .layer(from_fn(json_errors));
        let res = api
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(res.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "bad_request");
        assert_eq!(body["message"], "bad query: x");
    }
}
