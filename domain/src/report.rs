//! Validation of what runners send: a report, or a batch of commit history. Every bad field is
//! named in one answer, so a runner author fixes all of them at once.

use crate::kernel::{is_slug, Kernel};
use crate::status::Status;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One invalid field: its dotted path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// Dotted path such as `commit.sha` or `stages[0].status`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A commit as a runner describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitInfo {
    /// Full 40-hex sha, lowercase.
    pub sha: String,
    pub subject: Option<String>,
    pub author: Option<String>,
    pub committed_at: Option<DateTime<Utc>>,
    /// `None` when the sender did not say; `Some(vec![])` for a root commit.
    pub parents: Option<Vec<String>>,
    /// Release tags pointing at the commit (`v1.0.20220627`); tags are only ever added.
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stage {
    pub name: String,
    pub status: Status,
    pub duration_ms: Option<i64>,
}

/// A validated report, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub project: String,
    pub kernel: Kernel,
    pub commit: CommitInfo,
    pub status: Status,
    pub stages: Vec<Stage>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub log: String,
    pub run_id: String,
    pub metadata: BTreeMap<String, String>,
}

const MAX_METADATA_ENTRIES: usize = 64;
const MAX_METADATA_VALUE: usize = 1024;
const MAX_TEXT: usize = 1000;
const MAX_COMMITS_PER_PUSH: usize = 10_000;
const MAX_TAGS: usize = 16;
const MAX_TAG: usize = 100;

/// Text fields are refused with NUL in them: PostgreSQL cannot store it and no name, subject or
/// author needs it. Logs instead keep it, made visible (see `log::make_nul_visible`).
const NUL_MESSAGE: &str = "must not contain NUL (\\u0000) characters";

/// Walks a JSON object and collects every field error instead of stopping at the first.
struct Fields<'v, 'e> {
    obj: Option<&'v Map<String, Value>>,
    prefix: String,
    errors: &'e mut Vec<FieldError>,
}

impl<'v, 'e> Fields<'v, 'e> {
    fn new(value: &'v Value, prefix: &str, errors: &'e mut Vec<FieldError>) -> Self {
        let obj = value.as_object();
        if obj.is_none() {
            let field = if prefix.is_empty() { "(body)" } else { prefix };
            errors.push(FieldError::new(field, "must be a JSON object"));
        }
        Fields {
            obj,
            prefix: prefix.to_string(),
            errors,
        }
    }

    fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        let field = self.path(key);
        self.errors.push(FieldError::new(field, message));
    }

    fn get(&self, key: &str) -> Option<&'v Value> {
        self.obj?.get(key).filter(|v| !v.is_null())
    }

    fn opt_str(&mut self, key: &str, max: usize) -> Option<String> {
        match self.get(key) {
            None => None,
            Some(Value::String(s)) if s.contains('\0') => {
                self.error(key, NUL_MESSAGE);
                None
            }
            Some(Value::String(s)) if s.len() <= max => Some(s.clone()),
            Some(Value::String(_)) => {
                self.error(key, format!("must be at most {max} bytes"));
                None
            }
            Some(_) => {
                self.error(key, "must be a string");
                None
            }
        }
    }

    fn req_str(&mut self, key: &str, max: usize) -> Option<String> {
        if self.obj.is_some() && self.get(key).is_none() {
            self.error(key, "is required");
            return None;
        }
        let s = self.opt_str(key, max)?;
        if s.trim().is_empty() {
            self.error(key, "must not be empty");
            return None;
        }
        Some(s)
    }

    fn opt_time(&mut self, key: &str) -> Option<DateTime<Utc>> {
        let s = self.opt_str(key, 64)?;
        match DateTime::parse_from_rfc3339(&s) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                self.error(key, "must be an RFC 3339 time such as 2026-11-26T10:00:00Z");
                None
            }
        }
    }

    fn req_time(&mut self, key: &str) -> Option<DateTime<Utc>> {
        if self.obj.is_some() && self.get(key).is_none() {
            self.error(key, "is required (RFC 3339)");
            return None;
        }
        self.opt_time(key)
    }

    fn status(&mut self, key: &str) -> Option<Status> {
        let s = self.req_str(key, 16)?;
        let status = Status::parse(&s);
        if status.is_none() {
            self.error(key, format!("{s:?} is not one of pass, fail, error, skip"));
        }
        status
    }
}

/// Checks and normalises a full commit sha.
pub fn parse_sha(s: &str) -> Result<String, String> {
    let sha = s.trim().to_ascii_lowercase();
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(sha)
    } else {
        Err(format!("{s:?} is not a full 40-hex commit sha"))
    }
}

