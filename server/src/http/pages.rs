//! Page handlers: load the read model, hand it to the app's renderer.

use super::extract::PagePath;
use super::load;
use super::page_cache::{self, Page, Version};
use super::AppState;
use crate::error::{ApiError, PageError};
use crate::storage::now_ms;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{Html, IntoResponse, Response};
use std::future::Future;
use std::sync::Arc;
use trellis_domain::breakage::BreakageFilter;
use trellis_domain::GridFilter;

pub async fn home(State(state): State<AppState>) -> Result<Html<String>, PageError> {
    let projects = load::home(&state).await?;
    Ok(Html(trellis_app::pages::render_home(projects, now_ms())))
}

pub async fn grid(
    State(state): State<AppState>,
    PagePath(name): PagePath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let reads = [&GridFilter::PARAMS[..], &["page"]].concat();
    let key = page_cache::key(uri.path(), &pairs, &reads);
    let page = cached(&state, &name, key, || async {
        let (project, grid) = load::grid(&state, &name, &pairs).await?;
        let now = load::now(&state, &project).await?;
        Ok(trellis_app::pages::render_grid(
            project,
            grid,
            now,
            now_ms(),
            state.config.grid_commits,
        ))
    })
    .await?;
    Ok(page.respond(&headers))
}

pub async fn cell(
    State(state): State<AppState>,
    PagePath((project, stream, kernel, sha)): PagePath<(String, String, String, String)>,
) -> Result<Html<String>, PageError> {
    let detail = load::cell(&state, &project, &stream, &kernel, &sha).await?;
    Ok(Html(trellis_app::pages::render_cell(detail, now_ms())))
}

/// One report's log as plain text, downloaded as a file.
pub async fn report_log(
    State(state): State<AppState>,
    PagePath((project, stream, kernel, sha, id)): PagePath<(String, String, String, String, i64)>,
) -> Result<Response, PageError> {
    let log = load::report_log(&state, &project, &stream, &kernel, &sha, id).await?;
    let disposition = format!("attachment; filename=\"trellis-report-{id}.log\"");
    let text = "text/plain; charset=utf-8".to_string();
    let headers = [
        (header::CONTENT_TYPE, text),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    Ok((headers, log).into_response())
}

pub async fn breakages(
    State(state): State<AppState>,
    PagePath(name): PagePath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let key = page_cache::key(uri.path(), &pairs, &BreakageFilter::PARAMS);
    let page = cached(&state, &name, key, || async {
        let selection = load::breakages(&state, &name, &pairs).await?;
        let updating = !selection.computed.is_current();
        Ok(trellis_app::pages::render_breakages(
            selection.project,
            selection.breakages,
            selection.subjects,
            selection.filter,
            selection.streams,
            now_ms(),
            updating,
        ))
    })
    .await?;
    Ok(page.respond(&headers))
}

/// Rendered fresh on every request: coverage moves with the clock (stale runners, ages) and with
/// leases, neither of which changes the project's revision the page cache keys on.
pub async fn coverage(
    State(state): State<AppState>,
    PagePath(name): PagePath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Html<String>, PageError> {
    Ok(Html(trellis_app::pages::render_coverage(
        load::coverage(&state, &name, &pairs).await?,
    )))
}

/// A project page from the page cache, rendered by `render` when the project's data moved on.
/// An unknown project has no version: `render` then answers its 404.
async fn cached<F, Fut>(
    state: &AppState,
    name: &str,
    key: String,
    render: F,
) -> Result<Arc<Page>, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<String, ApiError>>,
{
    let Some(project) = state.storage.project(name).await? else {
        render().await?;
        return Err(ApiError::NotFound(format!("no project named {name:?}")));
    };
    let computed = state.storage.computed_breakages(&project).await?;
    let version = Version {
        revision: computed.revision,
        breakages_as_of: computed.as_of,
        minute: now_ms() / 60_000,
    };
    state.pages.get_or_render(&key, version, render).await
}

pub async fn kernel(
    State(state): State<AppState>,
    PagePath((project, stream, kernel)): PagePath<(String, String, String)>,
) -> Result<Html<String>, PageError> {
    Ok(Html(trellis_app::pages::render_kernel(
        load::kernel(&state, &project, &stream, &kernel).await?,
        now_ms(),
    )))
}

pub async fn commit(
    State(state): State<AppState>,
    PagePath((project, sha)): PagePath<(String, String)>,
) -> Result<Html<String>, PageError> {
    Ok(Html(trellis_app::pages::render_commit(
        load::commit(&state, &project, &sha).await?,
        now_ms(),
    )))
}

pub async fn commit_search(
    State(state): State<AppState>,
    PagePath(project): PagePath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Html<String>, PageError> {
    Ok(Html(trellis_app::pages::render_commit_search(
        load::commit_search(&state, &project, &pairs).await?,
        now_ms(),
    )))
}

pub async fn signature(
    State(state): State<AppState>,
    PagePath((project, id)): PagePath<(String, String)>,
) -> Result<Html<String>, PageError> {
    Ok(Html(trellis_app::pages::render_signature(
        load::signature(&state, &project, &id).await?,
        now_ms(),
    )))
}

pub async fn not_found() -> impl IntoResponse {
    PageError(ApiError::NotFound("no such page".to_string()))
}
