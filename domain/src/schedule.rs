//! What to build next. Given the kernels, the commits in git order, the results so far and the
//! open breakages, [`candidates`] lists the cells worth a runner's time, most useful first:
//!
//! 1. [`Reason::HeadUntested`]: the head commit on kernels that have results, but none at head
//!    (a new module commit: the maintainer wants to know at once what it did);
//! 2. [`Reason::NewKernel`]: the head commit on kernels with no result at all (a kernel update
//!    just discovered), newest kernel first;
//! 3. [`Reason::Bisect`]: the cells that tell an open breakage's cause or narrow it: its next
//!    cells, and the midpoints of its bisect hints on both axes;
//! 4. [`Reason::Confirm`]: a fresh failure seen once, by another runner than the one asking;
//! 5. [`Reason::Backfill`]: older commits without results, newest first.
//!
//! Storage leases them in that order, skipping the cells already leased.

use crate::breakage::Breakage;
use crate::kernel::{is_slug, stream_cmp, Kernel};
use crate::report::{is_project_name, kernel_ref, FieldError};
use crate::status::Status;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    HeadUntested,
    NewKernel,
    Bisect,
    Confirm,
    Backfill,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::HeadUntested => "head_untested",
            Reason::NewKernel => "new_kernel",
            Reason::Bisect => "bisect",
            Reason::Confirm => "confirm",
            Reason::Backfill => "backfill",
        }
    }

    pub fn parse(s: &str) -> Option<Reason> {
        [
            Reason::HeadUntested,
            Reason::NewKernel,
            Reason::Bisect,
            Reason::Confirm,
            Reason::Backfill,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What a runner can build: the kernels it has, or any kernel of some streams and an arch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capability {
    pub kernels: Option<Vec<Kernel>>,
    pub streams: Vec<String>,
    pub arch: Option<String>,
}

impl Capability {
    pub fn can_build(&self, k: &Kernel) -> bool {
        match &self.kernels {
            Some(kernels) => kernels.contains(k),
            None => {
                (self.streams.is_empty() || self.streams.contains(&k.stream))
                    && self.arch.as_ref().is_none_or(|a| *a == k.arch)
            }
        }
    }
}

/// `POST /jobs/lease`: a project, what the runner can build, and how many jobs it wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    pub project: String,
    pub can: Capability,
    pub max_jobs: usize,
}

/// At most this many jobs per lease call, and kernels named per call.
pub const MAX_JOBS: usize = 32;
const MAX_KERNELS: usize = 2000;

impl LeaseRequest {
    /// Reads `{"project", "kernels": [{"version", ...}] | "streams": [..], "arch", "max_jobs"}`,
    /// naming every bad field.
    pub fn from_json(body: &Value) -> Result<LeaseRequest, Vec<FieldError>> {
        let mut errors = Vec::new();
        let Some(obj) = body.as_object() else {
            return Err(vec![FieldError::new("(body)", "must be a JSON object")]);
        };
        let project = match obj.get("project") {
            Some(Value::String(p)) if is_project_name(p) => p.clone(),
            Some(Value::String(p)) => {
                errors.push(FieldError::new(
                    "project",
                    format!("{p:?} is not a project slug"),
                ));
                String::new()
            }
            _ => {
                errors.push(FieldError::new("project", "is required"));
                String::new()
            }
        };
        let kernels = match obj.get("kernels") {
            None | Some(Value::Null) => None,
            Some(Value::Array(list)) if list.len() <= MAX_KERNELS => Some(
                list.iter()
                    .enumerate()
                    .filter_map(|(i, v)| kernel_ref(v, &format!("kernels[{i}]"), &mut errors))
                    .collect::<Vec<_>>(),
            ),
            Some(_) => {
                errors.push(FieldError::new(
                    "kernels",
                    format!("must be a list of at most {MAX_KERNELS} kernels like {{\"version\": \"4.18.0-553.el8_10.x86_64\"}}"),
                ));
                None
            }
        };
        let mut streams = Vec::new();
        match obj.get("streams") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) => {
                for (i, v) in list.iter().enumerate() {
                    match v.as_str().filter(|s| is_slug(s)) {
                        Some(s) => streams.push(s.to_string()),
                        None => errors.push(FieldError::new(
                            format!("streams[{i}]"),
                            "must be a stream slug such as el8",
                        )),
                    }
                }
            }
            Some(_) => errors.push(FieldError::new("streams", "must be a list of stream slugs")),
        }
        let arch = match obj.get("arch") {
            None | Some(Value::Null) => None,
            Some(Value::String(a)) if is_slug(a) => Some(a.clone()),
            Some(_) => {
                errors.push(FieldError::new("arch", "must be an arch such as x86_64"));
                None
            }
        };
        if kernels.is_some() && (!streams.is_empty() || arch.is_some()) {
            errors.push(FieldError::new(
                "kernels",
                "name either the kernels the runner has, or its streams and arch, not both",
            ));
        }
        let max_jobs = match obj.get("max_jobs") {
            None | Some(Value::Null) => 1,
            Some(v) => match v.as_u64().filter(|n| (1..=MAX_JOBS as u64).contains(n)) {
                Some(n) => n as usize,
                None => {
                    errors.push(FieldError::new(
                        "max_jobs",
                        format!("must be a whole number from 1 to {MAX_JOBS}"),
                    ));
                    1
                }
            },
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(LeaseRequest {
            project,
            can: Capability {
                kernels,
                streams,
                arch,
            },
            max_jobs,
        })
    }
}

