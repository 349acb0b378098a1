//! What is broken now, first: the maintainer's first question, answered in one line per open
//! breakage (its cause, the kernel update or module commit that caused it, its signature, since
//! when, and the next step), or, when nothing is broken, how fresh that news is.
//!
//! The rules here choose what each line blames and what it asks the maintainer to do next; the
//! pages only draw the result.

use crate::breakage::{Attribution, Breakage, NextCell};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What an open breakage blames, on the axis that explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Culprit {
    /// A kernel update: this kernel is the first of its lane that fails. The commits it fails
    /// on are no culprits (it fails from the oldest commit tested on it), so none is named.
    KernelUpdate { kernel: String },
    /// A module commit, with its subject when the history names it. `on` is the first failing
    /// kernel when the commit broke only newer kernels (cause "both").
    ModuleCommit {
        sha: String,
        subject: Option<String>,
        on: Option<String>,
    },
    /// Neither axis has a passing neighbour: only the first failing cell is known.
    Unknown { kernel: String, commit: String },
}

/// What to do next about an open breakage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NextStep {
    /// Untested commits lie between the last good and the first bad one: bisect them.
    BisectCommits {
        command: String,
        next: String,
        untested: usize,
    },
    /// Untested kernels lie between the last good and the first bad one: test the middle one.
    TestKernel { next: String, untested: usize },
    /// The cause is unknown: test these untested neighbour cells; a pass tells the cause.
    TestCells(Vec<NextCell>),
    /// The cause is unknown and the failing cell has no neighbour (first commit, oldest kernel):
    /// only an older commit or kernel can tell.
    TestOlder,
    /// The culprit is pinned down: adapt the module to it.
    Fix,
}

/// One open breakage, as the "now" summary lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NowLine {
    /// The breakage's id, for its link.
    pub id: String,
    pub stream: String,
    pub stream_label: String,
    pub attribution: Attribution,
    pub culprit: Culprit,
    pub signature: Option<String>,
    /// Epoch milliseconds of its first failing report.
    pub opened_at: Option<i64>,
    /// How many kernels fail in it.
    pub kernels: usize,
    pub next: NextStep,
}

/// Everything broken in a project right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenNow {
    pub project: String,
    /// Open breakages, the most recently opened first.
    pub open: Vec<NowLine>,
    /// Epoch milliseconds when the newest result finished: how fresh "nothing is broken" is.
    pub newest_result: Option<i64>,
}

impl BrokenNow {
    /// The open ones among `breakages`, one line each. `subjects` maps commit shas to their
    /// subjects (for the module commits blamed).
    pub fn new(
        project: &str,
        breakages: &[Breakage],
        subjects: &BTreeMap<String, String>,
        newest_result: Option<i64>,
    ) -> BrokenNow {
        let mut open: Vec<NowLine> = breakages
            .iter()
            .filter(|b| b.open)
            .map(|b| NowLine::of(b, subjects))
            .collect();
        open.sort_by(|a, b| b.opened_at.cmp(&a.opened_at).then(a.id.cmp(&b.id)));
        BrokenNow {
            project: project.to_string(),
            open,
            newest_result,
        }
    }

    /// Nothing is broken (there may be no result at all: see `newest_result`).
    pub fn all_clear(&self) -> bool {
        self.open.is_empty()
    }
}

impl NowLine {
    fn of(b: &Breakage, subjects: &BTreeMap<String, String>) -> NowLine {
        let module_commit = |on: Option<String>| Culprit::ModuleCommit {
            sha: b.first_bad_commit.clone(),
            subject: subjects.get(&b.first_bad_commit).cloned(),
            on,
        };
        let culprit = match b.attribution {
            Attribution::Kernel => Culprit::KernelUpdate {
                kernel: b.first_bad_kernel.clone(),
            },
            Attribution::Module => module_commit(None),
            Attribution::Both => module_commit(Some(b.first_bad_kernel.clone())),
            Attribution::Unknown => Culprit::Unknown {
                kernel: b.first_bad_kernel.clone(),
                commit: b.first_bad_commit.clone(),
            },
        };
        NowLine {
            id: b.id.clone(),
            stream: b.stream.clone(),
            stream_label: b.stream_label.clone(),
            attribution: b.attribution,
            culprit,
            signature: b.signature.clone(),
            opened_at: b.opened_at,
            kernels: b.kernels.len(),
            next: next_step(b),
        }
    }
}

