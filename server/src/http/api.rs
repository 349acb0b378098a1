//! JSON API handlers: thin wrappers over `ingest` and `storage`.

use super::extract::ValidPath;
use super::load;
use super::AppState;
use crate::error::ApiError;
use crate::ingest;
use crate::storage::{Computed, Runner, RunnerAuth};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Runner, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    match state.storage.authenticate(token).await? {
        RunnerAuth::Valid(runner) => Ok(runner),
        RunnerAuth::Disabled(name) => Err(ApiError::RunnerDisabled(name)),
        RunnerAuth::Unknown => Err(ApiError::Unauthorized),
    }
}

/// Reads a JSON body within the size limit: 413 over it, 400 when it is not JSON.
async fn json_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, ApiError> {
    let limit = state.config.max_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        // The body error wraps its cause at some depth: look through the whole chain.
        let caused_by = |is: fn(&(dyn std::error::Error + 'static)) -> bool| {
            std::iter::successors(std::error::Error::source(&e), |c| c.source()).any(is)
        };
        if caused_by(|c| c.is::<http_body_util::LengthLimitError>()) {
            ApiError::PayloadTooLarge { limit }
        } else if caused_by(|c| c.is::<tower_http::timeout::TimeoutError>()) {
            ApiError::RequestTimeout
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

pub async fn post_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let runner = authenticate(&state, &headers).await?;
    let value = json_body(&state, &headers, body).await?;
    let receipt =
        ingest::submit_report(&state.storage, &runner, &value, state.config.max_log_bytes).await?;
    let status = if receipt.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        [(header::LOCATION, receipt.url.clone())],
        Json(receipt),
    ))
}

pub async fn post_commits(
    State(state): State<AppState>,
    ValidPath(project): ValidPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    authenticate(&state, &headers).await?;
    let value = json_body(&state, &headers, body).await?;
    let pushed = ingest::push_commits(&state.storage, &project, &value).await?;
    Ok(Json(
        json!({ "project": project, "received": pushed.received, "new": pushed.new }),
    ))
}

pub async fn projects(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "projects": state.storage.project_summaries().await? }),
    ))
}

pub async fn grid(
    State(state): State<AppState>,
    ValidPath(project): ValidPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let (project, grid) = load::grid(&state, &project, &pairs).await?;
    Ok(Json(json!({ "project": project, "grid": grid })))
}

pub async fn cell(
    State(state): State<AppState>,
    ValidPath((project, stream, kernel, sha)): ValidPath<(String, String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        load::cell(&state, &project, &stream, &kernel, &sha).await?,
    ))
}

pub async fn breakages(
    State(state): State<AppState>,
    ValidPath(project): ValidPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    // Freshness first: the breakages loaded after it are at least that fresh.
    let freshness = freshness(&state, &project).await?;
    let (project, _, breakages, _) = load::breakages(&state, &project, &pairs).await?;
    Ok(Json(json!({
        "project": project,
        "breakages": breakages,
        "as_of_revision": freshness.as_ref().map(|f| f.as_of),
        "revision": freshness.as_ref().map(|f| f.revision),
        "current": freshness.is_some_and(|f| f.is_current()),
    })))
}

/// How fresh a project's breakages are (`None` for an unknown project, answered 404 later).
async fn freshness(state: &AppState, name: &str) -> Result<Option<Computed>, ApiError> {
    match state.storage.project(name).await? {
        Some(project) => Ok(Some(state.storage.computed_breakages(&project).await?)),
        None => Ok(None),
    }
}

pub async fn kernel(
    State(state): State<AppState>,
    ValidPath((project, stream, kernel)): ValidPath<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        load::kernel(&state, &project, &stream, &kernel).await?,
    ))
}

pub async fn commit(
    State(state): State<AppState>,
    ValidPath((project, sha)): ValidPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(load::commit(&state, &project, &sha).await?))
}

pub async fn signature(
    State(state): State<AppState>,
    ValidPath((project, id)): ValidPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(load::signature(&state, &project, &id).await?))
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Reports the database and the writer honestly: 503 when either cannot make progress.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let database = match state.storage.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let stall = std::time::Duration::from_secs(state.config.writer_stall_secs);
    let writer = match state.storage.watchdog.oldest_write() {
        Some(t) if t > stall => format!("stalled: one write has run for {} s", t.as_secs()),
        _ => "ok".to_string(),
    };
    let ok = database == "ok" && writer == "ok";
    let body = Json(json!({
        "status": if ok { "ok" } else { "unavailable" },
        "database": database,
        "writer": writer,
    }));
    if ok {
        (StatusCode::OK, body).into_response()
    } else {
        let retry = [(
            header::RETRY_AFTER,
            crate::error::RETRY_AFTER_SECS.to_string(),
        )];
        (StatusCode::SERVICE_UNAVAILABLE, retry, body).into_response()
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint; see /api/v1/openapi.json".to_string())
}

/// The API description, kept beside the routes it describes (a test checks they agree).
pub const OPENAPI: &str = include_str!("openapi.json");
