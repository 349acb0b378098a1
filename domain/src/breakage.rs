//! Breakages: where a (kernel, commit) cell goes from pass to fail, what caused it, how long it
//! lasted, and what to test next to pin it down (bisect hints on both axes).
//!
//! The grid is read per *lane*: the kernels of one stream, arch and variant in RPM order, against
//! the commits in git order. Only `pass` and `fail` cells are evidence: `error` (infrastructure),
//! `skip` and flaky cells never open or close a breakage.

use crate::grid::QueryError;
use crate::kernel::stream_label;
use crate::status::CellState;
use crate::view::{StoredCommit, StoredKernel};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// What the grid knows about one cell, as breakage detection needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellFacts {
    pub kernel_id: i64,
    pub commit_id: i64,
    pub state: CellState,
    /// Signature of the latest failing report, if any (shared: many cells show the same one).
    pub signature: Option<Arc<str>>,
    /// Epoch milliseconds of the first failing / passing report.
    pub first_fail_at: Option<i64>,
    pub first_pass_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// Unit variants' doc comments do not reach the schema: its description says what they mean.
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "module: a commit broke it; kernel: a kernel update broke it; both: \
                          both axes show a transition; unknown: neither has a passing neighbour."
    )
)]
#[serde(rename_all = "lowercase")]
pub enum Attribution {
    /// The same kernel passed on an earlier commit: a commit broke it.
    Module,
    /// The same commit passed on the previous kernel of the stream: a kernel update broke it.
    Kernel,
    /// Both axes show a transition.
    Both,
    /// Neither axis has a passing neighbour to compare with.
    Unknown,
}

impl Attribution {
    /// Every cause, in the order pages list them.
    pub const ALL: [Attribution; 4] = [
        Attribution::Module,
        Attribution::Kernel,
        Attribution::Both,
        Attribution::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Attribution::Module => "module",
            Attribution::Kernel => "kernel",
            Attribution::Both => "both",
            Attribution::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Attribution> {
        Attribution::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// What the cause means, in a few words (breakage headings, the cause filter).
    pub fn description(self) -> &'static str {
        match self {
            Attribution::Module => "a module commit broke it",
            Attribution::Kernel => "a kernel update broke it",
            Attribution::Both => "a module commit broke it on newer kernels",
            Attribution::Unknown => "cause unknown",
        }
    }
}

/// Which breakages to list. Lives in the page URL: `?stream=el8&attribution=kernel&state=open`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakageFilter {
    pub stream: Option<String>,
    pub attribution: Option<Attribution>,
    /// `Some(true)`: open ones only; `Some(false)`: fixed ones only.
    pub open: Option<bool>,
}

impl BreakageFilter {
    /// Builds a filter from URL query pairs. Empty values mean "any" (what the page's form sends
    /// for it); unknown keys are ignored; an attribution or state it does not know is an error.
    /// The query parameters a filter reads; every other is ignored.
    pub const PARAMS: [&'static str; 3] = ["stream", "attribution", "state"];

    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<BreakageFilter, QueryError> {
        let mut f = BreakageFilter::default();
        for (k, v) in pairs.into_iter().filter(|(_, v)| !v.is_empty()) {
            match k {
                "stream" if f.stream.is_some() => {
                    return Err(QueryError {
                        param: "stream",
                        value: v.to_string(),
                        expected: "name one stream (or nothing for any)",
                    })
                }
                "stream" => f.stream = Some(v.to_string()),
                "attribution" => {
                    f.attribution = Some(Attribution::parse(v).ok_or_else(|| QueryError {
                        param: "attribution",
                        value: v.to_string(),
                        expected: "use module, kernel, both or unknown (or nothing for any)",
                    })?)
                }
                "state" => {
                    f.open = Some(match v {
                        "open" => true,
                        "fixed" => false,
                        _ => {
                            return Err(QueryError {
                                param: "state",
                                value: v.to_string(),
                                expected: "use open or fixed (or nothing for any)",
                            })
                        }
                    })
                }
                _ => {}
            }
        }
        Ok(f)
    }

    /// The query pairs that give this filter back (feed and page links).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(s) = &self.stream {
            pairs.push(("stream", s.clone()));
        }
        if let Some(a) = self.attribution {
            pairs.push(("attribution", a.as_str().to_string()));
        }
        if let Some(open) = self.open {
            pairs.push(("state", if open { "open" } else { "fixed" }.to_string()));
        }
        pairs
    }

    pub fn keeps(&self, b: &Breakage) -> bool {
        self.stream.as_ref().is_none_or(|s| *s == b.stream)
            && self.attribution.is_none_or(|a| a == b.attribution)
            && self.open.is_none_or(|o| o == b.open)
    }
}

/// Where to look next on one axis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BisectHint {
    pub last_good: String,
    pub first_bad: String,
    /// Commits (or kernels) between them that have no result, oldest first.
    pub untested: Vec<String>,
    /// The midpoint of `untested`: the one to test next.
    pub next: Option<String>,
    /// `git bisect start <bad> <good>` (commit axis only).
    pub command: Option<String>,
}

impl BisectHint {
    /// True when good and bad are neighbours: the first bad one is known.
    pub fn adjacent(&self) -> bool {
        self.untested.is_empty()
    }

