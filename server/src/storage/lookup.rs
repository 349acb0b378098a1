//! Single things by name: a kernel, a commit, one cell with every report and log (and its
//! neighbours and breakage), one report's log, and where a report lives.

use super::commits::read_tags;
use super::logs::decompress;
use super::rows::{
    cell_from, column_from, kernel_from, status, CELL_COLUMNS, COMMIT_COLUMNS, COMMIT_ORDER,
    KERNEL_COLUMNS,
};
use super::{Result, Storage, StorageError};
use sqlx::{AssertSqlSafe, Row};
use trellis_domain::breakage::NeighbourAxis;
use trellis_domain::grid::CellEntry;
use trellis_domain::search::CommitSearch;
use trellis_domain::view::{
    breakage_of, previous_in_lane, CellDetail, CellNeighbour, Project, ReportDetail,
};
use trellis_domain::view::{StoredCommit, StoredKernel};
use trellis_domain::Kernel;
use trellis_domain::{CellState, CellSummary};

impl Storage {
    /// Finds a kernel of a project by stream and `uname -r`.
    pub async fn kernel(&self, project: &Project, kernel: &Kernel) -> Result<Option<StoredKernel>> {
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

    pub async fn commit(&self, project: &Project, sha: &str) -> Result<Option<StoredCommit>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 AND sha = $2"
        )))
        .bind(project.id)
        .bind(sha)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(column_from).transpose()
    }

    /// The newest commits (git order) whose sha starts with the search, or whose subject or a
    /// tag contains it (ignoring case), at most `CommitSearch::LIMIT`; and whether more match.
    pub async fn search_commits(
        &self,
        project: &Project,
        search: &CommitSearch,
    ) -> Result<(Vec<StoredCommit>, bool)> {
        if search.q.is_empty() {
            return Ok((Vec::new(), false));
        }
        // A NULL sha pattern (the query is no sha prefix) matches nothing.
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 AND (
                 sha LIKE $2 OR LOWER(subject) LIKE $3 ESCAPE '\\'
                 OR id IN (SELECT commit_id FROM commit_tags WHERE LOWER(tag) LIKE $3 ESCAPE '\\'))
             {COMMIT_ORDER} LIMIT $4"
        )))
        .bind(project.id)
        .bind(search.sha_pattern())
        .bind(search.text_pattern())
        .bind(CommitSearch::LIMIT as i64 + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut commits = rows.iter().map(column_from).collect::<Result<Vec<_>>>()?;
        let more = commits.len() > CommitSearch::LIMIT;
        commits.truncate(CommitSearch::LIMIT);
        read_tags(&mut *self.pool.acquire().await?, &mut commits).await?;
        Ok((commits, more))
    }

    /// The summary of one cell, `None` when untested.
    async fn cell_summary(&self, kernel_id: i64, commit_id: i64) -> Result<Option<CellSummary>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE kernel_id = $1 AND commit_id = $2"
        )))
        .bind(kernel_id)
        .bind(commit_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(cell_from).transpose()?.map(|c| c.summary))
    }

    /// The state of one cell, `None` when untested.
    async fn cell_state(&self, kernel_id: i64, commit_id: i64) -> Result<Option<CellState>> {
        Ok(self
            .cell_summary(kernel_id, commit_id)
            .await?
            .map(|s| s.state()))
    }

    /// A cell's neighbours: the same kernel on the parent commit, and the previous kernel of
    /// its lane on the same commit.
    async fn neighbours(
        &self,
        project: &Project,
        kernel: &StoredKernel,
        commit: &StoredCommit,
    ) -> Result<Vec<CellNeighbour>> {
        let mut out = Vec::with_capacity(2);
        if let Some(parent) = self.parent_commit(project, commit).await? {
            out.push(CellNeighbour {
                axis: NeighbourAxis::Commit,
                kernel: kernel.kernel.clone(),
                state: self.cell_state(kernel.id, parent.id).await?,
                sha: parent.sha,
            });
        }
        let kernels = self.project_kernels(project).await?;
        if let Some(previous) = previous_in_lane(&kernels, &kernel.kernel) {
            out.push(CellNeighbour {
                axis: NeighbourAxis::Kernel,
                kernel: previous.kernel.clone(),
                sha: commit.sha.clone(),
                state: self.cell_state(previous.id, commit.id).await?,
            });
        }
        Ok(out)
    }

    /// One report's log, if the report belongs to this cell.
    pub async fn report_log(
        &self,
        kernel: &StoredKernel,
        commit: &StoredCommit,
        report_id: i64,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT l.compressed FROM reports r JOIN logs l ON l.report_id = r.id
             WHERE r.id = $1 AND r.kernel_id = $2 AND r.commit_id = $3",
        )
        .bind(report_id)
        .bind(kernel.id)
        .bind(commit.id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| decompress(&r.try_get::<Vec<u8>, _>(0)?))
            .transpose()
    }

    /// All reports of one (kernel, commit), newest first, with their logs, the cell's
    /// neighbours and the breakage it is part of.
    pub async fn cell(
        &self,
        project: Project,
        kernel: StoredKernel,
        commit: StoredCommit,
    ) -> Result<CellDetail> {
        let summary = self.cell_summary(kernel.id, commit.id).await?;
        let rows = sqlx::query(
            "SELECT r.id, u.name AS runner, r.run_id, r.status, r.stages, r.metadata, r.started_at, r.finished_at,
                    r.received_at, r.error_line, l.compressed, l.original_bytes, l.cut_bytes
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
                    // Shown as plain text: colours a runner's TTY added never reach the page
                    // (the raw download keeps them).
                    log: trellis_domain::signature::strip_ansi(&decompress(
                        &r.try_get::<Vec<u8>, _>("compressed")?,
                    )?)
                    .into_owned(),
                    log_original_bytes: r.try_get("original_bytes")?,
                    log_cut_bytes: r.try_get("cut_bytes")?,
                    error_line: r.try_get("error_line")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let neighbours = self.neighbours(&project, &kernel, &commit).await?;
        let breakage = breakage_of(
            &self.breakages(&project).await?,
            &kernel.kernel,
            &commit.sha,
        )
        .cloned();
        let infrastructure = summary
            .as_ref()
            .and_then(|s| s.signature.as_deref())
            .is_some_and(trellis_domain::signature::is_infrastructure);
        Ok(CellDetail {
            project,
            kernel,
            commit,
            summary,
            reports,
            neighbours,
            breakage,
            infrastructure,
        })
    }

    /// Every cell of one commit.
    pub(super) async fn commit_cells(&self, commit_id: i64) -> Result<Vec<CellEntry>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {CELL_COLUMNS} FROM cells WHERE commit_id = $1"
        )))
        .bind(commit_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(cell_from)
        .collect()
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