pub fn is_project_name(s: &str) -> bool {
    is_slug(s)
}

fn commit_info(value: &Value, prefix: &str, errors: &mut Vec<FieldError>) -> Option<CommitInfo> {
    let mut f = Fields::new(value, prefix, errors);
    let sha = f.req_str("sha", 64).and_then(|s| match parse_sha(&s) {
        Ok(sha) => Some(sha),
        Err(e) => {
            f.error("sha", e);
            None
        }
    });
    let subject = f.opt_str("subject", MAX_TEXT);
    let author = f.opt_str("author", MAX_TEXT);
    let committed_at = f.opt_time("committed_at");
    let parents = match f.get("parents") {
        None => None,
        Some(Value::Array(items)) if items.len() <= 64 => {
            let mut parents = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str().map(parse_sha) {
                    Some(Ok(p)) => parents.push(p),
                    Some(Err(e)) => f.error(&format!("parents[{i}]"), e),
                    None => f.error(&format!("parents[{i}]"), "must be a string"),
                }
            }
            Some(parents)
        }
        Some(_) => {
            f.error("parents", "must be an array of at most 64 full shas");
            None
        }
    };
    let tags = tags(&mut f);
    if let (Some(sha), Some(parents)) = (&sha, &parents) {
        if let Some(i) = parents.iter().position(|p| p == sha) {
            f.error(
                &format!("parents[{i}]"),
                "names the commit itself: a commit cannot be its own parent",
            );
            return None;
        }
    }
    Some(CommitInfo {
        sha: sha?,
        subject,
        author,
        committed_at,
        parents,
        tags,
    })
}

/// A commit's optional `tags`: at most `MAX_TAGS` names of 1 to `MAX_TAG` characters without control
/// characters (a tag is shown in a column header and a title), duplicates dropped.
fn tags(f: &mut Fields<'_, '_>) -> Vec<String> {
    let items = match f.get("tags") {
        None => return Vec::new(),
        Some(Value::Array(items)) if items.len() <= MAX_TAGS => items,
        Some(_) => {
            f.error(
                "tags",
                format!("must be an array of at most {MAX_TAGS} tag names"),
            );
            return Vec::new();
        }
    };
    let mut tags: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("tags[{i}]");
        match item.as_str() {
            None => f.error(&key, "must be a string"),
            Some(t) if t.contains('\0') => f.error(&key, NUL_MESSAGE),
            Some(t) if t.chars().any(char::is_control) => {
                f.error(&key, "must not contain control characters")
            }
            Some(t) if t.trim().is_empty() || t.chars().count() > MAX_TAG => {
                f.error(&key, format!("must be 1 to {MAX_TAG} characters"))
            }
            Some(t) if tags.iter().any(|known| known == t) => {}
            Some(t) => tags.push(t.to_string()),
        }
    }
    tags
}

fn stages(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Vec<Stage> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(items) = value.as_array().filter(|a| a.len() <= 32) else {
        errors.push(FieldError::new(
            "stages",
            "must be an array of at most 32 stages",
        ));
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let prefix = format!("stages[{i}]");
        let mut f = Fields::new(item, &prefix, errors);
        let name = f.req_str("name", 64);
        let status = f.status("status");
        let duration_ms = match f.get("duration_s") {
            None => None,
            Some(v) => match v
                .as_f64()
                .filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e9)
            {
                Some(d) => Some((d * 1000.0).round() as i64),
                None => {
                    f.error("duration_s", "must be a non-negative number of seconds");
                    None
                }
            },
        };
        if let (Some(name), Some(status)) = (name, status) {
            out.push(Stage {
                name,
                status,
                duration_ms,
            });
        }
    }
    out
}

fn metadata(value: Option<&Value>, errors: &mut Vec<FieldError>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return out };
    let Some(map) = value.as_object() else {
        errors.push(FieldError::new(
            "metadata",
            "must be an object of string values",
        ));
        return out;
    };
    if map.len() > MAX_METADATA_ENTRIES {
        errors.push(FieldError::new(
            "metadata",
            format!(
                "has {} entries; at most {MAX_METADATA_ENTRIES} are kept",
                map.len()
            ),
        ));
        return out;
    }
    for (k, v) in map {
        match v.as_str() {
            Some(s) if s.contains('\0') || k.contains('\0') => {
                errors.push(FieldError::new(format!("metadata.{k}"), NUL_MESSAGE))
            }
            Some(s) if s.len() <= MAX_METADATA_VALUE && k.len() <= 128 => {
                out.insert(k.clone(), s.to_string());
            }
            Some(_) => errors.push(FieldError::new(
                format!("metadata.{k}"),
                format!("keys are at most 128 and values at most {MAX_METADATA_VALUE} bytes"),
            )),
            None => errors.push(FieldError::new(format!("metadata.{k}"), "must be a string")),
        }
    }
    out
}

