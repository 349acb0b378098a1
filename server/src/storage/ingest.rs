//! Storing a report: one transaction that records the report, its log, and the cell summary the
//! grid reads.

use super::commits::{ensure_commit, ensure_project};
use super::{is_unique_violation, now_ms, Result, Storage, StorageError};
use sqlx::Row;
use trellis_domain::{Report, Status};

/// A log ready to store: already clipped and compressed (done before taking the write turn).
pub struct LogBlob {
    pub compressed: Vec<u8>,
    pub original_bytes: i64,
    pub cut_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// A new report with this id.
    Created(i64),
    /// The runner had already sent this run_id: nothing new was stored.
    Duplicate(i64),
}

impl Storage {
    pub async fn ingest_report(
        &self,
        runner_id: i64,
        report: &Report,
        log: &LogBlob,
    ) -> Result<Ingested> {
        if let Some(id) = self.report_by_run_id(runner_id, &report.run_id).await? {
            return Ok(Ingested::Duplicate(id));
        }
        let turn = self.write_turn().await;
        match self.insert_report(runner_id, report, log).await {
            Ok(id) => Ok(Ingested::Created(id)),
            // A concurrent retry of the same run won the race: answer with its report.
            Err(StorageError::Database(e)) if is_unique_violation(&e) => {
                drop(turn);
                self.report_by_run_id(runner_id, &report.run_id)
                    .await?
                    .map(Ingested::Duplicate)
                    .ok_or(StorageError::Database(e))
            }
            Err(e) => Err(e),
        }
    }

    async fn report_by_run_id(&self, runner_id: i64, run_id: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT id FROM reports WHERE runner_id = $1 AND run_id = $2")
            .bind(runner_id)
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    async fn insert_report(&self, runner_id: i64, report: &Report, log: &LogBlob) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let project_id = ensure_project(&mut tx, &report.project).await?;
        let k = &report.kernel;
        let kernel_id: i64 = sqlx::query(
            "INSERT INTO kernels (project_id, stream, version, release, arch, variant, first_seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (project_id, stream, version, release, arch, variant) DO UPDATE SET stream = excluded.stream
             RETURNING id",
        )
        .bind(project_id)
        .bind(&k.stream)
        .bind(&k.version)
        .bind(&k.release)
        .bind(&k.arch)
        .bind(&k.variant)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let commit_id = ensure_commit(&mut tx, project_id, &report.commit).await?;

        let finished_at = report.finished_at.timestamp_millis();
        let stages = serde_json::to_string(&report.stages).expect("stages serialise");
        let metadata = serde_json::to_string(&report.metadata).expect("metadata serialises");
        let report_id: i64 = sqlx::query(
            "INSERT INTO reports (project_id, kernel_id, commit_id, runner_id, run_id, status, stages, metadata,
                                  started_at, finished_at, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(project_id)
        .bind(kernel_id)
        .bind(commit_id)
        .bind(runner_id)
        .bind(&report.run_id)
        .bind(report.status.as_str())
        .bind(stages)
        .bind(metadata)
        .bind(report.started_at.timestamp_millis())
        .bind(finished_at)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;

        sqlx::query("INSERT INTO logs (report_id, compressed, original_bytes, cut_bytes) VALUES ($1, $2, $3, $4)")
            .bind(report_id)
            .bind(&log.compressed)
            .bind(log.original_bytes)
            .bind(log.cut_bytes)
            .execute(&mut *tx)
            .await?;

        let count = |s: Status| i64::from(report.status == s);
        // The latest report (by finished_at, then id) decides the cell's status.
        sqlx::query(
            "INSERT INTO cells (project_id, kernel_id, commit_id, n_pass, n_fail, n_error, n_skip,
                                latest_status, latest_report_id, latest_finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (kernel_id, commit_id) DO UPDATE SET
                n_pass = cells.n_pass + excluded.n_pass,
                n_fail = cells.n_fail + excluded.n_fail,
                n_error = cells.n_error + excluded.n_error,
                n_skip = cells.n_skip + excluded.n_skip,
                latest_status = CASE WHEN excluded.latest_finished_at >= cells.latest_finished_at
                                     THEN excluded.latest_status ELSE cells.latest_status END,
                latest_report_id = CASE WHEN excluded.latest_finished_at >= cells.latest_finished_at
                                     THEN excluded.latest_report_id ELSE cells.latest_report_id END,
                latest_finished_at = CASE WHEN excluded.latest_finished_at >= cells.latest_finished_at
                                     THEN excluded.latest_finished_at ELSE cells.latest_finished_at END",
        )
        .bind(project_id)
        .bind(kernel_id)
        .bind(commit_id)
        .bind(count(Status::Pass))
        .bind(count(Status::Fail))
        .bind(count(Status::Error))
        .bind(count(Status::Skip))
        .bind(report.status.as_str())
        .bind(report_id)
        .bind(finished_at)
        .execute(&mut *tx)
        .await?;

        sqlx::query("UPDATE runners SET last_seen_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(runner_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(report_id)
    }
}
