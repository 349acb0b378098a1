//! Work leases: which runner builds which cell now. The choice of cells is the domain's
//! (`schedule::candidates`); here they are taken. A cell is unique in `leases`, so however many
//! runners ask at once, on either backend, no cell is leased twice: the loser of a race finds
//! the row there and takes the next candidate. A lease past its expiry is removed by the next
//! lease call of the project and offered again; a report for the cell completes it.

use super::projects::{bump_revision, ensure_kernel};
use super::rows::{kernel_from, status, KERNEL_COLUMNS};
use super::runners::touch_runner;
use super::{now_ms, placeholders, Result, Storage, StorageError};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use std::collections::HashSet;
use trellis_domain::breakage::Breakage;
use trellis_domain::schedule::{candidates, Board, Candidate, Capability, CellResults, Reason};
use trellis_domain::view::Project;
use trellis_domain::Kernel;

/// A leased cell, as the runner is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub kernel: Kernel,
    /// The kernel-devel package's URL, when a repository told where it is.
    pub package_url: Option<String>,
    pub sha: String,
    pub subject: Option<String>,
    pub reason: Reason,
    pub expires_at: i64,
}

/// A lease still running, for the coverage page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenLease {
    pub id: i64,
    pub runner: String,
    pub kernel: Kernel,
    pub sha: String,
    pub reason: Reason,
    pub leased_at: i64,
    pub expires_at: i64,
}

/// Removes the leases of the cells these new reports landed in.
pub(super) async fn complete_leases(tx: &mut Transaction<'_, Any>, reports: &[i64]) -> Result<()> {
    for chunk in reports.chunks(500) {
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM leases WHERE EXISTS (SELECT 1 FROM reports r WHERE r.id IN ({})
             AND r.kernel_id = leases.kernel_id AND r.commit_id = leases.commit_id)",
            placeholders(1, chunk.len())
        )))
        .bind_all(chunk)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Binds a list of ids in order.
trait BindAll<'q> {
    fn bind_all(self, ids: &'q [i64]) -> Self;
}

impl<'q> BindAll<'q> for sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    fn bind_all(self, ids: &'q [i64]) -> Self {
        ids.iter().fold(self, |q, id| q.bind(*id))
    }
}

