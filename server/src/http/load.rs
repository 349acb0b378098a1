//! Loading what a request names (project, kernel, commit, filters) into read models. The JSON
//! handlers in `api` and the page handlers in `pages` share these, so both answer alike.

use super::AppState;
use crate::error::ApiError;
use crate::storage::Computed;
use std::collections::BTreeMap;
use trellis_domain::breakage::BreakageFilter;
use trellis_domain::events::{BreakageEvent, EventPage, FeedFilter};
use trellis_domain::grid::{page_from_pairs, Grid, GridFilter, QueryError, StreamOption};
use trellis_domain::kernel::{stream_cmp, stream_label};
use trellis_domain::now::BrokenNow;
use trellis_domain::search::{CommitMatches, CommitSearch};
use trellis_domain::view::{
    named_commits, BreakageDetail, CellDetail, CommitChanges, KernelHistory, Project,
    ProjectSummary, SignatureCells, StoredCommit, StoredKernel,
};
use trellis_domain::Kernel;

pub(super) async fn project_named(state: &AppState, name: &str) -> Result<Project, ApiError> {
    state
        .storage
        .project(name)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project named {name:?}")))
}

/// A query parameter no filter can read is the client's mistake, answered as 400.
fn bad_query(e: QueryError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

fn str_pairs(pairs: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> + Clone {
    pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Filter and page from the query string, shared by the grid page and the grid API.
fn grid_query(pairs: &[(String, String)]) -> Result<(GridFilter, u32), ApiError> {
    let filter = GridFilter::from_pairs(str_pairs(pairs)).map_err(bad_query)?;
    let page = page_from_pairs(str_pairs(pairs)).map_err(bad_query)?;
    Ok((filter, page))
}

/// The grid page a query asks for.
pub(super) async fn grid(
    state: &AppState,
    project: &str,
    pairs: &[(String, String)],
) -> Result<(Project, Grid), ApiError> {
    let (filter, page) = grid_query(pairs)?;
    let project = project_named(state, project).await?;
    let grid = state
        .storage
        .grid(&project, filter, page, state.config.grid_commits)
        .await?;
    Ok((project, grid))
}

async fn find_kernel(
    state: &AppState,
    project: &Project,
    stream: &str,
    kernel: &str,
) -> Result<StoredKernel, ApiError> {
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
) -> Result<StoredCommit, ApiError> {
    let sha = trellis_domain::report::parse_sha(sha).map_err(ApiError::BadRequest)?;
    state
        .storage
        .commit(project, &sha)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{} has no commit {sha}", project.name)))
}

/// Loads one cell: project, kernel (by stream and `uname -r`) and commit.
pub(super) async fn cell(
    state: &AppState,
    project: &str,
    stream: &str,
    kernel: &str,
    sha: &str,
) -> Result<CellDetail, ApiError> {
    let project = project_named(state, project).await?;
    let kernel = find_kernel(state, &project, stream, kernel).await?;
    let commit = find_commit(state, &project, sha).await?;
    Ok(state.storage.cell(project, kernel, commit).await?)
}

/// One report's log, as stored: the raw-log download of the cell page.
pub(super) async fn report_log(
    state: &AppState,
    project: &str,
    stream: &str,
    kernel: &str,
    sha: &str,
    report: i64,
) -> Result<String, ApiError> {
    let project = project_named(state, project).await?;
    let kernel = find_kernel(state, &project, stream, kernel).await?;
    let commit = find_commit(state, &project, sha).await?;
    state
        .storage
        .report_log(&kernel, &commit, report)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("this cell has no report {report}")))
}

/// What is broken now in a project: the summary that opens its home entry and grid page.
pub(super) async fn now(state: &AppState, project: &Project) -> Result<BrokenNow, ApiError> {
    Ok(state.storage.broken_now(project).await?)
}

/// Every project with its health and what is broken in it now: the home page.
pub(super) async fn home(state: &AppState) -> Result<Vec<(ProjectSummary, BrokenNow)>, ApiError> {
    let mut out = Vec::new();
    for summary in state.storage.project_summaries().await? {
        let now = now(state, &summary.project).await?;
        out.push((summary, now));
    }
    Ok(out)
}

/// The breakages a query asks for, and what the breakages page shows around them.
pub(super) struct BreakageSelection {
    pub project: Project,
    /// The filter, which the page shows back.
    pub filter: BreakageFilter,
    pub breakages: Vec<BreakageDetail>,
    /// Subjects of the commits the breakages name.
    pub subjects: BTreeMap<String, String>,
    /// The streams that have breakages, which the page offers.
    pub streams: Vec<StreamOption>,
    /// The computed set they were filtered from: the revision it reflects and how fresh it is.
    pub computed: Computed,
}

pub(super) async fn breakages(
    state: &AppState,
    project: &str,
    pairs: &[(String, String)],
) -> Result<BreakageSelection, ApiError> {
    let filter = BreakageFilter::from_pairs(str_pairs(pairs)).map_err(bad_query)?;
    let project = project_named(state, project).await?;
    let computed = state.storage.computed_breakages(&project).await?;
    let all = computed.breakages.clone();
    let mut streams: Vec<&str> = all.iter().map(|b| b.stream.as_str()).collect();
    streams.sort_by(|a, b| stream_cmp(a, b));
    streams.dedup();
    let streams = streams
        .into_iter()
        .map(|s| StreamOption {
            stream: s.to_string(),
            label: stream_label(s),
        })
        .collect();
    let breakages = state
        .storage
        .with_excerpts(all.iter().filter(|b| filter.keeps(b)))
        .await?;
    let subjects = state
        .storage
        .commit_subjects(
            &project,
            breakages.iter().flat_map(|d| named_commits(&d.breakage)),
        )
        .await?;
    Ok(BreakageSelection {
        project,
        filter,
        breakages,
        subjects,
        streams,
        computed,
    })
}

pub(super) async fn kernel(
    state: &AppState,
    project: &str,
    stream: &str,
    kernel: &str,
) -> Result<KernelHistory, ApiError> {
    let project = project_named(state, project).await?;
    let row = find_kernel(state, &project, stream, kernel).await?;
    Ok(state.storage.kernel_history(project, row).await?)
}

pub(super) async fn commit(
    state: &AppState,
    project: &str,
    sha: &str,
) -> Result<CommitChanges, ApiError> {
    let project = project_named(state, project).await?;
    let commit = find_commit(state, &project, sha).await?;
    Ok(state.storage.commit_changes(project, commit).await?)
}

pub(super) async fn commit_search(
    state: &AppState,
    project: &str,
    pairs: &[(String, String)],
) -> Result<CommitMatches, ApiError> {
    let search = CommitSearch::from_pairs(str_pairs(pairs));
    let project = project_named(state, project).await?;
    let (commits, more) = state.storage.search_commits(&project, &search).await?;
    Ok(CommitMatches {
        project,
        search,
        commits,
        more,
    })
}

pub(super) async fn signature(
    state: &AppState,
    project: &str,
    id: &str,
) -> Result<SignatureCells, ApiError> {
    let project = project_named(state, project).await?;
    let name = project.name.clone();
    state
        .storage
        .signature_cells(project, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("{name} has no failure with signature {id:?}")))
}

