//! The Trellis server's runner API: pushing history, leasing jobs, heartbeats, releases and
//! reports, with each failure sorted into "try again later" or "will never work".

use crate::config::Connection;
use crate::git::CommitInfo;
use anyhow::Result;
use reqwest::{header, Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The most commits the server takes in one push.
pub const MAX_COMMITS_PER_PUSH: usize = 10_000;
/// The server's limits on commit fields.
const MAX_TEXT: usize = 1000;
const MAX_TAGS: usize = 16;

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// Worth retrying later: no connection, a timeout, 408, 429 or a 5xx.
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will not change on a retry: every other 4xx, or an answer that is not understood.
    Permanent { status: u16, message: String },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Transient {
                reason,
                retry_after: Some(after),
            } => write!(f, "{reason} (retry after {}s)", after.as_secs()),
            ApiError::Transient { reason, .. } => f.write_str(reason),
            ApiError::Permanent { status, message } => write!(f, "{status}: {message}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A commit as pushed: fields clipped to what the server accepts.
#[derive(Debug, Serialize)]
pub struct CommitOut {
    pub sha: String,
    pub parents: Vec<String>,
    pub subject: String,
    pub author: String,
    pub committed_at: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl CommitOut {
    pub fn new(c: &CommitInfo, tags: &[String]) -> CommitOut {
        CommitOut {
            sha: c.sha.clone(),
            parents: c.parents.clone(),
            subject: clip(&c.subject, MAX_TEXT),
            author: clip(&c.author, MAX_TEXT),
            committed_at: c.committed_at.clone(),
            tags: tags
                .iter()
                .filter(|t| valid_tag(t))
                .take(MAX_TAGS)
                .cloned()
                .collect(),
        }
    }
}

/// The server's release-tag rule: 1 to 100 characters, not blank, no control characters.
fn valid_tag(t: &str) -> bool {
    (1..=100).contains(&t.chars().count())
        && !t.trim().is_empty()
        && !t.chars().any(char::is_control)
}

/// `s` cut to at most `max` bytes at a character boundary, without NUL.
pub fn clip(s: &str, max: usize) -> String {
    let s = s.replace('\0', "");
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

#[derive(Debug, Deserialize)]
pub struct Pushed {
    pub received: usize,
    pub new: usize,
}

/// What a runner offers to build in a lease call.
pub enum Offer {
    /// The kernel trees the host has (which also announces them to the server).
    Kernels(Vec<crate::report::KernelRef>),
    /// Any kernel of these streams (and arch): the runner provisions the trees it lacks.
    Streams {
        streams: Vec<String>,
        arch: Option<String>,
    },
}

#[derive(Debug, Clone, Deserialize)]
pub struct LeasedKernel {
    #[serde(default)]
    pub stream: Option<String>,
    pub uname: String,
    #[serde(default)]
    pub version_release: Option<String>,
    #[serde(default)]
    pub arch: Option<String>,
    #[serde(default)]
    pub package_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LeasedCommit {
    pub sha: String,
    #[serde(default)]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Lease {
    pub lease_id: i64,
    pub kernel: LeasedKernel,
    pub commit: LeasedCommit,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Deserialize)]
pub struct LeaseAnswer {
    pub jobs: Vec<Lease>,
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    #[serde(default = "default_poll_after")]
    pub poll_after_seconds: u64,
}

// What the contract names as typical, for an answer that leaves them out.
fn default_lease_seconds() -> u64 {
    600
}

fn default_poll_after() -> u64 {
    30
}

/// What a heartbeat learnt.
#[derive(Debug, PartialEq, Eq)]
pub enum Beat {
    Extended,
    /// 409 or 404: the server gave the lease up (it expired, or another runner has it).
    Lost,
}

/// A report accepted: status 201 stored now, 200 stored before under the same run_id.
#[derive(Debug)]
pub struct Posted {
    pub id: Option<i64>,
    pub status: u16,
}

#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    pub project: String,
}

impl Api {
    pub fn new(conn: &Connection) -> Result<Api> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("trellis-runner/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // The server answers a report within about 20 s, or 503.
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Api {
            http,
            base: format!("{}/api/v1", conn.server),
            token: conn.token.clone(),
            project: conn.project.clone(),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Vec<u8>), ApiError> {
        let url = format!("{}{path}", self.base);
        crate::out::debug(format_args!("{method} {url}"));
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.header(header::CONTENT_TYPE, "application/json").body(b);
        }
        let resp = req.send().await.map_err(|e| ApiError::Transient {
            reason: describe(&e),
            retry_after: None,
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiError::Transient {
                reason: describe(&e),
                retry_after: None,
            })?
            .to_vec();
        crate::out::debug(format_args!("-> {status}"));
        if status.is_success() {
            return Ok((status, bytes));
        }
        let message = error_message(&bytes);
        if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(ApiError::Transient {
                reason: format!("{}: {message}", status.as_u16()),
                retry_after,
            })
        } else {
            Err(ApiError::Permanent {
                status: status.as_u16(),
                message,
            })
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Permanent {
            status: 0,
            message: e.to_string(),
        })?;
        let (status, bytes) = self.send(method, path, Some(body)).await?;
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Permanent {
            status: status.as_u16(),
            message: format!("answer not understood: {e}"),
        })
    }

    pub async fn push_commits(&self, commits: &[CommitOut]) -> Result<Pushed, ApiError> {
        let path = format!("/projects/{}/commits", self.project);
        self.json(
            Method::POST,
            &path,
            &serde_json::json!({ "commits": commits }),
        )
        .await
    }

    pub async fn lease(&self, offer: &Offer, max_jobs: usize) -> Result<LeaseAnswer, ApiError> {
        let mut body = serde_json::json!({"project": self.project, "max_jobs": max_jobs});
        match offer {
            Offer::Kernels(kernels) => body["kernels"] = serde_json::json!(kernels),
            Offer::Streams { streams, arch } => {
                body["streams"] = serde_json::json!(streams);
                if let Some(a) = arch {
                    body["arch"] = serde_json::json!(a);
                }
            }
        }
        self.json(Method::POST, "/jobs/lease", &body).await
    }

    pub async fn heartbeat(&self, lease_id: i64) -> Result<Beat, ApiError> {
        let path = format!("/jobs/{lease_id}/heartbeat");
        match self.send(Method::POST, &path, Some(b"{}".to_vec())).await {
            Ok(_) => Ok(Beat::Extended),
            Err(ApiError::Permanent {
                status: 404 | 409, ..
            }) => Ok(Beat::Lost),
            Err(e) => Err(e),
        }
    }

    /// Gives a lease back without a report; an unknown lease is already gone.
    pub async fn release(&self, lease_id: i64) -> Result<(), ApiError> {
        match self
            .send(Method::DELETE, &format!("/jobs/{lease_id}"), None)
            .await
        {
            Ok(_) | Err(ApiError::Permanent { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Posts a report body exactly as spooled, so a retry sends the same run_id.
    pub async fn post_report(&self, body: &[u8]) -> Result<Posted, ApiError> {
        let (status, bytes) = self
            .send(Method::POST, "/reports", Some(body.to_vec()))
            .await?;
        let id = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_i64));
        Ok(Posted {
            id,
            status: status.as_u16(),
        })
    }
}

/// A transport error with its cause: reqwest's own text hides "connection refused".
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The `message` of an error answer, or the start of its body.
fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<String>,
        fields: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error,
            message: Some(m),
            fields,
        }) => {
            let mut text = match error {
                Some(code) => format!("{code}: {m}"),
                None => m,
            };
            if let Some(f) = fields {
                text.push_str(&format!(" {f}"));
            }
            text
        }
        _ => clip(String::from_utf8_lossy(body).trim(), 300),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_clipped_to_the_server_limits() {
        let c = CommitInfo {
            sha: "a".repeat(40),
            parents: vec![],
            author: "é".repeat(600),
            committed_at: "2026-01-01T00:00:00+01:00".into(),
            subject: "x\0y".into(),
        };
        let tags: Vec<String> = (0..20)
            .map(|i| format!("v{i}"))
            .chain(["bad\ttag".to_string(), " ".to_string()])
            .collect();
        let out = CommitOut::new(&c, &tags);
        assert_eq!(out.author.len(), 1000);
        assert_eq!(out.subject, "xy");
        assert_eq!(out.tags.len(), 16);
        assert!(out.tags.iter().all(|t| t.starts_with('v')));
    }

    #[test]
    fn a_lease_answer_as_the_contract_shows_it() {
        let a: LeaseAnswer = serde_json::from_str(
            r#"{"jobs":[{"lease_id":12,"kernel":{"stream":"el8",
                "uname":"4.18.0-513.5.1.el8_9.x86_64","version_release":"4.18.0-513.5.1.el8_9",
                "arch":"x86_64","package_url":null},
                "commit":{"sha":"3d3c92b4711b42169137b2ddf42ed4382e2babdf","subject":"s"},
                "reason":"untested_head","expires_at":"2026-11-30T10:00:00Z"}],
                "lease_seconds":600,"poll_after_seconds":30}"#,
        )
        .unwrap();
        assert_eq!((a.lease_seconds, a.poll_after_seconds), (600, 30));
        let job = &a.jobs[0];
        assert_eq!(job.lease_id, 12);
        assert_eq!(job.kernel.stream.as_deref(), Some("el8"));
        assert_eq!(
            job.kernel.version_release.as_deref(),
            Some("4.18.0-513.5.1.el8_9")
        );
        assert!(job.kernel.package_url.is_none());
        assert_eq!(job.reason, "untested_head");
        let empty: LeaseAnswer = serde_json::from_str(r#"{"jobs":[]}"#).unwrap();
        assert_eq!(empty.poll_after_seconds, 30);
    }

    #[test]
    fn error_messages_come_from_the_json_body() {
        assert_eq!(
            error_message(br#"{"error":"invalid_fields","message":"bad sha"}"#),
            "invalid_fields: bad sha"
        );
        assert_eq!(error_message(b"Bad Gateway"), "Bad Gateway");
    }
}
