//! Every error a request can meet, and the one place that maps it to an HTTP answer.

use crate::storage::StorageError;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::json;
use trellis_domain::FieldError;

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
            ApiError::InvalidFields(_) => "invalid_fields",
            ApiError::Unavailable => "unavailable",
            ApiError::Storage(e) if e.is_transient() => "unavailable",
            ApiError::Storage(_) => "internal",
        }
    }

    fn log_if_internal(&self) {
        match self {
            ApiError::Storage(e) if e.is_transient() => tracing::warn!("answering 503: {e}"),
            ApiError::Storage(e) => tracing::error!("storage failure: {e}"),
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
        (
            status,
            Html(trellis_app::pages::render_error(
                status.as_u16(),
                &self.0.message(),
            )),
        )
            .into_response()
    }
}
