//! Every error a request can meet, and the one place that maps it to an HTTP answer.

use crate::storage::StorageError;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::future::Future;
use trellis_domain::FieldError;

tokio::task_local! {
    /// The id of the request being answered (`x-request-id`), quoted in its error answers.
    static REQUEST_ID: String;
}

/// Runs `answer` with `id` as the request id its error answers quote.
pub async fn with_request_id<F: Future>(id: String, answer: F) -> F::Output {
    REQUEST_ID.scope(id, answer).await
}

fn request_id() -> Option<String> {
    REQUEST_ID.try_with(String::clone).ok()
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the body is not valid JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or unknown runner token: send `Authorization: Bearer <token>` (see `trellis runner add`)")]
    Unauthorized,
    #[error("runner {0:?} is disabled")]
    RunnerDisabled(String),
    #[error("{0}")]
    NotFound(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body stopped arriving; send it without long pauses")]
    RequestTimeout,
    #[error("this endpoint does not accept {0}; its Allow header lists the methods it does")]
    MethodNotAllowed(String),
    #[error("the request target is longer than the limit of {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("the request headers exceed the limit of {limit} bytes or {count} lines")]
    HeadersTooLarge { limit: usize, count: usize },
    /// An answer made outside the handlers (an extractor's rejection), with its status kept.
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    #[error("{} invalid field(s)", .0.len())]
    InvalidFields(Vec<FieldError>),
    #[error("the service is busy or its database is unavailable; retry in a few seconds")]
    Unavailable,
    #[error("storage failure")]
    Storage(#[from] StorageError),
}

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RunnerDisabled(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Rejected { status, .. } => *status,
            ApiError::InvalidFields(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RunnerDisabled(_) => "runner_disabled",
            ApiError::NotFound(_) => "not_found",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::UriTooLong { .. } => "uri_too_long",
            ApiError::HeadersTooLarge { .. } => "headers_too_large",
            ApiError::Rejected { status, .. } if status.is_server_error() => "internal",
            ApiError::Rejected { .. } => "bad_request",
            ApiError::InvalidFields(_) => "invalid_fields",
            ApiError::Unavailable => "unavailable",
            ApiError::Storage(e) if e.is_transient() => "unavailable",
            ApiError::Storage(_) => "internal",
        }
    }

    fn log_if_internal(&self) {
        match self {
            ApiError::Storage(e) if e.is_transient() => {
                metrics::counter!("trellis_database_errors_total", "kind" => "unavailable")
                    .increment(1);
                tracing::warn!("answering 503: {e}")
            }
            ApiError::Storage(e) => {
                metrics::counter!("trellis_database_errors_total", "kind" => "internal")
                    .increment(1);
                tracing::error!("storage failure: {e}")
            }
            _ => {}
        }
    }

    /// What the client is told: transient trouble says so, a real fault says no more than that.
    fn message(&self) -> String {
        match self {
            ApiError::Storage(e) if e.is_transient() => ApiError::Unavailable.to_string(),
            _ => self.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let mut body = json!({ "error": self.code(), "message": self.message() });
        if let ApiError::InvalidFields(fields) = &self {
            body["fields"] = json!(fields);
        }
        if let Some(id) = request_id() {
            body["request_id"] = json!(id);
        }
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", RETRY_AFTER_SECS.into());
        }
        response
    }
}

/// The same errors, answered to a person with an HTML page.
#[derive(Debug)]
pub struct PageError(pub ApiError);

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.log_if_internal();
        let status = self.0.status();
        let mut message = self.0.message();
        // A person reporting a fault can quote the id that finds it in the logs.
        if let Some(id) = request_id().filter(|_| status.is_server_error()) {
            message.push_str(&format!(" (request id {id})"));
        }
        (
            status,
            Html(trellis_app::pages::render_error(status.as_u16(), &message)),
        )
            .into_response()
    }
}
