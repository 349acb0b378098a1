//! Runner accounts and their tokens. Only a SHA-256 hash of each token is stored.

use super::rows::{int_bool, read_bool};
use super::{now_ms, Result, Storage};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Runner {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
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

fn runner_from(row: &AnyRow) -> Result<Runner> {
    Ok(Runner {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        enabled: read_bool(row, "enabled")?,
        created_at: row.try_get("created_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
    })
}

impl Storage {
    /// Creates a runner and returns its token; the token is not stored and cannot be shown again.
    pub async fn add_runner(&self, name: &str) -> Result<Option<String>> {
        let mut bytes = [0u8; 30];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        let id = hex::encode(&bytes[..6]);
        let token = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(&bytes[6..]));
        let _turn = self.write_turn().await;
        let inserted = sqlx::query(
            "INSERT INTO runners (name, token_prefix, token_hash, enabled, created_at) VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(id)
        .bind(hash_token(&token))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok((inserted.rows_affected() == 1).then_some(token))
    }

    pub async fn list_runners(&self) -> Result<Vec<Runner>> {
        let rows = sqlx::query(
            "SELECT id, name, enabled, created_at, last_seen_at FROM runners ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(runner_from).collect()
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
        let row = sqlx::query(
            "SELECT id, name, token_hash, enabled, created_at, last_seen_at FROM runners WHERE token_prefix = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(RunnerAuth::Unknown);
        };
        let stored: String = row.try_get("token_hash")?;
        if !bool::from(stored.as_bytes().ct_eq(hash_token(token).as_bytes())) {
            return Ok(RunnerAuth::Unknown);
        }
        let runner = runner_from(&row)?;
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
