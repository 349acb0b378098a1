//! Queries behind the pages and the read API.

use super::{ingest::LogBlob, placeholders, Result, Storage, StorageError};
use flate2::{read::DeflateDecoder, write::DeflateEncoder, Compression};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::sync::Arc;
use trellis_domain::grid::{CellEntry, CommitColumn, Grid, GridFilter, KernelRow};
use trellis_domain::log::ClippedLog;
use trellis_domain::project::{CellDetail, CommitHealth, Project, ProjectSummary, ReportDetail};
use trellis_domain::signature::ErrorSignature;
use trellis_domain::{CellSummary, Kernel, Status, StatusCounts};

impl LogBlob {
    /// Compresses a clipped log for storage.
    pub fn compress(log: &ClippedLog, error: Option<ErrorSignature>) -> LogBlob {
        let mut enc =
            DeflateEncoder::new(Vec::with_capacity(log.text.len() / 4), Compression::fast());
        enc.write_all(log.text.as_bytes())
            .expect("writing to memory cannot fail");
        LogBlob {
            compressed: enc.finish().expect("writing to memory cannot fail"),
            original_bytes: log.original_bytes as i64,
            cut_bytes: log.cut_bytes as i64,
            error,
        }
    }
}

fn decompress(bytes: &[u8]) -> Result<String> {
    let mut out = String::new();
    DeflateDecoder::new(bytes)
        .read_to_string(&mut out)
        .map_err(|e| StorageError::Corrupt(format!("stored log does not decompress: {e}")))?;
    Ok(out)
}

fn status(s: &str) -> Result<Status> {
    Status::parse(s).ok_or_else(|| StorageError::Corrupt(format!("unknown status {s:?}")))
}

fn project_from(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        demo: row.try_get::<i64, _>("demo")? != 0,
    })
}

pub(super) fn column_from(row: &AnyRow) -> Result<CommitColumn> {
    Ok(CommitColumn {
        id: row.try_get("id")?,
        sha: row.try_get("sha")?,
        subject: row.try_get("subject")?,
        author: row.try_get("author")?,
        committed_at: row.try_get("committed_at")?,
    })
}

pub(super) fn kernel_from(row: &AnyRow) -> Result<KernelRow> {
    Ok(KernelRow {
        id: row.try_get("id")?,
        kernel: Kernel {
            stream: row.try_get("stream")?,
            version: row.try_get("version")?,
            release: row.try_get("release")?,
            arch: row.try_get("arch")?,
            variant: row.try_get("variant")?,
        },
    })
}

pub(super) fn cell_from(row: &AnyRow) -> Result<CellEntry> {
    Ok(CellEntry {
        kernel_id: row.try_get("kernel_id")?,
        commit_id: row.try_get("commit_id")?,
        summary: CellSummary {
            counts: StatusCounts {
                pass: row.try_get("n_pass")?,
                fail: row.try_get("n_fail")?,
                error: row.try_get("n_error")?,
                skip: row.try_get("n_skip")?,
            },
            latest_status: status(&row.try_get::<String, _>("latest_status")?)?,
            latest_report_id: row.try_get("latest_report_id")?,
            latest_finished_at: row.try_get("latest_finished_at")?,
            signature: row.try_get("latest_signature")?,
        },
    })
}

/// What one grid page reads from the database, before filtering.
pub(super) struct GridData {
    kernels: Vec<KernelRow>,
    columns: Vec<CommitColumn>,
    cells: Vec<CellEntry>,
    has_older: bool,
}

/// The columns `cell_from`, `kernel_from` and `column_from` read.
pub(super) const CELL_COLUMNS: &str =
    "kernel_id, commit_id, n_pass, n_fail, n_error, n_skip, latest_status, latest_report_id, latest_finished_at, latest_signature";
pub(super) const KERNEL_COLUMNS: &str = "id, stream, version, release, arch, variant";
pub(super) const COMMIT_COLUMNS: &str = "id, sha, subject, author, committed_at";
const COMMIT_ORDER: &str = "ORDER BY generation DESC, committed_at DESC, id DESC";

