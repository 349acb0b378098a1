//! JSON API handlers: thin wrappers over `accept`, `load` and `storage`. Each one's
//! `#[utoipa::path]` states its part of the OpenAPI document.

use super::extract::{ApiPath, JsonBody};
use super::load;
use super::schema::{
    self, BreakageList, BreakageQuery, CommitsPushed, CoverageQuery, EventList, EventQuery,
    GridQuery, GridView, Health, HealthStatus, KernelPath, ProjectList, ProjectPath, ReportReceipt,
    ShaPath, SignaturePath,
};
use super::AppState;
use crate::accept;
use crate::error::ApiError;
use crate::storage::Runner;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use std::sync::LazyLock;
use trellis_domain::coverage::Coverage;
use trellis_domain::view::{CellDetail, CommitChanges, KernelHistory, SignatureCells};

/// Submit a report
#[utoipa::path(
    post,
    path = "/reports",
    security(("runnerToken" = [])),
    request_body = schema::Report,
    responses(
        (status = 201, description = "Stored", body = ReportReceipt,
            headers(("Location" = String, description = "The page of the report's cell"))),
        (status = 200,
            description = "Already stored (same run_id from the same runner); nothing new stored",
            body = ReportReceipt,
            headers(("Location" = String, description = "The page of the report's cell"))),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 403, response = schema::Forbidden),
        (status = 413, response = schema::PayloadTooLarge),
        (status = 422, response = schema::InvalidFields),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn post_report(
    State(state): State<AppState>,
    runner: Runner,
    JsonBody(body): JsonBody<Value>,
) -> Result<impl IntoResponse, ApiError> {
    let receipt =
        accept::submit_report(&state.storage, &runner, &body, state.config.max_log_bytes).await?;
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

/// Push commit history (idempotent) so the grid knows git order
#[utoipa::path(
    post,
    path = "/projects/{project}/commits",
    params(ProjectPath),
    security(("runnerToken" = [])),
    request_body(content = inline(schema::CommitPush)),
    responses(
        (status = 200, description = "Stored; `new` counts commits not seen before",
            body = CommitsPushed),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 403, response = schema::Forbidden),
        (status = 413, response = schema::PayloadTooLarge),
        (status = 422, response = schema::InvalidFields),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn post_commits(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    runner: Runner,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<CommitsPushed>, ApiError> {
    let pushed = accept::push_commits(&state.storage, &runner, &project, &body).await?;
    Ok(Json(CommitsPushed {
        project,
        received: pushed.received,
        new: pushed.new,
    }))
}

/// Projects with a health summary
#[utoipa::path(
    get,
    path = "/projects",
    responses(
        (status = 200, description = "Projects", body = ProjectList),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn projects(State(state): State<AppState>) -> Result<Json<ProjectList>, ApiError> {
    let projects = state.storage.project_summaries().await?;
    Ok(Json(ProjectList { projects }))
}

/// The kernel x commit grid
#[utoipa::path(
    get,
    path = "/projects/{project}/grid",
    params(ProjectPath, GridQuery),
    responses(
        (status = 200, description = "The grid", body = GridView),
        schema::ReadErrors,
    )
)]
pub async fn grid(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<GridView>, ApiError> {
    let (project, grid) = load::grid(&state, &project, &pairs).await?;
    Ok(Json(GridView { project, grid }))
}

/// All reports of one kernel and commit, with logs
#[utoipa::path(
    get,
    path = "/projects/{project}/cells/{stream}/{kernel}/{sha}",
    params(ProjectPath, KernelPath, ShaPath),
    responses(
        (status = 200, description = "The cell", body = CellDetail),
        schema::ReadErrors,
    )
)]
pub async fn cell(
    State(state): State<AppState>,
    ApiPath((project, stream, kernel, sha)): ApiPath<(String, String, String, String)>,
) -> Result<Json<CellDetail>, ApiError> {
    let cell = load::cell(&state, &project, &stream, &kernel, &sha).await?;
    Ok(Json(cell))
}