/// The next step on the axis that explains the breakage.
pub fn next_step(b: &Breakage) -> NextStep {
    let commits = b.commit_bisect.as_ref().filter(|h| !h.adjacent());
    let kernels = b.kernel_bisect.as_ref().filter(|h| !h.adjacent());
    match b.attribution {
        Attribution::Module | Attribution::Both => match commits {
            Some(h) => NextStep::BisectCommits {
                command: h.command.clone().unwrap_or_default(),
                next: h.next.clone().unwrap_or_default(),
                untested: h.untested.len(),
            },
            None => NextStep::Fix,
        },
        Attribution::Kernel => match kernels {
            Some(h) => NextStep::TestKernel {
                next: h.next.clone().unwrap_or_default(),
                untested: h.untested.len(),
            },
            None => NextStep::Fix,
        },
        Attribution::Unknown if b.next_cells.is_empty() => NextStep::TestOlder,
        Attribution::Unknown => NextStep::TestCells(b.next_cells.clone()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::breakage::tests::{named, run};
    use crate::status::CellState;
    use std::sync::Arc;

    pub(crate) use crate::breakage::tests::sha;

    /// The project's breakages from kernels and their results along commits 1..=n, written as
    /// in the breakage tests (`P` pass, `F` fail, `.` untested). Results of commit `i` arrive at
    /// `i * 1000` ms and every failure reads `x.c: error: boom`.
    pub(crate) fn breakages(rows: &[(&str, &str)]) -> Vec<Breakage> {
        let mut s = named(rows);
        for c in &mut s.cells {
            let t = c.commit_id * 1000;
            let fails = c.state == CellState::Fail;
            c.signature = fails.then(|| Arc::from("x.c: error: boom"));
            c.first_fail_at = fails.then_some(t);
            c.first_pass_at = (c.state == CellState::Pass).then_some(t);
        }
        run(&s)
    }

    fn now(rows: &[(&str, &str)]) -> BrokenNow {
        let subjects = BTreeMap::from([(sha(3), "Use the new napi API".to_string())]);
        BrokenNow::new("wg", &breakages(rows), &subjects, Some(9_000))
    }

    #[test]
    fn nothing_open_is_all_clear_with_the_age_of_the_newest_result() {
        // Broken by commit 2, fixed by commit 3: history, not news.
        let n = now(&[("4.18.0-553.el8_10.x86_64", "PFP")]);
        assert!(n.all_clear());
        assert_eq!(n.newest_result, Some(9_000));
    }

    #[test]
    fn a_module_commit_pinned_down_is_blamed_with_its_subject_and_asks_for_a_fix() {
        let n = now(&[("4.18.0-553.el8_10.x86_64", "PPFF")]);
        assert_eq!(n.open.len(), 1);
        let line = &n.open[0];
        assert_eq!(line.attribution, Attribution::Module);
        assert_eq!(
            line.culprit,
            Culprit::ModuleCommit {
                sha: sha(3),
                subject: Some("Use the new napi API".into()),
                on: None
            }
        );
        assert_eq!(line.next, NextStep::Fix);
        assert_eq!(line.signature.as_deref(), Some("x.c: error: boom"));
        assert_eq!(line.opened_at, Some(3000));
    }

    #[test]
    fn untested_commits_between_good_and_bad_ask_for_a_bisect() {
        let n = now(&[("4.18.0-553.el8_10.x86_64", "P...F")]);
        assert_eq!(
            n.open[0].next,
            NextStep::BisectCommits {
                command: format!("git bisect start {} {}", sha(5), sha(1)),
                next: sha(3),
                untested: 3
            }
        );
    }

    #[test]
    fn a_kernel_update_blames_the_kernel_and_no_commit() {
        let n = now(&[
            ("4.18.0-513.el8_9.x86_64", "PPP"),
            ("4.18.0-513.5.1.el8_9.x86_64", "..."),
            ("4.18.0-553.el8_10.x86_64", "FFF"),
        ]);
        let line = &n.open[0];
        assert_eq!(
            line.culprit,
            Culprit::KernelUpdate {
                kernel: "4.18.0-553.el8_10.x86_64".into()
            }
        );
        assert_eq!(
            line.next,
            NextStep::TestKernel {
                next: "4.18.0-513.5.1.el8_9.x86_64".into(),
                untested: 1
            }
        );
    }

    #[test]
    fn an_unknown_cause_asks_for_the_untested_neighbours_on_both_axes() {
        let n = now(&[
            ("4.18.0-513.el8_9.x86_64", "P."),
            ("4.18.0-553.el8_10.x86_64", ".F"),
        ]);
        let line = &n.open[0];
        assert_eq!(
            line.culprit,
            Culprit::Unknown {
                kernel: "4.18.0-553.el8_10.x86_64".into(),
                commit: sha(2)
            }
        );
        let NextStep::TestCells(cells) = &line.next else {
            panic!("{:?}", line.next)
        };
        let cells: Vec<(&str, &str)> = cells
            .iter()
            .map(|c| (c.kernel.as_str(), c.commit.as_str()))
            .collect();
        assert_eq!(
            cells,
            [
                ("4.18.0-513.el8_9.x86_64", sha(2).as_str()),
                ("4.18.0-553.el8_10.x86_64", sha(1).as_str())
            ]
        );
    }

    #[test]
    fn a_failure_with_no_neighbour_at_all_asks_for_an_older_commit_or_kernel() {
        let n = now(&[("4.18.0-553.el8_10.x86_64", "F")]);
        assert_eq!(n.open[0].next, NextStep::TestOlder);
    }

    #[test]
    fn the_most_recently_opened_breakage_comes_first() {
        let n = now(&[
            ("3.10.0-1160.el7.x86_64", "PFFFFF"),
            ("4.18.0-553.el8_10.x86_64", "PPPPFF"),
        ]);
        let opened: Vec<Option<i64>> = n.open.iter().map(|l| l.opened_at).collect();
        assert_eq!(opened, [Some(5000), Some(2000)]);
    }
}