/// What is known of one cell that has results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellResults {
    pub latest: Status,
    pub reports: i64,
    /// The runner of its only report, when it has one report.
    pub only_runner: Option<i64>,
}

/// Everything the choice depends on, for one project.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// Kernels with their storage ids.
    pub kernels: Vec<(i64, Kernel)>,
    /// Commit ids and shas, newest first in git order: the first is the head.
    pub commits: Vec<(i64, String)>,
    /// Cells with results, by (kernel id, commit id).
    pub cells: HashMap<(i64, i64), CellResults>,
    pub open_breakages: Vec<Breakage>,
}

/// One cell worth building, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub kernel_id: i64,
    pub commit_id: i64,
    pub reason: Reason,
}

/// The cells worth building for a runner (`asker`) that can build the kernels `can_build`
/// accepts, most useful first, each once. Lazy: backfill over a long history is only walked as
/// far as the caller takes.
pub fn candidates<'a>(
    board: &'a Board,
    asker: i64,
    can_build: impl Fn(&Kernel) -> bool + 'a,
) -> impl Iterator<Item = Candidate> + 'a {
    // Streams in display order, each stream's kernels newest first.
    let mut kernels: Vec<&(i64, Kernel)> =
        board.kernels.iter().filter(|(_, k)| can_build(k)).collect();
    kernels.sort_by(|(_, a), (_, b)| stream_cmp(&a.stream, &b.stream).then(b.rpm_cmp(a)));
    let tested: HashSet<i64> = board.cells.keys().map(|(k, _)| *k).collect();
    let buildable: HashSet<i64> = kernels.iter().map(|(id, _)| *id).collect();
    let untested = move |k: i64, c: i64| !board.cells.contains_key(&(k, c));
    let head = board.commits.first().map(|(id, _)| *id);

    let at_head = {
        let kernels = kernels.clone();
        let tested = tested.clone();
        move |new: bool| {
            let tested = tested.clone();
            kernels
                .clone()
                .into_iter()
                .filter(move |(k, _)| tested.contains(k) != new)
                .filter_map(move |(k, _)| head.map(|c| (*k, c)))
                .filter(move |&(k, c)| untested(k, c))
                .map(move |(k, c)| Candidate {
                    kernel_id: k,
                    commit_id: c,
                    reason: if new {
                        Reason::NewKernel
                    } else {
                        Reason::HeadUntested
                    },
                })
        }
    };

    let ids = Ids::of(board);
    let bisect = board
        .open_breakages
        .iter()
        .flat_map(move |b| ids.next_of(b))
        .filter(move |&(k, c)| buildable.contains(&k) && untested(k, c))
        .map(|(k, c)| Candidate {
            kernel_id: k,
            commit_id: c,
            reason: Reason::Bisect,
        });

    let kernels_for_confirm = kernels.clone();
    let confirm = board
        .commits
        .iter()
        .flat_map(move |(c, _)| {
            let kernels = kernels_for_confirm.clone();
            kernels.into_iter().map(move |(k, _)| (*k, *c))
        })
        .filter(move |cell| {
            board.cells.get(cell).is_some_and(|f| {
                f.latest == Status::Fail && f.reports == 1 && f.only_runner != Some(asker)
            })
        })
        .map(|(k, c)| Candidate {
            kernel_id: k,
            commit_id: c,
            reason: Reason::Confirm,
        });

    let kernels_for_backfill = kernels.clone();
    let backfill = board
        .commits
        .iter()
        .skip(1)
        .flat_map(move |(c, _)| {
            let kernels = kernels_for_backfill.clone();
            kernels.into_iter().map(move |(k, _)| (*k, *c))
        })
        .filter(move |&(k, c)| untested(k, c))
        .map(|(k, c)| Candidate {
            kernel_id: k,
            commit_id: c,
            reason: Reason::Backfill,
        });

    let mut seen = HashSet::new();
    at_head(false)
        .chain(at_head(true))
        .chain(bisect)
        .chain(confirm)
        .chain(backfill)
        .filter(move |c| seen.insert((c.kernel_id, c.commit_id)))
}

