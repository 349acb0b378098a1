//! Health events: the CI's own problems (see `trellis_domain::health`), raised once and cleared
//! once. Written like breakage events: ids from `event_clock` under its row lock, and the mails
//! and webhooks they cause enter the outbox in the same transaction.

use super::announce::new_uuid;
use super::{now_ms, Result, Storage, StorageError};
use sqlx::any::AnyRow;
use sqlx::Row;
use trellis_domain::coverage::HealthProblem;
use trellis_domain::health::{diff, HealthEvent, HealthKind};
use trellis_domain::view::Project;

const EVENT_COLUMNS: &str = "e.id, e.kind, p.name, e.at, e.uuid, i.raised_at, i.problem";

fn event_from(row: &AnyRow) -> Result<HealthEvent> {
    let kind: String = row.try_get(1)?;
    let problem: String = row.try_get(6)?;
    Ok(HealthEvent {
        id: row.try_get(0)?,
        kind: HealthKind::parse(&kind)
            .ok_or_else(|| StorageError::Corrupt(format!("health event kind {kind:?}")))?,
        project: row.try_get(2)?,
        at: row.try_get(3)?,
        uuid: row.try_get(4)?,
        raised_at: row.try_get(5)?,
        problem: serde_json::from_str(&problem)
            .map_err(|e| StorageError::Corrupt(format!("health problem: {e}")))?,
    })
}

/// The project's raised problems not cleared yet: (issue id, problem key).
async fn open_issues<'e, E>(db: E, project_id: i64) -> Result<Vec<(i64, String)>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("SELECT id, key FROM health_issues WHERE project_id = $1 AND cleared_at IS NULL")
        .bind(project_id)
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

impl Storage {
    /// Records the project's problems as they are now: new ones are raised, gone ones cleared.
    /// Returns how many events that made.
    pub async fn record_health(&self, project: &Project, now: &[HealthProblem]) -> Result<usize> {
        let open = open_issues(&self.pool, project.id).await?;
        let (raised, cleared) = diff(&open, now);
        if raised.is_empty() && cleared.is_empty() {
            return Ok(0);
        }
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let mut next: i64 = sqlx::query(
            "UPDATE event_clock SET last_event_id = last_event_id WHERE id = 1 RETURNING last_event_id",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        // Read again under the lock: another process may have recorded the same change.
        let open = open_issues(&mut *tx, project.id).await?;
        let (raised, cleared) = diff(&open, now);
        let at = now_ms();
        let followers = self.subscriptions_of(&mut tx, project.id).await?;
        let mut events = 0;
        for problem in raised {
            let issue: i64 = sqlx::query(
                "INSERT INTO health_issues (project_id, key, problem, raised_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(project.id)
            .bind(problem.key())
            .bind(serde_json::to_string(problem).expect("a problem serialises"))
            .bind(at)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            next += 1;
            self.write_health_event(&mut tx, project, issue, HealthKind::Raised, next, at)
                .await?;
            for s in followers.iter().filter(|s| problem.passes(&s.filter)) {
                sqlx::query(
                    "INSERT INTO outbox (subscription_id, health_event_id, due_at) VALUES ($1, $2, $3)",
                )
                .bind(s.id)
                .bind(next)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            events += 1;
        }
        for issue in cleared {
            sqlx::query("UPDATE health_issues SET cleared_at = $2 WHERE id = $1")
                .bind(issue)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            next += 1;
            self.write_health_event(&mut tx, project, issue, HealthKind::Cleared, next, at)
                .await?;
            // Whoever was told it was raised is told it cleared, and nobody else.
            sqlx::query(
                "INSERT INTO outbox (subscription_id, health_event_id, due_at)
                 SELECT o.subscription_id, $2, $3 FROM outbox o JOIN health_events e ON e.id = o.health_event_id
                 WHERE e.issue_id = $1 AND e.kind = 'raised'",
            )
            .bind(issue)
            .bind(next)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            events += 1;
        }
        sqlx::query("UPDATE event_clock SET last_event_id = $1 WHERE id = 1")
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(events)
    }

    async fn write_health_event(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project: &Project,
        issue: i64,
        kind: HealthKind,
        id: i64,
        at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO health_events (id, project_id, issue_id, kind, at, uuid) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(project.id)
        .bind(issue)
        .bind(kind.as_str())
        .bind(at)
        .bind(new_uuid())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Health events of one project (or all), newest first, at most `limit`.
    pub async fn health_events(
        &self,
        project: Option<&Project>,
        limit: i64,
    ) -> Result<Vec<HealthEvent>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM health_events e JOIN health_issues i ON i.id = e.issue_id
             JOIN projects p ON p.id = e.project_id
             WHERE $1 = 0 OR e.project_id = $1 ORDER BY e.id DESC LIMIT $2"
        )))
        .bind(project.map_or(0, |p| p.id))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(event_from)
        .collect()
    }

    pub(super) async fn health_event(&self, id: i64) -> Result<Option<HealthEvent>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM health_events e JOIN health_issues i ON i.id = e.issue_id
             JOIN projects p ON p.id = e.project_id WHERE e.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(event_from)
        .transpose()
    }
}
