//! The administration API, behind the server's admin token: add and describe projects, and
//! manage the kernel sources polled for them. The command line does the same against the
//! database (`trellis project`, `trellis source`).

use super::extract::{Admin, ApiPath, JsonBody};
use super::schema::scheduling::KernelSourceList;
use super::schema::{self};
use super::AppState;
use crate::error::ApiError;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;
use trellis_domain::coverage::SourceHealth;
use trellis_domain::kernel::is_slug;
use trellis_domain::project::{new_project_name, ProjectEdit};
use trellis_domain::view::Project;
use trellis_domain::FieldError;

/// Add a project
#[utoipa::path(
    post,
    path = "/admin/projects",
    security(("adminToken" = [])),
    request_body = schema::scheduling::ProjectSettings,
    responses(
        (status = 201, description = "Added", body = Project),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 409, response = schema::Conflict),
        (status = 422, response = schema::InvalidFields),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn add_project(
    State(state): State<AppState>,
    _: Admin,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<Project>), ApiError> {
    let name = new_project_name(&body);
    let edit = ProjectEdit::from_json(&body);
    let (name, edit) = match (name, edit) {
        (Ok(name), Ok(edit)) => (name, edit),
        (name, edit) => {
            let mut errors = name.err().unwrap_or_default();
            errors.extend(edit.err().unwrap_or_default());
            return Err(ApiError::InvalidFields(errors));
        }
    };
    if !state.storage.add_project(&name, &edit, false).await? {
        return Err(ApiError::Conflict(format!(
            "a project named {name:?} exists; PATCH /admin/projects/{name} changes it"
        )));
    }
    Ok((StatusCode::CREATED, Json(found(&state, &name).await?)))
}

/// Change a project's description or links
#[utoipa::path(
    patch,
    path = "/admin/projects/{project}",
    params(schema::ProjectPath),
    security(("adminToken" = [])),
    request_body = schema::scheduling::ProjectSettings,
    responses(
        (status = 200, description = "Changed", body = Project),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 404, response = schema::NotFound),
        (status = 422, response = schema::InvalidFields),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn edit_project(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    _: Admin,
    JsonBody(body): JsonBody<Value>,
) -> Result<Json<Project>, ApiError> {
    let edit = ProjectEdit::from_json(&body).map_err(ApiError::InvalidFields)?;
    if !state.storage.edit_project(&name, &edit).await? {
        return Err(no_project(&name));
    }
    Ok(Json(found(&state, &name).await?))
}

async fn found(state: &AppState, name: &str) -> Result<Project, ApiError> {
    state
        .storage
        .project(name)
        .await?
        .ok_or_else(|| no_project(name))
}

fn no_project(name: &str) -> ApiError {
    ApiError::NotFound(format!("no project {name:?}"))
}

/// Poll a dnf/yum repository for the project's kernels
#[utoipa::path(
    post,
    path = "/admin/projects/{project}/kernel-sources",
    params(schema::ProjectPath),
    security(("adminToken" = [])),
    request_body = schema::scheduling::NewKernelSource,
    responses(
        (status = 201, description = "Added (or already there); polled at once", body = SourceHealth),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 404, response = schema::NotFound),
        (status = 422, response = schema::InvalidFields),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn add_source(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    _: Admin,
    JsonBody(body): JsonBody<Value>,
) -> Result<(StatusCode, Json<SourceHealth>), ApiError> {
    let text = |key: &str, default: Option<&str>, errors: &mut Vec<FieldError>| match (
        body.get(key),
        default,
    ) {
        (Some(Value::String(s)), _) => Some(s.trim().to_string()),
        (None | Some(Value::Null), Some(d)) => Some(d.to_string()),
        (None | Some(Value::Null), None) => {
            errors.push(FieldError::new(key, "is required"));
            None
        }
        _ => {
            errors.push(FieldError::new(key, "must be a string"));
            None
        }
    };
    let mut errors = Vec::new();
    let url = text("url", None, &mut errors);
    let stream = text("stream", None, &mut errors);
    let arch = text("arch", Some("x86_64"), &mut errors);
    let package = text("package", Some("kernel-devel"), &mut errors);
    if let Some(u) = &url {
        let http = u.starts_with("http://") || u.starts_with("https://");
        if !http || u.len() > 1000 || u.chars().any(char::is_whitespace) {
            errors.push(FieldError::new(
                "url",
                "must be an http(s) URL of at most 1000 bytes",
            ));
        }
    }
    for (key, value) in [("stream", &stream), ("arch", &arch)] {
        if value.as_deref().is_some_and(|v| !is_slug(v)) {
            errors.push(FieldError::new(key, "must be a lowercase slug"));
        }
    }
    if package
        .as_deref()
        .is_some_and(|p| crate::discovery::package_variant(p).is_none())
    {
        errors.push(FieldError::new(
            "package",
            "must be a kernel-devel package: kernel-devel, kernel-rt-devel, kernel-debug-devel, ...",
        ));
    }
    let (Some(url), Some(stream), Some(arch), Some(package), true) =
        (url, stream, arch, package, errors.is_empty())
    else {
        return Err(ApiError::InvalidFields(errors));
    };
    let source = state
        .storage
        .add_kernel_source(&project, &url, &package, &stream, &arch)
        .await?
        .ok_or_else(|| no_project(&project))?;
    crate::discovery::poll_soon();
    Ok((StatusCode::CREATED, Json(SourceHealth::from(source))))
}

/// The project's kernel sources and how their last poll went
#[utoipa::path(
    get,
    path = "/admin/projects/{project}/kernel-sources",
    params(schema::ProjectPath),
    security(("adminToken" = [])),
    responses(
        (status = 200, description = "Sources", body = KernelSourceList),
        (status = 401, response = schema::Unauthorized),
        (status = 404, response = schema::NotFound),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn sources(
    State(state): State<AppState>,
    ApiPath(project): ApiPath<String>,
    _: Admin,
) -> Result<Json<KernelSourceList>, ApiError> {
    found(&state, &project).await?;
    let sources = state.storage.kernel_sources(Some(&project)).await?;
    Ok(Json(KernelSourceList {
        sources: sources.into_iter().map(SourceHealth::from).collect(),
    }))
}

/// Stop polling a kernel source; the kernels it found stay
#[utoipa::path(
    delete,
    path = "/admin/kernel-sources/{id}",
    params(("id" = i64, Path, description = "The source's id")),
    security(("adminToken" = [])),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, response = schema::BadRequest),
        (status = 401, response = schema::Unauthorized),
        (status = 404, response = schema::NotFound),
        (status = 503, response = schema::Unavailable),
    )
)]
pub async fn remove_source(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    _: Admin,
) -> Result<StatusCode, ApiError> {
    if state.storage.remove_kernel_source(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no kernel source {id}")))
    }
}