impl Storage {
    /// Records the kernels a runner says it has, so they are known kernels of the project.
    pub async fn announce_kernels(&self, project: &Project, kernels: &[Kernel]) -> Result<()> {
        let known: HashSet<Kernel> = self
            .project_kernels(project)
            .await?
            .into_iter()
            .map(|k| k.kernel)
            .collect();
        let new: Vec<&Kernel> = kernels.iter().filter(|k| !known.contains(*k)).collect();
        if new.is_empty() {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let revision = bump_revision(&mut tx, project.id).await?;
        for k in new {
            ensure_kernel(&mut tx, project.id, k, revision).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Leases up to `max_jobs` of the most useful cells that `runner` can build and nobody is
    /// working on, for `lease_ms`.
    pub async fn lease(
        &self,
        runner_id: i64,
        project: &Project,
        can: &Capability,
        max_jobs: usize,
        lease_ms: i64,
    ) -> Result<Vec<Lease>> {
        // Breakages first: computing them may announce, which takes the write turn.
        let open_breakages = self.open_breakages(project).await?;
        // The rest in this process's write turn (SQLite): a report committing meanwhile would
        // leave the board naming its cell as untested after its lease is gone.
        let _turn = self.write_turn().await;
        let board = self.board(project, open_breakages).await?;
        let now = now_ms();
        // Concurrent leases on PostgreSQL can deadlock on the cells' unique index; the loser's
        // transaction is rolled back whole, so it simply runs again.
        let mut attempt = 0;
        let leased = loop {
            match self
                .take_cells(runner_id, project, can, &board, max_jobs, now, lease_ms)
                .await
            {
                Err(StorageError::Database(sqlx::Error::Database(e)))
                    if attempt < 3 && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
                {
                    attempt += 1;
                }
                taken => break taken?,
            }
        };
        drop(_turn);

        let mut out = Vec::with_capacity(leased.len());
        for (id, c) in leased {
            let row = sqlx::query(
                "SELECT k.stream, k.version, k.release, k.arch, k.variant, k.id,
                        k.package_location AS package_url, c.sha, c.subject
                 FROM kernels k CROSS JOIN commits c WHERE k.id = $1 AND c.id = $2",
            )
            .bind(c.kernel_id)
            .bind(c.commit_id)
            .fetch_one(&self.pool)
            .await?;
            out.push(Lease {
                id,
                kernel: kernel_from(&row)?.kernel,
                package_url: row.try_get("package_url")?,
                sha: row.try_get("sha")?,
                subject: row.try_get("subject")?,
                reason: c.reason,
                expires_at: now + lease_ms,
            });
        }
        Ok(out)
    }

    /// One attempt at taking up to `max_jobs` cells, in one transaction.
    #[allow(clippy::too_many_arguments)]
    async fn take_cells(
        &self,
        runner_id: i64,
        project: &Project,
        can: &Capability,
        board: &Board,
        max_jobs: usize,
        now: i64,
        lease_ms: i64,
    ) -> Result<Vec<(i64, Candidate)>> {
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM leases WHERE project_id = $1 AND expires_at < $2")
            .bind(project.id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let held: HashSet<(i64, i64)> =
            sqlx::query("SELECT kernel_id, commit_id FROM leases WHERE project_id = $1")
                .bind(project.id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
        let mut leased = Vec::new();
        for c in candidates(board, runner_id, |k| can.can_build(k))
            .filter(|c| !held.contains(&(c.kernel_id, c.commit_id)))
        {
            if leased.len() == max_jobs {
                break;
            }
            // A runner racing this one may have just taken the cell, or a report just filled
            // it (PostgreSQL reads the board without a turn): then try the next.
            let row = sqlx::query(
                "INSERT INTO leases (project_id, kernel_id, commit_id, runner_id, reason, leased_at, expires_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS (
                     SELECT 1 FROM cells WHERE kernel_id = $2 AND commit_id = $3
                     AND n_pass + n_fail + n_error + n_skip > $8)
                 ON CONFLICT (kernel_id, commit_id) DO NOTHING RETURNING id",
            )
            .bind(project.id)
            .bind(c.kernel_id)
            .bind(c.commit_id)
            .bind(runner_id)
            .bind(c.reason.as_str())
            .bind(now)
            .bind(now + lease_ms)
            // A confirmation is for a cell with one result; any other lease for an empty one.
            .bind(i64::from(c.reason == Reason::Confirm))
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(row) = row {
                leased.push((row.try_get::<i64, _>(0)?, c));
            }
        }
        touch_runner(&mut tx, runner_id).await?;
        tx.commit().await?;
        Ok(leased)
    }

    /// Extends a runner's lease; `None` when it is no longer the runner's (completed, released,
    /// or expired and taken by another).
    pub async fn heartbeat(
        &self,
        runner_id: i64,
        lease_id: i64,
        lease_ms: i64,
    ) -> Result<Option<i64>> {
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let expires = now_ms() + lease_ms;
        let done =
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE id = $2 AND runner_id = $3")
                .bind(expires)
                .bind(lease_id)
                .bind(runner_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        touch_runner(&mut tx, runner_id).await?;
        tx.commit().await?;
        Ok((done == 1).then_some(expires))
    }

    /// Gives a lease back without a report; false if the runner holds no such lease.
    pub async fn release(&self, runner_id: i64, lease_id: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("DELETE FROM leases WHERE id = $1 AND runner_id = $2")
            .bind(lease_id)
            .bind(runner_id)
            .execute(&self.writes)
            .await?
            .rows_affected();
        Ok(done == 1)
    }

    /// The project's leases that have not expired, oldest first.
    pub async fn open_leases(&self, project: &Project) -> Result<Vec<OpenLease>> {
        let rows = sqlx::query(
            "SELECT l.id AS lease_id, r.name AS runner, l.reason, l.leased_at, l.expires_at, c.sha,
                    k.id, k.stream, k.version, k.release, k.arch, k.variant
             FROM leases l JOIN runners r ON r.id = l.runner_id JOIN kernels k ON k.id = l.kernel_id
             JOIN commits c ON c.id = l.commit_id
             WHERE l.project_id = $1 AND l.expires_at >= $2 ORDER BY l.leased_at, l.id",
        )
        .bind(project.id)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let reason: String = row.try_get("reason")?;
                Ok(OpenLease {
                    id: row.try_get("lease_id")?,
                    runner: row.try_get("runner")?,
                    kernel: kernel_from(row)?.kernel,
                    sha: row.try_get("sha")?,
                    reason: Reason::parse(&reason).unwrap_or(Reason::Backfill),
                    leased_at: row.try_get("leased_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    async fn open_breakages(&self, project: &Project) -> Result<Vec<Breakage>> {
        Ok(self
            .breakages(project)
            .await?
            .iter()
            .filter(|b| b.open)
            .cloned()
            .collect())
    }

    /// What the choice of cells depends on: kernels, commits in git order, results, and the
    /// open breakages.
    async fn board(&self, project: &Project, open_breakages: Vec<Breakage>) -> Result<Board> {
        let kernels = sqlx::query(AssertSqlSafe(format!(
            "SELECT {KERNEL_COLUMNS} FROM kernels WHERE project_id = $1"
        )))
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| kernel_from(row).map(|k| (k.id, k.kernel)))
        .collect::<Result<Vec<_>>>()?;
        let commits = sqlx::query(
            "SELECT id, sha FROM commits WHERE project_id = $1
             ORDER BY generation DESC, committed_at DESC, id DESC",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<_>>>()?;
        let rows = sqlx::query(
            "SELECT cells.kernel_id, cells.commit_id, cells.latest_status,
                    cells.n_pass + cells.n_fail + cells.n_error + cells.n_skip AS reports,
                    CASE WHEN cells.n_pass + cells.n_fail + cells.n_error + cells.n_skip = 1
                         THEN r.runner_id END AS only_runner
             FROM cells JOIN reports r ON r.id = cells.latest_report_id
             WHERE cells.project_id = $1",
        )
        .bind(project.id)
        .fetch_all(&self.pool)
        .await?;
        let mut cells = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            cells.insert(
                (row.try_get(0)?, row.try_get(1)?),
                CellResults {
                    latest: status(&row.try_get::<String, _>("latest_status")?)?,
                    reports: row.try_get("reports")?,
                    only_runner: row.try_get("only_runner")?,
                },
            );
        }
        Ok(Board {
            kernels,
            commits,
            cells,
            open_breakages,
        })
    }
}
