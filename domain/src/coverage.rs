//! How far the CI can be trusted: per stream, the share of kernels tested at the head commit and
//! the age of the newest result; the kernels never tested, or untested since a commit; each
//! runner's health; open leases; the state of each kernel source; and the health problems a
//! silent or failing CI shows (a stale runner, a failing source, head coverage that stays low).

use crate::kernel::{stream_cmp, stream_label, Kernel};
use crate::schedule::Reason;
use crate::view::{Project, StoredCommit};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// One stream's trust figure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamCoverage {
    pub stream: String,
    pub label: String,
    pub kernels: i64,
    /// Kernels with a result at the head commit.
    pub tested_at_head: i64,
    /// `tested_at_head` of `kernels`, in whole percent (rounded down: 99.9% is not 100%).
    pub percent_at_head: i64,
    /// Epoch milliseconds of the stream's newest result, at any commit.
    pub newest_result_at: Option<i64>,
}

/// A kernel on the coverage page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KernelSeen {
    pub stream: String,
    pub uname: String,
    /// Epoch milliseconds: when Trellis first knew it (a source's poll, a runner, a report).
    pub first_seen_at: i64,
}

/// A runner as the coverage page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunnerHealth {
    pub name: String,
    pub enabled: bool,
    /// Its last report, lease or heartbeat.
    pub last_contact_at: Option<i64>,
    pub last_report_at: Option<i64>,
    pub reports: i64,
    /// Share of its reports that were `error` (its own trouble), in whole percent.
    pub error_percent: Option<i64>,
    /// Silent for longer than the configured time.
    pub stale: bool,
    /// What it may post, as `trellis runner list` shows it.
    pub scope: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LeaseView {
    pub id: i64,
    pub runner: String,
    pub stream: String,
    pub uname: String,
    pub sha: String,
    pub reason: Reason,
    pub leased_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceHealth {
    pub id: i64,
    pub url: String,
    pub package: String,
    pub stream: String,
    pub arch: String,
    pub checked_at: Option<i64>,
    pub succeeded_at: Option<i64>,
    /// Why the last poll failed; what was known before stays.
    pub error: Option<String>,
    pub failing_since: Option<i64>,
    pub packages: i64,
}

/// Something that makes the CI less trustworthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HealthProblem {
    /// A runner has been silent longer than the configured time.
    RunnerStale {
        runner: String,
        last_contact_at: Option<i64>,
    },
    /// A kernel source's polls fail: new kernels of its stream are not being found.
    SourceFailing {
        source: i64,
        stream: String,
        url: String,
        error: String,
        since: i64,
    },
    /// A stream's head coverage stayed below the threshold past the time a lease takes.
    LowCoverage {
        stream: String,
        percent: i64,
        threshold: i64,
    },
}

impl HealthProblem {
    /// A stable key: one problem is told once while it lasts.
    pub fn key(&self) -> String {
        match self {
            HealthProblem::RunnerStale { runner, .. } => format!("runner-stale:{runner}"),
            HealthProblem::SourceFailing { source, .. } => format!("source-failing:{source}"),
            HealthProblem::LowCoverage { stream, .. } => format!("low-coverage:{stream}"),
        }
    }

    /// The stream it concerns, if one.
    pub fn stream(&self) -> Option<&str> {
        match self {
            HealthProblem::RunnerStale { .. } => None,
            HealthProblem::SourceFailing { stream, .. }
            | HealthProblem::LowCoverage { stream, .. } => Some(stream),
        }
    }

    /// One line for people.
    pub fn describe(&self, now: i64) -> String {
        match self {
            HealthProblem::RunnerStale {
                runner,
                last_contact_at: Some(t),
            } => format!(
                "runner {runner} is silent: it last called {}",
                crate::view::ago(*t, now)
            ),
            HealthProblem::RunnerStale { runner, .. } => {
                format!("runner {runner} has never called")
            }
            HealthProblem::SourceFailing {
                url, error, since, ..
            } => format!(
                "kernel source {url} fails: {error} (first failure {})",
                crate::view::ago(*since, now)
            ),
            HealthProblem::LowCoverage {
                stream,
                percent,
                threshold,
            } => format!(
                "{}: only {percent}% of kernels tested at the head commit (threshold {threshold}%)",
                stream_label(stream)
            ),
        }
    }
}

