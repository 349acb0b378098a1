//! Breakages, computed by the domain from the cell summaries of each stream, cached per project
//! revision and recomputed only for the streams that changed. The grid only marks breakage
//! starts, so it uses the latest computed set and lets a background task catch up instead of
//! waiting for it. Also the pages built on breakages: kernel history, commit changes, signatures.

use super::read::{
    cell_from, column_from, kernel_from, CELL_COLUMNS, COMMIT_COLUMNS, KERNEL_COLUMNS,
};
use super::{Result, Storage, StorageError};
use futures_util::TryStreamExt;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use trellis_domain::breakage::{find_breakages, sort_for_display, Breakage, CellFacts};
use trellis_domain::grid::{CommitColumn, KernelRow};
use trellis_domain::kernel::{stream_cmp, stream_label};
use trellis_domain::project::{
    BreakageDetail, CommitChanges, KernelHistory, Project, SignatureCell, SignatureCells,
    StreamChange,
};
use trellis_domain::{CellState, Kernel, Status};

/// A project's breakages, kept per stream so that a change recomputes only its stream.
pub(super) struct ProjectBreakages {
    by_stream: BTreeMap<String, Arc<Vec<Breakage>>>,
    all: Arc<Vec<Breakage>>,
}

impl Storage {
    pub(super) async fn revision(&self, project_id: i64) -> Result<i64> {
        Ok(sqlx::query("SELECT revision FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Every breakage of the project, as of now: open ones first, then the most recent.
    /// Only the streams whose cells changed since the last computation are recomputed.
    pub async fn breakages(&self, project: &Project) -> Result<Arc<Vec<Breakage>>> {
        let revision = self.revision(project.id).await?;
        self.breakages_at(project, revision).await
    }

    /// The breakages as of `revision`, read by the caller.
    async fn breakages_at(&self, project: &Project, revision: i64) -> Result<Arc<Vec<Breakage>>> {
        let cached = self.breakage_cache.latest(&project.id);
        if let Some((seen, known)) = &cached {
            if *seen == revision {
                return Ok(known.all.clone());
            }
        }
        let changed = match &cached {
            Some((seen, _)) => self.streams_changed_since(project, *seen).await?,
            None => None,
        };
        let mut by_stream = match (&cached, &changed) {
            (Some((_, known)), Some(_)) => known.by_stream.clone(),
            _ => BTreeMap::new(),
        };
        let kernels = self.project_kernels(project).await?;
        let streams = match changed {
            Some(streams) => streams,
            None => {
                let mut all: Vec<String> =
                    kernels.iter().map(|k| k.kernel.stream.clone()).collect();
                all.sort();
                all.dedup();
                all
            }
        };
        if !streams.is_empty() {
            let commits = self.commits_in_git_order(project).await?;
            for stream in streams {
                let lane_kernels: Vec<KernelRow> = kernels
                    .iter()
                    .filter(|k| k.kernel.stream == stream)
                    .cloned()
                    .collect();
                let cells = self.stream_cells(project, &stream).await?;
                by_stream.insert(
                    stream,
                    Arc::new(find_breakages(&lane_kernels, &commits, &cells)),
                );
            }
        }
        let mut all: Vec<Breakage> = by_stream.values().flat_map(|b| b.iter().cloned()).collect();
        sort_for_display(&mut all);
        let computed = Arc::new(ProjectBreakages {
            by_stream,
            all: Arc::new(all),
        });
        self.breakage_cache
            .put(project.id, revision, computed.clone());
        Ok(computed.all.clone())
    }

    /// Streams with cells changed since revision `seen`; `None` when the history changed (every
    /// stream's commit order may have moved).
    async fn streams_changed_since(
        &self,
        project: &Project,
        seen: i64,
    ) -> Result<Option<Vec<String>>> {
        if self.history_changed_since(project, seen).await? {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT DISTINCT k.stream FROM cells c JOIN kernels k ON k.id = c.kernel_id
             WHERE c.project_id = $1 AND c.revision > $2",
        )
        .bind(project.id)
        .bind(seen)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(
            rows.iter()
                .map(|r| r.try_get(0))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Whether commits were added or reordered since revision `seen`.
    pub(super) async fn history_changed_since(&self, project: &Project, seen: i64) -> Result<bool> {
        let changed: i64 =
            sqlx::query("SELECT COUNT(*) FROM commits WHERE project_id = $1 AND revision > $2")
                .bind(project.id)
                .bind(seen)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
        Ok(changed > 0)
    }

    pub(super) async fn project_kernels(&self, project: &Project) -> Result<Vec<KernelRow>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {KERNEL_COLUMNS} FROM kernels WHERE project_id = $1"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(kernel_from)
        .collect()
    }

    async fn commits_in_git_order(&self, project: &Project) -> Result<Vec<CommitColumn>> {
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

    /// The cells of one stream, as breakage detection needs them. sqlx's `Any` driver costs a
    /// few microseconds a row, so the cells come packed one row per kernel (a million-cell
    /// stream in well under a second); signatures are shared, not copied per cell.
    async fn stream_cells(&self, project: &Project, stream: &str) -> Result<Vec<CellFacts>> {
        let mut rows = sqlx::query(
            "SELECT c.kernel_id, string_agg(
                    CAST(c.commit_id AS TEXT) || ':' || CAST(c.n_pass AS TEXT) || ':' || CAST(c.n_fail AS TEXT)
                    || ':' || c.latest_status || ':' || COALESCE(CAST(c.first_fail_at AS TEXT), '')
                    || ':' || COALESCE(CAST(c.first_pass_at AS TEXT), '') || ':' || COALESCE(c.latest_signature, ''),
                    $3) AS packed
             FROM cells c JOIN kernels k ON k.id = c.kernel_id WHERE c.project_id = $1 AND k.stream = $2
             GROUP BY c.kernel_id",
        )
        .bind(project.id)
        .bind(stream)
        .bind(CELL_SEPARATOR.to_string())
        .fetch(&self.pool);
        let mut signatures: HashMap<&str, Arc<str>> = HashMap::new();
        let mut cells = Vec::new();
        let mut packed_rows = Vec::new();
        while let Some(row) = rows.try_next().await? {
            packed_rows.push((
                row.try_get::<i64, _>("kernel_id")?,
                row.try_get::<String, _>("packed")?,
            ));
        }
        for (kernel_id, packed) in &packed_rows {
            for cell in packed.split(CELL_SEPARATOR) {
                cells.push(unpack_cell(*kernel_id, cell, &mut signatures)?);
            }
        }
        Ok(cells)
    }

    /// The breakages computed last (possibly a few reports old); a stale or missing set is
    /// recomputed in the background.
    pub(super) fn recent_breakages(
        &self,
        project: &Project,
        revision: i64,
    ) -> Option<Arc<Vec<Breakage>>> {
        let latest = self.breakage_cache.latest(&project.id);
        if latest.as_ref().is_none_or(|(r, _)| *r != revision) && self.start_refresh(project.id) {
            let (storage, project) = (self.clone(), project.clone());
            tokio::spawn(async move {
                if let Err(e) = storage.breakages_at(&project, revision).await {
                    tracing::warn!("breakage refresh of {} failed: {e}", project.name);
                }
                storage.end_refresh(project.id);
            });
        }
        latest.map(|(_, b)| b.all.clone())
    }

    fn start_refresh(&self, project_id: i64) -> bool {
        self.refreshing
            .lock()
            .expect("refresh lock")
            .insert(project_id)
    }

    fn end_refresh(&self, project_id: i64) {
        self.refreshing
            .lock()
            .expect("refresh lock")
            .remove(&project_id);
    }
}

impl Storage {
    /// Breakages for display, each with the error excerpt of its first failing cell.
    pub async fn with_excerpts(
        &self,
        breakages: impl Iterator<Item = &Breakage>,
    ) -> Result<Vec<BreakageDetail>> {
        let mut out = Vec::new();
        for b in breakages {
            let row = sqlx::query(
                "SELECT error_line, excerpt FROM reports WHERE kernel_id = $1 AND commit_id = $2 AND excerpt IS NOT NULL
                 ORDER BY finished_at DESC, id DESC LIMIT 1",
            )
            .bind(b.start_kernel_id)
            .bind(b.start_commit_id)
            .fetch_optional(&self.pool)
            .await?;
            let (error_line, excerpt) = match row {
                Some(r) => (r.try_get("error_line")?, r.try_get("excerpt")?),
                None => (None, None),
            };
            out.push(BreakageDetail {
                breakage: b.clone(),
                error_line,
                excerpt,
            });
        }
        Ok(out)
    }

    /// One kernel's results along the commits (newest first) and its breakages.
    pub async fn kernel_history(
        &self,
        project: Project,
        kernel: KernelRow,
    ) -> Result<KernelHistory> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT c.id, c.sha, c.subject, c.author, c.committed_at, {cells}
             FROM cells JOIN commits c ON c.id = cells.commit_id
             WHERE cells.kernel_id = $1 ORDER BY c.generation DESC, c.committed_at DESC, c.id DESC LIMIT 500",
            cells = prefixed_cell_columns()
        )))
        .bind(kernel.id)
        .fetch_all(&self.pool)
        .await?;
        let cells = rows
            .iter()
            .map(|r| Ok((column_from(r)?, cell_from(r)?.summary)))
            .collect::<Result<Vec<_>>>()?;
        let uname = kernel.kernel.uname();
        let stream = kernel.kernel.stream.clone();
        let all = self.breakages(&project).await?;
        let breakages = self
            .with_excerpts(
                all.iter()
                    .filter(|b| b.stream == stream && b.kernels.contains(&uname)),
            )
            .await?;
        Ok(KernelHistory {
            project,
            kernel,
            cells,
            breakages,
        })
    }

