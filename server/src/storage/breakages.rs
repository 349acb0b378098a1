//! Breakages, computed by the domain from the cell summaries of each lane (stream, arch,
//! variant) and cached per project revision.
//!
//! Requests never wait for a recomputation once a first set exists: they serve the last computed
//! set and say how fresh it is, while one background task per project catches up. Changes that
//! arrive while it runs are coalesced into one more pass, and each pass recomputes only the
//! lanes whose cells changed (every lane when the history moved).

use super::rows::{column_from, COMMIT_COLUMNS};
use super::{placeholders, Result, Storage, StorageError};
use futures_util::TryStreamExt;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;
use trellis_domain::breakage::{
    find_breakages, merge_lanes, sort_for_display, Breakage, CellFacts,
};
use trellis_domain::precedent;
use trellis_domain::view::Project;
use trellis_domain::view::{StoredCommit, StoredKernel};
use trellis_domain::{CellState, Kernel, Status};

/// A lane: kernels of one stream, arch and variant, in RPM order.
type Lane = (String, String, String);

fn lane_of(k: &Kernel) -> Lane {
    (k.stream.clone(), k.arch.clone(), k.variant.clone())
}

/// One lane's cells, per kernel, as last read: a change re-reads only the kernels it touched.
type LaneCells = BTreeMap<i64, Arc<Vec<CellFacts>>>;

/// A project's breakages, kept per lane so that a change recomputes only its lane, with the
/// cells they were computed from.
pub(super) struct ProjectBreakages {
    by_lane: BTreeMap<Lane, Arc<Vec<Breakage>>>,
    cells: BTreeMap<Lane, LaneCells>,
    all: Arc<Vec<Breakage>>,
}

/// What changed since breakages were last computed.
struct Changes {
    /// Commits were added or reordered: every lane's commit order may have moved.
    history: bool,
    /// Kernels whose cells changed, per lane.
    kernels: BTreeMap<Lane, Vec<i64>>,
}

/// Breakages as served: the set and the project revisions it reflects and that is current.
#[derive(Debug, Clone)]
pub struct Computed {
    pub breakages: Arc<Vec<Breakage>>,
    /// The project revision these breakages reflect.
    pub as_of: i64,
    /// The project's revision now; equal to `as_of` when nothing is pending.
    pub revision: i64,
}

impl Computed {
    pub fn is_current(&self) -> bool {
        self.as_of >= self.revision
    }
}

impl Storage {
    /// Every breakage of the project (open ones first, then the most recent), as last computed.
    pub async fn breakages(&self, project: &Project) -> Result<Arc<Vec<Breakage>>> {
        Ok(self.computed_breakages(project).await?.breakages)
    }

    /// The last computed breakages and how fresh they are. Only the first request after start
    /// waits for a computation; later ones are served at once while a refresh catches up.
    pub async fn computed_breakages(&self, project: &Project) -> Result<Computed> {
        let revision = self.revision(project.id).await?;
        match self.breakage_cache.latest(&project.id) {
            Some((as_of, known)) => {
                if as_of < revision {
                    self.refresh_breakages(project);
                }
                Ok(Computed {
                    breakages: known.all.clone(),
                    as_of,
                    revision,
                })
            }
            None => {
                // One first computation at a time: readers arriving meanwhile find its result.
                let _first = self.first_breakages.lock().await;
                Ok(Computed {
                    breakages: self.breakages_at(project, revision).await?,
                    as_of: revision,
                    revision,
                })
            }
        }
    }

