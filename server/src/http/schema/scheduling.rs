//! Bodies of the scheduling API: leases for runners, and the administration of projects and
//! kernel sources.

use super::{KernelRef, Slug};
use serde::Serialize;
use trellis_domain::coverage::SourceHealth;
use trellis_domain::schedule::Reason;
use utoipa::ToSchema;

// --- requests (validated by the domain from JSON; these describe them) -----------------------

/// What a runner can build, and how many jobs it wants. Name either `kernels` (the kernel trees
/// the host has: this also announces them as known kernels of the project) or `streams`/`arch`.
#[derive(ToSchema)]
#[schema(example = json!({"project": "wireguard-linux-compat",
    "kernels": [{"version": "4.18.0-553.el8_10.x86_64"}], "max_jobs": 1}))]
pub struct LeaseRequest {
    #[schema(inline)]
    pub project: Slug,
    #[schema(max_items = 2000)]
    pub kernels: Option<Vec<KernelRef>>,
    #[schema(max_items = 64)]
    pub streams: Option<Vec<Slug>>,
    #[schema(max_length = 64, pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub arch: Option<String>,
    /// 1 (default) to 32.
    #[schema(minimum = 1, maximum = 32)]
    pub max_jobs: Option<i64>,
}

/// A project's settings; each is optional, and `null` or `""` clears a URL. A `git_url` without
/// a `commit_url` also sets commit links (cgit, GitHub and GitLab forms are known).
#[derive(ToSchema)]
pub struct ProjectSettings {
    /// Only when adding a project.
    #[schema(inline)]
    pub name: Option<Slug>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[schema(max_length = 500)]
    pub git_url: Option<String>,
    /// A URL with `{sha}` where the commit goes.
    #[schema(max_length = 500)]
    pub commit_url: Option<String>,
}

/// A dnf/yum repository whose `package` versions become kernels of `stream`/`arch`.
#[derive(ToSchema)]
pub struct NewKernelSource {
    /// The repository's base URL: the folder holding `repodata/`.
    #[schema(
        max_length = 1000,
        example = "https://vault.almalinux.org/8.9/BaseOS/x86_64/os/"
    )]
    pub url: String,
    #[schema(inline)]
    pub stream: Slug,
    /// Default x86_64.
    #[schema(max_length = 64, pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub arch: Option<String>,
    /// Default kernel-devel.
    #[schema(max_length = 64, pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
    pub package: Option<String>,
}

// --- answers ---------------------------------------------------------------------------------

/// The jobs leased, possibly none.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseGrant {
    pub jobs: Vec<Job>,
    /// How long each lease lasts without a heartbeat.
    pub lease_seconds: u64,
    /// With no jobs: when to ask again.
    pub poll_after_seconds: u64,
}

/// One leased cell: build `commit` against `kernel`, then post a report for them.
#[derive(Debug, Serialize, ToSchema)]
pub struct Job {
    pub lease_id: i64,
    pub kernel: JobKernel,
    pub commit: JobCommit,
    pub reason: Reason,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobKernel {
    pub stream: String,
    /// `uname -r`.
    pub uname: String,
    pub version_release: String,
    pub arch: String,
    /// The kernel-devel package, when a kernel source told where it is.
    pub package_url: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobCommit {
    pub sha: String,
    pub subject: Option<String>,
}

/// A lease extended by a heartbeat.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseExtended {
    pub lease_id: i64,
    /// RFC 3339.
    pub expires_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KernelSourceList {
    pub sources: Vec<SourceHealth>,
}
