//! Job outcomes and the per-cell summary that the grid shows.

use serde::{Deserialize, Serialize};

/// The outcome of a job or of one of its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The module built and its tests passed.
    Pass,
    /// The module failed to build or its tests failed: the module's (or the kernel's) fault.
    Fail,
    /// Infrastructure trouble: the runner could not run the job. Never the module's breakage.
    Error,
    /// The job was deliberately not run.
    Skip,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Pass, Status::Fail, Status::Error, Status::Skip];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Error => "error",
            Status::Skip => "skip",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What a grid cell shows: the latest report's status, or `Flaky` when reports disagree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CellState {
    Pass,
    Fail,
    Error,
    Skip,
    /// Both passing and failing reports for the same kernel and commit.
    Flaky,
}

impl CellState {
    pub fn as_str(self) -> &'static str {
        match self {
            CellState::Pass => "pass",
            CellState::Fail => "fail",
            CellState::Error => "error",
            CellState::Skip => "skip",
            CellState::Flaky => "flaky",
        }
    }

    /// A symbol per state, so the grid never relies on colour alone.
    pub fn symbol(self) -> &'static str {
        match self {
            CellState::Pass => "✓",
            CellState::Fail => "✗",
            CellState::Error => "!",
            CellState::Skip => "–",
            CellState::Flaky => "≈",
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, CellState::Fail | CellState::Flaky)
    }
}

/// Counts per status of all reports of one (kernel, commit), plus the latest one.
/// Maintained at ingest so that the grid never scans reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub pass: i64,
    pub fail: i64,
    pub error: i64,
    pub skip: i64,
}

impl StatusCounts {
    pub fn total(&self) -> i64 {
        self.pass + self.fail + self.error + self.skip
    }

    pub fn add(&mut self, status: Status) {
        match status {
            Status::Pass => self.pass += 1,
            Status::Fail => self.fail += 1,
            Status::Error => self.error += 1,
            Status::Skip => self.skip += 1,
        }
    }

    /// "3 reports: 2 pass, 1 fail"
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.pass, "pass"),
            (self.fail, "fail"),
            (self.error, "error"),
            (self.skip, "skip"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, s)| format!("{n} {s}"))
        .collect();
        let total = self.total();
        let noun = if total == 1 { "report" } else { "reports" };
        format!("{total} {noun}: {}", parts.join(", "))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellSummary {
    pub counts: StatusCounts,
    pub latest_status: Status,
    pub latest_report_id: i64,
    /// Epoch milliseconds of the latest report's `finished_at`.
    pub latest_finished_at: i64,
    /// Error signature of the latest failing report.
    pub signature: Option<String>,
}

impl CellSummary {
    pub fn state(&self) -> CellState {
        CellState::of(self.counts.pass, self.counts.fail, self.latest_status)
    }
}

impl CellState {
    /// A cell's state from its pass and fail counts and its latest status.
    pub fn of(passes: i64, fails: i64, latest: Status) -> CellState {
        if passes > 0 && fails > 0 {
            return CellState::Flaky;
        }
        match latest {
            Status::Pass => CellState::Pass,
            Status::Fail => CellState::Fail,
            Status::Error => CellState::Error,
            Status::Skip => CellState::Skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(statuses: &[Status]) -> CellSummary {
        let mut counts = StatusCounts::default();
        statuses.iter().for_each(|s| counts.add(*s));
        CellSummary {
            counts,
            latest_status: *statuses.last().unwrap(),
            latest_report_id: 1,
            latest_finished_at: 0,
            signature: None,
        }
    }

    #[test]
    fn state_is_the_latest_status_unless_pass_and_fail_disagree() {
        assert_eq!(
            summary(&[Status::Fail, Status::Error]).state(),
            CellState::Error
        );
        assert_eq!(
            summary(&[Status::Error, Status::Pass]).state(),
            CellState::Pass
        );
        assert_eq!(
            summary(&[Status::Pass, Status::Fail]).state(),
            CellState::Flaky
        );
        assert_eq!(summary(&[Status::Skip]).state(), CellState::Skip);
        assert!(CellState::Flaky.is_failure() && !CellState::Error.is_failure());
    }

    #[test]
    fn describes_counts() {
        assert_eq!(
            summary(&[Status::Pass, Status::Fail, Status::Pass])
                .counts
                .describe(),
            "3 reports: 2 pass, 1 fail"
        );
        assert_eq!(
            summary(&[Status::Error]).counts.describe(),
            "1 report: 1 error"
        );
    }

    #[test]
    fn status_round_trips_through_its_name() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("PASS"), None);
    }
}