    fn new(
        last_good: String,
        first_bad: String,
        untested: Vec<String>,
        commit_axis: bool,
    ) -> BisectHint {
        let command = commit_axis.then(|| format!("git bisect start {first_bad} {last_good}"));
        BisectHint {
            next: untested.get(untested.len() / 2).cloned(),
            last_good,
            first_bad,
            untested,
            command,
        }
    }
}

/// Which neighbour of the first failing cell a [`NextCell`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "kernel: the previous kernel of the lane on the first failing commit (a \
                       pass there blames the kernel update); commit: the commit before on the \
                       same kernel (a pass there blames a module commit)."
    )
)]
#[serde(rename_all = "lowercase")]
pub enum NeighbourAxis {
    Kernel,
    Commit,
}

/// An untested cell next to a failure whose cause is unknown: its result tells the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NextCell {
    pub axis: NeighbourAxis,
    /// Kernel `uname -r`.
    pub kernel: String,
    pub commit: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Breakage {
    /// Stable id: its stream, lane and first bad cell.
    pub id: String,
    pub stream: String,
    pub stream_label: String,
    pub attribution: Attribution,
    pub first_bad_commit: String,
    pub first_bad_kernel: String,
    /// Storage ids of the first bad cell (for marking it in the grid).
    pub start_kernel_id: i64,
    pub start_commit_id: i64,
    /// Kernels (uname, oldest first) and commits (sha, oldest first) with failing cells in it.
    pub kernels: Vec<String>,
    pub commits: Vec<String>,
    // usize has no OpenAPI format of its own; counts fit int64.
    #[cfg_attr(feature = "openapi", schema(format = Int64))]
    pub failing_cells: usize,
    pub open: bool,
    pub fixed_by_commit: Option<String>,
    pub fixed_by_kernel: Option<String>,
    pub opened_at: Option<i64>,
    pub fixed_at: Option<i64>,
    /// Milliseconds from the first failing report to the first fixing one.
    pub time_to_fix_ms: Option<i64>,
    pub signature: Option<String>,
    pub commit_bisect: Option<BisectHint>,
    pub kernel_bisect: Option<BisectHint>,
    /// For a cause that is unknown: the untested neighbours of the first failing cell, on
    /// either axis, whose results would tell it.
    #[serde(default)]
    pub next_cells: Vec<NextCell>,
    /// For an open breakage: earlier fixed ones with the same error, and the commit that fixed
    /// them (see `precedent`), the closest match first.
    #[serde(default)]
    pub seen_before: Vec<crate::precedent::Precedent>,
}

/// A maximal stretch of failing commits on one kernel.
struct Run {
    lane: usize,
    /// Index of the kernel in its lane (oldest = 0).
    kernel: usize,
    /// Git positions: first failing, last failing, last passing before, first passing after.
    start: usize,
    cells: Vec<usize>,
    last_good: Option<usize>,
    fix: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    /// A commit broke the stream.
    Commit { stream: usize, start: usize },
    /// A kernel broke the module (the run that has no earlier pass on its kernel).
    Kernel { lane: usize, kernel: usize },
    Unknown {
        lane: usize,
        kernel: usize,
        start: usize,
    },
}