    /// The breakages as of `revision`, read by the caller.
    async fn breakages_at(&self, project: &Project, revision: i64) -> Result<Arc<Vec<Breakage>>> {
        let cached = self.breakage_cache.latest(&project.id);
        if let Some((seen, known)) = &cached {
            if *seen >= revision {
                return Ok(known.all.clone());
            }
        }
        let started = Instant::now();
        let kernels = self.project_kernels(project).await?;
        let (mut by_lane, mut cells, changes) = match &cached {
            Some((seen, known)) => (
                known.by_lane.clone(),
                known.cells.clone(),
                Some(self.changes_since(project, *seen).await?),
            ),
            None => (BTreeMap::new(), BTreeMap::new(), None),
        };
        let lanes: Vec<Lane> = match &changes {
            Some(c) if !c.history => c.kernels.keys().cloned().collect(),
            _ => {
                let mut all: Vec<Lane> = kernels.iter().map(|k| lane_of(&k.kernel)).collect();
                all.sort();
                all.dedup();
                all
            }
        };
        if !lanes.is_empty() {
            let commits = self.commits_in_git_order(project).await?;
            for lane in lanes {
                let stale = changes.as_ref().and_then(|c| c.kernels.get(&lane));
                let lane_cells = match (cells.remove(&lane), stale) {
                    (Some(mut known), Some(stale)) => {
                        known.extend(self.read_cells(project, CellsOf::Kernels(stale)).await?);
                        known
                    }
                    (Some(known), None) => known,
                    (None, _) => self.read_cells(project, CellsOf::Lane(&lane)).await?,
                };
                let lane_kernels: Vec<StoredKernel> = kernels
                    .iter()
                    .filter(|k| lane_of(&k.kernel) == lane)
                    .cloned()
                    .collect();
                let found = find_breakages(
                    &lane_kernels,
                    &commits,
                    lane_cells.values().flat_map(|c| c.iter()),
                );
                by_lane.insert(lane.clone(), Arc::new(found));
                cells.insert(lane, lane_cells);
            }
        }
        let mut all = merge_lanes(by_lane.values().flat_map(|b| b.iter().cloned()).collect());
        // Before announcing, so that feeds and mails of an opened breakage carry the fix that
        // worked last time.
        let subjects = self
            .commit_subjects(
                project,
                precedent::fixing_commits(&all).iter().map(String::as_str),
            )
            .await?;
        precedent::attach(&mut all, &subjects);
        // Announced before anyone sees them, so every breakage served has its lifelong id.
        let mut all = self.announce(project, revision, all).await?;
        sort_for_display(&mut all);
        let computed = Arc::new(ProjectBreakages {
            by_lane,
            cells,
            all: Arc::new(all),
        });
        self.breakage_cache
            .put(project.id, revision, computed.clone());
        metrics::histogram!("trellis_breakage_recompute_seconds")
            .record(started.elapsed().as_secs_f64());
        Ok(computed.all.clone())
    }

    async fn changes_since(&self, project: &Project, seen: i64) -> Result<Changes> {
        let history = self.history_changed_since(project, seen).await?;
        let rows = sqlx::query(
            "SELECT DISTINCT k.stream, k.arch, k.variant, c.kernel_id FROM cells c JOIN kernels k ON k.id = c.kernel_id
             WHERE c.project_id = $1 AND c.revision > $2",
        )
        .bind(project.id)
        .bind(seen)
        .fetch_all(&self.pool)
        .await?;
        let mut kernels: BTreeMap<Lane, Vec<i64>> = BTreeMap::new();
        for r in rows {
            let lane = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            kernels.entry(lane).or_default().push(r.try_get(3)?);
        }
        Ok(Changes { history, kernels })
    }