/// Storage ids of kernels (by stream and uname) and commits (by sha), for reading breakages.
struct Ids {
    kernels: HashMap<(String, String), i64>,
    commits: HashMap<String, i64>,
}

impl Ids {
    fn of(board: &Board) -> Ids {
        Ids {
            kernels: board
                .kernels
                .iter()
                .map(|(id, k)| ((k.stream.clone(), k.uname()), *id))
                .collect(),
            commits: board
                .commits
                .iter()
                .map(|(id, sha)| (sha.clone(), *id))
                .collect(),
        }
    }

    /// The cells that tell a breakage's cause (its next cells) or narrow it (the midpoint of
    /// each bisect hint: commits on the first bad kernel, kernels at the first bad commit).
    fn next_of(&self, b: &Breakage) -> Vec<(i64, i64)> {
        let mut cells: Vec<(&str, &str)> = b
            .next_cells
            .iter()
            .map(|n| (n.kernel.as_str(), n.commit.as_str()))
            .collect();
        if let Some(next) = b.commit_bisect.as_ref().and_then(|h| h.next.as_deref()) {
            cells.push((&b.first_bad_kernel, next));
        }
        if let Some(next) = b.kernel_bisect.as_ref().and_then(|h| h.next.as_deref()) {
            cells.push((next, &b.first_bad_commit));
        }
        cells
            .into_iter()
            .filter_map(|(uname, sha)| {
                let kernel = self.kernels.get(&(b.stream.clone(), uname.to_string()))?;
                let commit = self
                    .commits
                    .iter()
                    .find(|(full, _)| full.starts_with(sha))
                    .map(|(_, id)| *id)?;
                Some((*kernel, commit))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakage::tests::{run, scenario};

    fn kernel(uname: &str) -> Kernel {
        Kernel::parse(uname, None, None).unwrap()
    }

    /// Two el8 kernels (1, 2) and one el9 (3); commits 10 (head), 11, 12 (oldest).
    fn board() -> Board {
        Board {
            kernels: vec![
                (1, kernel("4.18.0-513.el8.x86_64")),
                (2, kernel("4.18.0-553.el8_10.x86_64")),
                (3, kernel("5.14.0-427.el9_4.x86_64")),
            ],
            commits: vec![
                (10, "a".repeat(40)),
                (11, "b".repeat(40)),
                (12, "c".repeat(40)),
            ],
            ..Board::default()
        }
    }

    fn result(board: &mut Board, kernel: i64, commit: i64, latest: Status, runner: i64) {
        board.cells.insert(
            (kernel, commit),
            CellResults {
                latest,
                reports: 1,
                only_runner: Some(runner),
            },
        );
    }

    fn order(board: &Board, asker: i64) -> Vec<(i64, i64, Reason)> {
        candidates(board, asker, |_| true)
            .map(|c| (c.kernel_id, c.commit_id, c.reason))
            .collect()
    }

    #[test]
    fn a_new_commit_comes_first_then_new_kernels_then_backfill_newest_first() {
        let mut board = board();
        // Kernel 1 was tested on commit 11; 2 and 3 never were.
        result(&mut board, 1, 11, Status::Pass, 7);
        let order = order(&board, 7);
        assert_eq!(order[0], (1, 10, Reason::HeadUntested));
        // New kernels at head, streams in display order (newest stream first), newest first.
        assert_eq!(order[1], (3, 10, Reason::NewKernel));
        assert_eq!(order[2], (2, 10, Reason::NewKernel));
        assert_eq!(
            order[3..].iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
            [(3, 11), (2, 11), (3, 12), (2, 12), (1, 12)]
        );
        assert!(order[3..].iter().all(|c| c.2 == Reason::Backfill));
    }

    #[test]
    fn a_fresh_failure_is_confirmed_by_another_runner_only() {
        let mut board = board();
        for k in [1, 2, 3] {
            for c in [10, 11, 12] {
                result(&mut board, k, c, Status::Pass, 7);
            }
        }
        result(&mut board, 2, 10, Status::Fail, 7);
        assert_eq!(order(&board, 8), [(2, 10, Reason::Confirm)]);
        assert!(order(&board, 7).is_empty());
        board.cells.get_mut(&(2, 10)).unwrap().reports = 2;
        assert!(order(&board, 8).is_empty());
    }

    #[test]
    fn a_lease_request_names_every_bad_field() {
        let bad = LeaseRequest::from_json(&serde_json::json!({
            "project": "WG", "kernels": [{"version": "x"}, {"nope": 1}], "arch": "x86_64",
            "max_jobs": 0
        }))
        .unwrap_err();
        let fields: Vec<_> = bad.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "project",
                "kernels[0].arch",
                "kernels[0].version",
                "kernels[1].version",
                "kernels",
                "max_jobs"
            ]
        );
        let ok = LeaseRequest::from_json(&serde_json::json!({
            "project": "wg", "streams": ["el8"], "arch": "x86_64"
        }))
        .unwrap();
        assert!(ok.can.can_build(&kernel("4.18.0-553.el8_10.x86_64")));
        assert!(!ok.can.can_build(&kernel("4.18.0-553.el8_10.aarch64")));
        assert!(!ok.can.can_build(&kernel("5.14.0-427.el9_4.x86_64")));
        assert_eq!(ok.max_jobs, 1);
    }

    #[test]
    fn kernels_a_runner_cannot_build_are_never_offered() {
        let board = board();
        let el9_only: Vec<_> = candidates(&board, 7, |k| k.stream == "el9")
            .map(|c| c.kernel_id)
            .collect();
        assert_eq!(el9_only, [3, 3, 3]);
    }

    #[test]
    fn an_open_breakage_asks_for_its_bisect_midpoint_before_backfill() {
        // One kernel lane: P . . F F at commits 1..5 (oldest first): the commit bisect's
        // midpoint is the cell to build next.
        let known = scenario("el8", &[("4.18.0-513.el8.x86_64", "P..FF")]);
        let breakages = run(&known);
        let next = breakages[0].commit_bisect.clone().unwrap().next.unwrap();
        let mut board = Board::default();
        for k in &known.kernels {
            board.kernels.push((k.id, k.kernel.clone()));
        }
        // Newest first, as storage reads them.
        for c in known.commits.iter().rev() {
            board.commits.push((c.id, c.sha.clone()));
        }
        for cell in &known.cells {
            board.cells.insert(
                (cell.kernel_id, cell.commit_id),
                CellResults {
                    latest: Status::Pass,
                    reports: 2,
                    only_runner: None,
                },
            );
        }
        board.open_breakages = breakages;
        let first = candidates(&board, 7, |_| true).next().unwrap();
        assert_eq!(first.reason, Reason::Bisect);
        let sha = &board
            .commits
            .iter()
            .find(|c| c.0 == first.commit_id)
            .unwrap()
            .1;
        assert!(sha.starts_with(&next), "{sha} is not the midpoint {next}");
    }
}
