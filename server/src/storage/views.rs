//! The pages built on breakages: a kernel's history, what a commit changed, where a signature
//! shows, and the excerpts that go with breakages.

use super::read::{cell_from, column_from, kernel_from, CELL_COLUMNS};
use super::{placeholders, Result, Storage};
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashMap, HashSet};
use trellis_domain::breakage::Breakage;
use trellis_domain::grid::{CommitColumn, KernelRow};
use trellis_domain::kernel::{stream_cmp, stream_label};
use trellis_domain::project::{
    BreakageDetail, CommitChanges, KernelHistory, Project, SignatureCell, SignatureCells,
    StreamChange,
};
use trellis_domain::{CellState, Kernel};

impl Storage {
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
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", placeholders(1 + 2 * i, 2)))
                .collect();
            let sql = format!(
                "SELECT kernel_id, commit_id, error_line, excerpt FROM (
                    SELECT kernel_id, commit_id, error_line, excerpt, ROW_NUMBER() OVER (
                        PARTITION BY kernel_id, commit_id ORDER BY finished_at DESC, id DESC) AS n
                    FROM reports WHERE excerpt IS NOT NULL AND (kernel_id, commit_id) IN (VALUES {})
                 ) newest WHERE n = 1",
                values.join(", ")
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

fn prefixed_cell_columns() -> String {
    CELL_COLUMNS
        .split(", ")
        .map(|c| format!("cells.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
