//! The event log: breakage events as the events API, feeds and the outbox read them, with the
//! breakage each one is about as last described (see `announce`, which writes them).

use super::{Result, Storage, StorageError};
use sqlx::{AssertSqlSafe, Row};
use trellis_domain::events::{BreakageEvent, EventKind};
use trellis_domain::view::{BreakageDetail, Project};

impl Storage {
    /// Events of one project (or every project), oldest first, after the event `after`.
    pub async fn events(
        &self,
        project: Option<&Project>,
        after: i64,
        limit: i64,
    ) -> Result<Vec<BreakageEvent>> {
        let filter = if project.is_some() {
            "AND e.project_id = $3"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM breakage_events e JOIN breakages b ON b.id = e.breakage_id
             JOIN projects p ON p.id = e.project_id
             WHERE e.id > $1 {filter} ORDER BY e.id LIMIT $2"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(after).bind(limit);
        if let Some(p) = project {
            q = q.bind(p.id);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    /// The newest events of one project (or every project), newest first.
    pub async fn recent_events(
        &self,
        project: Option<&Project>,
        limit: i64,
    ) -> Result<Vec<BreakageEvent>> {
        let filter = if project.is_some() {
            "WHERE e.project_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM breakage_events e JOIN breakages b ON b.id = e.breakage_id
             JOIN projects p ON p.id = e.project_id
             {filter} ORDER BY e.id DESC LIMIT $1"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(limit);
        if let Some(p) = project {
            q = q.bind(p.id);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(event_from)
            .collect()
    }

    /// One event, for the outbox.
    pub(super) async fn event(&self, id: i64) -> Result<Option<BreakageEvent>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM breakage_events e JOIN breakages b ON b.id = e.breakage_id
             JOIN projects p ON p.id = e.project_id WHERE e.id = $1"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(event_from)
            .transpose()
    }
}

const EVENT_COLUMNS: &str =
    "e.id, e.kind, p.name, e.at, CASE WHEN b.updated_at > e.at THEN b.updated_at ELSE e.at END, e.uuid, b.description";

fn event_from(r: &sqlx::any::AnyRow) -> Result<BreakageEvent> {
    let kind: String = r.try_get(1)?;
    let description: String = r.try_get(6)?;
    Ok(BreakageEvent {
        id: r.try_get(0)?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StorageError::Corrupt(format!("event kind {kind:?}")))?,
        project: r.try_get(2)?,
        at: r.try_get(3)?,
        updated_at: r.try_get(4)?,
        uuid: r.try_get(5)?,
        breakage: parse_description(&description)?,
    })
}

pub(super) fn parse_description(json: &str) -> Result<BreakageDetail> {
    serde_json::from_str(json)
        .map_err(|e| StorageError::Corrupt(format!("breakage description: {e}")))
}
