//! Who may post what: a runner token is scoped to projects, and within a project optionally to
//! one stream and one arch. A distribution's runner for one module cannot write into another
//! module's grid, nor create projects (administrators do).

use crate::kernel::{is_slug, Kernel};
use serde::Serialize;
use std::fmt;

/// One grant: a project, and within it one stream and one arch, or any.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Grant {
    pub project: String,
    pub stream: Option<String>,
    pub arch: Option<String>,
}

impl Grant {
    /// Reads `project`, `project:stream`, `project:stream:arch` or `project::arch`.
    pub fn parse(text: &str) -> Result<Grant, String> {
        let mut parts = text.split(':');
        let project = parts.next().unwrap_or_default();
        let part = |p: Option<&str>| p.filter(|s| !s.is_empty()).map(str::to_string);
        let stream = part(parts.next());
        let arch = part(parts.next());
        let usage =
            "write a scope as PROJECT, PROJECT:STREAM, PROJECT:STREAM:ARCH or PROJECT::ARCH";
        if parts.next().is_some() {
            return Err(format!("{text:?} has too many parts; {usage}"));
        }
        for (what, value) in [
            ("project", Some(project)),
            ("stream", stream.as_deref()),
            ("arch", arch.as_deref()),
        ] {
            if let Some(v) = value.filter(|v| !is_slug(v)) {
                return Err(format!(
                    "the {what} {v:?} of {text:?} is not a lowercase slug; {usage}"
                ));
            }
        }
        Ok(Grant {
            project: project.to_string(),
            stream,
            arch,
        })
    }

    /// Whether this grant lets its holder post about `kernel` in `project`.
    pub fn covers(&self, project: &str, kernel: &Kernel) -> bool {
        self.project == project
            && self.stream.as_ref().is_none_or(|s| *s == kernel.stream)
            && self.arch.as_ref().is_none_or(|a| *a == kernel.arch)
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.project)?;
        match (&self.stream, &self.arch) {
            (None, None) => Ok(()),
            (Some(s), None) => write!(f, ":{s}"),
            (s, Some(a)) => write!(f, ":{}:{a}", s.as_deref().unwrap_or_default()),
        }
    }
}

/// Everything one runner may post.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Scope(pub Vec<Grant>);

/// Why a post falls outside a runner's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfScope {
    /// What was refused: "project wg", "kernel 4.18.0-553.el8_10.x86_64 of wg".
    pub refused: String,
    /// The runner's grants, as `trellis runner list` shows them.
    pub scope: Vec<String>,
}

impl Scope {
    pub fn allows_project(&self, project: &str) -> bool {
        self.0.iter().any(|g| g.project == project)
    }

    pub fn allows(&self, project: &str, kernel: &Kernel) -> bool {
        self.0.iter().any(|g| g.covers(project, kernel))
    }

    /// A commit push concerns a project; a report a project and one kernel.
    pub fn check(&self, project: &str, kernel: Option<&Kernel>) -> Result<(), OutOfScope> {
        let allowed = match kernel {
            Some(k) => self.allows(project, k),
            None => self.allows_project(project),
        };
        if allowed {
            return Ok(());
        }
        let refused = match kernel {
            Some(k) if self.allows_project(project) => {
                format!("kernel {} ({}) of project {project}", k.uname(), k.stream)
            }
            _ => format!("project {project}"),
        };
        Err(OutOfScope {
            refused,
            scope: self.describe(),
        })
    }

    pub fn describe(&self) -> Vec<String> {
        self.0.iter().map(Grant::to_string).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(uname: &str) -> Kernel {
        Kernel::parse(uname, None, None).unwrap()
    }

    #[test]
    fn grants_read_and_print_the_same() {
        for text in ["wg", "wg:el8", "wg:el8:x86_64", "wg::aarch64"] {
            assert_eq!(Grant::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Grant::parse("wg:").unwrap().to_string(), "wg");
        for bad in ["", "WG", "wg:el8:x86_64:more", "wg:EL8", "wg:el 8"] {
            assert!(Grant::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_grant_narrows_by_stream_and_arch() {
        let scope = Scope(vec![
            Grant::parse("wg:el8:x86_64").unwrap(),
            Grant::parse("other").unwrap(),
        ]);
        let el8 = kernel("4.18.0-553.el8_10.x86_64");
        let el8_arm = kernel("4.18.0-553.el8_10.aarch64");
        let el9 = kernel("5.14.0-427.el9_4.x86_64");
        assert!(scope.check("wg", Some(&el8)).is_ok());
        assert!(scope.check("other", Some(&el9)).is_ok());
        assert!(scope.check("wg", None).is_ok());

        let refused = scope.check("wg", Some(&el8_arm)).unwrap_err();
        assert_eq!(
            refused.refused,
            "kernel 4.18.0-553.el8_10.aarch64 (el8) of project wg"
        );
        assert_eq!(refused.scope, vec!["wg:el8:x86_64", "other"]);
        assert!(scope.check("wg", Some(&el9)).is_err());
        assert_eq!(
            scope.check("third", None).unwrap_err().refused,
            "project third"
        );
        assert!(Scope::default().check("wg", None).is_err());
    }
}
