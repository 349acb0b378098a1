//! Every error a request can meet, and the one place that maps it to an HTTP answer.

use crate::http::schema::{ApiErrorBody, ErrorCode};
use crate::storage::StorageError;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
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
    #[error("runner {runner:?} may not post about {}; its scope is {}", .refused.refused, scope_words(&.refused.scope))]
    OutOfScope {
        runner: String,
        refused: trellis_domain::scope::OutOfScope,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("this needs the administrator token: send `Authorization: Bearer <admin token>` (the server's TRELLIS_ADMIN_TOKEN)")]
    AdminOnly,
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
    #[error("too many requests from this address; retry {}", in_words(*retry_after_secs))]
    TooManyRequests { retry_after_secs: u64 },
    #[error("storage failure")]
    Storage(#[from] StorageError),
    /// Stored data contradicts itself (a report found, then gone): a fault, never the client's.
    #[error("internal error")]
    Inconsistent(String),
}

fn scope_words(scope: &[String]) -> String {
    if scope.is_empty() {
        "empty (`trellis runner add NAME --scope PROJECT` grants one)".to_string()
    } else {
        scope.join(", ")
    }
}

/// A wait as people say it: "in 40 s", "in about 57 minutes".
fn in_words(secs: u64) -> String {
    if secs < 120 {
        format!("in {secs} s")
    } else {
        format!("in about {} minutes", secs.div_ceil(60))
    }
}

/// Seconds a client is asked to wait before retrying a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RunnerDisabled(_) | ApiError::OutOfScope { .. } => StatusCode::FORBIDDEN,
            ApiError::AdminOnly => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Rejected { status, .. } => *status,
            ApiError::InvalidFields(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Storage(e) if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) | ApiError::Inconsistent(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            ApiError::MalformedJson(_) => ErrorCode::MalformedJson,
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized => ErrorCode::Unauthorized,
            ApiError::RunnerDisabled(_) => ErrorCode::RunnerDisabled,
            ApiError::OutOfScope { .. } => ErrorCode::OutOfScope,
            ApiError::AdminOnly => ErrorCode::Unauthorized,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::Conflict(_) => ErrorCode::Conflict,
            ApiError::PayloadTooLarge { .. } => ErrorCode::PayloadTooLarge,
            ApiError::RequestTimeout => ErrorCode::RequestTimeout,
            ApiError::MethodNotAllowed(_) => ErrorCode::MethodNotAllowed,
            ApiError::UriTooLong { .. } => ErrorCode::UriTooLong,
            ApiError::HeadersTooLarge { .. } => ErrorCode::HeadersTooLarge,
            ApiError::Rejected { status, .. } if status.is_server_error() => ErrorCode::Internal,
            ApiError::Rejected { .. } => ErrorCode::BadRequest,
            ApiError::InvalidFields(_) => ErrorCode::InvalidFields,
            ApiError::Unavailable => ErrorCode::Unavailable,
            ApiError::TooManyRequests { .. } => ErrorCode::TooManyRequests,
            ApiError::Storage(e) if e.is_transient() => ErrorCode::Unavailable,
            ApiError::Storage(_) | ApiError::Inconsistent(_) => ErrorCode::Internal,
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
            ApiError::Inconsistent(what) => tracing::error!("inconsistent storage: {what}"),
            _ => {}
        }
    }

    /// Seconds a 429 asks the client to wait (a 503's wait is set by `ask_to_retry`).
    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// Adds the `Retry-After` a 429 or 503 needs.
    fn with_retry_after(&self, mut response: Response) -> Response {
        if let Some(secs) = self.retry_after() {
            response.headers_mut().insert("retry-after", secs.into());
        }
        ask_to_retry(response)
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
        let status = self.status();
        let unauthorized = matches!(self, ApiError::Unauthorized | ApiError::AdminOnly);
        let (error, message) = (self.code(), self.message());
        let retry = self.retry_after();
        let (fields, scope) = match self {
            ApiError::InvalidFields(fields) => (Some(fields), None),
            ApiError::OutOfScope { refused, .. } => (None, Some(refused.scope)),
            _ => (None, None),
        };
        let body = ApiErrorBody {
            error,
            message,
            fields,
            scope,
            request_id: request_id(),
        };
        let mut response = (status, Json(body)).into_response();
        if unauthorized {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(secs) = retry {
            response.headers_mut().insert("retry-after", secs.into());
        }
        ask_to_retry(response)
    }
}

/// A 503 tells the client when to come back, whoever answers it (API, page or health check).
pub fn ask_to_retry(mut response: Response) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE {
        response
            .headers_mut()
            .insert("retry-after", RETRY_AFTER_SECS.into());
    }
    response
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
        self.0.with_retry_after(
            (
                status,
                Html(trellis_app::pages::render_error(status.as_u16(), &message)),
            )
                .into_response(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_answering_503_say_when_to_retry() {
        let unavailable = PageError(ApiError::Unavailable).into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()["retry-after"], "5");
    }

    #[tokio::test]
    async fn an_inconsistency_is_a_500_that_keeps_its_details_in_the_log() {
        let response = ApiError::Inconsistent("report 7 vanished".to_string()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "internal");
        assert!(
            !body["message"].as_str().unwrap().contains("vanished"),
            "{body}"
        );
    }
}
