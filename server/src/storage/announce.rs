//! Announcing breakages: each computed set is matched to the breakages already announced
//! ([`trellis_domain::events::identify`]), new and fixed ones become events, and every event's
//! mails and webhooks enter the outbox in the same transaction.
//!
//! Announcing is serialised across processes by the row of `event_clock`, which also hands out
//! event ids: they are committed in increasing order, so a reader following `after=ID` never
//! misses one. A computation older than what was already announced is dropped rather than
//! announced over newer news.

use super::events::parse_description;
use super::rows::read_bool;
use super::{now_ms, Result, Storage};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;
use trellis_domain::breakage::{Breakage, BreakageFilter};
use trellis_domain::events::{describes, description, identify, EventKind, Tracked};
use trellis_domain::view::{BreakageDetail, Project};

/// The announced breakages of one project, as last read or written by this process.
#[derive(Default)]
pub(super) struct Announced {
    tracked: Vec<Tracked>,
    /// What each announced breakage says (without its excerpt: kept in the database only).
    described: HashMap<i64, Breakage>,
}

/// One change to write.
enum Change {
    Open { index: usize },
    Update { id: i64, index: usize, fixed: bool },
    Vanish { id: i64 },
}

impl Storage {
    /// Announces the computed breakages of `project` as of `revision` and returns them with
    /// their lifelong ids.
    pub(super) async fn announce(
        &self,
        project: &Project,
        revision: i64,
        mut computed: Vec<Breakage>,
    ) -> Result<Vec<Breakage>> {
        let known = self
            .announced
            .lock()
            .expect("announced lock")
            .remove(&project.id);
        let known = match known {
            Some(k) => k,
            None => self.read_announced(project.id).await?,
        };
        let known = if self.changes(&known, &computed).is_empty() {
            known
        } else {
            match self
                .write_announcement(project, revision, &computed)
                .await?
            {
                Some(fresh) => fresh,
                // A newer computation was announced meanwhile (by another process).
                None => self.read_announced(project.id).await?,
            }
        };
        let found = identify(&known.tracked, &computed);
        for (b, id) in computed.iter_mut().zip(found.continues) {
            if let Some(id) = id {
                b.id = id.to_string();
            }
        }
        self.announced
            .lock()
            .expect("announced lock")
            .insert(project.id, known);
        Ok(computed)
    }

    fn changes(&self, known: &Announced, computed: &[Breakage]) -> Vec<Change> {
        let found = identify(&known.tracked, computed);
        let mut changes = Vec::new();
        for (index, (b, id)) in computed.iter().zip(found.continues).enumerate() {
            match id {
                None => changes.push(Change::Open { index }),
                Some(id) => {
                    let was_open = known.tracked.iter().any(|t| t.id == id && t.open);
                    let fixed = was_open && !b.open;
                    let same = known.described.get(&id).is_some_and(|a| describes(a, b));
                    if fixed || !same {
                        changes.push(Change::Update { id, index, fixed });
                    }
                }
            }
        }
        changes.extend(found.vanished.into_iter().map(|id| Change::Vanish { id }));
        changes
    }

    async fn read_announced(&self, project_id: i64) -> Result<Announced> {
        read_announced(&self.pool, project_id).await
    }