/// Finds every breakage. `commits` must be in git order, oldest first.
pub fn find_breakages<'c>(
    kernels: &[StoredKernel],
    commits: &[StoredCommit],
    cells: impl IntoIterator<Item = &'c CellFacts>,
) -> Vec<Breakage> {
    let commit_pos: HashMap<i64, usize> =
        commits.iter().enumerate().map(|(i, c)| (c.id, i)).collect();

    // Lanes: (stream, arch, variant), kernels in RPM order.
    let mut lane_of: BTreeMap<(String, String, String), Vec<&StoredKernel>> = BTreeMap::new();
    for k in kernels {
        let key = (
            k.kernel.stream.clone(),
            k.kernel.arch.clone(),
            k.kernel.variant.clone(),
        );
        lane_of.entry(key).or_default().push(k);
    }
    let lanes: Vec<Vec<&StoredKernel>> = lane_of
        .into_values()
        .map(|mut ks| {
            ks.sort_by(|a, b| a.kernel.rpm_cmp(&b.kernel));
            ks
        })
        .collect();
    let mut streams: Vec<String> = lanes.iter().map(|l| l[0].kernel.stream.clone()).collect();
    streams.dedup();
    let stream_index = |s: &str| {
        streams
            .iter()
            .position(|x| x == s)
            .expect("stream of a lane")
    };
    let place: HashMap<i64, (usize, usize)> = lanes
        .iter()
        .enumerate()
        .flat_map(|(li, l)| l.iter().enumerate().map(move |(ki, k)| (k.id, (li, ki))))
        .collect();

    let index = CellIndex::new(&lanes, cells, &commit_pos, &place);
    let state_at = |li: usize, ki: usize, pos: usize| index.state(li, ki, pos);
    // The nearest older kernel of the lane with evidence at this commit.
    let previous_kernel = |li: usize, ki: usize, pos: usize| {
        (0..ki)
            .rev()
            .find_map(|k| state_at(li, k, pos).map(|p| (k, p)))
    };

    // Runs, lane by lane, oldest kernel first (so a run can join its older neighbour's breakage).
    let mut runs: Vec<Run> = Vec::new();
    for (li, lane) in lanes.iter().enumerate() {
        for ki in 0..lane.len() {
            let mut last_pass = None;
            let mut current: Option<Run> = None;
            for (pos, pass) in index.evidence(li, ki) {
                if pass {
                    if let Some(mut run) = current.take() {
                        run.fix = Some(pos);
                        runs.push(run);
                    }
                    last_pass = Some(pos);
                } else {
                    match current.as_mut() {
                        Some(run) => run.cells.push(pos),
                        None => {
                            current = Some(Run {
                                lane: li,
                                kernel: ki,
                                start: pos,
                                cells: vec![pos],
                                last_good: last_pass,
                                fix: None,
                            })
                        }
                    }
                }
            }
            runs.extend(current);
        }
    }

    let breaking_commit =
        breaking_commits(&runs, |r| stream_index(&lanes[r.lane][0].kernel.stream));

    // Attribute each run and group runs with one cause.
    let mut groups: BTreeMap<Key, (Attribution, Vec<usize>)> = BTreeMap::new();
    let mut key_of_cell: HashMap<(usize, usize, usize), Key> = HashMap::new();
    for (ri, run) in runs.iter().enumerate() {
        let stream = stream_index(&lanes[run.lane][0].kernel.stream);
        let module = run.last_good.is_some();
        let prev = previous_kernel(run.lane, run.kernel, run.start);
        let kernel = prev.is_some_and(|(_, pass)| pass);
        let (key, attribution) = match (module, kernel) {
            (true, false) => (
                Key::Commit {
                    stream,
                    start: breaking_commit[ri],
                },
                Attribution::Module,
            ),
            (true, true) => (
                Key::Commit {
                    stream,
                    start: breaking_commit[ri],
                },
                Attribution::Both,
            ),
            (false, true) => (
                Key::Kernel {
                    lane: run.lane,
                    kernel: run.kernel,
                },
                Attribution::Kernel,
            ),
            (false, false) => {
                // Failing from its first result while the older kernel failed too: same cause.
                let inherited =
                    prev.and_then(|(k, _)| key_of_cell.get(&(run.lane, k, run.start)).copied());
                match inherited {
                    Some(key) => (key, groups[&key].0),
                    None => (
                        Key::Unknown {
                            lane: run.lane,
                            kernel: run.kernel,
                            start: run.start,
                        },
                        Attribution::Unknown,
                    ),
                }
            }
        };
        for &pos in &run.cells {
            key_of_cell.insert((run.lane, run.kernel, pos), key);
        }
        let entry = groups.entry(key).or_insert((attribution, Vec::new()));
        if attribution == Attribution::Both {
            entry.0 = Attribution::Both;
        }
        entry.1.push(ri);
    }

    let mut out: Vec<Breakage> = groups
        .into_iter()
        .map(|(key, (attribution, members))| {
            let members: Vec<&Run> = members.iter().map(|&i| &runs[i]).collect();
            describe(
                key,
                attribution,
                &members,
                &lanes,
                commits,
                &index,
                &state_at,
            )
        })
        .collect();
    sort_for_display(&mut out);
    out
}

/// Per run, the commit that broke it as far as the stream's results tell: runs that follow a
/// pass (a commit broke them) and whose ranges of suspects `(last good, first bad]` overlap share
/// a cause, named by the earliest first bad commit among them. So a bisect report that finds
/// the first bad commit on one kernel moves it for every kernel of the breakage, instead of
/// splitting it in two. Runs without an earlier pass get their own start.
fn breaking_commits(runs: &[Run], stream_of: impl Fn(&Run) -> usize) -> Vec<usize> {
    let mut breaking: Vec<usize> = runs.iter().map(|r| r.start).collect();
    // Suspect ranges as closed intervals of git positions, per stream, in order of their start.
    let mut ranges: Vec<(usize, usize, usize, usize)> = runs
        .iter()
        .enumerate()
        .filter_map(|(ri, r)| {
            r.last_good
                .map(|good| (stream_of(r), good + 1, r.start, ri))
        })
        .collect();
    ranges.sort_unstable();
    let mut cluster: Vec<usize> = Vec::new();
    let mut reach = (usize::MAX, 0);
    let close = |cluster: &mut Vec<usize>, breaking: &mut Vec<usize>| {
        let first = cluster.iter().map(|&ri| runs[ri].start).min();
        for &ri in cluster.iter() {
            breaking[ri] = first.expect("a cluster has runs");
        }
        cluster.clear();
    };
    for (stream, low, high, ri) in ranges {
        if !cluster.is_empty() && (stream != reach.0 || low > reach.1) {
            close(&mut cluster, &mut breaking);
        }
        reach = if cluster.is_empty() {
            (stream, high)
        } else {
            (stream, reach.1.max(high))
        };
        cluster.push(ri);
    }
    if !cluster.is_empty() {
        close(&mut cluster, &mut breaking);
    }
    breaking
}

/// Every kernel's cells, by lane and kernel index, in git order. Lookups are binary searches in
/// small sorted vectors rather than hashes of a million keys: at a million cells this is most of
/// the time breakage detection takes.
struct CellIndex<'c> {
    by_kernel: Vec<Vec<Vec<(usize, &'c CellFacts)>>>,
}

