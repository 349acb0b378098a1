//! Runner accounts, their tokens and their scopes (what each may post). Only a SHA-256 hash of
//! each token is stored.

use super::rows::{int_bool, read_bool};
use super::{now_ms, Result, Storage};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use subtle::ConstantTimeEq;
use trellis_domain::scope::{Grant, Scope};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Runner {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub created_at: i64,
    /// Its last report.
    pub last_seen_at: Option<i64>,
    /// Its last report, lease or heartbeat.
    pub last_contact_at: Option<i64>,
    pub reports_total: i64,
    /// Reports whose status was `error`: the runner's own trouble.
    pub reports_error: i64,
    pub scope: Scope,
}

/// How adding a runner went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddedRunner {
    /// Its token, shown once.
    Added(String),
    NameTaken,
    /// A grant names a project that does not exist.
    NoSuchProject(String),
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunnerAuth {
    Valid(Runner),
    Disabled(String),
    Unknown,
}

const TOKEN_PREFIX: &str = "trellis_";

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Tokens look like `trellis_<12 hex id>_<48 hex secret>`; the id finds the row, the hash proves it.
fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 12 && secret.len() == 48).then_some(id)
}

/// Runners with their grants, one row per grant (a runner without any has one row of NULLs):
/// authentication reads a runner and what it may post in one query.
const RUNNERS_WITH_GRANTS: &str = "SELECT r.id, r.name, r.enabled, r.created_at, r.last_seen_at,
    r.last_contact_at, r.reports_total, r.reports_error, r.token_hash,
    p.name AS grant_project, s.stream AS grant_stream, s.arch AS grant_arch
    FROM runners r LEFT JOIN runner_scopes s ON s.runner_id = r.id
    LEFT JOIN projects p ON p.id = s.project_id";

fn runner_from(row: &AnyRow, scope: Scope) -> Result<Runner> {
    Ok(Runner {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        enabled: read_bool(row, "enabled")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        last_contact_at: row.try_get("last_contact_at")?,
        reports_total: row.try_get("reports_total")?,
        reports_error: row.try_get("reports_error")?,
        scope,
    })
}

/// Records that a runner called (a lease or a heartbeat): the coverage page's last contact.
pub(super) async fn touch_runner(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    runner_id: i64,
) -> Result<()> {
    sqlx::query("UPDATE runners SET last_contact_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(runner_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Runners (with their token hashes) from rows of [`RUNNERS_WITH_GRANTS`], in row order.
fn runners_from(rows: &[AnyRow]) -> Result<Vec<(Runner, String)>> {
    let mut out: Vec<(Runner, String)> = Vec::new();
    for row in rows {
        let id: i64 = row.try_get("id")?;
        if out.last().is_none_or(|(r, _)| r.id != id) {
            out.push((
                runner_from(row, Scope::default())?,
                row.try_get("token_hash")?,
            ));
        }
        let Some(project) = row.try_get::<Option<String>, _>("grant_project")? else {
            continue;
        };
        let part = |name: &str| -> Result<Option<String>> {
            let v: String = row.try_get(name)?;
            Ok((!v.is_empty()).then_some(v))
        };
        let grant = Grant {
            project,
            stream: part("grant_stream")?,
            arch: part("grant_arch")?,
        };
        if let Some((runner, _)) = out.last_mut() {
            runner.scope.0.push(grant);
        }
    }
    Ok(out)
}

impl Storage {
    /// Creates a runner allowed to post what `grants` name, and returns its token; the token is
    /// not stored and cannot be shown again.
    pub async fn add_runner(&self, name: &str, grants: &[Grant]) -> Result<AddedRunner> {
        let mut bytes = [0u8; 30];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        let id = hex::encode(&bytes[..6]);
        let token = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(&bytes[6..]));
        let _turn = self.write_turn().await;
        let mut tx = self.writes.begin().await?;
        let mut projects = Vec::with_capacity(grants.len());
        for grant in grants {
            let found = sqlx::query("SELECT id FROM projects WHERE name = $1")
                .bind(&grant.project)
                .fetch_optional(&mut *tx)
                .await?;
            match found {
                Some(row) => projects.push(row.try_get::<i64, _>(0)?),
                None => return Ok(AddedRunner::NoSuchProject(grant.project.clone())),
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO runners (name, token_prefix, token_hash, enabled, created_at) VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(name)
        .bind(id)
        .bind(hash_token(&token))
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = inserted else {
            return Ok(AddedRunner::NameTaken);
        };
        let runner_id: i64 = row.try_get(0)?;
        for (grant, project_id) in grants.iter().zip(projects) {
            sqlx::query(
                "INSERT INTO runner_scopes (runner_id, project_id, stream, arch) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )
            .bind(runner_id)
            .bind(project_id)
            .bind(grant.stream.as_deref().unwrap_or_default())
            .bind(grant.arch.as_deref().unwrap_or_default())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(AddedRunner::Added(token))
    }

    pub async fn list_runners(&self) -> Result<Vec<Runner>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUNNERS_WITH_GRANTS} ORDER BY r.name, r.id, p.name, s.stream, s.arch"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(runners_from(&rows)?.into_iter().map(|(r, _)| r).collect())
    }

    /// Returns false when no runner has that name.
    pub async fn set_runner_enabled(&self, name: &str, enabled: bool) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = sqlx::query("UPDATE runners SET enabled = $1 WHERE name = $2")
            .bind(int_bool(enabled))
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn authenticate(&self, token: &str) -> Result<RunnerAuth> {
        let Some(id) = token_id(token) else {
            return Ok(RunnerAuth::Unknown);
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RUNNERS_WITH_GRANTS} WHERE r.token_prefix = $1 ORDER BY p.name, s.stream, s.arch"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let Some((runner, stored)) = runners_from(&rows)?.into_iter().next() else {
            return Ok(RunnerAuth::Unknown);
        };
        if !bool::from(stored.as_bytes().ct_eq(hash_token(token).as_bytes())) {
            return Ok(RunnerAuth::Unknown);
        }
        Ok(if runner.enabled {
            RunnerAuth::Valid(runner)
        } else {
            RunnerAuth::Disabled(runner.name)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_checked_before_any_lookup() {
        assert_eq!(token_id("trellis_0123456789ab_".to_string().as_str()), None);
        let token = format!("trellis_0123456789ab_{}", "f".repeat(48));
        assert_eq!(token_id(&token), Some("0123456789ab"));
        assert_eq!(token_id("Bearer x"), None);
        assert_ne!(hash_token("a"), hash_token("b"));
    }
}