/// The coverage page and its JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Coverage {
    pub project: Project,
    pub head: Option<StoredCommit>,
    pub streams: Vec<StreamCoverage>,
    pub never_tested: Vec<KernelSeen>,
    /// With `?since=<sha>`: that commit, and the kernels with no result on it or any newer commit.
    pub since: Option<StoredCommit>,
    pub untested_since: Vec<KernelSeen>,
    pub runners: Vec<RunnerHealth>,
    pub leases: Vec<LeaseView>,
    pub sources: Vec<SourceHealth>,
    pub problems: Vec<HealthProblem>,
    /// Epoch milliseconds this was computed at.
    pub now: i64,
}

/// One kernel's facts, as storage reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelFacts {
    pub kernel: Kernel,
    pub first_seen_at: i64,
    pub tested_at_head: bool,
    /// Tested on the `since` commit or a newer one.
    pub tested_since: bool,
    pub ever_tested: bool,
    pub newest_result_at: Option<i64>,
}

/// What decides the health problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub runner_stale_ms: i64,
    /// Percent.
    pub coverage: i64,
    /// How long a kernel or commit may wait for its first result before its absence counts.
    pub grace_ms: i64,
}

/// Per-stream trust figures and the kernels never (or not lately) tested, streams in display
/// order, kernels newest first.
pub fn streams_of(
    kernels: &[KernelFacts],
) -> (Vec<StreamCoverage>, Vec<KernelSeen>, Vec<KernelSeen>) {
    let mut by_stream: BTreeMap<&str, Vec<&KernelFacts>> = BTreeMap::new();
    for k in kernels {
        by_stream.entry(&k.kernel.stream).or_default().push(k);
    }
    let mut names: Vec<&str> = by_stream.keys().copied().collect();
    names.sort_by(|a, b| stream_cmp(a, b));
    let mut streams = Vec::new();
    let (mut never, mut not_since) = (Vec::new(), Vec::new());
    for name in names {
        let mut ks = by_stream.remove(name).unwrap_or_default();
        ks.sort_by(|a, b| b.kernel.rpm_cmp(&a.kernel));
        let tested = ks.iter().filter(|k| k.tested_at_head).count() as i64;
        streams.push(StreamCoverage {
            stream: name.to_string(),
            label: stream_label(name),
            kernels: ks.len() as i64,
            tested_at_head: tested,
            percent_at_head: if ks.is_empty() {
                0
            } else {
                tested * 100 / ks.len() as i64
            },
            newest_result_at: ks.iter().filter_map(|k| k.newest_result_at).max(),
        });
        let seen = |k: &&KernelFacts| KernelSeen {
            stream: k.kernel.stream.clone(),
            uname: k.kernel.uname(),
            first_seen_at: k.first_seen_at,
        };
        never.extend(ks.iter().filter(|k| !k.ever_tested).map(seen));
        not_since.extend(ks.iter().filter(|k| !k.tested_since).map(seen));
    }
    (streams, never, not_since)
}

