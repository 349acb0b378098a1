//! Reports as rows: the report, its log and its cell's summary, many reports per statement.
//!
//! Each statement costs a round trip (a thread hop on SQLite, a network exchange on
//! PostgreSQL), which dominated ingest when a report took three; a batch of 128 reports now
//! takes three statements. Reports of one cell are merged first (`CellUpdate`), since one
//! statement may not touch a row twice.

use super::logs::LogBlob;
use super::{now_ms, values, Result};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use std::collections::{BTreeMap, HashMap};
use trellis_domain::signature::signature_id;
use trellis_domain::{CellUpdate, Report};

/// A report whose project, kernel and commit rows exist.
pub(super) struct NewReport<'a> {
    pub project_id: i64,
    pub kernel_id: i64,
    pub commit_id: i64,
    pub runner_id: i64,
    /// The project revision of the transaction storing it.
    pub revision: i64,
    pub report: &'a Report,
    pub log: &'a LogBlob,
}

/// Rows per statement: well under both backends' limits on bound values.
const ROWS: usize = 100;

/// Stores reports (none a retry of another: that fails on the unique `run_id`) and folds them
/// into their cells. Returns their ids, in order.
pub(super) async fn insert_reports(
    tx: &mut Transaction<'_, Any>,
    reports: &[NewReport<'_>],
) -> Result<Vec<i64>> {
    let mut ids: HashMap<(i64, &str), i64> = HashMap::with_capacity(reports.len());
    let received_at = now_ms();
    for chunk in reports.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO reports (project_id, kernel_id, commit_id, runner_id, run_id, status, stages, metadata,
                                  started_at, finished_at, received_at, signature, signature_hash, error_line, excerpt,
                                  other_errors)
             VALUES {} RETURNING id, runner_id, run_id",
            values(chunk.len(), 16)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for r in chunk {
            let report = r.report;
            let error = r.log.error.as_ref();
            q = q
                .bind(r.project_id)
                .bind(r.kernel_id)
                .bind(r.commit_id)
                .bind(r.runner_id)
                .bind(&report.run_id)
                .bind(report.status.as_str())
                .bind(serde_json::to_string(&report.stages).expect("stages serialise"))
                .bind(serde_json::to_string(&report.metadata).expect("metadata serialises"))
                .bind(report.started_at.timestamp_millis())
                .bind(report.finished_at.timestamp_millis())
                .bind(received_at)
                .bind(error.map(|e| e.signature.clone()))
                .bind(error.map(|e| signature_id(&e.signature)))
                .bind(error.map(|e| e.line.clone()))
                .bind(error.map(|e| e.excerpt.clone()))
                .bind(
                    error
                        .filter(|e| !e.others.is_empty())
                        .map(|e| e.others.join("\n")),
                );
        }
        for row in q.fetch_all(&mut **tx).await? {
            let runner: i64 = row.try_get(1)?;
            let run_id: String = row.try_get(2)?;
            let report = chunk
                .iter()
                .find(|r| r.runner_id == runner && r.report.run_id == run_id)
                .expect("a returned report was sent");
            ids.insert((runner, report.report.run_id.as_str()), row.try_get(0)?);
        }
    }
    let ids: Vec<i64> = reports
        .iter()
        .map(|r| ids[&(r.runner_id, r.report.run_id.as_str())])
        .collect();

    for (chunk, chunk_ids) in reports.chunks(ROWS).zip(ids.chunks(ROWS)) {
        let sql = format!(
            "INSERT INTO logs (report_id, compressed, original_bytes, cut_bytes) VALUES {}",
            values(chunk.len(), 4)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (r, id) in chunk.iter().zip(chunk_ids) {
            q = q
                .bind(*id)
                .bind(&r.log.compressed)
                .bind(r.log.original_bytes)
                .bind(r.log.cut_bytes);
        }
        q.execute(&mut **tx).await?;
    }

    let mut cells: BTreeMap<(i64, i64), CellRow> = BTreeMap::new();
    for (r, id) in reports.iter().zip(&ids) {
        let signature = r.log.error.as_ref().map(|e| e.signature.clone());
        let finished_at = r.report.finished_at.timestamp_millis();
        let update = CellUpdate::of_report(*id, r.report.status, finished_at, signature);
        match cells.get_mut(&(r.commit_id, r.kernel_id)) {
            Some(cell) => cell.update.absorb(update),
            None => {
                let cell = CellRow {
                    commit_id: r.commit_id,
                    kernel_id: r.kernel_id,
                    project_id: r.project_id,
                    revision: r.revision,
                    update,
                };
                cells.insert((r.commit_id, r.kernel_id), cell);
            }
        }
    }
    let cells: Vec<CellRow> = cells.into_values().collect();
    for chunk in cells.chunks(ROWS) {
        upsert_cells(tx, chunk).await?;
    }
    Ok(ids)
}

/// What a batch adds to one cell.
struct CellRow {
    commit_id: i64,
    kernel_id: i64,
    project_id: i64,
    revision: i64,
    update: CellUpdate,
}

/// Merges updates into the stored cell summaries by `CellUpdate::absorb`'s rule.
async fn upsert_cells(tx: &mut Transaction<'_, Any>, cells: &[CellRow]) -> Result<()> {
    let sql = format!(
        "INSERT INTO cells (commit_id, kernel_id, project_id, revision, n_pass, n_fail, n_error, n_skip,
                            latest_status, latest_report_id, latest_finished_at, latest_signature,
                            first_fail_at, first_pass_at)
         VALUES {}
         ON CONFLICT (commit_id, kernel_id) DO UPDATE SET
            revision = excluded.revision,
            n_pass = cells.n_pass + excluded.n_pass,
            n_fail = cells.n_fail + excluded.n_fail,
            n_error = cells.n_error + excluded.n_error,
            n_skip = cells.n_skip + excluded.n_skip,
            latest_status = CASE WHEN excluded.latest_finished_at >= cells.latest_finished_at
                                 THEN excluded.latest_status ELSE cells.latest_status END,
            latest_report_id = CASE WHEN excluded.latest_finished_at >= cells.latest_finished_at
                                 THEN excluded.latest_report_id ELSE cells.latest_report_id END,
            latest_signature = CASE WHEN excluded.latest_signature IS NOT NULL
                                      AND excluded.latest_finished_at >= cells.latest_finished_at
                                 THEN excluded.latest_signature ELSE cells.latest_signature END,
            latest_finished_at = CASE WHEN excluded.latest_finished_at >= cells.latest_finished_at
                                 THEN excluded.latest_finished_at ELSE cells.latest_finished_at END,
            first_fail_at = CASE WHEN cells.first_fail_at IS NULL OR excluded.first_fail_at < cells.first_fail_at
                                 THEN COALESCE(excluded.first_fail_at, cells.first_fail_at) ELSE cells.first_fail_at END,
            first_pass_at = CASE WHEN cells.first_pass_at IS NULL OR excluded.first_pass_at < cells.first_pass_at
                                 THEN COALESCE(excluded.first_pass_at, cells.first_pass_at) ELSE cells.first_pass_at END",
        values(cells.len(), 14)
    );
    let mut q = sqlx::query(AssertSqlSafe(sql));
    for row in cells {
        let cell = &row.update;
        q = q
            .bind(row.commit_id)
            .bind(row.kernel_id)
            .bind(row.project_id)
            .bind(row.revision)
            .bind(cell.counts.pass)
            .bind(cell.counts.fail)
            .bind(cell.counts.error)
            .bind(cell.counts.skip)
            .bind(cell.latest_status.as_str())
            .bind(cell.latest_report_id)
            .bind(cell.latest_finished_at)
            .bind(cell.latest_signature.clone())
            .bind(cell.first_fail_at)
            .bind(cell.first_pass_at);
    }
    q.execute(&mut **tx).await?;
    Ok(())
}

pub(super) async fn report_by_run_id<'e>(
    executor: impl sqlx::Executor<'e, Database = Any>,
    runner_id: i64,
    run_id: &str,
) -> Result<Option<i64>> {
    let row = sqlx::query("SELECT id FROM reports WHERE runner_id = $1 AND run_id = $2")
        .bind(runner_id)
        .bind(run_id)
        .fetch_optional(executor)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}
