//! Keeping a database healthy over time: online backups and retention of old logs.

use super::rows::status;
use super::{now_ms, placeholders, LogBlob, Result, Storage, StorageError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{AssertSqlSafe, Connection, Row};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use trellis_domain::log::ClippedLog;
use trellis_domain::Status;

/// A consistent copy of the database, written and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStats {
    /// Size of the backup file.
    pub bytes: u64,
    /// Reports the backup holds: an operator sees at once a backup of the wrong database.
    pub reports: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} already exists: a backup never overwrites a file")]
    Exists(PathBuf),
    #[error("the backup path {0:?} is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("online backup is for SQLite; back PostgreSQL up with pg_dump")]
    NotSqlite,
    #[error("the backup written to {path} fails its check: {problem}")]
    Check { path: PathBuf, problem: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        BackupError::Storage(e.into())
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Logs of reports finished before this instant (epoch ms) were candidates.
    pub cutoff_ms: i64,
    /// Logs replaced by the retention note.
    pub logs_removed: u64,
    /// Compressed bytes those logs held.
    pub bytes_removed: i64,
}

/// Logs rewritten per transaction: short enough that the report writer never waits long.
const PRUNE_BATCH: i64 = 1000;
/// How often a running server applies log retention: retention is counted in days, and each
/// pass reads every report once.
const RETENTION_EVERY: Duration = Duration::from_secs(6 * 3600);
const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;
/// A day in epoch milliseconds, the unit retention is counted in.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// `3 days`, `1 hour`: rounded down, so "older than" stays true.
fn describe_age(ms: i64) -> String {
    let (n, unit) = [(DAY_MS, "day"), (HOUR_MS, "hour"), (MINUTE_MS, "minute")]
        .into_iter()
        .find(|(size, _)| ms >= *size)
        .map(|(size, unit)| (ms / size, unit))
        .unwrap_or((ms / 1000, "second"));
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The text that replaces a removed log. The row stays (with `original_bytes = 0`, which marks
/// it as done), so every reader keeps working unchanged and shows why the log is gone.
fn retention_note(status: Status, age: &str) -> Vec<u8> {
    let kind = if status == Status::Skip {
        "skipped"
    } else {
        "passing"
    };
    let text = format!("log removed by retention ({kind} report older than {age})\n");
    let note = ClippedLog {
        original_bytes: 0,
        cut_bytes: 0,
        text,
    };
    LogBlob::compress(&note, None).compressed
}

impl Storage {
    /// Writes a consistent copy of a SQLite database to `path` while the server keeps serving
    /// and writing (`VACUUM INTO` reads one snapshot; WAL readers never block the writer), then
    /// checks the copy. The copy is compact: freed pages are left behind.
    pub async fn backup(&self, path: &Path) -> Result<BackupStats, BackupError> {
        let mut conn = self.pool.acquire().await?;
        if conn.backend_name() != "SQLite" {
            return Err(BackupError::NotSqlite);
        }
        // SQLite refuses a non-empty file itself, but would fill an empty one; refuse anything.
        if path.symlink_metadata().is_ok() {
            return Err(BackupError::Exists(path.to_path_buf()));
        }
        let name = path
            .to_str()
            .ok_or_else(|| BackupError::NotUtf8(path.to_path_buf()))?;
        sqlx::query("VACUUM INTO $1")
            .bind(name)
            .execute(&mut *conn)
            .await?;
        drop(conn);

        let check = |problem: String| BackupError::Check {
            path: path.to_path_buf(),
            problem,
        };
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut copy = SqliteConnection::connect_with(&options).await?;
        let verdict: String = sqlx::query_scalar("PRAGMA quick_check")
            .fetch_one(&mut copy)
            .await?;
        if verdict != "ok" {
            return Err(check(verdict));
        }
        let reports: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reports")
            .fetch_one(&mut copy)
            .await?;
        copy.close().await?;
        let bytes = std::fs::metadata(path)
            .map_err(|e| check(e.to_string()))?
            .len();
        Ok(BackupStats { bytes, reports })
    }

    /// Removes the logs of passing and skipped reports that finished more than `older_than_ms`
    /// ago; failing and error logs, the reports and the cell summaries stay. Each removed log
    /// is replaced by a one-line note saying why. Works in batches of 1,000 logs, one
    /// short transaction each, pausing between them so other writers get their turn. The space
    /// freed is reused by later writes (SQLite's free pages, PostgreSQL's vacuum).
    pub async fn prune_passing_logs(&self, older_than_ms: i64) -> Result<PruneStats> {
        let cutoff_ms = now_ms() - older_than_ms;
        let age = describe_age(older_than_ms);
        let notes: HashMap<Status, Vec<u8>> = [Status::Pass, Status::Skip]
            .into_iter()
            .map(|s| (s, retention_note(s, &age)))
            .collect();
        let mut stats = PruneStats {
            cutoff_ms,
            ..PruneStats::default()
        };
        // Walking reports by id reads each one once and never reads the logs it keeps;
        // `original_bytes > 0` skips logs removed by an earlier pass.
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT r.id, r.status, CAST(length(l.compressed) AS BIGINT) AS bytes
                 FROM reports r JOIN logs l ON l.report_id = r.id
                 WHERE r.id > $1 AND r.finished_at < $2 AND r.status IN ('pass', 'skip')
                   AND l.original_bytes > 0
                 ORDER BY r.id LIMIT $3",
            )
            .bind(after)
            .bind(cutoff_ms)
            .bind(PRUNE_BATCH)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else {
                return Ok(stats);
            };
            after = last.try_get("id")?;
            let mut bytes = HashMap::new();
            let mut by_status: HashMap<Status, Vec<i64>> = HashMap::new();
            for row in &rows {
                let id: i64 = row.try_get("id")?;
                bytes.insert(id, row.try_get::<i64, _>("bytes")?);
                by_status
                    .entry(status(&row.try_get::<String, _>("status")?)?)
                    .or_default()
                    .push(id);
            }

            let started = Instant::now();
            {
                let _turn = self.write_turn().await;
                let _writing = self.watchdog.writing();
                let mut tx = self.writes.begin().await?;
                for (status, ids) in &by_status {
                    // Another pass (the CLI beside the server) may have got there first.
                    let sql = format!(
                        "UPDATE logs SET compressed = $1, original_bytes = 0, cut_bytes = 0
                         WHERE original_bytes > 0 AND report_id IN ({}) RETURNING report_id",
                        placeholders(2, ids.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql)).bind(&notes[status]);
                    for id in ids {
                        q = q.bind(*id);
                    }
                    for row in q.fetch_all(&mut *tx).await? {
                        stats.logs_removed += 1;
                        stats.bytes_removed += bytes[&row.try_get::<i64, _>(0)?];
                    }
                }
                tx.commit().await?;
            }
            tokio::time::sleep(started.elapsed()).await;
        }
    }

    /// Applies log retention now and every six hours, for as long as it runs: the task `serve`
    /// spawns. `keep_days == 0` keeps every log.
    pub async fn run_log_retention(self, keep_days: u32) {
        if keep_days == 0 {
            return;
        }
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            every.tick().await;
            match self.prune_passing_logs(i64::from(keep_days) * DAY_MS).await {
                Ok(s) if s.logs_removed > 0 => tracing::info!(
                    "retention removed {} passing or skipped logs ({} compressed bytes) older than {keep_days} days",
                    s.logs_removed,
                    s.bytes_removed
                ),
                Ok(_) => {}
                // A busy or restarting database: the next pass catches up.
                Err(e) => tracing::warn!("log retention failed, retrying later: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_round_down_to_their_largest_unit() {
        assert_eq!(describe_age(30 * DAY_MS), "30 days");
        assert_eq!(describe_age(DAY_MS + 23 * HOUR_MS), "1 day");
        assert_eq!(describe_age(90 * MINUTE_MS), "1 hour");
        assert_eq!(describe_age(2 * MINUTE_MS), "2 minutes");
        assert_eq!(describe_age(1500), "1 second");
    }
}