impl Report {
    /// Validates a report body (already parsed as JSON).
    pub fn from_json(body: &Value) -> Result<Report, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut f = Fields::new(body, "", &mut errors);
        let project = f.req_str("project", 64);
        if let Some(p) = project.as_deref().filter(|p| !is_project_name(p)) {
            f.error(
                "project",
                format!("{p:?} must be a lowercase slug such as wireguard-linux-compat"),
            );
        }
        let status = f.status("status");
        let started_at = f.req_time("started_at");
        let finished_at = f.req_time("finished_at");
        let run_id = f.req_str("run_id", 200);
        let log = match f.get("log") {
            Some(Value::String(log)) => crate::log::make_nul_visible(log),
            Some(_) => {
                f.error("log", "must be a string");
                String::new()
            }
            None => String::new(),
        };
        let kernel_value = f.get("kernel");
        let commit_value = f.get("commit");
        let stages_value = f.get("stages");
        let metadata_value = f.get("metadata");
        let has_body = f.obj.is_some();

        let kernel = match kernel_value {
            Some(v) => kernel_ref(v, "kernel", &mut errors),
            None => {
                if has_body {
                    errors.push(FieldError::new(
                        "kernel",
                        "is required: {\"version\": \"4.18.0-553.el8_10.x86_64\"}",
                    ));
                }
                None
            }
        };
        let commit = match commit_value {
            Some(v) => commit_info(v, "commit", &mut errors),
            None => {
                if has_body {
                    errors.push(FieldError::new(
                        "commit",
                        "is required: {\"sha\": \"<40 hex>\"}",
                    ));
                }
                None
            }
        };
        let stages = stages(stages_value, &mut errors);
        let metadata = metadata(metadata_value, &mut errors);
        if let (Some(s), Some(e)) = (started_at, finished_at) {
            if e < s {
                errors.push(FieldError::new("finished_at", "is before started_at"));
            }
        }
        if let Some(r) = run_id
            .as_deref()
            .filter(|r| r.chars().any(char::is_control))
        {
            errors.push(FieldError::new(
                "run_id",
                format!("{r:?} contains control characters"),
            ));
        }

        match (
            project,
            kernel,
            commit,
            status,
            started_at,
            finished_at,
            run_id,
        ) {
            (
                Some(project),
                Some(kernel),
                Some(commit),
                Some(status),
                Some(started_at),
                Some(finished_at),
                Some(run_id),
            ) if errors.is_empty() => Ok(Report {
                project,
                kernel,
                commit,
                status,
                stages,
                started_at,
                finished_at,
                log,
                run_id,
                metadata,
            }),
            _ => Err(errors),
        }
    }
}

/// Validates a commit-history push: `{"commits": [{sha, parents, subject, author, committed_at}]}`.
/// A kernel as runners name it: `{"version": uname -r, "arch"?, "distro"?}` at `prefix`.
pub fn kernel_ref(value: &Value, prefix: &str, errors: &mut Vec<FieldError>) -> Option<Kernel> {
    let mut kf = Fields::new(value, prefix, errors);
    let version = kf.req_str("version", 200);
    let arch = kf.opt_str("arch", 32);
    let distro = kf.opt_str("distro", 64);
    match Kernel::parse(&version?, arch.as_deref(), distro.as_deref()) {
        Ok(k) => Some(k),
        Err(e) => {
            errors.extend(e.into_iter().map(|mut e| {
                if let Some(rest) = e.field.strip_prefix("kernel") {
                    e.field = format!("{prefix}{rest}");
                }
                e
            }));
            None
        }
    }
}