    /// What a commit broke and fixed compared with its first parent, per stream.
    pub async fn commit_changes(
        &self,
        project: Project,
        commit: CommitColumn,
    ) -> Result<CommitChanges> {
        let parent_sha: Option<String> = sqlx::query("SELECT parent_sha FROM commit_parents WHERE commit_id = $1 ORDER BY parent_sha LIMIT 1")
            .bind(commit.id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        let parent = match parent_sha {
            Some(sha) => self.commit(&project, &sha).await?,
            None => None,
        };
        let kernels: HashMap<i64, KernelRow> = self
            .project_kernels(&project)
            .await?
            .into_iter()
            .map(|k| (k.id, k))
            .collect();
        let states = |commit_id: i64| async move {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {CELL_COLUMNS} FROM cells WHERE commit_id = $1"
            )))
            .bind(commit_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| cell_from(r).map(|c| (c.kernel_id, c.summary.state())))
            .collect::<Result<HashMap<i64, CellState>>>()
        };
        let now = states(commit.id).await?;
        let before = match &parent {
            Some(p) => states(p.id).await?,
            None => HashMap::new(),
        };
        let mut streams: BTreeMap<String, StreamChange> = BTreeMap::new();
        let mut ids: Vec<&i64> = now.keys().collect();
        ids.sort_by(|a, b| kernels[a].kernel.rpm_cmp(&kernels[b].kernel));
        for id in ids {
            let k = &kernels[id].kernel;
            let entry = streams
                .entry(k.stream.clone())
                .or_insert_with(|| StreamChange {
                    stream: k.stream.clone(),
                    label: stream_label(&k.stream),
                    broke: Vec::new(),
                    fixed: Vec::new(),
                    tested: 0,
                });
            entry.tested += 1;
            match (before.get(id), now[id]) {
                (Some(CellState::Pass), CellState::Fail) => entry.broke.push(k.uname()),
                (Some(CellState::Fail), CellState::Pass) => entry.fixed.push(k.uname()),
                _ => {}
            }
        }
        let mut streams: Vec<StreamChange> = streams.into_values().collect();
        streams.sort_by(|a, b| stream_cmp(&a.stream, &b.stream));
        let all = self.breakages(&project).await?;
        let opened = all
            .iter()
            .filter(|b| b.first_bad_commit == commit.sha)
            .cloned()
            .collect();
        let closed = all
            .iter()
            .filter(|b| b.fixed_by_commit.as_deref() == Some(&commit.sha))
            .cloned()
            .collect();
        Ok(CommitChanges {
            project,
            commit,
            parent,
            streams,
            opened,
            closed,
        })
    }

    /// Every cell whose failures show the signature with this id.
    pub async fn signature_cells(
        &self,
        project: Project,
        id: &str,
    ) -> Result<Option<SignatureCells>> {
        let rows = sqlx::query(
            "SELECT r.signature, r.kernel_id AS id, k.stream, k.version, k.release, k.arch, k.variant, c.sha,
                    CAST(MAX(r.finished_at) AS BIGINT) AS last_seen, CAST(MIN(r.finished_at) AS BIGINT) AS first_seen
             FROM reports r JOIN kernels k ON k.id = r.kernel_id JOIN commits c ON c.id = r.commit_id
             WHERE r.project_id = $1 AND r.signature_hash = $2
             GROUP BY r.signature, r.kernel_id, k.stream, k.version, k.release, k.arch, k.variant, c.sha
             ORDER BY last_seen DESC LIMIT 2000",
        )
        .bind(project.id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let signature: String = first.try_get("signature")?;
        let mut cells = Vec::new();
        let mut first_seen = i64::MAX;
        let mut oldest: BTreeMap<String, Kernel> = BTreeMap::new();
        let mut kernel_ids = HashSet::new();
        for r in &rows {
            let KernelRow { id, kernel } = kernel_from(r)?;
            kernel_ids.insert(id);
            first_seen = first_seen.min(r.try_get("first_seen")?);
            let slot = oldest
                .entry(kernel.stream.clone())
                .or_insert_with(|| kernel.clone());
            if kernel.rpm_cmp(slot) == std::cmp::Ordering::Less {
                *slot = kernel.clone();
            }
            cells.push(SignatureCell {
                kernel,
                sha: r.try_get("sha")?,
                last_seen: r.try_get("last_seen")?,
            });
        }
        let excerpt = sqlx::query("SELECT excerpt FROM reports WHERE project_id = $1 AND signature_hash = $2 ORDER BY finished_at DESC LIMIT 1")
            .bind(project.id)
            .bind(id)
            .fetch_one(&self.pool)
            .await?
            .try_get("excerpt")?;
        Ok(Some(SignatureCells {
            project,
            id: id.to_string(),
            signature,
            excerpt,
            kernels: kernel_ids.len(),
            since: oldest.into_values().map(|k| k.uname()).collect(),
            first_seen,
            cells,
        }))
    }
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

fn prefixed_cell_columns() -> String {
    CELL_COLUMNS
        .split(", ")
        .map(|c| format!("cells.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
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
