//! Rows into domain types: the column lists queries select and the functions that read them.

use super::{Result, StorageError};
use sqlx::any::AnyRow;
use sqlx::{ColumnIndex, Row};
use trellis_domain::grid::CellEntry;
use trellis_domain::view::Project;
use trellis_domain::view::{StoredCommit, StoredKernel};
use trellis_domain::{CellSummary, Kernel, Status, StatusCounts};

/// Reads a boolean column. Booleans are stored as integers 0 and 1 (written by [`int_bool`]):
/// sqlx's `Any` driver decodes no SQL boolean on SQLite, and one type keeps both schemas alike.
pub(super) fn read_bool<I: ColumnIndex<AnyRow>>(row: &AnyRow, column: I) -> Result<bool> {
    Ok(row.try_get::<i64, _>(column)? != 0)
}

/// A boolean as stored: 0 or 1 (read back by [`read_bool`]).
pub(super) fn int_bool(b: bool) -> i64 {
    i64::from(b)
}

pub(super) fn status(s: &str) -> Result<Status> {
    Status::parse(s).ok_or_else(|| StorageError::Corrupt(format!("unknown status {s:?}")))
}

pub(super) fn project_from(row: &AnyRow) -> Result<Project> {
    Ok(Project {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        demo: read_bool(row, "demo")?,
    })
}

pub(super) fn column_from(row: &AnyRow) -> Result<StoredCommit> {
    Ok(StoredCommit {
        id: row.try_get("id")?,
        sha: row.try_get("sha")?,
        subject: row.try_get("subject")?,
        author: row.try_get("author")?,
        committed_at: row.try_get("committed_at")?,
        // Tags live in their own table, read where they are shown (`commit_tags`).
        tags: Vec::new(),
    })
}

pub(super) fn kernel_from(row: &AnyRow) -> Result<StoredKernel> {
    Ok(StoredKernel {
        id: row.try_get("id")?,
        kernel: Kernel {
            stream: row.try_get("stream")?,
            version: row.try_get("version")?,
            release: row.try_get("release")?,
            arch: row.try_get("arch")?,
            variant: row.try_get("variant")?,
        },
    })
}

pub(super) fn cell_from(row: &AnyRow) -> Result<CellEntry> {
    Ok(CellEntry {
        kernel_id: row.try_get("kernel_id")?,
        commit_id: row.try_get("commit_id")?,
        summary: CellSummary {
            counts: StatusCounts {
                pass: row.try_get("n_pass")?,
                fail: row.try_get("n_fail")?,
                error: row.try_get("n_error")?,
                skip: row.try_get("n_skip")?,
            },
            latest_status: status(&row.try_get::<String, _>("latest_status")?)?,
            latest_report_id: row.try_get("latest_report_id")?,
            latest_finished_at: row.try_get("latest_finished_at")?,
            signature: row.try_get("latest_signature")?,
        },
    })
}

/// The columns `cell_from`, `kernel_from` and `column_from` read.
pub(super) const CELL_COLUMNS: &str =
    "kernel_id, commit_id, n_pass, n_fail, n_error, n_skip, latest_status, latest_report_id, latest_finished_at, latest_signature";
pub(super) const KERNEL_COLUMNS: &str = "id, stream, version, release, arch, variant";
pub(super) const COMMIT_COLUMNS: &str = "id, sha, subject, author, committed_at";
pub(super) const COMMIT_ORDER: &str = "ORDER BY generation DESC, committed_at DESC, id DESC";

pub(super) fn prefixed_cell_columns() -> String {
    CELL_COLUMNS
        .split(", ")
        .map(|c| format!("cells.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}