impl<'c> CellIndex<'c> {
    fn new(
        lanes: &[Vec<&StoredKernel>],
        cells: impl IntoIterator<Item = &'c CellFacts>,
        commit_pos: &HashMap<i64, usize>,
        place: &HashMap<i64, (usize, usize)>,
    ) -> Self {
        let mut by_kernel: Vec<Vec<Vec<(usize, &CellFacts)>>> =
            lanes.iter().map(|l| vec![Vec::new(); l.len()]).collect();
        for c in cells {
            if let (Some(&pos), Some(&(li, ki))) =
                (commit_pos.get(&c.commit_id), place.get(&c.kernel_id))
            {
                by_kernel[li][ki].push((pos, c));
            }
        }
        for kernel in by_kernel.iter_mut().flatten() {
            kernel.sort_unstable_by_key(|(pos, _)| *pos);
        }
        CellIndex { by_kernel }
    }

    fn cell(&self, lane: usize, kernel: usize, pos: usize) -> Option<&'c CellFacts> {
        let cells = &self.by_kernel[lane][kernel];
        cells
            .binary_search_by_key(&pos, |(p, _)| *p)
            .ok()
            .map(|i| cells[i].1)
    }

    /// Pass (true) or fail (false); other states are no evidence.
    fn state(&self, lane: usize, kernel: usize, pos: usize) -> Option<bool> {
        self.cell(lane, kernel, pos).and_then(evidence)
    }

    /// A kernel's evidence along the commits, oldest first.
    fn evidence(&self, lane: usize, kernel: usize) -> impl Iterator<Item = (usize, bool)> + '_ {
        self.by_kernel[lane][kernel]
            .iter()
            .filter_map(|(pos, c)| evidence(c).map(|pass| (*pos, pass)))
    }
}

fn evidence(cell: &CellFacts) -> Option<bool> {
    match cell.state {
        CellState::Pass => Some(true),
        CellState::Fail => Some(false),
        _ => None,
    }
}

/// Open breakages first, then the most recently opened.
pub fn sort_for_display(breakages: &mut [Breakage]) {
    breakages.sort_by(|a, b| {
        b.open
            .cmp(&a.open)
            .then(b.opened_at.cmp(&a.opened_at))
            .then(a.id.cmp(&b.id))
    });
}

