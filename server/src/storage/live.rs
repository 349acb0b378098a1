//! What the live grid follows: the cells a project changed after a revision, as the grid shows
//! them. One poller per watched project reads the project's revision about once a second and,
//! when it moved, the changed cells once, for every subscriber. The revision is read from the
//! database, so writes by other Trellis processes on the same database are seen too.

use super::rows::{cell_from, kernel_from, CELL_COLUMNS, KERNEL_COLUMNS};
use super::{Result, Storage};
use sqlx::{AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;
use trellis_domain::grid::GridCell;
use trellis_domain::view::Project;
use trellis_domain::Kernel;

/// How often a watched project's revision is read.
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Most cells worth patching into a page; past it, reloading the page is cheaper.
const MAX_CHANGED_CELLS: usize = 2000;
/// Changes a subscriber may fall behind by before it has to catch up on its own.
const BACKLOG: usize = 16;

/// A cell as changed at `revision`.
#[derive(Debug, Clone)]
pub struct ChangedCell {
    pub revision: i64,
    pub kernel: Kernel,
    pub sha: String,
    pub cell: GridCell,
}

/// The cells changed by the revisions after `from`, up to `to`.
#[derive(Debug)]
pub struct CellChanges {
    pub from: i64,
    pub to: i64,
    /// `None` when a page cannot be patched: more than [`MAX_CHANGED_CELLS`] changed, or `from`
    /// is ahead of the database (a page from before a restore).
    pub cells: Option<Vec<ChangedCell>>,
}

/// The pollers running, one per watched project, each with its subscribers' channel; `None`
/// once watching has stopped for good.
pub(super) struct Watchers(Mutex<Option<HashMap<i64, broadcast::Sender<Arc<CellChanges>>>>>);

impl Default for Watchers {
    fn default() -> Self {
        Watchers(Mutex::new(Some(HashMap::new())))
    }
}

impl Storage {
    /// The cells changed after revision `since`, or none from the current revision when `since`
    /// is `None`.
    pub async fn cell_changes_since(
        &self,
        project: &Project,
        since: Option<i64>,
    ) -> Result<CellChanges> {
        let to = self.revision(project.id).await?;
        self.cells_changed(project, since.unwrap_or(to), to).await
    }

    /// The project's changes as they are committed, from the revision the poller reads next:
    /// subscribe, then catch up with [`Storage::cell_changes_since`], and nothing falls in between.
    /// Once watching has stopped, the channel is closed at once.
    pub fn watch_cell_changes(&self, project: &Project) -> broadcast::Receiver<Arc<CellChanges>> {
        let mut watchers = self.watchers.0.lock().expect("watchers lock");
        let Some(watchers) = watchers.as_mut() else {
            // Its sender dropped here: the channel is closed.
            return broadcast::channel(1).1;
        };
        if let Some(sender) = watchers.get(&project.id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        watchers.insert(project.id, sender.clone());
        let poller = Poller {
            watchers: self.watchers.clone(),
            project_id: project.id,
            sender,
        };
        tokio::spawn(self.clone().poll_changes(project.clone(), poller));
        receiver
    }

    /// Ends every watch within a poll, and any later one at once: live streams never end by
    /// themselves, so a server shutting down ends them to let their connections close.
    pub fn stop_watching(&self) {
        self.watchers.0.lock().expect("watchers lock").take();
    }

    /// Sends each new revision's changes until no one listens, watching stops or the database
    /// is closed.
    async fn poll_changes(self, project: Project, poller: Poller) {
        let mut seen = None;
        let mut tick = tokio::time::interval(POLL_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !poller.is_heard() {
                return;
            }
            match self.cell_changes_since(&project, seen).await {
                Ok(changes) => {
                    seen = Some(changes.to);
                    if changes.to > changes.from {
                        // No receiver left is seen at the next tick.
                        let _ = poller.sender.send(Arc::new(changes));
                    }
                }
                Err(_) if self.pool.is_closed() => return,
                Err(e) => tracing::warn!("following the changes of {}: {e}", project.name),
            }
        }
    }

    async fn cells_changed(&self, project: &Project, from: i64, to: i64) -> Result<CellChanges> {
        let changes = |cells| CellChanges { from, to, cells };
        if from >= to {
            return Ok(changes((from == to).then(Vec::new)));
        }
        // The changed cells first (by `cells_by_revision`), then their commits and kernels.
        let sql = format!(
            "SELECT {KERNEL_COLUMNS}, changed.* FROM (
                 SELECT {CELL_COLUMNS}, cells.revision AS changed_at, commits.sha
                 FROM cells CROSS JOIN commits
                 WHERE cells.project_id = $1 AND cells.revision > $2 AND cells.revision <= $3
                   AND commits.id = cells.commit_id
             ) AS changed CROSS JOIN kernels WHERE kernels.id = changed.kernel_id
             LIMIT $4"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(project.id)
            .bind(from)
            .bind(to)
            .bind(MAX_CHANGED_CELLS as i64 + 1)
            .fetch_all(&self.pool)
            .await?;
        if rows.len() > MAX_CHANGED_CELLS {
            return Ok(changes(None));
        }
        // Breakages are recomputed in the background: the last computed set marks their starts.
        let starts: HashSet<(i64, i64)> = self
            .recent_breakages(project, to)
            .map(|all| {
                all.iter()
                    .map(|b| (b.start_kernel_id, b.start_commit_id))
                    .collect()
            })
            .unwrap_or_default();
        let cells = rows
            .iter()
            .map(|row| {
                let entry = cell_from(row)?;
                Ok(ChangedCell {
                    revision: row.try_get("changed_at")?,
                    kernel: kernel_from(row)?.kernel,
                    sha: row.try_get("sha")?,
                    cell: GridCell {
                        state: entry.summary.state(),
                        breakage_start: starts.contains(&(entry.kernel_id, entry.commit_id)),
                        summary: entry.summary,
                    },
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(changes(Some(cells)))
    }
}

/// A running poller's place among the watchers, given up when it ends (a panic included), so
/// the next subscriber starts another.
struct Poller {
    watchers: Arc<Watchers>,
    project_id: i64,
    sender: broadcast::Sender<Arc<CellChanges>>,
}

impl Poller {
    /// Whether anyone still listens and watching goes on; if not, the poller leaves, under
    /// the lock that subscribers take, so none subscribes to a poller that is leaving.
    fn is_heard(&self) -> bool {
        let mut watchers = self.watchers.0.lock().expect("watchers lock");
        let Some(watchers) = watchers.as_mut() else {
            return false;
        };
        let heard = self.sender.receiver_count() > 0;
        if !heard {
            watchers.remove(&self.project_id);
        }
        heard
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        // Not `expect`: a second panic while unwinding would abort the process.
        let mut watchers = self.watchers.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(watchers) = watchers.as_mut() {
            if watchers
                .get(&self.project_id)
                .is_some_and(|s| s.same_channel(&self.sender))
            {
                watchers.remove(&self.project_id);
            }
        }
    }
}
