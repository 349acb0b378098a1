//! Page handlers: load the read model, hand it to the app's renderer.

use super::extract::ValidPath;
use super::load;
use super::AppState;
use crate::error::{ApiError, PageError};
use crate::storage::now_ms;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse};

pub async fn home(State(state): State<AppState>) -> Result<Html<String>, PageError> {
    let projects = state.storage.project_summaries().await?;
    Ok(Html(trellis_app::pages::render_home(projects)))
}

pub async fn grid(
    State(state): State<AppState>,
    path: Result<ValidPath<String>, ApiError>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Html<String>, PageError> {
    let ValidPath(project) = path?;
    let (project, grid) = load::grid(&state, &project, &pairs).await?;
    Ok(Html(trellis_app::pages::render_grid(
        project,
        grid,
        state.config.grid_commits,
    )))
}

pub async fn cell(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String, String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, stream, kernel, sha)) = path?;
    let detail = load::cell(&state, &project, &stream, &kernel, &sha).await?;
    Ok(Html(trellis_app::pages::render_cell(detail)))
}

pub async fn breakages(
    State(state): State<AppState>,
    path: Result<ValidPath<String>, ApiError>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Html<String>, PageError> {
    let ValidPath(project) = path?;
    let (project, filter, breakages, streams) = load::breakages(&state, &project, &pairs).await?;
    let updating = !state
        .storage
        .computed_breakages(&project)
        .await?
        .is_current();
    Ok(Html(trellis_app::pages::render_breakages(
        project,
        breakages,
        filter,
        streams,
        now_ms(),
        updating,
    )))
}

pub async fn kernel(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, stream, kernel)) = path?;
    Ok(Html(trellis_app::pages::render_kernel(
        load::kernel(&state, &project, &stream, &kernel).await?,
        now_ms(),
    )))
}

pub async fn commit(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, sha)) = path?;
    Ok(Html(trellis_app::pages::render_commit(
        load::commit(&state, &project, &sha).await?,
    )))
}

pub async fn signature(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, id)) = path?;
    Ok(Html(trellis_app::pages::render_signature(
        load::signature(&state, &project, &id).await?,
    )))
}

pub async fn not_found() -> impl IntoResponse {
    PageError(ApiError::NotFound("no such page".to_string()))
}
