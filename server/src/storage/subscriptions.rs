//! Subscriptions: who is told about which breakages, by mail or webhook. The CLI adds confirmed
//! ones; the public form adds unconfirmed ones with a confirmation mail in the outbox, and
//! nothing else is sent to them until the link in it is followed.

use super::rows::read_bool;
use super::{now_ms, Result, Storage};
use sqlx::Row;
use trellis_domain::breakage::Attribution;

/// Where a subscription's news goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Email(String),
    /// Signed with HMAC-SHA256 of the body under `secret`.
    Webhook {
        url: String,
        secret: String,
    },
}

/// What a subscription follows; `None` is "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Follows {
    pub project: Option<String>,
    pub stream: Option<String>,
    pub attribution: Option<Attribution>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: i64,
    pub follows: Follows,
    pub target: Target,
    pub confirmed: bool,
    /// In the links of every mail: confirms and unsubscribes.
    pub token: String,
    pub created_at: i64,
}

/// What happened to a request from the public form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requested {
    /// A confirmation mail is on its way.
    ConfirmationQueued,
    /// The same request is already waiting for confirmation: no second mail within the hour,
    /// so the form cannot be used to flood someone's inbox.
    AlreadyPending,
    AlreadySubscribed,
}

/// A confirmation is not sent again for the same address and filter within this time.
const PENDING_MS: i64 = 60 * 60 * 1000;

const COLUMNS: &str = "s.id, p.name, s.stream, s.attribution, s.email, s.webhook_url, s.secret, s.confirmed, s.token, s.created_at";

fn subscription_from(r: &sqlx::any::AnyRow) -> Result<Subscription> {
    let attribution: Option<String> = r.try_get(3)?;
    let email: Option<String> = r.try_get(4)?;
    let url: Option<String> = r.try_get(5)?;
    let target = match (email, url) {
        (Some(email), _) => Target::Email(email),
        (None, Some(url)) => Target::Webhook {
            url,
            secret: r.try_get::<Option<String>, _>(6)?.unwrap_or_default(),
        },
        (None, None) => {
            return Err(super::StorageError::Corrupt(
                "a subscription has neither an address nor a URL".to_string(),
            ))
        }
    };
    Ok(Subscription {
        id: r.try_get(0)?,
        follows: Follows {
            project: r.try_get(1)?,
            stream: r.try_get(2)?,
            attribution: attribution.as_deref().and_then(Attribution::parse),
        },
        target,
        confirmed: read_bool(r, 7)?,
        token: r.try_get(8)?,
        created_at: r.try_get(9)?,
    })
}

/// A token for links: 32 random bytes, hex.
fn new_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    hex::encode(b)
}

impl Storage {
    /// Adds a subscription (confirmed: the CLI's). `None` if the project does not exist.
    pub async fn add_subscription(
        &self,
        follows: &Follows,
        target: &Target,
    ) -> Result<Option<Subscription>> {
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let Some(id) = insert(&mut tx, follows, target, true).await? else {
            return Ok(None);
        };
        tx.commit().await?;
        self.subscription(id).await
    }

    /// A request from the public subscribe form: stored unconfirmed, with its confirmation
    /// mail queued in the same transaction.
    pub async fn request_subscription(&self, follows: &Follows, email: &str) -> Result<Requested> {
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let same = sqlx::query(
            "SELECT s.confirmed, s.created_at FROM subscriptions s LEFT JOIN projects p ON p.id = s.project_id
             WHERE s.email = $1 AND p.name IS NOT DISTINCT FROM $2 AND s.stream IS NOT DISTINCT FROM $3
               AND s.attribution IS NOT DISTINCT FROM $4
             ORDER BY s.id DESC",
        )
        .bind(email)
        .bind(&follows.project)
        .bind(&follows.stream)
        .bind(follows.attribution.map(Attribution::as_str))
        .fetch_all(&mut *tx)
        .await?;
        for r in &same {
            if read_bool(r, 0)? {
                return Ok(Requested::AlreadySubscribed);
            }
            if r.try_get::<i64, _>(1)? > now_ms() - PENDING_MS {
                return Ok(Requested::AlreadyPending);
            }
        }
        let target = Target::Email(email.to_string());
        let Some(id) = insert(&mut tx, follows, &target, false).await? else {
            // The form names the page's own project, which exists.
            return Ok(Requested::AlreadyPending);
        };
        sqlx::query("INSERT INTO outbox (subscription_id, event_id, due_at) VALUES ($1, NULL, $2)")
            .bind(id)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.outbox_wake.notify_one();
        Ok(Requested::ConfirmationQueued)
    }

    pub async fn subscription(&self, id: i64) -> Result<Option<Subscription>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subscriptions s LEFT JOIN projects p ON p.id = s.project_id WHERE s.id = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(subscription_from)
            .transpose()
    }

    pub async fn subscription_by_token(&self, token: &str) -> Result<Option<Subscription>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subscriptions s LEFT JOIN projects p ON p.id = s.project_id WHERE s.token = $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(subscription_from)
            .transpose()
    }

    pub async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subscriptions s LEFT JOIN projects p ON p.id = s.project_id ORDER BY s.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(subscription_from)
            .collect()
    }

    /// Confirms the subscription the token belongs to; `None` for an unknown token.
    pub async fn confirm_subscription(&self, token: &str) -> Result<Option<Subscription>> {
        let _turn = self.write_turn().await;
        sqlx::query("UPDATE subscriptions SET confirmed = 1 WHERE token = $1")
            .bind(token)
            .execute(&self.writes)
            .await?;
        drop(_turn);
        self.subscription_by_token(token).await
    }

    /// Unsubscribes whoever holds the token (the link and the one-click header of every mail);
    /// the removed subscription, or `None` for a token that is not (or no longer) known.
    pub async fn unsubscribe(&self, token: &str) -> Result<Option<Subscription>> {
        let Some(found) = self.subscription_by_token(token).await? else {
            return Ok(None);
        };
        self.remove_subscription(found.id).await?;
        Ok(Some(found))
    }

    /// Removes a subscription and what it still had to receive; false if there was none.
    pub async fn remove_subscription(&self, id: i64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        sqlx::query("DELETE FROM outbox WHERE subscription_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let gone = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(gone > 0)
    }
}

/// Inserts a subscription; `None` if it names a project that does not exist.
async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    follows: &Follows,
    target: &Target,
    confirmed: bool,
) -> Result<Option<i64>> {
    let project_id: Option<i64> = match &follows.project {
        None => None,
        Some(name) => {
            let row = sqlx::query("SELECT id FROM projects WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
            match row {
                Some(r) => Some(r.try_get(0)?),
                None => return Ok(None),
            }
        }
    };
    let (email, url, secret) = match target {
        Target::Email(e) => (Some(e.as_str()), None, None),
        Target::Webhook { url, secret } => (None, Some(url.as_str()), Some(secret.as_str())),
    };
    let id = sqlx::query(
        "INSERT INTO subscriptions (project_id, stream, attribution, email, webhook_url, secret, confirmed, token, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(project_id)
    .bind(&follows.stream)
    .bind(follows.attribution.map(Attribution::as_str))
    .bind(email)
    .bind(url)
    .bind(secret)
    .bind(i64::from(confirmed))
    .bind(new_token())
    .bind(now_ms())
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    Ok(Some(id))
}