/// A page of events after an id, for scripts that follow them.
pub(super) async fn events(
    state: &AppState,
    project: &str,
    pairs: &[(String, String)],
) -> Result<(Project, Vec<BreakageEvent>, EventPage), ApiError> {
    let page = EventPage::from_pairs(str_pairs(pairs)).map_err(bad_query)?;
    let project = project_named(state, project).await?;
    let events = state
        .storage
        .events(Some(&project), page.after, page.limit)
        .await?;
    Ok((project, events, page))
}

/// The newest events a feed chooses from (newest first), and its filter.
pub(super) async fn feed_events(
    state: &AppState,
    project: Option<&str>,
    pairs: &[(String, String)],
    scanned: i64,
) -> Result<(Option<Project>, FeedFilter, Vec<BreakageEvent>), ApiError> {
    let filter = FeedFilter::from_pairs(str_pairs(pairs)).map_err(bad_query)?;
    let project = match project {
        Some(name) => Some(project_named(state, name).await?),
        None => None,
    };
    let events = state
        .storage
        .recent_events(project.as_ref(), scanned)
        .await?;
    Ok((project, filter, events))
}

/// The coverage page and its JSON; `?since=<sha>` adds the kernels untested since that commit.
pub(super) async fn coverage(
    state: &AppState,
    project: &str,
    pairs: &[(String, String)],
) -> Result<trellis_domain::coverage::Coverage, ApiError> {
    let mut since = None;
    for (key, value) in pairs {
        match key.as_str() {
            "since" if value.is_empty() => {}
            "since" => {
                let sha = trellis_domain::report::parse_sha(value)
                    .map_err(|e| ApiError::BadRequest(format!("since: {e}")))?;
                since = Some(sha);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown parameter {other:?}; the coverage takes since=<sha>"
                )))
            }
        }
    }
    let project = project_named(state, project).await?;
    state
        .storage
        .coverage(&project, since.as_deref(), state.config.health_thresholds())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "{} has no commit {}",
                project.name,
                since.unwrap_or_default()
            ))
        })
}
