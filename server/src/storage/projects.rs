//! Projects: their rows (added and described by an administrator), the kernels they have seen, their
//! revision (bumped by every transaction that changes a project, so caches know what is new), and
//! the summaries the front page lists.

use super::rows::{
    column_from, int_bool, kernel_from, project_from, COMMIT_COLUMNS, COMMIT_ORDER, KERNEL_COLUMNS,
};
use super::{now_ms, Result, Storage, StorageError};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use trellis_domain::project::ProjectEdit;
use trellis_domain::view::StoredKernel;
use trellis_domain::view::{CommitHealth, CommitUrl, Project, ProjectSummary};
use trellis_domain::Kernel;

type Tx<'a> = Transaction<'a, Any>;

/// The id of a project that must exist: reports and pushes reach storage only after the
/// runner's scope named it, and projects are never removed.
pub(super) async fn project_id(tx: &mut Tx<'_>, name: &str) -> Result<i64> {
    let row = sqlx::query("SELECT id FROM projects WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    match row {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(StorageError::Corrupt(format!(
            "project {name:?} is not there, though the runner's scope names it"
        ))),
    }
}

/// Starts a new revision of the project for this transaction and returns it; every row the
/// transaction changes is stamped with it.
pub(super) async fn bump_revision(tx: &mut Tx<'_>, project_id: i64) -> Result<i64> {
    Ok(
        sqlx::query("UPDATE projects SET revision = revision + 1 WHERE id = $1 RETURNING revision")
            .bind(project_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?,
    )
}

/// The kernel's id, creating it (stamped with `revision`) the first time a report names it.
pub(super) async fn ensure_kernel(
    tx: &mut Tx<'_>,
    project_id: i64,
    k: &Kernel,
    revision: i64,
) -> Result<i64> {
    Ok(sqlx::query(
        "INSERT INTO kernels (project_id, stream, version, release, arch, variant, first_seen_at, revision)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (project_id, stream, version, release, arch, variant) DO UPDATE SET stream = excluded.stream
         RETURNING id",
    )
    .bind(project_id)
    .bind(&k.stream)
    .bind(&k.version)
    .bind(&k.release)
    .bind(&k.arch)
    .bind(&k.variant)
    .bind(now_ms())
    .bind(revision)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?)
}

impl Storage {
    /// The project's current revision (see `bump_revision`).
    pub(super) async fn revision(&self, project_id: i64) -> Result<i64> {
        Ok(sqlx::query("SELECT revision FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Whether commits were added or reordered since revision `seen`.
    pub(super) async fn history_changed_since(&self, project: &Project, seen: i64) -> Result<bool> {
        let changed =
            sqlx::query("SELECT 1 FROM commits WHERE project_id = $1 AND revision > $2 LIMIT 1")
                .bind(project.id)
                .bind(seen)
                .fetch_optional(&self.pool)
                .await?;
        Ok(changed.is_some())
    }

    /// The streams the project has kernels in.
    pub async fn project_streams(&self, project: &Project) -> Result<Vec<String>> {
        sqlx::query("SELECT DISTINCT stream FROM kernels WHERE project_id = $1 ORDER BY stream")
            .bind(project.id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok(r.try_get(0)?))
            .collect()
    }

    pub(super) async fn project_kernels(&self, project: &Project) -> Result<Vec<StoredKernel>> {
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

    pub async fn project(&self, name: &str) -> Result<Option<Project>> {
        let row = sqlx::query("SELECT id, name, description, demo FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_from).transpose()
    }

    /// Adds a project (`demo` marks the seeded demo); false if one has that name.
    pub async fn add_project(
        &self,
        name: &str,
        settings: &ProjectEdit,
        demo: bool,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let added = sqlx::query(
            "INSERT INTO projects (name, description, demo, created_at) VALUES ($1, '', $2, $3)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(int_bool(demo))
        .bind(now_ms())
        .execute(&self.writes)
        .await?
        .rows_affected();
        drop(_turn);
        if added == 0 {
            return Ok(false);
        }
        self.edit_project(name, settings).await?;
        Ok(true)
    }

    /// Changes what `edit` names; false if there is no such project.
    pub async fn edit_project(&self, name: &str, edit: &ProjectEdit) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let found = sqlx::query("SELECT id FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if let Some(description) = &edit.description {
            sqlx::query("UPDATE projects SET description = $2 WHERE name = $1")
                .bind(name)
                .bind(description)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(git_url) = &edit.git_url {
            sqlx::query("UPDATE projects SET git_url = $2 WHERE name = $1")
                .bind(name)
                .bind(git_url.as_deref())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(commit_url) = &edit.commit_url {
            sqlx::query("UPDATE projects SET commit_url = $2 WHERE name = $1")
                .bind(name)
                .bind(commit_url.as_ref().map(CommitUrl::template))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(found)
    }

    /// Where the project's commits are browsed upstream, if it says.
    pub(super) async fn commit_url(&self, project: &Project) -> Result<Option<CommitUrl>> {
        let template: Option<String> = sqlx::query("SELECT commit_url FROM projects WHERE id = $1")
            .bind(project.id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        // Stored only after `CommitUrl::parse`; one that no longer parses is left unlinked.
        Ok(template.and_then(|t| CommitUrl::parse(&t).ok()))
    }

    /// Whether the labelled demo project has been seeded.
    pub async fn has_demo(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM projects WHERE demo = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(n > 0)
    }

    /// Every project, real ones first.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        sqlx::query("SELECT id, name, description, demo FROM projects ORDER BY demo, name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(project_from)
            .collect()
    }

    pub async fn project_summaries(&self) -> Result<Vec<ProjectSummary>> {
        let projects = self.projects().await?;
        let mut out = Vec::with_capacity(projects.len());
        for project in projects {
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
            let trust = self.trust(&project).await?;
            out.push(ProjectSummary {
                trust,
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
        let cells = self.commit_cells(commit.id).await?;
        Ok(Some(CommitHealth::of(
            commit,
            cells.iter().map(|c| &c.summary),
        )))
    }
}