fn describe(
    key: Key,
    attribution: Attribution,
    members: &[&Run],
    lanes: &[Vec<&StoredKernel>],
    commits: &[StoredCommit],
    facts: &CellIndex<'_>,
    state_at: &dyn Fn(usize, usize, usize) -> Option<bool>,
) -> Breakage {
    // The origin: the earliest failing commit, and on it the narrowest good..bad range.
    let origin = members
        .iter()
        .min_by_key(|r| (r.start, std::cmp::Reverse(r.last_good), r.kernel))
        .expect("a breakage has a run");
    let lane = &lanes[origin.lane];
    let kernel = &lane[origin.kernel];
    let uname = |li: usize, ki: usize| lanes[li][ki].kernel.uname();

    let mut kernel_set: Vec<(usize, usize)> = members.iter().map(|r| (r.lane, r.kernel)).collect();
    kernel_set.sort_by(|a, b| lanes[a.0][a.1].kernel.rpm_cmp(&lanes[b.0][b.1].kernel));
    kernel_set.dedup();
    let mut commit_set: Vec<usize> = members
        .iter()
        .flat_map(|r| r.cells.iter().copied())
        .collect();
    commit_set.sort_unstable();
    commit_set.dedup();
    let member_facts: Vec<&CellFacts> = members
        .iter()
        .flat_map(|r| {
            r.cells
                .iter()
                .filter_map(move |&p| facts.cell(r.lane, r.kernel, p))
        })
        .collect();

    let open_runs: Vec<&&Run> = members.iter().filter(|r| r.fix.is_none()).collect();
    // Fixed on the commit axis when every run ended with a pass; the fix is the first of them.
    let fixed_by_commit = open_runs
        .is_empty()
        .then(|| members.iter().filter_map(|r| r.fix).min())
        .flatten();
    // Fixed on the kernel axis when a newer kernel of the lane passes where the newest broken one failed.
    let fixed_by_kernel = if open_runs.is_empty() {
        None
    } else {
        let newest = members
            .iter()
            .filter(|r| r.lane == origin.lane)
            .map(|r| r.kernel)
            .max()
            .unwrap_or(origin.kernel);
        let newest_fails: Vec<usize> = members
            .iter()
            .filter(|r| r.lane == origin.lane && r.kernel == newest)
            .flat_map(|r| r.cells.iter().copied())
            .collect();
        (newest + 1..lane.len()).find(|&k| {
            newest_fails
                .iter()
                .any(|&p| state_at(origin.lane, k, p) == Some(true))
        })
    };
    let fixed_at = if let Some(pos) = fixed_by_commit {
        members
            .iter()
            .filter(|r| r.fix == Some(pos))
            .filter_map(|r| {
                facts
                    .cell(r.lane, r.kernel, pos)
                    .and_then(|f| f.first_pass_at)
            })
            .min()
    } else {
        fixed_by_kernel.and_then(|k| {
            (0..commits.len())
                .filter_map(|p| {
                    facts
                        .cell(origin.lane, k, p)
                        .filter(|f| f.state == CellState::Pass)
                })
                .filter_map(|f| f.first_pass_at)
                .min()
        })
    };

    let opened_at = member_facts.iter().filter_map(|f| f.first_fail_at).min();
    let mut signatures: HashMap<&str, usize> = HashMap::new();
    for f in &member_facts {
        if let Some(s) = &f.signature {
            *signatures.entry(s).or_default() += 1;
        }
    }
    let signature = signatures
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(s, _)| s.to_string());

    let commit_bisect = origin.last_good.map(|good| {
        let untested = commits[good + 1..origin.start]
            .iter()
            .map(|c| c.sha.clone())
            .collect();
        BisectHint::new(
            commits[good].sha.clone(),
            commits[origin.start].sha.clone(),
            untested,
            true,
        )
    });
    let kernel_bisect = (0..origin.kernel)
        .rev()
        .find(|&k| state_at(origin.lane, k, origin.start).is_some())
        .filter(|&k| state_at(origin.lane, k, origin.start) == Some(true))
        .map(|good| {
            let untested = (good + 1..origin.kernel)
                .map(|k| uname(origin.lane, k))
                .collect();
            BisectHint::new(
                uname(origin.lane, good),
                kernel.kernel.uname(),
                untested,
                false,
            )
        });

    let next_cells = if attribution == Attribution::Unknown {
        let kernel_side = origin.kernel.checked_sub(1).map(|k| NextCell {
            axis: NeighbourAxis::Kernel,
            kernel: uname(origin.lane, k),
            commit: commits[origin.start].sha.clone(),
        });
        let commit_side = origin.start.checked_sub(1).map(|p| NextCell {
            axis: NeighbourAxis::Commit,
            kernel: kernel.kernel.uname(),
            commit: commits[p].sha.clone(),
        });
        kernel_side.into_iter().chain(commit_side).collect()
    } else {
        Vec::new()
    };
    let id = match key {
        Key::Commit { .. } => format!(
            "{}-commit-{}",
            kernel.kernel.stream,
            &commits[origin.start].sha[..12]
        ),
        Key::Kernel { .. } => format!("{}-kernel-{}", kernel.kernel.stream, kernel.kernel.uname()),
        Key::Unknown { .. } => format!(
            "{}-unknown-{}-{}",
            kernel.kernel.stream,
            kernel.kernel.uname(),
            &commits[origin.start].sha[..12]
        ),
    };
    Breakage {
        id,
        stream: kernel.kernel.stream.clone(),
        stream_label: stream_label(&kernel.kernel.stream),
        attribution,
        first_bad_commit: commits[origin.start].sha.clone(),
        first_bad_kernel: kernel.kernel.uname(),
        start_kernel_id: kernel.id,
        start_commit_id: commits[origin.start].id,
        kernels: kernel_set.iter().map(|&(l, k)| uname(l, k)).collect(),
        commits: commit_set.iter().map(|&p| commits[p].sha.clone()).collect(),
        failing_cells: members.iter().map(|r| r.cells.len()).sum(),
        open: fixed_by_commit.is_none() && fixed_by_kernel.is_none(),
        fixed_by_commit: fixed_by_commit.map(|p| commits[p].sha.clone()),
        fixed_by_kernel: fixed_by_kernel.map(|k| uname(origin.lane, k)),
        opened_at,
        fixed_at,
        time_to_fix_ms: fixed_at.zip(opened_at).map(|(f, o)| f - o),
        signature,
        commit_bisect,
        kernel_bisect,
        next_cells,
        seen_before: Vec::new(),
    }
}

/// One breakage per cause across the lanes of a stream: the same module commit breaking x86_64
/// and aarch64, or the same kernel update (version-release and variant) on both arches, is one
/// breakage, not one per arch. Breakages of unknown cause stay apart. The x86_64 lane's
/// breakage leads a merged one (its first bad kernel and bisect hints are the ones shown), as
/// most readers build there.
pub fn merge_lanes(mut breakages: Vec<Breakage>) -> Vec<Breakage> {
    breakages.sort_by_key(|b| !b.first_bad_kernel.contains(".x86_64"));
    let cause = |b: &Breakage| -> Option<(String, bool, String)> {
        match b.attribution {
            Attribution::Module | Attribution::Both => {
                Some((b.stream.clone(), true, b.first_bad_commit.clone()))
            }
            Attribution::Kernel => {
                let k = crate::kernel::Kernel::parse(&b.first_bad_kernel, None, Some(&b.stream))
                    .ok()?;
                Some((
                    b.stream.clone(),
                    false,
                    format!("{}+{}", k.version_release(), k.variant),
                ))
            }
            Attribution::Unknown => None,
        }
    };
    let mut merged: Vec<Breakage> = Vec::with_capacity(breakages.len());
    let mut by_cause: HashMap<(String, bool, String), usize> = HashMap::new();
    for b in breakages {
        let Some(key) = cause(&b) else {
            merged.push(b);
            continue;
        };
        match by_cause.get(&key) {
            Some(&i) => absorb(&mut merged[i], b),
            None => {
                by_cause.insert(key, merged.len());
                merged.push(b);
            }
        }
    }
    merged
}