    async fn commits_in_git_order(&self, project: &Project) -> Result<Vec<StoredCommit>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 ORDER BY generation, committed_at, id"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(column_from)
        .collect()
    }

    /// Cells as breakage detection needs them, per kernel. sqlx's `Any` driver costs a few
    /// microseconds a row, so the cells come packed one row per kernel (a million-cell lane in
    /// about a second); signatures are shared, not copied per cell.
    async fn read_cells(&self, project: &Project, of: CellsOf<'_>) -> Result<LaneCells> {
        let filter = match of {
            CellsOf::Lane(_) => "k.stream = $3 AND k.arch = $4 AND k.variant = $5".to_string(),
            CellsOf::Kernels(ids) => format!("c.kernel_id IN ({})", placeholders(3, ids.len())),
        };
        let sql = format!(
            "SELECT c.kernel_id, string_agg(
                    CAST(c.commit_id AS TEXT) || ':' || CAST(c.n_pass AS TEXT) || ':' || CAST(c.n_fail AS TEXT)
                    || ':' || c.latest_status || ':' || COALESCE(CAST(c.first_fail_at AS TEXT), '')
                    || ':' || COALESCE(CAST(c.first_pass_at AS TEXT), '') || ':' || COALESCE(c.latest_signature, ''),
                    $2) AS packed
             FROM cells c JOIN kernels k ON k.id = c.kernel_id
             WHERE c.project_id = $1 AND {filter}
             GROUP BY c.kernel_id"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(project.id)
            .bind(CELL_SEPARATOR.to_string());
        match of {
            CellsOf::Lane(lane) => q = q.bind(&lane.0).bind(&lane.1).bind(&lane.2),
            CellsOf::Kernels(ids) => {
                for id in ids {
                    q = q.bind(*id);
                }
            }
        }
        let mut rows = q.fetch(&self.pool);
        let mut packed_rows = Vec::new();
        while let Some(row) = rows.try_next().await? {
            packed_rows.push((
                row.try_get::<i64, _>("kernel_id")?,
                row.try_get::<String, _>("packed")?,
            ));
        }
        let mut signatures: HashMap<&str, Arc<str>> = HashMap::new();
        let mut cells = LaneCells::new();
        for (kernel_id, packed) in &packed_rows {
            let kernel = packed
                .split(CELL_SEPARATOR)
                .map(|cell| unpack_cell(*kernel_id, cell, &mut signatures))
                .collect::<Result<Vec<_>>>()?;
            cells.insert(*kernel_id, Arc::new(kernel));
        }
        Ok(cells)
    }

    /// Starts a background refresh for every project whose results changed since its breakages
    /// were last computed (here or, on a shared database, by another process), so that news is
    /// announced even when nobody is looking at the pages.
    pub async fn refresh_stale_breakages(&self) -> Result<()> {
        let rows = sqlx::query("SELECT id, name, description, demo, revision FROM projects")
            .fetch_all(&self.pool)
            .await?;
        for r in &rows {
            let project = super::rows::project_from(r)?;
            let revision: i64 = r.try_get("revision")?;
            let seen = self
                .breakage_cache
                .latest(&project.id)
                .map(|(seen, _)| seen);
            if seen.is_none_or(|seen| seen < revision) {
                self.refresh_breakages(&project);
            }
        }
        Ok(())
    }

    /// The breakages computed last (possibly a few reports old), for the grid's markers; a
    /// stale or missing set is refreshed in the background.
    pub(super) fn recent_breakages(
        &self,
        project: &Project,
        revision: i64,
    ) -> Option<Arc<Vec<Breakage>>> {
        let latest = self.breakage_cache.latest(&project.id);
        if latest.as_ref().is_none_or(|(r, _)| *r < revision) {
            self.refresh_breakages(project);
        }
        latest.map(|(_, b)| b.all.clone())
    }

    /// Brings the project's breakages up to date in the background: one task per project, and
    /// a change that arrives while it runs makes it run once more rather than start another.
    fn refresh_breakages(&self, project: &Project) {
        {
            let mut refreshing = self.refreshing.lock().expect("refresh lock");
            if let Some(again) = refreshing.get_mut(&project.id) {
                *again = true;
                return;
            }
            refreshing.insert(project.id, false);
        }
        let (storage, project) = (self.clone(), project.clone());
        tokio::spawn(async move {
            // Whatever ends this task (a panic included) lets a later change start another.
            let mut task = Refreshing {
                storage: storage.clone(),
                project_id: project.id,
                ended: false,
            };
            loop {
                let outcome = match storage.revision(project.id).await {
                    Ok(revision) => storage.breakages_at(&project, revision).await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = outcome {
                    tracing::warn!("breakage refresh of {} failed: {e}", project.name);
                }
                let mut refreshing = storage.refreshing.lock().expect("refresh lock");
                match refreshing.get_mut(&project.id) {
                    Some(again) if *again => *again = false,
                    // Under the same lock as the check, so no change is missed in between.
                    _ => {
                        refreshing.remove(&project.id);
                        task.ended = true;
                        break;
                    }
                }
            }
        });
    }
}

