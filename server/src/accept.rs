//! Accepting what runners send: validate a report, clip and compress its log, extract its error
//! signature and hand it to storage; validate pushed commit history. The HTTP handlers and the
//! demo seeder both come through here, so demo data takes exactly the path real reports take.

use crate::error::ApiError;
use crate::http::schema::ReportReceipt;
use crate::storage::{Ingested, LogBlob, Pushed, Runner, Storage, StorageError};
use serde_json::Value;
use trellis_domain::{log, signature, CommitInfo, Kernel, Report, Status};

pub async fn submit_report(
    storage: &Storage,
    runner: &Runner,
    body: &Value,
    max_log_bytes: usize,
) -> Result<ReportReceipt, ApiError> {
    let report = Report::from_json(body).map_err(ApiError::InvalidFields)?;
    check_scope(runner, &report.project, Some(&report.kernel))?;
    let error = (report.status == Status::Fail)
        .then(|| signature::extract(&report.log))
        .flatten();
    let blob = LogBlob::compress(&log::clip(&report.log, max_log_bytes), error);
    let page = trellis_app::paths::cell(&report.project, &report.kernel, &report.commit.sha);
    let stored = storage.ingest_report(runner.id, report, blob).await;
    match stored.map_err(|e| cycle_as_field(e, "commit.parents"))? {
        Ingested::Created(id) => Ok(ReportReceipt {
            id,
            url: format!("{page}#report-{id}"),
            created: true,
        }),
        // A retry answers with where the first copy lives, which may differ from this body.
        Ingested::Duplicate(id) => match storage.report_location(id).await? {
            Some((project, kernel, sha)) => Ok(ReportReceipt {
                id,
                url: format!(
                    "{}#report-{id}",
                    trellis_app::paths::cell(&project, &kernel, &sha)
                ),
                created: false,
            }),
            // Storage just said it holds this report: not finding it is a fault, not a 404.
            None => Err(ApiError::Inconsistent(format!("report {id} vanished"))),
        },
    }
}

/// A runner posts only inside its scope. A grant names a project that exists (it is checked
/// when the runner is added, and projects are never removed), so nothing is looked up here.
pub fn check_scope(
    runner: &Runner,
    project: &str,
    kernel: Option<&Kernel>,
) -> Result<(), ApiError> {
    runner
        .scope
        .check(project, kernel)
        .map_err(|refused| ApiError::OutOfScope {
            runner: runner.name.clone(),
            refused,
        })
}

pub async fn push_commits(
    storage: &Storage,
    runner: &Runner,
    project: &str,
    body: &Value,
) -> Result<Pushed, ApiError> {
    if !trellis_domain::report::is_project_name(project) {
        return Err(ApiError::InvalidFields(vec![
            trellis_domain::FieldError::new(
                "project",
                format!("{project:?} must be a lowercase slug such as wireguard-linux-compat"),
            ),
        ]));
    }
    check_scope(runner, project, None)?;
    let commits: Vec<CommitInfo> =
        trellis_domain::report::commits_from_json(body).map_err(ApiError::InvalidFields)?;
    let pushed = storage.push_commits(project, &commits).await;
    pushed.map_err(|e| cycle_as_field(e, "commits"))
}

/// A history that would loop is the client's mistake: a 422 that names the commit.
fn cycle_as_field(e: StorageError, field: &str) -> ApiError {
    match e {
        StorageError::HistoryCycle(cycle) => {
            ApiError::InvalidFields(vec![trellis_domain::FieldError::new(
                field,
                cycle.to_string(),
            )])
        }
        e => ApiError::Storage(e),
    }
}