/// The problems a coverage page shows, and health events tell: stale runners (enabled ones
/// only), failing sources, and streams whose head coverage stays low once every missing cell
/// had `grace_ms` to get a result (`head_known_at`: when the head commit was first known).
pub fn problems(
    coverage: &Coverage,
    kernels: &[KernelFacts],
    head_known_at: Option<i64>,
    t: Thresholds,
) -> Vec<HealthProblem> {
    let now = coverage.now;
    let mut out = Vec::new();
    for r in coverage.runners.iter().filter(|r| r.enabled && r.stale) {
        out.push(HealthProblem::RunnerStale {
            runner: r.name.clone(),
            last_contact_at: r.last_contact_at,
        });
    }
    for s in &coverage.sources {
        if let (Some(error), Some(since)) = (&s.error, s.failing_since) {
            out.push(HealthProblem::SourceFailing {
                source: s.id,
                stream: s.stream.clone(),
                url: s.url.clone(),
                error: error.clone(),
                since,
            });
        }
    }
    let overdue: HashSet<&str> = kernels
        .iter()
        .filter(|k| !k.tested_at_head)
        .filter(|k| {
            let wanted_since = k.first_seen_at.max(head_known_at.unwrap_or(i64::MIN));
            now - wanted_since > t.grace_ms
        })
        .map(|k| k.kernel.stream.as_str())
        .collect();
    for s in &coverage.streams {
        if s.percent_at_head < t.coverage && overdue.contains(s.stream.as_str()) {
            out.push(HealthProblem::LowCoverage {
                stream: s.stream.clone(),
                percent: s.percent_at_head,
                threshold: t.coverage,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(uname: &str, seen: i64, at_head: bool, ever: bool) -> KernelFacts {
        KernelFacts {
            kernel: Kernel::parse(uname, None, None).unwrap(),
            first_seen_at: seen,
            tested_at_head: at_head,
            tested_since: at_head,
            ever_tested: ever,
            newest_result_at: ever.then_some(seen + 10),
        }
    }

    fn coverage(kernels: &[KernelFacts], now: i64) -> Coverage {
        let (streams, never_tested, _) = streams_of(kernels);
        Coverage {
            project: Project {
                id: 1,
                name: "wg".into(),
                description: String::new(),
                demo: false,
            },
            head: None,
            streams,
            never_tested,
            since: None,
            untested_since: vec![],
            runners: vec![],
            leases: vec![],
            sources: vec![],
            problems: vec![],
            now,
        }
    }

    const T: Thresholds = Thresholds {
        runner_stale_ms: 1000,
        coverage: 90,
        grace_ms: 100,
    };

    #[test]
    fn shares_round_down_and_streams_keep_display_order() {
        let mut kernels: Vec<_> = (0..9)
            .map(|i| facts(&format!("4.18.0-{}.el8.x86_64", 500 + i), 0, true, true))
            .collect();
        kernels.push(facts("4.18.0-600.el8.x86_64", 0, false, false));
        kernels.push(facts("5.14.0-427.el9_4.x86_64", 0, true, true));
        let (streams, never, _) = streams_of(&kernels);
        let figures: Vec<_> = streams
            .iter()
            .map(|s| {
                (
                    s.stream.as_str(),
                    s.tested_at_head,
                    s.kernels,
                    s.percent_at_head,
                )
            })
            .collect();
        assert_eq!(figures, [("el9", 1, 1, 100), ("el8", 9, 10, 90)]);
        assert_eq!(never[0].uname, "4.18.0-600.el8.x86_64");
    }

    #[test]
    fn low_coverage_is_a_problem_only_once_the_missing_cells_had_time() {
        let kernels = vec![
            facts("4.18.0-513.el8.x86_64", 0, true, true),
            facts("4.18.0-553.el8_10.x86_64", 950, false, false),
        ];
        // A kernel found 50 ms ago: runners are still on it.
        let fresh = coverage(&kernels, 1000);
        assert!(problems(&fresh, &kernels, Some(0), T).is_empty());
        // 150 ms later it is overdue: 50% is below 90%.
        let late = coverage(&kernels, 1100);
        assert_eq!(
            problems(&late, &kernels, Some(0), T),
            [HealthProblem::LowCoverage {
                stream: "el8".into(),
                percent: 50,
                threshold: 90
            }]
        );
        // A new head commit gives every kernel its grace again.
        assert!(problems(&late, &kernels, Some(1050), T).is_empty());
    }

    #[test]
    fn stale_runners_and_failing_sources_are_problems_with_stable_keys() {
        let mut c = coverage(&[], 5000);
        c.runners.push(RunnerHealth {
            name: "el8-1".into(),
            enabled: true,
            last_contact_at: Some(100),
            last_report_at: None,
            reports: 0,
            error_percent: None,
            stale: true,
            scope: vec!["wg".into()],
        });
        c.runners.push(RunnerHealth {
            name: "retired".into(),
            enabled: false,
            stale: true,
            ..c.runners[0].clone()
        });
        c.sources.push(SourceHealth {
            id: 3,
            url: "http://repo/".into(),
            package: "kernel-devel".into(),
            stream: "el8".into(),
            arch: "x86_64".into(),
            checked_at: Some(4000),
            succeeded_at: Some(1000),
            error: Some("repodata/repomd.xml: HTTP 404".into()),
            failing_since: Some(2000),
            packages: 4,
        });
        let found = problems(&c, &[], None, T);
        let keys: Vec<_> = found.iter().map(HealthProblem::key).collect();
        assert_eq!(keys, ["runner-stale:el8-1", "source-failing:3"]);
        assert!(found[1].describe(5000).contains("HTTP 404"));
    }
}