/// A project's refresh task. If it stops without ending normally (a panic), dropping it
/// clears the project's entry so that the next change starts a new one.
struct Refreshing {
    storage: Storage,
    project_id: i64,
    ended: bool,
}

impl Drop for Refreshing {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if let Ok(mut refreshing) = self.storage.refreshing.lock() {
            refreshing.remove(&self.project_id);
        }
    }
}

/// Which cells to read.
enum CellsOf<'a> {
    Lane(&'a Lane),
    Kernels(&'a [i64]),
}

/// Separates packed cells; signatures never hold control characters (see `signature::normalise`).
const CELL_SEPARATOR: char = '\u{1f}';

/// One packed cell: `commit:passes:fails:latest_status:first_fail_at:first_pass_at:signature`.
fn unpack_cell<'a>(
    kernel_id: i64,
    packed: &'a str,
    signatures: &mut HashMap<&'a str, Arc<str>>,
) -> Result<CellFacts> {
    let corrupt = || StorageError::Corrupt(format!("packed cell {packed:?}"));
    let mut parts = packed.splitn(7, ':');
    let mut next = || parts.next().ok_or_else(corrupt);
    let number = |s: &str| s.parse::<i64>().map_err(|_| corrupt());
    let optional = |s: &str| {
        if s.is_empty() {
            Ok(None)
        } else {
            number(s).map(Some)
        }
    };
    let commit_id = number(next()?)?;
    let passes = number(next()?)?;
    let fails = number(next()?)?;
    let latest = Status::parse(next()?).ok_or_else(corrupt)?;
    let first_fail_at = optional(next()?)?;
    let first_pass_at = optional(next()?)?;
    let signature = next()?;
    let signature = (!signature.is_empty()).then(|| {
        signatures
            .entry(signature)
            .or_insert_with(|| Arc::from(signature))
            .clone()
    });
    Ok(CellFacts {
        kernel_id,
        commit_id,
        state: CellState::of(passes, fails, latest),
        signature,
        first_fail_at,
        first_pass_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_cells_unpack_with_colons_in_signatures_and_missing_times() {
        let mut signatures = HashMap::new();
        let cell = unpack_cell(
            7,
            "12:1:1:fail:1000::compat.h: error: #error \"x: y\"",
            &mut signatures,
        )
        .unwrap();
        assert_eq!(
            (cell.kernel_id, cell.commit_id, cell.state),
            (7, 12, CellState::Flaky)
        );
        assert_eq!((cell.first_fail_at, cell.first_pass_at), (Some(1000), None));
        assert_eq!(
            cell.signature.as_deref(),
            Some("compat.h: error: #error \"x: y\"")
        );
        let again = unpack_cell(
            8,
            "13:0:1:fail:5:6:compat.h: error: #error \"x: y\"",
            &mut signatures,
        )
        .unwrap();
        assert!(Arc::ptr_eq(
            cell.signature.as_ref().unwrap(),
            again.signature.as_ref().unwrap()
        ));
        let pass = unpack_cell(7, "14:2:0:pass::9:", &mut signatures).unwrap();
        assert_eq!((pass.state, pass.signature), (CellState::Pass, None));
        assert!(unpack_cell(7, "14:2:0:maybe::9:", &mut signatures).is_err());
        assert!(unpack_cell(7, "14:2", &mut signatures).is_err());
    }
}
