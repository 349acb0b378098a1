//! The outbox: mails and webhooks waiting to be delivered. Rows are written with their event
//! (see `events`), so news is never lost between deciding and sending.
//!
//! Delivery is at least once. A sender claims a row by pushing its `due_at` a lease ahead
//! before sending, and marks it sent afterwards: if the process dies in between, the row falls
//! due again when the lease ends and is sent again. That is the only way a row is sent twice,
//! and the repeat carries the same Message-ID, so mail clients show it once.

use super::subscriptions::Subscription;
use super::{now_ms, Result, Storage};
use sqlx::Row;
use trellis_domain::events::BreakageEvent;
use trellis_domain::health::HealthEvent;

/// How long a claimed row is held by its sender before it falls due again.
const CLAIM_MS: i64 = 2 * 60 * 1000;

/// One row to deliver, with what it needs.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub attempts: i64,
    pub subscription: Subscription,
    /// `None` for a subscription's confirmation mail and for health events.
    pub event: Option<BreakageEvent>,
    /// A health event (the CI's own trouble) instead of a breakage event.
    pub health: Option<HealthEvent>,
    /// For a `fixed` (or health `cleared`) event: the uuid of the `opened` (`raised`) event it
    /// answers.
    pub opened_uuid: Option<String>,
}

/// What the outbox holds, for `/metrics` and the health of notifications.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub waiting: i64,
    /// Waiting rows that failed at least once.
    pub retrying: i64,
    pub sent: i64,
    pub given_up: i64,
}

impl Storage {
    /// Rows due now, oldest first, claimed for this sender. A row waits while an earlier event
    /// of the same breakage is unsent to the same subscriber, so a fix never overtakes its
    /// opening.
    pub async fn claim_due(&self, limit: i64) -> Result<Vec<Delivery>> {
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT o.id, o.subscription_id, o.event_id, o.attempts, o.health_event_id FROM outbox o
             LEFT JOIN breakage_events e ON e.id = o.event_id
             WHERE o.sent_at IS NULL AND o.gave_up_at IS NULL AND o.due_at <= $1 AND NOT EXISTS (
                 SELECT 1 FROM outbox o2 JOIN breakage_events e2 ON e2.id = o2.event_id
                 WHERE o2.subscription_id = o.subscription_id AND o2.sent_at IS NULL
                   AND o2.gave_up_at IS NULL AND e2.breakage_id = e.breakage_id AND e2.id < e.id)
             ORDER BY o.due_at, o.id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = Vec::new();
        for r in rows {
            let (id, subscription_id, event_id, attempts): (i64, i64, Option<i64>, i64) =
                (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?);
            let health_event_id: Option<i64> = r.try_get(4)?;
            if !self.claim(id, attempts, now).await? {
                continue; // another sender took it
            }
            let Some(subscription) = self.subscription(subscription_id).await? else {
                continue; // unsubscribed meanwhile: its rows went with it
            };
            let event = match event_id {
                Some(e) => self.event(e).await?,
                None => None,
            };
            let health = match health_event_id {
                Some(h) => self.health_event(h).await?,
                None => None,
            };
            let opened_uuid = match (&event, &health) {
                (Some(e), _) if e.kind == trellis_domain::events::EventKind::Fixed => {
                    self.opened_uuid(e.id).await?
                }
                (_, Some(h)) if h.kind == trellis_domain::health::HealthKind::Cleared => {
                    self.raised_uuid(h.id).await?
                }
                _ => None,
            };
            claimed.push(Delivery {
                id,
                attempts: attempts + 1,
                subscription,
                event,
                health,
                opened_uuid,
            });
        }
        Ok(claimed)
    }

    async fn claim(&self, id: i64, attempts: i64, now: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let n = sqlx::query(
            "UPDATE outbox SET due_at = $3, attempts = attempts + 1
             WHERE id = $1 AND attempts = $2 AND sent_at IS NULL",
        )
        .bind(id)
        .bind(attempts)
        .bind(now + CLAIM_MS)
        .execute(&self.writes)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn opened_uuid(&self, fixed_event: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT o.uuid FROM breakage_events f JOIN breakage_events o ON o.breakage_id = f.breakage_id
             WHERE f.id = $1 AND o.kind = 'opened'",
        )
        .bind(fixed_event)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn raised_uuid(&self, cleared_event: i64) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT r.uuid FROM health_events c JOIN health_events r ON r.issue_id = c.issue_id
             WHERE c.id = $1 AND r.kind = 'raised'",
        )
        .bind(cleared_event)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn mark_sent(&self, id: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE outbox SET sent_at = $2, last_error = NULL WHERE id = $1")
            .bind(id)
            .bind(now_ms())
            .execute(&self.writes)
            .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or never again when `retry_at` is `None`.
    pub async fn mark_failed(&self, id: i64, error: &str, retry_at: Option<i64>) -> Result<()> {
        let _turn = self.write_turn().await;
        let error: String = error.chars().take(1000).collect();
        match retry_at {
            Some(at) => sqlx::query("UPDATE outbox SET due_at = $2, last_error = $3 WHERE id = $1")
                .bind(id)
                .bind(at)
                .bind(error),
            None => sqlx::query("UPDATE outbox SET gave_up_at = $2, last_error = $3 WHERE id = $1")
                .bind(id)
                .bind(now_ms())
                .bind(error),
        }
        .execute(&self.writes)
        .await?;
        Ok(())
    }

    pub async fn outbox_counts(&self) -> Result<OutboxCounts> {
        let r = sqlx::query(
            "SELECT
                CAST(COALESCE(SUM(CASE WHEN sent_at IS NULL AND gave_up_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN sent_at IS NULL AND gave_up_at IS NULL AND attempts > 0 AND last_error IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN sent_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN gave_up_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxCounts {
            waiting: r.try_get(0)?,
            retrying: r.try_get(1)?,
            sent: r.try_get(2)?,
            given_up: r.try_get(3)?,
        })
    }

    /// Wakes when something new enters the outbox (or after `timeout`).
    pub async fn outbox_changed(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.outbox_wake.notified()).await;
    }
}
