//! The pages built on breakages: what is broken now, a kernel's history, what a commit changed,
//! where a signature shows, and the excerpts and commit subjects that go with breakages.

use super::commits::read_tags;
use super::rows::{cell_from, column_from, kernel_from, prefixed_cell_columns, COMMIT_COLUMNS};
use super::{placeholders, values, Result, Storage};
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap};
use trellis_domain::breakage::Breakage;
use trellis_domain::now::BrokenNow;
use trellis_domain::view::{
    named_commits, seen_together, starts_at_commit, BreakageDetail, CommitChanges, KernelHistory,
    KernelResult, Project, SignatureCell, SignatureCells, StreamChange,
};
use trellis_domain::view::{StoredCommit, StoredKernel};
use trellis_domain::{CellEntry, CellState};

impl Storage {
    /// Every open breakage of a project, one line each, and the time of its newest result.
    pub async fn broken_now(&self, project: &Project) -> Result<BrokenNow> {
        let all = self.breakages(project).await?;
        let subjects = self
            .commit_subjects(
                project,
                all.iter().filter(|b| b.open).flat_map(named_commits),
            )
            .await?;
        // The newest result: among the cells the project's latest revision changed, read by
        // the (project_id, revision) index, so the grid's and home page's path never scans the
        // project's reports.
        let newest: Option<i64> = sqlx::query(
            "SELECT CAST(MAX(latest_finished_at) AS BIGINT) FROM cells WHERE project_id = $1
             AND revision = (SELECT MAX(revision) FROM cells WHERE project_id = $1)",
        )
        .bind(project.id)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(BrokenNow::new(&project.name, &all, &subjects, newest))
    }

