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
    #[error("storage failure")]
    Storage(#[from] StorageError),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RunnerDisabled(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::InvalidFields(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
            ApiError::Storage(_) => "internal",
        }
    }

    fn log_if_internal(&self) {
        if let ApiError::Storage(e) = self {
            tracing::error!("storage failure: {e}");
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_if_internal();
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
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
                &self.0.to_string(),
            )),
        )
            .into_response()
    }
}
