//! The report a job ends with, as the server's `POST /api/v1/reports` takes it, and the facts
//! about the host that go into its metadata.

use crate::api::clip;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What a job ended with: the server's own statuses.
pub use trellis_domain::Status;

#[derive(Debug, Clone, Serialize)]
pub struct KernelRef {
    pub version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distro: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommitRef {
    pub sha: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub name: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub project: String,
    pub kernel: KernelRef,
    pub commit: CommitRef,
    pub status: Status,
    pub stages: Vec<Stage>,
    pub started_at: String,
    pub finished_at: String,
    pub log: String,
    pub run_id: String,
    pub metadata: BTreeMap<String, String>,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A run id unique to this job: `<name>-<lease or kind>-<8 random hex digits>`.
pub fn run_id(name: &str, what: &str) -> String {
    let mut r = [0u8; 4];
    // Without randomness the lease id alone still tells jobs apart on one server.
    let _ = getrandom::fill(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    format!("{name}-{what}-{hex}")
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The first line of `<compiler> --version`, where the compiler is `$CC` when set, else the
/// configured one.
pub async fn compiler_version(configured: &str) -> Option<String> {
    let cc = std::env::var("CC")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| configured.to_string());
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{cc} --version"))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?.trim();
    (out.status.success() && !first.is_empty()).then(|| clip(first, 1024))
}

/// Metadata every report carries: who ran it.
pub fn base_metadata(runner: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("host".to_string(), hostname()),
        ("runner".to_string(), runner.to_string()),
        (
            "runner-version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_differ_and_keep_their_parts() {
        let a = run_id("el8-runner-1", "12");
        let b = run_id("el8-runner-1", "12");
        assert!(a.starts_with("el8-runner-1-12-") && a.len() == "el8-runner-1-12-".len() + 8);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn compiler_version_is_the_first_line() {
        // $CC, when the environment sets it, wins over the configured compiler.
        if std::env::var_os("CC").is_some() {
            return;
        }
        let v = compiler_version("printf 'cc 1.2\\nmore\\n'; true").await;
        assert_eq!(v.as_deref(), Some("cc 1.2"));
        assert_eq!(compiler_version("false").await, None);
    }
}
