//! Job outcomes and the per-cell summary that the grid shows.

use serde::{Deserialize, Serialize};

/// The outcome of a job or of one of its stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Unit variants' doc comments do not reach the schema: its description says what they mean.
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "fail: the module failed to build or test; error: infrastructure \
                           trouble, never the module's breakage."
    )
)]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
        latest.into()
    }
}

/// The state of a cell made by one report (or stage) with this status.
impl From<Status> for CellState {
    fn from(status: Status) -> CellState {
        match status {
            Status::Pass => CellState::Pass,
            Status::Fail => CellState::Fail,
            Status::Error => CellState::Error,
            Status::Skip => CellState::Skip,
        }
    }
}

/// What new reports add to one cell's summary. Reports stored together are merged first, then
/// into the stored summary by storage's upsert, which applies this same rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellUpdate {
    pub counts: StatusCounts,
    pub latest_status: Status,
    pub latest_report_id: i64,
    pub latest_finished_at: i64,
    /// Signature of the latest report, when it failed with one.
    pub latest_signature: Option<String>,
    pub first_fail_at: Option<i64>,
    pub first_pass_at: Option<i64>,
}

impl CellUpdate {
    pub fn state(&self) -> CellState {
        CellState::of(self.counts.pass, self.counts.fail, self.latest_status)
    }

    pub fn of_report(id: i64, status: Status, finished_at: i64, signature: Option<String>) -> Self {
        let mut counts = StatusCounts::default();
        counts.add(status);
        CellUpdate {
            counts,
            latest_status: status,
            latest_report_id: id,
            latest_finished_at: finished_at,
            latest_signature: signature,
            first_fail_at: (status == Status::Fail).then_some(finished_at),
            first_pass_at: (status == Status::Pass).then_some(finished_at),
        }
    }

    /// Adds a report stored after those already merged. Counts add up; the report that finished
    /// last decides the status (a tie goes to the one stored later); a signature is replaced
    /// only by a newer one; first pass and first fail are the earliest.
    pub fn absorb(&mut self, later: CellUpdate) {
        self.counts.pass += later.counts.pass;
        self.counts.fail += later.counts.fail;
        self.counts.error += later.counts.error;
        self.counts.skip += later.counts.skip;
        if later.latest_finished_at >= self.latest_finished_at {
            if later.latest_signature.is_some() {
                self.latest_signature = later.latest_signature;
            }
            self.latest_status = later.latest_status;
            self.latest_report_id = later.latest_report_id;
            self.latest_finished_at = later.latest_finished_at;
        }
        let earliest = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.first_fail_at = earliest(self.first_fail_at, later.first_fail_at);
        self.first_pass_at = earliest(self.first_pass_at, later.first_pass_at);
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

    #[test]
    fn cell_updates_merge_like_the_stored_summary() {
        let mut cell = CellUpdate::of_report(1, Status::Fail, 100, Some("sig-a".into()));
        cell.absorb(CellUpdate::of_report(2, Status::Pass, 300, None));
        cell.absorb(CellUpdate::of_report(
            3,
            Status::Fail,
            200,
            Some("sig-b".into()),
        ));
        assert_eq!((cell.counts.pass, cell.counts.fail), (1, 2));
        // The pass finished last, so it decides; an older failure does not replace anything.
        assert_eq!(
            (cell.latest_report_id, cell.latest_status),
            (2, Status::Pass)
        );
        assert_eq!(cell.latest_signature.as_deref(), Some("sig-a"));
        assert_eq!(
            (cell.first_fail_at, cell.first_pass_at),
            (Some(100), Some(300))
        );
        // A tie goes to the report stored later.
        cell.absorb(CellUpdate::of_report(
            4,
            Status::Fail,
            300,
            Some("sig-c".into()),
        ));
        assert_eq!(
            (cell.latest_report_id, cell.latest_signature.as_deref()),
            (4, Some("sig-c"))
        );
        assert_eq!(cell.state(), CellState::Flaky);
    }
}
