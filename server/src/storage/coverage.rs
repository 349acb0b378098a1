//! What the coverage page reads: each kernel's results at the head commit (and since a given
//! commit), the project's runners, leases and kernel sources. The figures and the health
//! problems are the domain's (`coverage`).

use super::rows::{column_from, kernel_from, COMMIT_COLUMNS, COMMIT_ORDER};
use super::{now_ms, Result, Storage};
use sqlx::{AssertSqlSafe, Row};
use trellis_domain::coverage::{
    problems, streams_of, Coverage, KernelFacts, LeaseView, RunnerHealth, SourceHealth,
    StreamCoverage, Thresholds,
};
use trellis_domain::view::{Project, StoredCommit};

impl Storage {
    /// The project's coverage; with `since` (a sha the project knows), also the kernels without
    /// a result on that commit or a newer one. `None` when `since` is not a commit of it.
    pub async fn coverage(
        &self,
        project: &Project,
        since: Option<&str>,
        t: Thresholds,
    ) -> Result<Option<Coverage>> {
        let now = now_ms();
        let head = self.head_commit(project).await?;
        let since = match since {
            Some(sha) => match self.commit_by_sha(project, sha).await? {
                Some(c) => Some(c),
                None => return Ok(None),
            },
            None => None,
        };
        let (head_id, head_known_at) = match &head {
            Some((c, known)) => (c.id, *known),
            None => (0, None),
        };
        let since_generation = match &since {
            Some((c, _)) => self.generation(c.id).await?,
            None => i64::MIN,
        };
        let kernels = self
            .kernel_facts(project, head_id, since_generation)
            .await?;
        let (streams, never_tested, untested_since) = streams_of(&kernels);
        let runners = self
            .list_runners()
            .await?
            .into_iter()
            .filter(|r| r.scope.allows_project(&project.name))
            .map(|r| RunnerHealth {
                // A runner that never called counts from its creation.
                stale: now - r.last_contact_at.unwrap_or(r.created_at) > t.runner_stale_ms,
                error_percent: (r.reports_total > 0)
                    .then(|| r.reports_error * 100 / r.reports_total),
                scope: r.scope.describe(),
                name: r.name,
                enabled: r.enabled,
                last_contact_at: r.last_contact_at,
                last_report_at: r.last_seen_at,
                reports: r.reports_total,
            })
            .collect();
        let leases = self
            .open_leases(project)
            .await?
            .into_iter()
            .map(|l| LeaseView {
                id: l.id,
                runner: l.runner,
                stream: l.kernel.stream.clone(),
                uname: l.kernel.uname(),
                sha: l.sha,
                reason: l.reason,
                leased_at: l.leased_at,
                expires_at: l.expires_at,
            })
            .collect();
        let sources = self
            .kernel_sources(Some(&project.name))
            .await?
            .into_iter()
            .map(SourceHealth::from)
            .collect();
        let mut coverage = Coverage {
            project: project.clone(),
            head: head.map(|(c, _)| c),
            streams,
            never_tested,
            untested_since: if since.is_some() {
                untested_since
            } else {
                vec![]
            },
            since: since.map(|(c, _)| c),
            runners,
            leases,
            sources,
            problems: vec![],
            now,
        };
        coverage.problems = problems(&coverage, &kernels, head_known_at, t);
        Ok(Some(coverage))
    }

    /// Each stream's trust figure, for the front page.
    pub(super) async fn trust(&self, project: &Project) -> Result<Vec<StreamCoverage>> {
        let head = self.head_commit(project).await?.map_or(0, |(c, _)| c.id);
        let kernels = self.kernel_facts(project, head, i64::MIN).await?;
        Ok(streams_of(&kernels).0)
    }

    /// Each kernel's results at the head commit, since a generation, and at all.
    async fn kernel_facts(
        &self,
        project: &Project,
        head_id: i64,
        since_generation: i64,
    ) -> Result<Vec<KernelFacts>> {
        // The count since a commit only when one is asked for: the front page's figures need
        // none, and it is the costly part.
        let since = if since_generation == i64::MIN {
            "0"
        } else {
            "(SELECT COUNT(*) FROM cells c JOIN commits m ON m.id = c.commit_id
              WHERE c.kernel_id = k.id AND m.generation >= $3)"
        };
        let query = format!(
            "SELECT k.id, k.stream, k.version, k.release, k.arch, k.variant, k.first_seen_at,
                (SELECT CAST(MAX(c.latest_finished_at) AS BIGINT) FROM cells c WHERE c.kernel_id = k.id) AS newest,
                (SELECT COUNT(*) FROM cells c WHERE c.kernel_id = k.id AND c.commit_id = $2) AS at_head,
                CAST({since} AS BIGINT) AS since
             FROM kernels k WHERE k.project_id = $1"
        );
        let mut query = sqlx::query(AssertSqlSafe(query))
            .bind(project.id)
            .bind(head_id);
        if since_generation != i64::MIN {
            query = query.bind(since_generation);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut kernels = Vec::with_capacity(rows.len());
        for row in &rows {
            let newest: Option<i64> = row.try_get("newest")?;
            kernels.push(KernelFacts {
                kernel: kernel_from(row)?.kernel,
                first_seen_at: row.try_get("first_seen_at")?,
                tested_at_head: row.try_get::<i64, _>("at_head")? > 0,
                tested_since: row.try_get::<i64, _>("since")? > 0,
                ever_tested: newest.is_some(),
                newest_result_at: newest,
            });
        }
        Ok(kernels)
    }

    /// The newest commit in git order, and when Trellis first knew it.
    async fn head_commit(&self, project: &Project) -> Result<Option<(StoredCommit, Option<i64>)>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS}, known_at FROM commits WHERE project_id = $1 {COMMIT_ORDER} LIMIT 1"
        )))
        .bind(project.id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((column_from(&r)?, r.try_get("known_at")?)))
            .transpose()
    }

    async fn commit_by_sha(
        &self,
        project: &Project,
        sha: &str,
    ) -> Result<Option<(StoredCommit, Option<i64>)>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COMMIT_COLUMNS}, known_at FROM commits WHERE project_id = $1 AND sha = $2"
        )))
        .bind(project.id)
        .bind(sha)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((column_from(&r)?, r.try_get("known_at")?)))
            .transpose()
    }

    async fn generation(&self, commit_id: i64) -> Result<i64> {
        Ok(sqlx::query("SELECT generation FROM commits WHERE id = $1")
            .bind(commit_id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }
}
