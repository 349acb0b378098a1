//! Work leases for runners: ask for jobs, keep them alive, give them back. What is most useful
//! to build is the domain's choice (`schedule`); a report for the cell completes its lease.

use super::extract::{ApiPath, JsonBody};
use super::schema::scheduling::{Job, JobCommit, JobKernel, LeaseExtended, LeaseGrant};
use super::schema::{self};
use super::AppState;
use crate::accept::check_scope;
use crate::error::ApiError;
use crate::storage::{Lease, Runner};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use trellis_domain::schedule::LeaseRequest;
use trellis_domain::view::rfc3339_ms;

/// How soon a runner that got no job should ask again.
const POLL_AFTER_SECS: u64 = 30;

/// Lease the most useful cells nobody is working on
#[utoipa::path(
    post,
    path = "/jobs/lease",
    security(("runnerToken" = [])),
    request_body = schema::scheduling::LeaseRequest,
    responses(
        (status = 200, description = "Jobs leased, possibly none", body = LeaseGrant),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 403, response = schema::Forbidden),
        (status = 404, response = schema::NotFound),
        (status = 413, response = schema::PayloadTooLarge),
        (status = 422, response = schema::InvalidFields),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn lease(
    State(state): State<AppState>,
    runner: Runner,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<LeaseGrant>, ApiError> {
    let ask = LeaseRequest::from_json(&body).map_err(ApiError::InvalidFields)?;
    check_scope(&runner, &ask.project, None)?;
    let project = state
        .storage
        .project(&ask.project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project {:?}", ask.project)))?;
    // Announced kernels become known kernels, within the runner's scope only.
    if let Some(kernels) = &ask.can.kernels {
        let mine: Vec<_> = kernels
            .iter()
            .filter(|k| runner.scope.allows(&project.name, k))
            .cloned()
            .collect();
        state.storage.announce_kernels(&project, &mine).await?;
    }
    let lease_secs = state.config.lease_secs;
    let leases = state
        .storage
        .lease(
            runner.id,
            &project,
            &ask.can,
            ask.max_jobs,
            lease_secs as i64 * 1000,
        )
        .await?;
    Ok(Json(LeaseGrant {
        jobs: leases.into_iter().map(job).collect(),
        lease_seconds: lease_secs,
        poll_after_seconds: POLL_AFTER_SECS,
    }))
}

fn job(lease: Lease) -> Job {
    Job {
        lease_id: lease.id,
        kernel: JobKernel {
            uname: lease.kernel.uname(),
            version_release: lease.kernel.version_release(),
            stream: lease.kernel.stream,
            arch: lease.kernel.arch,
            package_url: lease.package_url,
        },
        commit: JobCommit {
            sha: lease.sha,
            subject: lease.subject,
        },
        reason: lease.reason,
        expires_at: rfc3339_ms(lease.expires_at),
    }
}

/// Extend a lease while its job runs
#[utoipa::path(
    post,
    path = "/jobs/{lease_id}/heartbeat",
    params(("lease_id" = i64, Path, description = "The lease's id")),
    security(("runnerToken" = [])),
    responses(
        (status = 200, description = "Extended", body = LeaseExtended),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 403, response = schema::Forbidden),
        (status = 409, response = schema::Conflict),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn heartbeat(
    State(state): State<AppState>,
    ApiPath(lease_id): ApiPath<i64>,
    runner: Runner,
) -> Result<Json<LeaseExtended>, ApiError> {
    let lease_ms = state.config.lease_secs as i64 * 1000;
    match state
        .storage
        .heartbeat(runner.id, lease_id, lease_ms)
        .await?
    {
        Some(expires) => Ok(Json(LeaseExtended {
            lease_id,
            expires_at: rfc3339_ms(expires),
        })),
        None => Err(ApiError::Conflict(format!(
            "lease {lease_id} is not runner {:?}'s: its report arrived, it was released, or it \
             expired and was leased again",
            runner.name
        ))),
    }
}

/// Give a lease back without a report
#[utoipa::path(
    delete,
    path = "/jobs/{lease_id}",
    params(("lease_id" = i64, Path, description = "The lease's id")),
    security(("runnerToken" = [])),
    responses(
        (status = 204, description = "Released: the cell is offered again"),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 403, response = schema::Forbidden),
        (status = 404, response = schema::NotFound),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn release(
    State(state): State<AppState>,
    ApiPath(lease_id): ApiPath<i64>,
    runner: Runner,
) -> Result<StatusCode, ApiError> {
    if state.storage.release(runner.id, lease_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!(
            "runner {:?} holds no lease {lease_id}",
            runner.name
        )))
    }
}
