//! Health events: a problem that makes the CI less trustworthy ([`HealthProblem`]: a stale
//! runner, a failing kernel source, head coverage that stays low) is announced `raised` once
//! when it appears and `cleared` once when it goes, in the feeds and mails that carry breakage
//! events. A silent CI is the failure a maintainer fears most: it must not be silent about it.

use crate::breakage::BreakageFilter;
use crate::coverage::HealthProblem;
use crate::notice::{escape, wrap, WIDTH};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    Raised,
    Cleared,
}

impl HealthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthKind::Raised => "raised",
            HealthKind::Cleared => "cleared",
        }
    }

    pub fn parse(s: &str) -> Option<HealthKind> {
        [HealthKind::Raised, HealthKind::Cleared]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One health event, as feeds, mails and webhooks read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthEvent {
    /// From the same sequence as breakage events: feeds order both by it.
    pub id: i64,
    pub kind: HealthKind,
    pub project: String,
    /// Epoch milliseconds.
    pub at: i64,
    pub uuid: String,
    /// When the problem was raised (for `cleared`: how long it lasted).
    pub raised_at: i64,
    /// The problem as it was when raised.
    pub problem: HealthProblem,
}

/// What changes when the problems of now are compared with the open ones (by key): the new
/// problems to raise, and the open ones (by id) to clear.
pub fn diff<'p>(
    open: &[(i64, String)],
    now: &'p [HealthProblem],
) -> (Vec<&'p HealthProblem>, Vec<i64>) {
    let raised = now
        .iter()
        .filter(|p| open.iter().all(|(_, key)| *key != p.key()))
        .collect();
    let cleared = open
        .iter()
        .filter(|(_, key)| now.iter().all(|p| p.key() != *key))
        .map(|(id, _)| *id)
        .collect();
    (raised, cleared)
}

impl HealthProblem {
    /// Whether a subscriber or feed following `filter` wants it: health concerns no cause and
    /// is never fixed, so it passes filters that name neither, within its stream if it has one.
    pub fn passes(&self, filter: &BreakageFilter) -> bool {
        filter.attribution.is_none()
            && filter.open.is_none()
            && filter
                .stream
                .as_deref()
                .is_none_or(|s| self.stream() == Some(s))
    }
}

impl HealthEvent {
    /// A feed entry's title and a mail's subject (after `[trellis] `).
    pub fn title(&self) -> String {
        match self.kind {
            HealthKind::Raised => format!(
                "CI health of {}: {}",
                self.project,
                self.problem.describe(self.at)
            ),
            HealthKind::Cleared => format!(
                "CI health of {}: resolved after {}: {}",
                self.project,
                crate::view::elapsed(self.at - self.raised_at),
                self.problem.describe(self.raised_at)
            ),
        }
    }

    pub fn subject(&self) -> String {
        format!("[trellis] {}", self.title())
    }

    fn advice(&self) -> &'static str {
        match (&self.problem, self.kind) {
            (_, HealthKind::Cleared) => "Nothing to do: this is the all-clear.",
            (HealthProblem::RunnerStale { .. }, _) => {
                "No results come from this runner: check that its service runs and reaches \
                 Trellis (trellis-runner logs, its spool directory)."
            }
            (HealthProblem::SourceFailing { .. }, _) => {
                "New kernels of this stream are not being found: check the repository URL \
                 (trellis source list) and the server's log."
            }
            (HealthProblem::LowCoverage { .. }, _) => {
                "Kernels are waiting for results at the head commit: check that runners for \
                 this stream are up and have those kernel trees (or a provisioning command)."
            }
        }
    }

    /// A mail's plain-text body: what, what to do, where to look.
    pub fn text_body(&self, coverage_url: &str, footer: &str) -> String {
        format!(
            "{}\n\n{}\n\nCoverage and runner health: {coverage_url}\n\n-- \n{}\n",
            wrap(&self.title(), WIDTH, ""),
            wrap(self.advice(), WIDTH, ""),
            wrap(footer, WIDTH, "")
        )
    }

    /// A feed entry's HTML content.
    pub fn html_body(&self, coverage_url: &str) -> String {
        format!(
            "<p>{}</p><p>{}</p><p><a href=\"{}\">Coverage and runner health</a></p>",
            escape(&self.title()),
            escape(self.advice()),
            escape(coverage_url)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakage::Attribution;

    fn low(stream: &str) -> HealthProblem {
        HealthProblem::LowCoverage {
            stream: stream.into(),
            percent: 50,
            threshold: 90,
        }
    }

    #[test]
    fn a_problem_is_raised_once_and_cleared_once() {
        let stale = HealthProblem::RunnerStale {
            runner: "el8-1".into(),
            last_contact_at: Some(0),
        };
        let now = [low("el8"), stale.clone()];
        let (raised, cleared) = diff(&[], &now);
        assert_eq!(raised.len(), 2);
        assert!(cleared.is_empty());
        // Open as `low-coverage:el8` (id 1) and the runner (id 2): nothing new while they last,
        // even when the figures in them move.
        let open = vec![(1, low("el8").key()), (2, stale.key())];
        let moved = [low("el8"), stale];
        assert_eq!(diff(&open, &moved), (vec![], vec![]));
        // The runner came back: only its problem clears.
        assert_eq!(diff(&open, &[low("el8")]), (vec![], vec![2]));
    }

    #[test]
    fn health_passes_filters_without_a_cause_within_its_stream() {
        let event = HealthEvent {
            id: 1,
            kind: HealthKind::Raised,
            project: "wg".into(),
            at: 3_600_000,
            uuid: "u".into(),
            raised_at: 3_600_000,
            problem: low("el8"),
        };
        let mut filter = BreakageFilter::default();
        assert!(event.problem.passes(&filter));
        filter.stream = Some("el9".into());
        assert!(!event.problem.passes(&filter));
        filter.stream = Some("el8".into());
        assert!(event.problem.passes(&filter));
        filter.attribution = Some(Attribution::Module);
        assert!(!event.problem.passes(&filter));
        let body = event.text_body("http://t/p/wg/coverage", "footer");
        assert!(
            body.starts_with("CI health of wg: Enterprise Linux 8: only 50% of kernels"),
            "{body}"
        );
        assert!(body.contains("http://t/p/wg/coverage"));
    }
}
