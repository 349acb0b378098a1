//! JSON API handlers: thin wrappers over `ingest` and `storage`.

use super::extract::ValidPath;
use super::AppState;
use crate::error::ApiError;
use crate::ingest;
use crate::storage::{Runner, RunnerAuth};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use trellis_domain::breakage::{Attribution, Breakage};
use trellis_domain::grid::GridFilter;
use trellis_domain::grid::{CommitColumn, KernelRow};
use trellis_domain::project::{
    BreakageDetail, CellDetail, CommitChanges, KernelHistory, Project, SignatureCells,
};
use trellis_domain::Kernel;

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
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        {
            ApiError::PayloadTooLarge { limit }
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
    let (received, new) = ingest::push_commits(&state.storage, &project, &value).await?;
    Ok(Json(
        json!({ "project": project, "received": received, "new": new }),
    ))
}

pub async fn projects(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({ "projects": state.storage.project_summaries().await? }),
    ))
}

pub(super) async fn find_project(state: &AppState, name: &str) -> Result<Project, ApiError> {
    state
        .storage
        .project(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project named {name:?}")))
}

/// Filter and page from the query string, shared by the grid page and the grid API.
pub(super) fn grid_query(pairs: &[(String, String)]) -> Result<(GridFilter, u32), ApiError> {
    let filter = GridFilter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let page = match pairs.iter().rev().find(|(k, _)| k == "page") {
        None => 0,
        Some((_, v)) => v
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= 100_000)
            .ok_or_else(|| ApiError::BadRequest(format!("page={v:?} is not a page number")))?,
    };
    Ok((filter, page))
}

pub async fn grid(
    State(state): State<AppState>,
    ValidPath(project): ValidPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let project = find_project(&state, &project).await?;
    let (filter, page) = grid_query(&pairs)?;
    let grid = state
        .storage
        .grid(&project, filter, page, state.config.grid_commits)
        .await?;
    Ok(Json(json!({ "project": project, "grid": grid })))
}

async fn find_kernel(
    state: &AppState,
    project: &Project,
    stream: &str,
    kernel: &str,
) -> Result<KernelRow, ApiError> {
    let not_found = || {
        ApiError::NotFound(format!(
            "{} has no kernel {kernel:?} in stream {stream:?}",
            project.name
        ))
    };
    let parsed = Kernel::parse(kernel, None, Some(stream)).map_err(|_| not_found())?;
    state
        .storage
        .kernel(project, &parsed)
        .await?
        .ok_or_else(not_found)
}

async fn find_commit(
    state: &AppState,
    project: &Project,
    sha: &str,
) -> Result<CommitColumn, ApiError> {
    let sha = trellis_domain::report::parse_sha(sha).map_err(ApiError::BadRequest)?;
    state
        .storage
        .commit(project, &sha)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{} has no commit {sha}", project.name)))
}

/// Loads one cell: project, kernel (by stream and `uname -r`) and commit.
pub(super) async fn load_cell(
    state: &AppState,
    project: &str,
    stream: &str,
    kernel: &str,
    sha: &str,
) -> Result<CellDetail, ApiError> {
    let project = find_project(state, project).await?;
    let kernel = find_kernel(state, &project, stream, kernel).await?;
    let commit = find_commit(state, &project, sha).await?;
    Ok(state.storage.cell(project, kernel, commit).await?)
}

pub async fn cell(
    State(state): State<AppState>,
    ValidPath((project, stream, kernel, sha)): ValidPath<(String, String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        load_cell(&state, &project, &stream, &kernel, &sha).await?,
    ))
}

/// Which breakages to list: `?stream=el8&attribution=kernel&state=open`.
pub(super) struct BreakageQuery {
    pub stream: Option<String>,
    pub attribution: Option<Attribution>,
    pub open: Option<bool>,
}

impl BreakageQuery {
    pub(super) fn parse(pairs: &[(String, String)]) -> Result<BreakageQuery, ApiError> {
        let mut q = BreakageQuery {
            stream: None,
            attribution: None,
            open: None,
        };
        for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
            match k.as_str() {
                "stream" => q.stream = Some(v.clone()),
                "attribution" => {
                    q.attribution = Some(Attribution::parse(v).ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "attribution={v:?}: use module, kernel, both or unknown"
                        ))
                    })?)
                }
                "state" => {
                    q.open = Some(match v.as_str() {
                        "open" => true,
                        "fixed" => false,
                        _ => {
                            return Err(ApiError::BadRequest(format!(
                                "state={v:?}: use open or fixed"
                            )))
                        }
                    })
                }
                _ => {}
            }
        }
        Ok(q)
    }

    pub(super) fn keeps(&self, b: &Breakage) -> bool {
        self.stream.as_ref().is_none_or(|s| *s == b.stream)
            && self.attribution.is_none_or(|a| a == b.attribution)
            && self.open.is_none_or(|o| o == b.open)
    }
}

/// The breakages a query asks for, with the query (the page shows it back).
pub(super) async fn load_breakages(
    state: &AppState,
    project: &str,
    pairs: &[(String, String)],
) -> Result<(Project, BreakageQuery, Vec<BreakageDetail>), ApiError> {
    let project = find_project(state, project).await?;
    let query = BreakageQuery::parse(pairs)?;
    let breakages = state
        .storage
        .breakage_details(&project, |b| query.keeps(b))
        .await?;
    Ok((project, query, breakages))
}

pub async fn breakages(
    State(state): State<AppState>,
    ValidPath(project): ValidPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let (project, _, breakages) = load_breakages(&state, &project, &pairs).await?;
    Ok(Json(json!({ "project": project, "breakages": breakages })))
}

pub(super) async fn load_kernel(
    state: &AppState,
    project: &str,
    stream: &str,
    kernel: &str,
) -> Result<KernelHistory, ApiError> {
    let project = find_project(state, project).await?;
    let row = find_kernel(state, &project, stream, kernel).await?;
    Ok(state.storage.kernel_history(project, row).await?)
}

pub async fn kernel(
    State(state): State<AppState>,
    ValidPath((project, stream, kernel)): ValidPath<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(load_kernel(&state, &project, &stream, &kernel).await?))
}

pub(super) async fn load_commit(
    state: &AppState,
    project: &str,
    sha: &str,
) -> Result<CommitChanges, ApiError> {
    let project = find_project(state, project).await?;
    let commit = find_commit(state, &project, sha).await?;
    Ok(state.storage.commit_changes(project, commit).await?)
}

pub async fn commit(
    State(state): State<AppState>,
    ValidPath((project, sha)): ValidPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(load_commit(&state, &project, &sha).await?))
}

pub(super) async fn load_signature(
    state: &AppState,
    project: &str,
    id: &str,
) -> Result<SignatureCells, ApiError> {
    let project = find_project(state, project).await?;
    let name = project.name.clone();
    state
        .storage
        .signature_cells(project, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{name} has no failure with signature {id:?}")))
}

pub async fn signature(
    State(state): State<AppState>,
    ValidPath((project, id)): ValidPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(load_signature(&state, &project, &id).await?))
}

pub async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

pub async fn health(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.storage.is_empty().await?;
    Ok(Json(json!({ "status": "ok" })))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such API endpoint; see /api/v1/openapi.json".to_string())
}

/// The API description, kept beside the routes it describes (a test checks they agree).
pub const OPENAPI: &str = include_str!("openapi.json");