    /// Writes the events, descriptions and outbox rows of one announcement in one transaction;
    /// `None` if a newer computation was announced first.
    async fn write_announcement(
        &self,
        project: &Project,
        revision: i64,
        computed: &[Breakage],
    ) -> Result<Option<Announced>> {
        let _turn = self.write_turn().await;
        let _writing = self.watchdog.writing();
        let mut tx = self.writes.begin().await?;
        // Taken first: every announcer waits here, so the rest reads a settled state.
        let last_event: i64 =
            sqlx::query("UPDATE event_clock SET last_event_id = last_event_id WHERE id = 1 RETURNING last_event_id")
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        let announced: i64 = sqlx::query("SELECT announced_revision FROM projects WHERE id = $1")
            .bind(project.id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if announced > revision {
            return Ok(None);
        }
        let first_announcement = announced < 0;
        let known = read_announced(&mut *tx, project.id).await?;
        let mut changes = self.changes(&known, computed);
        // New breakages in the order they opened (fixed ones first when results tell no
        // earlier), so that history reads in order.
        changes.sort_by_key(|c| match c {
            Change::Open { index } => (0, computed[*index].opened_at, computed[*index].open),
            _ => (1, None, false),
        });
        let now = now_ms();
        // Excerpts of what is new or changed, for feeds and mails.
        let touched: Vec<usize> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Open { index } | Change::Update { index, .. } => Some(*index),
                Change::Vanish { .. } => None,
            })
            .collect();
        let details = self
            .with_excerpts(touched.iter().map(|&i| &computed[i]))
            .await?;
        let details: HashMap<usize, BreakageDetail> = touched.into_iter().zip(details).collect();
        let subscriptions = self.subscriptions_of(&mut tx, project.id).await?;
        let mut next_event = last_event;
        let mut events: Vec<(i64, i64, EventKind, i64, Breakage)> = Vec::new();
        for change in &changes {
            match *change {
                Change::Open { index } => {
                    let b = &computed[index];
                    let id: i64 = sqlx::query(
                        "INSERT INTO breakages (project_id, stream, opened_kernel, opened_commit, first_bad_kernel,
                             first_bad_commit, open, description, updated_at)
                         VALUES ($1, $2, $3, $4, $3, $4, $5, '', $6) RETURNING id",
                    )
                    .bind(project.id)
                    .bind(&b.stream)
                    .bind(&b.first_bad_kernel)
                    .bind(&b.first_bad_commit)
                    .bind(i64::from(b.open))
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                    let detail = description(details[&index].clone(), id);
                    write_description(&mut tx, id, &detail, now).await?;
                    // Events are dated when Trellis sees them, except history: a breakage seen
                    // already fixed (results posted after the fact), or found at the project's
                    // first announcement (the first start on an existing database), is dated by
                    // its results (a fix never before its opening); nobody is mailed about one
                    // seen fixed.
                    let from_results = |t: Option<i64>| t.unwrap_or(now).min(now);
                    let (opened_at, fixed_at) = if b.open {
                        let at = if first_announcement {
                            from_results(b.opened_at)
                        } else {
                            now
                        };
                        (at, None)
                    } else {
                        let opened_at = from_results(b.opened_at);
                        (opened_at, Some(from_results(b.fixed_at).max(opened_at)))
                    };
                    next_event += 1;
                    events.push((
                        next_event,
                        id,
                        EventKind::Opened,
                        opened_at,
                        detail.breakage.clone(),
                    ));
                    if let Some(at) = fixed_at {
                        next_event += 1;
                        events.push((next_event, id, EventKind::Fixed, at, detail.breakage));
                    }
                }
                Change::Update { id, index, fixed } => {
                    let detail = description(details[&index].clone(), id);
                    write_description(&mut tx, id, &detail, now).await?;
                    if fixed {
                        next_event += 1;
                        events.push((next_event, id, EventKind::Fixed, now, detail.breakage));
                    }
                }
                Change::Vanish { id } => {
                    let stored: String =
                        sqlx::query("SELECT description FROM breakages WHERE id = $1")
                            .bind(id)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get(0)?;
                    let mut detail = parse_description(&stored)?;
                    detail.breakage.open = false;
                    write_description(&mut tx, id, &detail, now).await?;
                    next_event += 1;
                    events.push((next_event, id, EventKind::Fixed, now, detail.breakage));
                }
            }
        }
        let settle = self.settle_ms();
        for (event_id, breakage_id, kind, at, b) in &events {
            sqlx::query(
                "INSERT INTO breakage_events (id, project_id, breakage_id, kind, at, uuid) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(event_id)
            .bind(project.id)
            .bind(breakage_id)
            .bind(kind.as_str())
            .bind(at)
            .bind(new_uuid())
            .execute(&mut *tx)
            .await?;
            match kind {
                // A breakage first seen fixed is history: nobody is told about it.
                EventKind::Opened if !b.open => {}
                // Settling: a burst of failing reports becomes one mail naming every kernel.
                EventKind::Opened => {
                    for s in subscriptions.iter().filter(|s| s.filter.keeps(b)) {
                        sqlx::query(
                            "INSERT INTO outbox (subscription_id, event_id, due_at) VALUES ($1, $2, $3)",
                        )
                        .bind(s.id)
                        .bind(event_id)
                        .bind(now + settle)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                // Whoever was told it opened is told it is fixed, and nobody else.
                EventKind::Fixed => {
                    sqlx::query(
                        "INSERT INTO outbox (subscription_id, event_id, due_at)
                         SELECT o.subscription_id, $2, $3 FROM outbox o JOIN breakage_events e ON e.id = o.event_id
                         WHERE e.breakage_id = $1 AND e.kind = 'opened'",
                    )
                    .bind(breakage_id)
                    .bind(event_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        sqlx::query("UPDATE event_clock SET last_event_id = $1 WHERE id = 1")
            .bind(next_event)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE projects SET announced_revision = $2 WHERE id = $1")
            .bind(project.id)
            .bind(revision)
            .execute(&mut *tx)
            .await?;
        let fresh = read_announced(&mut *tx, project.id).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.outbox_wake.notify_one();
            for (_, id, kind, _, b) in &events {
                tracing::info!(
                    "{}: breakage {id} {} ({} on {})",
                    project.name,
                    kind.as_str(),
                    b.attribution.as_str(),
                    b.stream
                );
            }
        }
        Ok(Some(fresh))
    }
}

/// A subscription as announcing needs it: who, and what it follows.
pub(super) struct Following {
    pub id: i64,
    pub filter: BreakageFilter,
}

impl Storage {
    /// The confirmed subscriptions of the project, with what they follow.
    pub(super) async fn subscriptions_of(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        project_id: i64,
    ) -> Result<Vec<Following>> {
        let rows = sqlx::query(
            "SELECT id, stream, attribution FROM subscriptions
             WHERE confirmed = 1 AND (project_id IS NULL OR project_id = $1)",
        )
        .bind(project_id)
        .fetch_all(&mut **tx)
        .await?;
        rows.iter()
            .map(|r| {
                let attribution: Option<String> = r.try_get(2)?;
                Ok(Following {
                    id: r.try_get(0)?,
                    filter: BreakageFilter {
                        stream: r.try_get(1)?,
                        attribution: attribution
                            .as_deref()
                            .and_then(trellis_domain::breakage::Attribution::parse),
                        open: None,
                    },
                })
            })
            .collect()
    }
}

async fn write_description(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    detail: &BreakageDetail,
    now: i64,
) -> Result<()> {
    let b = &detail.breakage;
    let json = serde_json::to_string(detail).expect("a breakage serialises");
    sqlx::query(
        "UPDATE breakages SET first_bad_kernel = $2, first_bad_commit = $3, open = $4, description = $5,
             updated_at = $6 WHERE id = $1",
    )
    .bind(id)
    .bind(&b.first_bad_kernel)
    .bind(&b.first_bad_commit)
    .bind(i64::from(b.open))
    .bind(json)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn read_announced<'e, E>(db: E, project_id: i64) -> Result<Announced>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT id, stream, opened_kernel, opened_commit, first_bad_kernel, first_bad_commit, open, description
         FROM breakages WHERE project_id = $1 ORDER BY id",
    )
    .bind(project_id)
    .fetch_all(db)
    .await?;
    let mut known = Announced::default();
    for r in &rows {
        let id: i64 = r.try_get(0)?;
        known.tracked.push(Tracked {
            id,
            stream: r.try_get(1)?,
            opened_cell: (r.try_get(2)?, r.try_get(3)?),
            first_bad: (r.try_get(4)?, r.try_get(5)?),
            open: read_bool(r, 6)?,
        });
        known
            .described
            .insert(id, parse_description(&r.try_get::<String, _>(7)?)?.breakage);
    }
    Ok(known)
}

/// A random (version 4) UUID: feed entry ids and Message-IDs that never repeat.
pub(super) fn new_uuid() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Shared so the announcer's in-memory state can be kept per project.
pub(super) type AnnouncedByProject = Arc<std::sync::Mutex<HashMap<i64, Announced>>>;