/// Breakages: open first, then history, with attribution, ranges, bisect hints on both axes
/// and error signature
#[utoipa::path(
    get,
    path = "/projects/{project}/breakages",
    params(ProjectPath, BreakageQuery),
    responses(
        (status = 200, description = "Breakages", body = BreakageList),
        schema::ReadErrors,
    )
)]
pub async fn breakages(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<BreakageList>, ApiError> {
    let selection = load::breakages(&state, &project, &pairs).await?;
    let computed = selection.computed;
    Ok(Json(BreakageList {
        project: selection.project,
        breakages: selection.breakages,
        as_of_revision: computed.as_of,
        revision: computed.revision,
        current: computed.is_current(),
    }))
}

/// Breakage events (opened, fixed) in the order they were recorded, for scripts that follow
/// them: pass the last id seen as `after`
#[utoipa::path(
    get,
    path = "/projects/{project}/events",
    params(ProjectPath, EventQuery),
    responses(
        (status = 200, description = "Events after `after`, oldest first", body = EventList),
        schema::ReadErrors,
    )
)]
pub async fn events(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<EventList>, ApiError> {
    let (project, events, page) = load::events(&state, &project, &pairs).await?;
    let next_after = (events.len() as i64 == page.limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(EventList {
        project,
        events,
        next_after,
    }))
}

/// How far the CI can be trusted: per stream the share of kernels tested at the head commit,
/// kernels never tested (or untested since `since`), runners, leases, kernel sources and health
/// problems
#[utoipa::path(
    get,
    path = "/projects/{project}/coverage",
    params(ProjectPath, CoverageQuery),
    responses(
        (status = 200, description = "Coverage", body = Coverage),
        schema::ReadErrors,
    )
)]
pub async fn coverage(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Coverage>, ApiError> {
    Ok(Json(load::coverage(&state, &project, &pairs).await?))
}

/// One kernel's results along the commits and its breakages
#[utoipa::path(
    get,
    path = "/projects/{project}/kernels/{stream}/{kernel}",
    params(ProjectPath, KernelPath),
    responses(
        (status = 200, description = "History", body = KernelHistory),
        schema::ReadErrors,
    )
)]
pub async fn kernel(
    State(state): State<AppState>,
    ApiPath((project, stream, kernel)): ApiPath<(String, String, String)>,
) -> Result<Json<KernelHistory>, ApiError> {
    let history = load::kernel(&state, &project, &stream, &kernel).await?;
    Ok(Json(history))
}

/// What a commit broke and fixed compared with its parent, per stream
#[utoipa::path(
    get,
    path = "/projects/{project}/commits/{sha}",
    params(ProjectPath, ShaPath),
    responses(
        (status = 200, description = "Changes", body = CommitChanges),
        schema::ReadErrors,
    )
)]
pub async fn commit(
    State(state): State<AppState>,
    ApiPath((project, sha)): ApiPath<(String, String)>,
) -> Result<Json<CommitChanges>, ApiError> {
    Ok(Json(load::commit(&state, &project, &sha).await?))
}

/// Every cell whose failures show one error signature
#[utoipa::path(
    get,
    path = "/projects/{project}/signatures/{id}",
    params(ProjectPath, SignaturePath),
    responses(
        (status = 200, description = "Cells", body = SignatureCells),
        schema::ReadErrors,
    )
)]
pub async fn signature(
    State(state): State<AppState>,
    ApiPath((project, id)): ApiPath<(String, String)>,
) -> Result<Json<SignatureCells>, ApiError> {
    Ok(Json(load::signature(&state, &project, &id).await?))
}

/// This document
#[utoipa::path(
    get,
    path = "/openapi.json",
    responses((status = 200, description = "OpenAPI 3.1", body = Object))
)]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI.as_str(),
    )
}

/// The OpenAPI document, derived once from the API's routes and types.
static OPENAPI: LazyLock<String> = LazyLock::new(|| {
    super::api_routes()
        .into_openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
});

/// Liveness, database and writer check: 503 when either cannot make progress
#[utoipa::path(
    get,
    path = "/health",
    responses(
        (status = 200, description = "ok", body = Health),
        (status = 503, description = "The database or the writer cannot make progress",
            body = Health, headers(("Retry-After" = i64))),
    )
)]
pub async fn health(State(state): State<AppState>) -> Response {
    let stall = std::time::Duration::from_secs(state.config.writer_stall_secs);
    let (database, writer) = state.storage.health(stall).await;
    let ok = database == "ok" && writer == "ok";
    let status = if ok {
        HealthStatus::Ok
    } else {
        HealthStatus::Unavailable
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Json(Health {
        status,
        database,
        writer,
    });
    crate::error::ask_to_retry((code, body).into_response())
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint; see /api/v1/openapi.json".to_string())
}