pub fn commits_from_json(body: &Value) -> Result<Vec<CommitInfo>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let items = match body.get("commits").and_then(Value::as_array) {
        Some(items) if !items.is_empty() && items.len() <= MAX_COMMITS_PER_PUSH => items,
        _ => {
            return Err(vec![FieldError::new(
                "commits",
                format!("must be an array of 1 to {MAX_COMMITS_PER_PUSH} commits"),
            )])
        }
    };
    let commits: Vec<CommitInfo> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| commit_info(item, &format!("commits[{i}]"), &mut errors))
        .collect();
    if errors.is_empty() {
        Ok(commits)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({
            "project": "wireguard-linux-compat",
            "kernel": {"version": "4.18.0-553.el8_10.x86_64"},
            "commit": {"sha": "3D3C92B4711B42169837E8C3B1FA2B8E5E1EA8E4", "subject": "qemu: bump", "parents": []},
            "status": "fail",
            "stages": [{"name": "build", "status": "fail", "duration_s": 12.5}],
            "started_at": "2026-11-26T10:00:00Z",
            "finished_at": "2026-11-26T11:01:00+01:00",
            "log": "error: oops",
            "run_id": "job-1",
            "metadata": {"compiler": "gcc 8.5.0"}
        })
    }

    fn fields(body: Value) -> Vec<String> {
        Report::from_json(&body)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn accepts_a_full_report_and_normalises_it() {
        let r = Report::from_json(&valid()).unwrap();
        assert_eq!(r.commit.sha, "3d3c92b4711b42169837e8c3b1fa2b8e5e1ea8e4");
        assert_eq!(r.kernel.stream, "el8");
        assert_eq!(r.stages[0].duration_ms, Some(12_500));
        assert_eq!(r.finished_at.to_rfc3339(), "2026-11-26T10:01:00+00:00");
        assert_eq!(r.metadata["compiler"], "gcc 8.5.0");
    }

    #[test]
    fn names_every_bad_field() {
        let body = json!({
            "project": "Bad Name",
            "kernel": {"version": "4.18.0-553.el8_10"},
            "commit": {"sha": "abc1234"},
            "status": "broken",
            "stages": [{"name": "build"}],
            "started_at": "yesterday",
            "log": 5,
            "metadata": {"n": 1}
        });
        let mut got = fields(body);
        got.sort();
        assert_eq!(
            got,
            [
                "commit.sha",
                "finished_at",
                "kernel.arch",
                "log",
                "metadata.n",
                "project",
                "run_id",
                "stages[0].status",
                "started_at",
                "status",
            ]
        );
    }

    #[test]
    fn rejects_non_objects_and_time_travel() {
        assert_eq!(fields(json!([1, 2])), ["(body)"]);
        let mut body = valid();
        body["finished_at"] = json!("2026-11-26T09:00:00Z");
        assert_eq!(fields(body), ["finished_at"]);
        let mut body = valid();
        body["run_id"] = json!("   ");
        assert_eq!(fields(body), ["run_id"]);
        let mut body = valid();
        body["kernel"] = json!("4.18");
        assert_eq!(fields(body), ["kernel"]);
    }

    #[test]
    fn commit_push_validation() {
        let ok = json!({"commits": [{"sha": "b448d6f35bf1d3faf961347c23835f7237548065", "parents": []}]});
        assert_eq!(commits_from_json(&ok).unwrap().len(), 1);
        let bad = json!({"commits": [{"sha": "b448d6f"}, {"sha": "b448d6f35bf1d3faf961347c23835f7237548065", "parents": ["x"]}]});
        let errs: Vec<String> = commits_from_json(&bad)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(errs, ["commits[0].sha", "commits[1].parents[0]"]);
        assert!(commits_from_json(&json!({"commits": []})).is_err());
    }

    #[test]
    fn tags_are_checked_and_deduplicated() {
        let sha = "b448d6f35bf1d3faf961347c23835f7237548065";
        let ok = json!({"commits": [{"sha": sha, "tags": ["v1.0.20220627", "v1.0.20220627", "stable"]}]});
        assert_eq!(
            commits_from_json(&ok).unwrap()[0].tags,
            ["v1.0.20220627", "stable"]
        );
        let none = json!({"commits": [{"sha": sha}]});
        assert!(commits_from_json(&none).unwrap()[0].tags.is_empty());
        let long = "v".repeat(101);
        let bad = json!({"commits": [
            {"sha": sha, "tags": ["", "a\0b", "a\nb", 5, long, "é".repeat(100)]},
            {"sha": sha, "tags": vec!["v1"; 17]},
            {"sha": sha, "tags": "v1"},
        ]});
        let errs: Vec<String> = commits_from_json(&bad)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            errs,
            [
                "commits[0].tags[0]",
                "commits[0].tags[1]",
                "commits[0].tags[2]",
                "commits[0].tags[3]",
                "commits[0].tags[4]",
                "commits[1].tags",
                "commits[2].tags",
            ]
        );
        let mut report = valid();
        report["commit"]["tags"] = json!(["v1\u{7}"]);
        assert_eq!(fields(report), ["commit.tags[0]"]);
    }

    #[test]
    fn sha_must_be_full() {
        assert!(parse_sha("3d3c92b").is_err());
        assert!(parse_sha(&"g".repeat(40)).is_err());
        assert_eq!(parse_sha(&"A".repeat(40)).unwrap(), "a".repeat(40));
    }
}