/// Adds another lane's breakage of the same cause to `into`.
fn absorb(into: &mut Breakage, other: Breakage) {
    for k in other.kernels {
        if !into.kernels.contains(&k) {
            into.kernels.push(k);
        }
    }
    for c in other.commits {
        if !into.commits.contains(&c) {
            into.commits.push(c);
        }
    }
    into.failing_cells += other.failing_cells;
    if other.attribution == Attribution::Both {
        into.attribution = Attribution::Both;
    }
    into.opened_at = match (into.opened_at, other.opened_at) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    into.signature = into.signature.take().or(other.signature);
    if other.open || into.open {
        // Open while any lane still fails.
        into.open = true;
        into.fixed_by_commit = None;
        into.fixed_by_kernel = None;
        into.fixed_at = None;
        into.time_to_fix_ms = None;
    } else {
        into.fixed_at = into.fixed_at.max(other.fixed_at);
        into.time_to_fix_ms = into.fixed_at.zip(into.opened_at).map(|(f, o)| f - o);
    }
}

/// The scenario strings breakage tests (here and in `events` and `now`) are written in.
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernel::Kernel;

    /// A lane of kernels and their results along commits 1..=n: `P` pass, `F` fail, `~` flaky,
    /// `E` runner error, `S` skip, `.` untested.
    pub(crate) struct Scenario {
        pub kernels: Vec<StoredKernel>,
        pub commits: Vec<StoredCommit>,
        pub cells: Vec<CellFacts>,
    }

    pub(crate) fn sha(i: usize) -> String {
        format!("{i:040x}")
    }

    /// A scenario whose kernels are in the streams their names give (`el8`, `el7`, ...).
    pub(crate) fn named(rows: &[(&str, &str)]) -> Scenario {
        build(None, rows)
    }

    pub(crate) fn scenario(stream: &str, rows: &[(&str, &str)]) -> Scenario {
        build(Some(stream), rows)
    }

    fn build(stream: Option<&str>, rows: &[(&str, &str)]) -> Scenario {
        let n = rows[0].1.len();
        let commits = (1..=n)
            .map(|i| StoredCommit {
                id: i as i64,
                sha: sha(i),
                subject: None,
                author: None,
                committed_at: None,
                tags: vec![],
            })
            .collect();
        let mut kernels = Vec::new();
        let mut cells = Vec::new();
        for (ki, (uname, results)) in rows.iter().enumerate() {
            let id = 100 + ki as i64;
            kernels.push(StoredKernel {
                id,
                kernel: Kernel::parse(uname, None, stream).unwrap(),
            });
            for (ci, r) in results.chars().enumerate() {
                let state = match r {
                    'P' => CellState::Pass,
                    'F' => CellState::Fail,
                    '~' => CellState::Flaky,
                    'E' => CellState::Error,
                    'S' => CellState::Skip,
                    _ => continue,
                };
                let t = (ci as i64 + 1) * 1000 + ki as i64;
                cells.push(CellFacts {
                    kernel_id: id,
                    commit_id: ci as i64 + 1,
                    state,
                    signature: (state == CellState::Fail)
                        .then(|| Arc::from("compat.h: error: boom")),
                    first_fail_at: matches!(state, CellState::Fail | CellState::Flaky).then_some(t),
                    first_pass_at: matches!(state, CellState::Pass | CellState::Flaky).then_some(t),
                });
            }
        }
        Scenario {
            kernels,
            commits,
            cells,
        }
    }

    pub(crate) fn run(s: &Scenario) -> Vec<Breakage> {
        find_breakages(&s.kernels, &s.commits, &s.cells)
    }

    #[test]
    fn a_kernel_update_that_breaks_every_later_kernel_is_one_kernel_caused_breakage() {
        let s = scenario(
            "rhel-9",
            &[
                ("5.14.0-427.el9_4.x86_64", "PPPPPP"),
                ("5.14.0-427.13.1.el9_4.x86_64", "PPPPPP"),
                ("5.14.0-503.el9_5.x86_64", "FFFFPP"),
                ("5.14.0-503.11.1.el9_5.x86_64", "FFFFPP"),
                ("5.14.0-570.el9_6.x86_64", "FFFF.P"),
            ],
        );
        let found = run(&s);
        assert_eq!(found.len(), 1, "{found:#?}");
        let b = &found[0];
        assert_eq!(b.attribution, Attribution::Kernel);
        assert_eq!(b.first_bad_kernel, "5.14.0-503.el9_5.x86_64");
        assert_eq!(b.first_bad_commit, sha(1));
        assert_eq!(b.kernels.len(), 3);
        assert_eq!(b.failing_cells, 12);
        assert!(!b.open);
        assert_eq!(b.fixed_by_commit.as_deref(), Some(sha(5).as_str()));
        assert_eq!(b.signature.as_deref(), Some("compat.h: error: boom"));
        assert_eq!(b.commit_bisect, None);
        let k = b.kernel_bisect.as_ref().unwrap();
        assert_eq!(
            (k.last_good.as_str(), k.first_bad.as_str()),
            ("5.14.0-427.13.1.el9_4.x86_64", "5.14.0-503.el9_5.x86_64")
        );
        assert!(k.adjacent() && k.command.is_none());
        assert_eq!(b.opened_at, Some(1002));
        assert_eq!(b.fixed_at, Some(5002));
        assert_eq!(b.time_to_fix_ms, Some(4000));
    }

    #[test]
    fn untested_kernels_between_good_and_bad_are_the_next_to_test() {
        let s = scenario(
            "el8",
            &[
                ("4.18.0-477.el8_8.x86_64", "PP"),
                ("4.18.0-477.10.1.el8_8.x86_64", ".."),
                ("4.18.0-477.13.1.el8_8.x86_64", "E."),
                ("4.18.0-483.el8.x86_64", "FF"),
            ],
        );
        let b = &run(&s)[0];
        assert_eq!(b.attribution, Attribution::Kernel);
        assert!(b.open);
        let k = b.kernel_bisect.as_ref().unwrap();
        assert_eq!(k.last_good, "4.18.0-477.el8_8.x86_64");
        assert_eq!(
            k.untested,
            [
                "4.18.0-477.10.1.el8_8.x86_64",
                "4.18.0-477.13.1.el8_8.x86_64"
            ]
        );
        assert_eq!(k.next.as_deref(), Some("4.18.0-477.13.1.el8_8.x86_64"));
    }

    #[test]
    fn a_commit_that_breaks_a_range_of_kernels_until_a_fix_is_one_module_caused_breakage() {
        let s = scenario(
            "rhel-7",
            &[
                ("3.10.0-1160.el7.x86_64", "PP.FFFPP"),
                ("3.10.0-1160.6.1.el7.x86_64", "PP.F.FPP"),
                ("3.10.0-1160.119.1.el7.x86_64", "PP.FFFPP"),
            ],
        );
        let found = run(&s);
        assert_eq!(found.len(), 1, "{found:#?}");
        let b = &found[0];
        assert_eq!(b.attribution, Attribution::Module);
        assert_eq!(b.first_bad_commit, sha(4));
        assert_eq!(b.kernels.len(), 3);
        assert_eq!(b.commits, [sha(4), sha(5), sha(6)]);
        assert_eq!(b.fixed_by_commit.as_deref(), Some(sha(7).as_str()));
        let c = b.commit_bisect.as_ref().unwrap();
        assert_eq!((c.last_good.clone(), c.first_bad.clone()), (sha(2), sha(4)));
        assert_eq!(c.untested, [sha(3)]);
        assert_eq!(c.next, Some(sha(3)));
        assert_eq!(
            c.command.as_deref(),
            Some(format!("git bisect start {} {}", sha(4), sha(2)).as_str())
        );
        assert_eq!(b.kernel_bisect, None);
    }

    #[test]
    fn a_bisect_report_on_one_kernel_moves_the_first_bad_commit_of_the_whole_breakage() {
        let s = scenario(
            "el8",
            &[
                ("4.18.0-513.5.1.el8_9.x86_64", "P.F.F"),
                ("4.18.0-513.24.1.el8_9.x86_64", "P...F"),
            ],
        );
        let b = run(&s);
        assert_eq!(b.len(), 1, "{b:#?}");
        assert_eq!(b[0].first_bad_commit, sha(3));
        assert_eq!(b[0].kernels.len(), 2);
        // Suspect ranges that do not overlap are separate causes.
        let s = scenario(
            "el8",
            &[
                ("4.18.0-513.5.1.el8_9.x86_64", "PFPPP"),
                ("4.18.0-513.24.1.el8_9.x86_64", "PPPFF"),
            ],
        );
        assert_eq!(run(&s).len(), 2);
    }

    #[test]
    fn adjacent_commits_name_the_first_bad_commit() {
        let s = scenario("el7", &[("3.10.0-1160.el7.x86_64", "PPFF")]);
        let b = &run(&s)[0];
        let c = b.commit_bisect.as_ref().unwrap();
        assert!(c.adjacent());
        assert_eq!((c.last_good.clone(), c.first_bad.clone()), (sha(2), sha(3)));
    }

    #[test]
    fn flaky_error_and_skip_cells_neither_open_nor_close_a_breakage() {
        let quiet = scenario("el7", &[("3.10.0-1160.el7.x86_64", "P~PEPSP")]);
        assert!(run(&quiet).is_empty());
        let s = scenario("el7", &[("3.10.0-1160.el7.x86_64", "PF~EFSFP")]);
        let found = run(&s);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].commits, [sha(2), sha(5), sha(7)]);
        assert_eq!(found[0].fixed_by_commit.as_deref(), Some(sha(8).as_str()));
    }

    #[test]
    fn a_newer_kernel_that_passes_again_fixes_it_on_the_kernel_axis() {
        let s = scenario(
            "el9",
            &[
                ("5.14.0-1.el9.x86_64", "PPP"),
                ("5.14.0-2.el9.x86_64", "FFF"),
                ("5.14.0-3.el9.x86_64", ".PP"),
            ],
        );
        let b = &run(&s)[0];
        assert_eq!(b.attribution, Attribution::Kernel);
        assert!(!b.open);
        assert_eq!(b.fixed_by_kernel.as_deref(), Some("5.14.0-3.el9.x86_64"));
        assert_eq!(b.fixed_at, Some(2002));
    }

    #[test]
    fn both_and_unknown_attributions() {
        let both = scenario(
            "el9",
            &[
                ("5.14.0-1.el9.x86_64", "PPP"),
                ("5.14.0-2.el9.x86_64", "PFF"),
            ],
        );
        assert_eq!(run(&both)[0].attribution, Attribution::Both);
        let unknown = scenario("el9", &[("5.14.0-1.el9.x86_64", "FFF")]);
        let b = &run(&unknown)[0];
        assert_eq!(b.attribution, Attribution::Unknown);
        assert!(b.open && b.commit_bisect.is_none() && b.kernel_bisect.is_none());
    }

    #[test]
    fn an_unknown_cause_names_the_untested_neighbours_that_would_tell_it() {
        let unknown = scenario(
            "el9",
            &[
                ("5.14.0-1.el9.x86_64", ".P."),
                ("5.14.0-2.el9.x86_64", "..F"),
            ],
        );
        let b = &run(&unknown)[0];
        assert_eq!(b.attribution, Attribution::Unknown);
        assert_eq!(
            b.next_cells,
            vec![
                NextCell {
                    axis: NeighbourAxis::Kernel,
                    kernel: "5.14.0-1.el9.x86_64".to_string(),
                    commit: sha(3),
                },
                NextCell {
                    axis: NeighbourAxis::Commit,
                    kernel: "5.14.0-2.el9.x86_64".to_string(),
                    commit: sha(2),
                },
            ]
        );
        let known = scenario("el9", &[("5.14.0-1.el9.x86_64", "PF")]);
        assert!(run(&known)[0].next_cells.is_empty());
    }

    #[test]
    fn one_cause_on_two_arches_is_one_breakage() {
        let lane = |arch: &str, fixed: bool| {
            scenario(
                "el9",
                &[
                    (&*format!("5.14.0-1.el9.{arch}"), "PPP"),
                    (
                        &*format!("5.14.0-2.el9.{arch}"),
                        if fixed { "FFP" } else { "FFF" },
                    ),
                ],
            )
        };
        let mut all = run(&lane("aarch64", false));
        all.extend(run(&lane("x86_64", true)));
        assert_eq!(all.len(), 2);
        let merged = merge_lanes(all);
        assert_eq!(merged.len(), 1, "{merged:#?}");
        let b = &merged[0];
        assert_eq!(b.attribution, Attribution::Kernel);
        assert_eq!(b.kernels.len(), 2);
        assert_eq!(b.first_bad_kernel, "5.14.0-2.el9.x86_64", "x86_64 leads");
        assert!(b.open, "open while one arch still fails");
        assert_eq!((b.fixed_by_commit.as_ref(), b.fixed_at), (None, None));
    }

    #[test]
    fn every_attribution_round_trips_and_says_what_it_means() {
        for a in Attribution::ALL {
            assert_eq!(Attribution::parse(a.as_str()), Some(a));
        }
        let said: Vec<&str> = Attribution::ALL.map(Attribution::description).to_vec();
        assert_eq!(
            said,
            [
                "a module commit broke it",
                "a kernel update broke it",
                "a module commit broke it on newer kernels",
                "cause unknown"
            ]
        );
    }

    #[test]
    fn filter_reads_the_url_and_keeps_what_it_names() {
        let s = scenario(
            "el9",
            &[
                ("5.14.0-1.el9.x86_64", "PPP"),
                ("5.14.0-2.el9.x86_64", "FFF"),
                ("5.14.0-3.el9.x86_64", "FFF"),
            ],
        );
        let b = &run(&s)[0];
        let f = |pairs: &[(&str, &str)]| BreakageFilter::from_pairs(pairs.iter().copied()).unwrap();
        assert!(f(&[]).keeps(b));
        assert!(f(&[
            ("stream", "el9"),
            ("attribution", "kernel"),
            ("state", "open"),
            ("x", "y")
        ])
        .keeps(b));
        assert!(!f(&[("stream", "el8")]).keeps(b));
        assert!(!f(&[("attribution", "module")]).keeps(b));
        assert!(!f(&[("state", "fixed")]).keeps(b));
        assert!(f(&[("attribution", ""), ("state", "")]).keeps(b));
        let err = BreakageFilter::from_pairs([("attribution", "cosmic")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "attribution=\"cosmic\": use module, kernel, both or unknown (or nothing for any)"
        );
        let err = BreakageFilter::from_pairs([("stream", "el9"), ("state", "closed")]).unwrap_err();
        assert_eq!((err.param, err.value.as_str()), ("state", "closed"));
        // Values are taken as sent: a blank one is not an empty one.
        let err = BreakageFilter::from_pairs([("state", " ")]).unwrap_err();
        assert_eq!((err.param, err.value.as_str()), ("state", " "));
    }

    #[test]
    fn streams_and_arches_are_separate_lanes() {
        let mut s = scenario(
            "el9",
            &[
                ("5.14.0-1.el9.x86_64", "PPP"),
                ("5.14.0-2.el9.x86_64", "PFF"),
            ],
        );
        let arm = scenario("el9", &[("5.14.0-1.el9.aarch64", "FFF")]);
        s.kernels.extend(arm.kernels.into_iter().map(|mut k| {
            k.id += 50;
            k
        }));
        s.cells.extend(arm.cells.into_iter().map(|mut c| {
            c.kernel_id += 50;
            c
        }));
        let found = run(&s);
        assert_eq!(found.len(), 2);
        let arm = found
            .iter()
            .find(|b| b.first_bad_kernel.ends_with("aarch64"))
            .unwrap();
        assert_eq!(arm.attribution, Attribution::Unknown);
    }
}
