//! The live grid: `GET /p/{project}/live`, server-sent events of the cells each project revision
//! changed, drawn as the grid draws them (`CellPatch`).
//!
//! Every event's id is the revision it brings the page to, so a browser that reconnects (by
//! itself, every `retry` while the server is away) sends `Last-Event-ID` and gets what it
//! missed; a stream the page opens itself (after an HTTP error, or when its tab is shown again)
//! says the same with `?since=`. Events: `cells` (a JSON array, possibly empty), or `reload`
//! when the page cannot be patched. One poller per project reads the database
//! (`Storage::watch_cell_changes`); streams only format what it shares.
//!
//! A stream never ends by itself: a server shutting down stops watching
//! (`Storage::stop_watching`), which ends them, so their connections can close.

use super::extract::ApiPath;
use super::{load, AppState};
use crate::error::ApiError;
use crate::storage::{CellChanges, Storage};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::stream::{self, Stream, StreamExt};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{error::RecvError, Receiver};
use trellis_app::islands::CellPatch;
use trellis_domain::view::Project;

/// How soon a browser reconnects when the stream breaks (a server restart).
const RETRY: Duration = Duration::from_secs(2);
/// A comment this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn live(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let since = since(&headers, &pairs)?;
    let project = load::project_named(&state, &name).await?;
    // Subscribed before catching up, so nothing committed in between is missed.
    let changes = state.storage.watch_cell_changes(&project);
    let first = state.storage.cell_changes_since(&project, since).await?;
    let events = follow(state.storage, project, changes, first, since);
    let sse = Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // nginx would otherwise hold the events back in its buffer.
    Ok(([("x-accel-buffering", "no")], sse))
}

/// The events of one client: `first` (with the retry hint) for a client at revision `since`,
/// then each change as it is committed.
fn follow(
    storage: Storage,
    project: Project,
    changes: Receiver<Arc<CellChanges>>,
    first: CellChanges,
    since: Option<i64>,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut follower = Follower {
        storage,
        project,
        changes,
        sent: first.to,
        ended: false,
    };
    let opening = follower
        .event(&first, since.unwrap_or(first.to))
        .retry(RETRY);
    let rest = stream::unfold(follower, |mut f| async move {
        let event = f.next().await?;
        Some((Ok(event), f))
    });
    stream::once(async { Ok(opening) }).chain(rest)
}

/// Where the client stands: the `Last-Event-ID` of a reconnection, else `?since=`.
fn since(headers: &HeaderMap, pairs: &[(String, String)]) -> Result<Option<i64>, ApiError> {
    let header = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or_default());
    let query = pairs.iter().rev().find(|(k, _)| k == "since");
    let Some((name, value)) = header
        .map(|v| ("Last-Event-ID", v))
        .or(query.map(|(_, v)| ("since", v.as_str())))
    else {
        return Ok(None);
    };
    value.trim().parse().map(Some).map_err(|_| {
        ApiError::BadRequest(format!(
            "{name}={value:?}: use the id of the last event received (a project revision)"
        ))
    })
}

/// One client's stream: the project's changes from the revision it was sent last.
struct Follower {
    storage: Storage,
    project: Project,
    changes: Receiver<Arc<CellChanges>>,
    sent: i64,
    /// A `reload` was sent: the page is going away.
    ended: bool,
}

impl Follower {
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        let changes = loop {
            match self.changes.recv().await {
                Ok(c) if c.to <= self.sent => continue,
                Ok(c) if c.from <= self.sent => break c,
                // A gap (the poller started after this stream caught up) or this client fell
                // behind the backlog: read what it missed itself.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    match self
                        .storage
                        .cell_changes_since(&self.project, Some(self.sent))
                        .await
                    {
                        Ok(c) => break Arc::new(c),
                        // The browser reconnects and catches up from `sent`.
                        Err(e) => {
                            tracing::warn!("live stream of {}: {e}", self.project.name);
                            return None;
                        }
                    }
                }
                // Watching stopped (the server is shutting down) or the database closed.
                Err(RecvError::Closed) => return None,
            }
        };
        let event = self.event(&changes, self.sent);
        self.sent = changes.to;
        Some(event)
    }

    /// The event of `changes` for a client that has everything up to revision `after`.
    fn event(&mut self, changes: &CellChanges, after: i64) -> Event {
        let Some(cells) = &changes.cells else {
            self.ended = true;
            return Event::default()
                .event("reload")
                .data("the page is out of date");
        };
        let patches: Vec<CellPatch> = cells
            .iter()
            .filter(|c| c.revision > after)
            .map(|c| CellPatch::new(&self.project.name, &c.kernel, &c.sha, &c.cell))
            .collect();
        Event::default()
            .event("cells")
            .id(changes.to.to_string())
            .data(serde_json::to_string(&patches).expect("cell patches are plain data"))
    }
}
