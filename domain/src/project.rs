//! Read models of stored things, shared by the API (as JSON) and the pages.

use crate::breakage::Breakage;
use crate::grid::{CommitColumn, KernelRow};
use crate::kernel::Kernel;
use crate::report::Stage;
use crate::status::{CellSummary, Status, StatusCounts};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Epoch milliseconds as `2026-11-26 10:00 UTC`.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "?".to_string())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Simulated results seeded by `make run`; every page that shows them says so.
    pub demo: bool,
}

/// How the newest tested commit fares: cell states counted over the kernels it was tested on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitHealth {
    pub commit: CommitColumn,
    pub cells: StatusCounts,
    pub flaky: i64,
}

impl CommitHealth {
    /// "abc1234: 3 of 120 kernels failing" or "abc1234: all 120 kernels pass".
    pub fn one_line(&self) -> String {
        let total = self.cells.total();
        let failing = self.cells.fail + self.flaky;
        let short = self.commit.short_sha();
        if failing == 0 && self.cells.error == 0 {
            format!("{short}: all {total} tested kernels pass")
        } else {
            let mut s = format!("{short}: {failing} of {total} kernels failing");
            if self.flaky > 0 {
                s.push_str(&format!(" ({} flaky)", self.flaky));
            }
            if self.cells.error > 0 {
                s.push_str(&format!(", {} with runner errors", self.cells.error));
            }
            s
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectSummary {
    pub project: Project,
    pub kernels: i64,
    pub commits: i64,
    pub reports: i64,
    pub latest: Option<CommitHealth>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportDetail {
    pub id: i64,
    pub runner: String,
    pub run_id: String,
    pub status: Status,
    pub stages: Vec<Stage>,
    pub metadata: BTreeMap<String, String>,
    /// Epoch milliseconds.
    pub started_at: i64,
    pub finished_at: i64,
    pub received_at: i64,
    pub log: String,
    pub log_original_bytes: i64,
    pub log_cut_bytes: i64,
}

/// Every report of one (kernel, commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellDetail {
    pub project: Project,
    pub kernel: KernelRow,
    pub commit: CommitColumn,
    pub summary: Option<CellSummary>,
    pub reports: Vec<ReportDetail>,
}

/// A breakage with the error excerpt of its first failing cell, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakageDetail {
    #[serde(flatten)]
    pub breakage: Breakage,
    pub error_line: Option<String>,
    pub excerpt: Option<String>,
}

/// One kernel's row along the commits, newest first, and its breakages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelHistory {
    pub project: Project,
    pub kernel: KernelRow,
    pub cells: Vec<(CommitColumn, CellSummary)>,
    pub breakages: Vec<BreakageDetail>,
}

/// Kernels whose state changed between a commit's parent and the commit, in one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamChange {
    pub stream: String,
    pub label: String,
    /// Passed on the parent, fail on this commit.
    pub broke: Vec<String>,
    /// Failed on the parent, pass on this commit.
    pub fixed: Vec<String>,
    pub tested: usize,
}

/// What a commit broke and fixed compared with its (first) parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitChanges {
    pub project: Project,
    pub commit: CommitColumn,
    pub parent: Option<CommitColumn>,
    pub streams: Vec<StreamChange>,
    /// Breakages whose first bad commit is this one, and those it fixed.
    pub opened: Vec<Breakage>,
    pub closed: Vec<Breakage>,
}

/// A cell whose latest failure shows a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCell {
    pub kernel: Kernel,
    pub sha: String,
    pub last_seen: i64,
}

/// Every cell that shows one error signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCells {
    pub project: Project,
    pub id: String,
    pub signature: String,
    pub excerpt: Option<String>,
    pub kernels: usize,
    /// The oldest kernel (in RPM order, per stream) it appears on.
    pub since: Vec<String>,
    pub first_seen: i64,
    pub cells: Vec<SignatureCell>,
}

impl SignatureCells {
    /// "this error appears on 14 kernels since 4.18.0-483.el8.x86_64"
    pub fn one_line(&self) -> String {
        let noun = if self.kernels == 1 {
            "kernel"
        } else {
            "kernels"
        };
        if self.since.is_empty() {
            format!("appears on {} {noun}", self.kernels)
        } else {
            format!(
                "appears on {} {noun} since {}",
                self.kernels,
                self.since.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_line_counts_failures_and_errors() {
        let commit = CommitColumn {
            id: 1,
            sha: "3d3c92b4711b42169837e8c3b1fa2b8e5e1ea8e4".into(),
            subject: None,
            author: None,
            committed_at: None,
        };
        let mut h = CommitHealth {
            commit,
            cells: StatusCounts {
                pass: 10,
                fail: 0,
                error: 0,
                skip: 0,
            },
            flaky: 0,
        };
        assert_eq!(h.one_line(), "3d3c92b: all 10 tested kernels pass");
        h.cells = StatusCounts {
            pass: 7,
            fail: 2,
            error: 1,
            skip: 0,
        };
        h.flaky = 1;
        assert_eq!(
            h.one_line(),
            "3d3c92b: 3 of 10 kernels failing (1 flaky), 1 with runner errors"
        );
    }
}