impl Storage {
    pub async fn project(&self, name: &str) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT id, name, description, demo FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from).transpose()
    }

    /// Marks a project as demo data and describes it (used by the demo seeder).
    pub async fn describe_project(&self, name: &str, description: &str, demo: bool) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query(
            "INSERT INTO projects (name, description, demo, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET description = excluded.description, demo = excluded.demo",
        )
        .bind(name)
        .bind(description)
        .bind(i64::from(demo))
        .bind(super::now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM projects")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n == 0)
    }

    pub async fn project_summaries(&self) -> Result<Vec<ProjectSummary>> {
        let rows =
            sqlx::query("SELECT id, name, description, demo FROM projects ORDER BY demo, name")
                .fetch_all(&self.pool)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let project = project_from(row)?;
            let count = |table: &str| format!("SELECT COUNT(*) FROM {table} WHERE project_id = $1");
            let mut counts = [0i64; 3];
            for (slot, table) in counts.iter_mut().zip(["kernels", "commits", "reports"]) {
                *slot = sqlx::query(AssertSqlSafe(count(table)))
                    .bind(project.id)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get(0)?;
            }
            let latest = self.latest_health(project.id).await?;
            out.push(ProjectSummary {
                project,
                kernels: counts[0],
                commits: counts[1],
                reports: counts[2],
                latest,
            });
        }
        Ok(out)
    }

    /// How the newest commit (in git order) that has any report fares.
    async fn latest_health(&self, project_id: i64) -> Result<Option<CommitHealth>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits c WHERE project_id = $1
             AND EXISTS (SELECT 1 FROM cells WHERE cells.commit_id = c.id) {COMMIT_ORDER} LIMIT 1"
        )))
        .bind(project_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let commit = column_from(&row)?;
        let cells = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE commit_id = $1"
        )))
        .bind(commit.id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = StatusCounts::default();
        let mut flaky = 0;
        for cell in &cells {
            let summary = cell_from(cell)?.summary;
            match summary.state() {
                trellis_domain::CellState::Flaky => flaky += 1,
                _ => counts.add(summary.latest_status),
            }
        }
        Ok(Some(CommitHealth {
            commit,
            cells: counts,
            flaky,
        }))
    }

    /// The grid for one page of commits (`per_page` columns, newest first). What it reads is
    /// cached until the project's revision changes (every report and history push bumps it).
    pub async fn grid(
        &self,
        project: &Project,
        filter: GridFilter,
        page: u32,
        per_page: u32,
    ) -> Result<Grid> {
        let revision = self.revision(project.id).await?;
        let key = (project.id, page, per_page);
        let data = match self.grid_cache.latest(&key) {
            Some((seen, data)) if seen == revision => data,
            cached => {
                let refreshed = match cached {
                    Some((seen, data)) => self.refresh_grid(project, &data, seen).await?,
                    None => None,
                };
                let data = match refreshed {
                    Some(data) => data,
                    None => self.load_grid(project, page, per_page).await?,
                };
                let data = Arc::new(data);
                self.grid_cache.put(key, revision, data.clone());
                data
            }
        };
        let starts = match self.recent_breakages(project, revision) {
            Some(breakages) => breakages
                .iter()
                .map(|b| (b.start_kernel_id, b.start_commit_id))
                .collect(),
            None => HashSet::new(),
        };
        Ok(Grid::build(
            &project.name,
            data.kernels.clone(),
            data.columns.clone(),
            data.cells.clone(),
            filter,
            page,
            data.has_older,
            &starts,
        ))
    }

    /// Brings a cached grid page up to date by reading only the kernels and cells changed since
    /// revision `seen`; `None` when the commits changed (the columns may move: reload it all).
    async fn refresh_grid(
        &self,
        project: &Project,
        data: &GridData,
        seen: i64,
    ) -> Result<Option<GridData>> {
        if data.columns.is_empty() || self.history_changed_since(project, seen).await? {
            return Ok(None);
        }
        let mut kernels = data.kernels.clone();
        let new_kernels = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KERNEL_COLUMNS} FROM kernels WHERE project_id = $1 AND revision > $2"
        )))
        .bind(project.id)
        .bind(seen)
        .fetch_all(&self.pool)
        .await?;
        for row in &new_kernels {
            let k = kernel_from(row)?;
            if !kernels.iter().any(|known| known.id == k.id) {
                kernels.push(k);
            }
        }
        let sql = format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE project_id = $1 AND revision > $2 AND commit_id IN ({})",
            placeholders(3, data.columns.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(project.id).bind(seen);
        for c in &data.columns {
            query = query.bind(c.id);
        }
        let changed = query.fetch_all(&self.pool).await?;
        let mut cells = data.cells.clone();
        let mut index: HashMap<(i64, i64), usize> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.kernel_id, c.commit_id), i))
            .collect();
        for row in &changed {
            let cell = cell_from(row)?;
            match index.get(&(cell.kernel_id, cell.commit_id)) {
                Some(&i) => cells[i] = cell,
                None => {
                    index.insert((cell.kernel_id, cell.commit_id), cells.len());
                    cells.push(cell);
                }
            }
        }
        Ok(Some(GridData {
            kernels,
            columns: data.columns.clone(),
            cells,
            has_older: data.has_older,
        }))
    }

    async fn load_grid(&self, project: &Project, page: u32, per_page: u32) -> Result<GridData> {
        let kernels = self.project_kernels(project).await?;
        let mut columns = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 {COMMIT_ORDER} LIMIT $2 OFFSET $3"
        )))
        .bind(project.id)
        .bind(i64::from(per_page) + 1)
        .bind(i64::from(page) * i64::from(per_page))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(column_from)
        .collect::<Result<Vec<_>>>()?;
        let has_older = columns.len() > per_page as usize;
        columns.truncate(per_page as usize);

        let cells = if columns.is_empty() {
            Vec::new()
        } else {
            let sql = format!(
                "SELECT {CELL_COLUMNS} FROM cells WHERE commit_id IN ({})",
                placeholders(1, columns.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for c in &columns {
                q = q.bind(c.id);
            }
            q.fetch_all(&self.pool)
                .await?
                .iter()
                .map(cell_from)
                .collect::<Result<Vec<_>>>()?
        };
        Ok(GridData {
            kernels,
            columns,
            cells,
            has_older,
        })
    }

    /// Finds a kernel of a project by stream and `uname -r`.
    pub async fn kernel(&self, project: &Project, kernel: &Kernel) -> Result<Option<KernelRow>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KERNEL_COLUMNS} FROM kernels
             WHERE project_id = $1 AND stream = $2 AND version = $3 AND release = $4 AND arch = $5 AND variant = $6"
        )))
        .bind(project.id)
        .bind(&kernel.stream)
        .bind(&kernel.version)
        .bind(&kernel.release)
        .bind(&kernel.arch)
        .bind(&kernel.variant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(kernel_from).transpose()
    }

    pub async fn commit(&self, project: &Project, sha: &str) -> Result<Option<CommitColumn>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 AND sha = $2"
        )))
        .bind(project.id)
        .bind(sha)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(column_from).transpose()
    }

    /// All reports of one (kernel, commit), newest first, with their logs.
    pub async fn cell(
        &self,
        project: Project,
        kernel: KernelRow,
        commit: CommitColumn,
    ) -> Result<CellDetail> {
        let summary = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE kernel_id = $1 AND commit_id = $2"
        )))
        .bind(kernel.id)
        .bind(commit.id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(cell_from)
        .transpose()?
        .map(|c| c.summary);
        let rows = sqlx::query(
            "SELECT r.id, u.name AS runner, r.run_id, r.status, r.stages, r.metadata, r.started_at, r.finished_at,
                    r.received_at, l.compressed, l.original_bytes, l.cut_bytes
             FROM reports r JOIN runners u ON u.id = r.runner_id JOIN logs l ON l.report_id = r.id
             WHERE r.kernel_id = $1 AND r.commit_id = $2 ORDER BY r.finished_at DESC, r.id DESC",
        )
        .bind(kernel.id)
        .bind(commit.id)
        .fetch_all(&self.pool)
        .await?;
        let reports = rows
            .iter()
            .map(|r| {
                let json = |col: &str| -> Result<String> { Ok(r.try_get::<String, _>(col)?) };
                Ok(ReportDetail {
                    id: r.try_get("id")?,
                    runner: r.try_get("runner")?,
                    run_id: r.try_get("run_id")?,
                    status: status(&r.try_get::<String, _>("status")?)?,
                    stages: serde_json::from_str(&json("stages")?)
                        .map_err(|e| StorageError::Corrupt(format!("stages: {e}")))?,
                    metadata: serde_json::from_str(&json("metadata")?)
                        .map_err(|e| StorageError::Corrupt(format!("metadata: {e}")))?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                    received_at: r.try_get("received_at")?,
                    log: decompress(&r.try_get::<Vec<u8>, _>("compressed")?)?,
                    log_original_bytes: r.try_get("original_bytes")?,
                    log_cut_bytes: r.try_get("cut_bytes")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CellDetail {
            project,
            kernel,
            commit,
            summary,
            reports,
        })
    }

    /// Where a stored report lives: (project, kernel, commit sha).
    pub async fn report_location(
        &self,
        report_id: i64,
    ) -> Result<Option<(String, Kernel, String)>> {
        let row = sqlx::query(
            "SELECT p.name, k.id, k.stream, k.version, k.release, k.arch, k.variant, c.sha
             FROM reports r JOIN projects p ON p.id = r.project_id JOIN kernels k ON k.id = r.kernel_id
             JOIN commits c ON c.id = r.commit_id WHERE r.id = $1",
        )
        .bind(report_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, kernel_from(&r)?.kernel, r.try_get("sha")?)))
            .transpose()
    }
}
