//! What an administrator says about a project when adding or editing it: its description, the
//! module's git web URL, and where each commit's page is (derived from the git URL unless given).

use crate::report::{is_project_name, FieldError};
use crate::view::CommitUrl;
use serde_json::Value;

const MAX_DESCRIPTION: usize = 2000;

/// A change to a project's settings; `None` leaves a setting as it is, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectEdit {
    pub description: Option<String>,
    pub git_url: Option<Option<String>>,
    pub commit_url: Option<Option<CommitUrl>>,
}

/// Checks a git web URL: http(s), no spaces or control characters.
pub fn parse_git_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{url:?}: use an http:// or https:// URL"));
    }
    if url.len() > 500 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{url:?}: no spaces or control characters, at most 500 bytes"
        ));
    }
    Ok(url.to_string())
}

/// Where a commit's page is on the usual git web front ends: GitHub's `/commit/<sha>`,
/// GitLab's `/-/commit/<sha>`, and cgit's `/commit/?id=<sha>` (git.kernel.org, git.zx2c4.com).
pub fn commit_url_of(git_url: &str) -> CommitUrl {
    let host = git_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_default();
    let base = git_url.trim_end_matches(".git");
    let template = if host == "github.com" || host.starts_with("gitea.") {
        format!("{base}/commit/{{sha}}")
    } else if host.contains("gitlab") {
        format!("{base}/-/commit/{{sha}}")
    } else {
        format!("{git_url}/commit/?id={{sha}}")
    };
    CommitUrl::parse(&template).expect("a checked git URL makes a valid template")
}

impl ProjectEdit {
    /// Reads `{"description", "git_url", "commit_url"}` (each optional, `null` or `""` clears a
    /// URL), naming every bad field. A git URL without a commit URL also sets commit links.
    pub fn from_json(body: &Value) -> Result<ProjectEdit, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("(body)", "must be a JSON object")]);
        };
        let mut edit = ProjectEdit::default();
        let text = |key: &str, errors: &mut Vec<FieldError>| match obj.get(key) {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.push(FieldError::new(key, "must be a string or null"));
                None
            }
        };
        if let Some(d) = text("description", &mut errors) {
            if d.len() > MAX_DESCRIPTION || d.contains('\0') {
                errors.push(FieldError::new(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION} bytes, without NUL"),
                ));
            } else {
                edit.description = Some(d);
            }
        }
        if let Some(url) = text("git_url", &mut errors) {
            match url.as_str() {
                "" => edit.git_url = Some(None),
                u => match parse_git_url(u) {
                    Ok(u) => edit.git_url = Some(Some(u)),
                    Err(e) => errors.push(FieldError::new("git_url", e)),
                },
            }
        }
        if let Some(url) = text("commit_url", &mut errors) {
            match url.as_str() {
                "" => edit.commit_url = Some(None),
                u => match CommitUrl::parse(u) {
                    Ok(u) => edit.commit_url = Some(Some(u)),
                    Err(e) => errors.push(FieldError::new("commit_url", e)),
                },
            }
        }
        for key in obj.keys() {
            if !["name", "description", "git_url", "commit_url"].contains(&key.as_str()) {
                errors.push(FieldError::new(
                    key.as_str(),
                    "is not a project setting (description, git_url, commit_url)",
                ));
            }
        }
        if errors.is_empty() {
            Ok(edit.with_derived_commit_url())
        } else {
            Err(errors)
        }
    }

    /// A new git URL brings its commit links along unless commit links were given too.
    pub fn with_derived_commit_url(mut self) -> ProjectEdit {
        if self.commit_url.is_none() {
            if let Some(Some(git)) = &self.git_url {
                self.commit_url = Some(Some(commit_url_of(git)));
            }
        }
        self
    }
}

/// Reads the `name` of a project to add.
pub fn new_project_name(body: &Value) -> Result<String, Vec<FieldError>> {
    match body.get("name") {
        Some(Value::String(n)) if is_project_name(n) => Ok(n.clone()),
        Some(Value::String(n)) => Err(vec![FieldError::new(
            "name",
            format!("{n:?} must be a lowercase slug such as wireguard-linux-compat"),
        )]),
        _ => Err(vec![FieldError::new("name", "is required")]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commit_links_follow_the_git_front_end() {
        let of = |git: &str| commit_url_of(git).of("abc");
        assert_eq!(
            of("https://git.zx2c4.com/wireguard-linux-compat"),
            "https://git.zx2c4.com/wireguard-linux-compat/commit/?id=abc"
        );
        assert_eq!(
            of("https://github.com/WireGuard/wireguard-linux-compat.git"),
            "https://github.com/WireGuard/wireguard-linux-compat/commit/abc"
        );
        assert_eq!(
            of("https://gitlab.com/x/y"),
            "https://gitlab.com/x/y/-/commit/abc"
        );
    }

    #[test]
    fn an_edit_names_every_bad_field() {
        let bad = ProjectEdit::from_json(&json!({
            "git_url": "ftp://x", "commit_url": "https://x/", "description": 3, "owner": "me"
        }))
        .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["description", "git_url", "commit_url", "owner"]);

        let edit = ProjectEdit::from_json(&json!({"git_url": "https://github.com/a/b/"})).unwrap();
        assert_eq!(edit.git_url, Some(Some("https://github.com/a/b".into())));
        assert_eq!(
            edit.commit_url.unwrap().unwrap().of("1"),
            "https://github.com/a/b/commit/1"
        );
        let cleared = ProjectEdit::from_json(&json!({"commit_url": null})).unwrap();
        assert_eq!(cleared.commit_url, Some(None));
        assert_eq!(cleared.description, None);
    }
}