    /// The subjects of these commits (those the history names), by sha.
    pub async fn commit_subjects<'a>(
        &self,
        project: &Project,
        shas: impl Iterator<Item = &'a str>,
    ) -> Result<BTreeMap<String, String>> {
        let mut shas: Vec<&str> = shas.collect();
        shas.sort_unstable();
        shas.dedup();
        let mut out = BTreeMap::new();
        for chunk in shas.chunks(500) {
            let sql = format!(
                "SELECT sha, subject FROM commits WHERE project_id = $1 AND subject IS NOT NULL
                 AND sha IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(project.id);
            for sha in chunk {
                q = q.bind(*sha);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert(r.try_get(0)?, r.try_get(1)?);
            }
        }
        Ok(out)
    }

    /// A commit's parent (the first by sha: the order of a merge's parents is not stored).
    pub(super) async fn parent_commit(
        &self,
        project: &Project,
        commit: &StoredCommit,
    ) -> Result<Option<StoredCommit>> {
        let sha: Option<String> = sqlx::query(
            "SELECT parent_sha FROM commit_parents WHERE commit_id = $1 ORDER BY parent_sha LIMIT 1",
        )
        .bind(commit.id)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
        match sha {
            Some(sha) => self.commit(project, &sha).await,
            None => Ok(None),
        }
    }

    /// A commit's child (the first by sha), if the history has one.
    async fn child_commit(
        &self,
        project: &Project,
        commit: &StoredCommit,
    ) -> Result<Option<StoredCommit>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE project_id = $1 AND id IN (
                SELECT commit_id FROM commit_parents WHERE parent_sha = $2)
             ORDER BY sha LIMIT 1"
        )))
        .bind(project.id)
        .bind(&commit.sha)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(column_from).transpose()
    }

    /// Breakages for display, each with the error excerpt of its first failing cell.
    pub async fn with_excerpts(
        &self,
        breakages: impl Iterator<Item = &Breakage>,
    ) -> Result<Vec<BreakageDetail>> {
        let breakages: Vec<&Breakage> = breakages.collect();
        let mut pairs: Vec<(i64, i64)> = breakages
            .iter()
            .map(|b| (b.start_kernel_id, b.start_commit_id))
            .collect();
        pairs.sort_unstable();
        pairs.dedup();
        // One query per few hundred breakages: the newest excerpt of each start cell.
        let mut excerpts: HashMap<(i64, i64), (Option<String>, Option<String>)> = HashMap::new();
        for chunk in pairs.chunks(200) {
            let sql = format!(
                "SELECT kernel_id, commit_id, error_line, excerpt FROM (
                    SELECT kernel_id, commit_id, error_line, excerpt, ROW_NUMBER() OVER (
                        PARTITION BY kernel_id, commit_id ORDER BY finished_at DESC, id DESC) AS n
                    FROM reports WHERE excerpt IS NOT NULL AND (kernel_id, commit_id) IN (VALUES {})
                 ) newest WHERE n = 1",
                values(chunk.len(), 2)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (kernel, commit) in chunk {
                q = q.bind(*kernel).bind(*commit);
            }
            for r in q.fetch_all(&self.pool).await? {
                excerpts.insert(
                    (r.try_get(0)?, r.try_get(1)?),
                    (r.try_get(2)?, r.try_get(3)?),
                );
            }
        }
        Ok(breakages
            .into_iter()
            .map(|b| {
                let (error_line, excerpt) = excerpts
                    .get(&(b.start_kernel_id, b.start_commit_id))
                    .cloned()
                    .unwrap_or_default();
                BreakageDetail {
                    breakage: b.clone(),
                    error_line,
                    excerpt,
                }
            })
            .collect())
    }

    /// One kernel's results along the commits (newest first) and its breakages.
    pub async fn kernel_history(
        &self,
        project: Project,
        kernel: StoredKernel,
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
        let subjects = self
            .commit_subjects(
                &project,
                breakages.iter().flat_map(|d| named_commits(&d.breakage)),
            )
            .await?;
        Ok(KernelHistory {
            project,
            kernel,
            cells,
            breakages,
            subjects,
        })
    }

    /// What a commit broke and fixed compared with its parent, per stream, every kernel's
    /// result on it, and its place in history.
    pub async fn commit_changes(
        &self,
        project: Project,
        mut commit: StoredCommit,
    ) -> Result<CommitChanges> {
        let mut parent = self.parent_commit(&project, &commit).await?;
        let mut child = self.child_commit(&project, &commit).await?;
        // Its position in history names the release tags of each.
        let mut conn = self.pool.acquire().await?;
        for commits in [
            std::slice::from_mut(&mut commit),
            parent.as_mut_slice(),
            child.as_mut_slice(),
        ] {
            read_tags(&mut conn, commits).await?;
        }
        drop(conn);
        let kernels = self.project_kernels(&project).await?;
        let states = |cells: Vec<CellEntry>| -> HashMap<i64, CellState> {
            cells
                .iter()
                .map(|c| (c.kernel_id, c.summary.state()))
                .collect()
        };
        let now = states(self.commit_cells(commit.id).await?);
        let before = match &parent {
            Some(p) => states(self.commit_cells(p.id).await?),
            None => HashMap::new(),
        };
        let streams = StreamChange::between(&kernels, &before, &now);
        let results = KernelResult::list(&kernels, &now);
        let upstream = self.commit_url(&project).await?.map(|u| u.of(&commit.sha));
        let all = self.breakages(&project).await?;
        let opened = all
            .iter()
            .filter(|b| starts_at_commit(b, &commit.sha))
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
            child,
            upstream,
            results,
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
        let mut first_seen = i64::MAX;
        let mut cells = Vec::with_capacity(rows.len());
        for r in &rows {
            first_seen = first_seen.min(r.try_get("first_seen")?);
            cells.push(SignatureCell {
                kernel: kernel_from(r)?.kernel,
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
        // The oldest and newest commit it shows on, in git order.
        let range = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS} FROM commits WHERE id IN (
                SELECT commit_id FROM reports WHERE project_id = $1 AND signature_hash = $2)
             ORDER BY generation, committed_at, id"
        )))
        .bind(project.id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let breakages = self
            .breakages(&project)
            .await?
            .iter()
            .filter(|b| b.signature.as_deref() == Some(signature.as_str()))
            .cloned()
            .collect();
        let mut found = SignatureCells::new(
            project,
            id.to_string(),
            signature,
            excerpt,
            first_seen,
            cells,
        );
        found.first_commit = range.first().map(column_from).transpose()?;
        found.last_commit = range.last().map(column_from).transpose()?;
        found.breakages = breakages;
        let lists: Vec<String> = sqlx::query(
            "SELECT other_errors FROM reports WHERE project_id = $1 AND signature_hash = $2
             AND other_errors IS NOT NULL ORDER BY finished_at DESC LIMIT 2000",
        )
        .bind(found.project.id)
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
        found.seen_together = seen_together(lists.iter().map(String::as_str), 10);
        Ok(Some(found))
    }
}
