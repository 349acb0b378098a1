//! Page handlers: load the read model, hand it to the app's renderer.

use super::api::{
    find_project, grid_query, load_breakages, load_cell, load_commit, load_kernel, load_signature,
};
use super::extract::ValidPath;
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
    let project = find_project(&state, &project).await?;
    let (filter, page) = grid_query(&pairs)?;
    let per_page = state.config.grid_commits;
    let grid = state.storage.grid(&project, filter, page, per_page).await?;
    Ok(Html(trellis_app::pages::render_grid(
        project, grid, per_page,
    )))
}

pub async fn cell(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String, String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, stream, kernel, sha)) = path?;
    let detail = load_cell(&state, &project, &stream, &kernel, &sha).await?;
    Ok(Html(trellis_app::pages::render_cell(detail)))
}

pub async fn breakages(
    State(state): State<AppState>,
    path: Result<ValidPath<String>, ApiError>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Html<String>, PageError> {
    let ValidPath(project) = path?;
    let (project, query, breakages) = load_breakages(&state, &project, &pairs).await?;
    let filter = (
        query.stream,
        query.attribution.map(|a| a.as_str().to_string()),
        query.open,
    );
    Ok(Html(trellis_app::pages::render_breakages(
        project,
        breakages,
        filter,
        now_ms(),
    )))
}

pub async fn kernel(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, stream, kernel)) = path?;
    Ok(Html(trellis_app::pages::render_kernel(
        load_kernel(&state, &project, &stream, &kernel).await?,
        now_ms(),
    )))
}

pub async fn commit(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, sha)) = path?;
    Ok(Html(trellis_app::pages::render_commit(
        load_commit(&state, &project, &sha).await?,
    )))
}

pub async fn signature(
    State(state): State<AppState>,
    path: Result<ValidPath<(String, String)>, ApiError>,
) -> Result<Html<String>, PageError> {
    let ValidPath((project, id)) = path?;
    Ok(Html(trellis_app::pages::render_signature(
        load_signature(&state, &project, &id).await?,
    )))
}

pub async fn not_found() -> impl IntoResponse {
    PageError(ApiError::NotFound("no such page".to_string()))
}
