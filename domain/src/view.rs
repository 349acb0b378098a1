//! Read models of stored things, shared by the API (as JSON) and the pages.

use crate::breakage::{Breakage, NeighbourAxis};
use crate::kernel::{stream_cmp, stream_label, Kernel};
use crate::report::Stage;
use crate::status::{CellState, CellSummary, Status, StatusCounts};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A kernel the project has seen, with its storage id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredKernel {
    pub id: i64,
    pub kernel: Kernel,
}

/// A commit the project knows, with its storage id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredCommit {
    pub id: i64,
    pub sha: String,
    pub subject: Option<String>,
    pub author: Option<String>,
    /// Epoch milliseconds.
    pub committed_at: Option<i64>,
    /// Release tags pointing at it, in name order; read for grid columns and commit pages.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl StoredCommit {
    pub fn short_sha(&self) -> &str {
        crate::history::short_sha(&self.sha)
    }
}

/// Epoch milliseconds as `2026-11-26 10:00 UTC`.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| "?".to_string())
}

/// Epoch milliseconds as RFC 3339 (`2026-11-26T10:00:00Z`): the `datetime` of a `<time>`.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// A span of time in words, as coarse as a reader needs it: "45 s", "12 min", "5 h", "3 days".
pub fn elapsed(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let h = s / 3600;
    if h >= 48 {
        format!("{} days", h / 24)
    } else if h >= 1 {
        format!("{h} h")
    } else if s >= 60 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// How long ago `then` was at `now` (both epoch milliseconds): "3 h ago". A time a little in
/// the future (a runner's clock ahead of ours) reads "just now", not a negative age.
pub fn ago(then: i64, now: i64) -> String {
    if now - then < 1000 {
        "just now".to_string()
    } else {
        format!("{} ago", elapsed(now - then))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Simulated results seeded by `make run`; every page that shows them says so.
    pub demo: bool,
}

/// How the newest tested commit fares: cell states counted over the kernels it was tested on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitHealth {
    pub commit: StoredCommit,
    pub cells: StatusCounts,
    pub flaky: i64,
}

impl CommitHealth {
    /// Counts a commit's cells: flaky ones apart (their latest status would hide the
    /// disagreement), every other one by its latest status.
    pub fn of<'a>(
        commit: StoredCommit,
        cells: impl IntoIterator<Item = &'a CellSummary>,
    ) -> CommitHealth {
        let mut counts = StatusCounts::default();
        let mut flaky = 0;
        for cell in cells {
            match cell.state() {
                CellState::Flaky => flaky += 1,
                _ => counts.add(cell.latest_status),
            }
        }
        CommitHealth {
            commit,
            cells: counts,
            flaky,
        }
    }

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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProjectSummary {
    pub project: Project,
    pub kernels: i64,
    pub commits: i64,
    pub reports: i64,
    pub latest: Option<CommitHealth>,
    /// One trust figure per stream: the share of its kernels tested at the head commit and the
    /// age of its newest result.
    #[serde(default)]
    pub trust: Vec<crate::coverage::StreamCoverage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportDetail {
    pub id: i64,
    pub runner: String,
    pub run_id: String,
    pub status: Status,
    pub stages: Vec<Stage>,
    pub metadata: BTreeMap<String, String>,
    /// Epoch milliseconds, as are `finished_at` and `received_at`.
    pub started_at: i64,
    pub finished_at: i64,
    pub received_at: i64,
    pub log: String,
    pub log_original_bytes: i64,
    pub log_cut_bytes: i64,
    /// The log line the error signature came from, as printed (failing reports only).
    #[serde(default)]
    pub error_line: Option<String>,
}

/// One line of a log as the cell page numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// From 1, like an editor's.
    pub number: usize,
    pub text: &'a str,
    /// The line the error signature came from.
    pub error: bool,
}

impl ReportDetail {
    /// The log's lines, numbered, with the first one that printed the error marked. A log cut
    /// in the middle keeps its marker line like any other.
    pub fn log_lines(&self) -> Vec<LogLine<'_>> {
        let wanted = self.error_line.as_deref().map(str::trim_end);
        let mut marked = false;
        self.log
            .lines()
            .enumerate()
            .map(|(i, text)| {
                // The stored error line is the line as a terminal showed it: without the
                // timestamp a CI system may have put before it.
                let error = !marked
                    && wanted.is_some_and(|w| !w.is_empty() && text.trim_end().ends_with(w));
                marked |= error;
                LogLine {
                    number: i + 1,
                    text,
                    error,
                }
            })
            .collect()
    }
}

/// A neighbour of a cell on one axis, with its state (`None`: untested).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellNeighbour {
    /// `commit`: the same kernel on the parent commit; `kernel`: the previous kernel of the
    /// lane on the same commit.
    pub axis: NeighbourAxis,
    pub kernel: Kernel,
    pub sha: String,
    pub state: Option<CellState>,
}

/// The kernel just older than `kernel` in its lane (stream, arch and variant, in RPM order).
pub fn previous_in_lane<'a>(
    kernels: &'a [StoredKernel],
    kernel: &Kernel,
) -> Option<&'a StoredKernel> {
    kernels
        .iter()
        .filter(|k| {
            k.kernel.stream == kernel.stream
                && k.kernel.arch == kernel.arch
                && k.kernel.variant == kernel.variant
                && k.kernel.rpm_cmp(kernel).is_lt()
        })
        .max_by(|a, b| a.kernel.rpm_cmp(&b.kernel))
}

/// The breakage a cell belongs to: one of its stream that has failing cells on both the cell's
/// kernel and its commit.
pub fn breakage_of<'a>(
    breakages: &'a [Breakage],
    kernel: &Kernel,
    sha: &str,
) -> Option<&'a Breakage> {
    let uname = kernel.uname();
    breakages.iter().find(|b| {
        b.stream == kernel.stream
            && b.kernels.contains(&uname)
            && b.commits.iter().any(|c| c == sha)
    })
}

/// Every report of one (kernel, commit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CellDetail {
    pub project: Project,
    pub kernel: StoredKernel,
    pub commit: StoredCommit,
    pub summary: Option<CellSummary>,
    pub reports: Vec<ReportDetail>,
    /// The same kernel on the parent commit, and the previous kernel of the lane on this commit.
    #[serde(default)]
    pub neighbours: Vec<CellNeighbour>,
    /// The breakage this cell is part of, if any.
    #[serde(default)]
    pub breakage: Option<Breakage>,
    /// The cell's error says the runner lacked a kernel tree or a compiler: the runner's
    /// trouble, which it should have reported as `error`, not the module's.
    #[serde(default)]
    pub infrastructure: bool,
}

/// A breakage with the error excerpt of its first failing cell, for display.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakageDetail {
    #[serde(flatten)]
    pub breakage: Breakage,
    pub error_line: Option<String>,
    pub excerpt: Option<String>,
}

/// Whether a breakage starts at this commit as far as a commit's page tells: its first failing
/// commit, unless a kernel update caused it (it then fails from the oldest commit tested on that
/// kernel, which is no culprit).
pub fn starts_at_commit(b: &Breakage, sha: &str) -> bool {
    b.first_bad_commit == sha && b.attribution != crate::breakage::Attribution::Kernel
}

/// Every commit a breakage names (first bad, bisect ends and next, fix, next cells): the shas
/// whose subjects its card shows.
pub fn named_commits(b: &Breakage) -> Vec<&str> {
    let mut shas = vec![b.first_bad_commit.as_str()];
    shas.extend(b.fixed_by_commit.as_deref());
    if let Some(h) = &b.commit_bisect {
        shas.extend([h.last_good.as_str(), h.first_bad.as_str()]);
        shas.extend(h.next.as_deref());
    }
    shas.extend(b.next_cells.iter().map(|n| n.commit.as_str()));
    shas
}

/// One kernel's row along the commits, newest first, and its breakages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KernelHistory {
    pub project: Project,
    pub kernel: StoredKernel,
    /// [commit, cell summary] pairs along the commits, newest first.
    #[cfg_attr(feature = "openapi", schema(schema_with = commit_cells))]
    pub cells: Vec<(StoredCommit, CellSummary)>,
    pub breakages: Vec<BreakageDetail>,
    /// Subjects of the commits its breakages name.
    #[serde(default)]
    pub subjects: BTreeMap<String, String>,
}

/// The schema of [`KernelHistory::cells`], by hand: utoipa's own for a tuple would inline both
/// objects and not require both items.
#[cfg(feature = "openapi")]
fn commit_cells() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder};
    use utoipa::openapi::Ref;
    use utoipa::ToSchema;
    // Prefix items are schemas, not references: each refers through a one-item allOf.
    let item = |name: std::borrow::Cow<'static, str>| {
        AllOfBuilder::new().item(Ref::from_schema_name(name))
    };
    let pair = ArrayBuilder::new()
        .prefix_items([item(StoredCommit::name()), item(CellSummary::name())])
        .min_items(Some(2))
        .max_items(Some(2));
    // A field with `schema_with` loses its doc comment: the description is repeated here.
    ArrayBuilder::new()
        .items(pair)
        .description(Some(
            "[commit, cell summary] pairs along the commits, newest first.",
        ))
        .build()
}

/// Kernels whose state changed between a commit's parent and the commit, in one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamChange {
    pub stream: String,
    pub label: String,
    /// Passed on the parent, fail on this commit.
    pub broke: Vec<String>,
    /// Failed on the parent, pass on this commit.
    pub fixed: Vec<String>,
    // usize has no OpenAPI format of its own; counts fit int64.
    #[cfg_attr(feature = "openapi", schema(format = Int64))]
    pub tested: usize,
}

impl StreamChange {
    /// What changed, stream by stream, from a commit's parent to the commit. `parent` and
    /// `commit` give each tested kernel's cell state by kernel id; only kernels tested on the
    /// commit count, and only pass → fail (broke) and fail → pass (fixed) are changes: flaky,
    /// error and skip cells say nothing about the commit. Streams come in display order,
    /// kernels in RPM order.
    pub fn between(
        kernels: &[StoredKernel],
        parent: &HashMap<i64, CellState>,
        commit: &HashMap<i64, CellState>,
    ) -> Vec<StreamChange> {
        let mut tested: Vec<&StoredKernel> = kernels
            .iter()
            .filter(|k| commit.contains_key(&k.id))
            .collect();
        tested.sort_by(|a, b| a.kernel.rpm_cmp(&b.kernel));
        let mut streams: BTreeMap<&str, StreamChange> = BTreeMap::new();
        for StoredKernel { id, kernel } in tested {
            let entry = streams
                .entry(&kernel.stream)
                .or_insert_with(|| StreamChange {
                    stream: kernel.stream.clone(),
                    label: stream_label(&kernel.stream),
                    broke: Vec::new(),
                    fixed: Vec::new(),
                    tested: 0,
                });
            entry.tested += 1;
            match (parent.get(id), commit[id]) {
                (Some(CellState::Pass), CellState::Fail) => entry.broke.push(kernel.uname()),
                (Some(CellState::Fail), CellState::Pass) => entry.fixed.push(kernel.uname()),
                _ => {}
            }
        }
        let mut streams: Vec<StreamChange> = streams.into_values().collect();
        streams.sort_by(|a, b| stream_cmp(&a.stream, &b.stream));
        streams
    }
}

/// A project's upstream commit links: a URL template with `{sha}` where the commit goes
/// (`https://git.zx2c4.com/wireguard-linux-compat/commit/?id={sha}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitUrl(String);

impl CommitUrl {
    /// Checks a template: an http(s) URL with `{sha}` in it, without spaces or control characters.
    pub fn parse(template: &str) -> Result<CommitUrl, String> {
        let ok_scheme = template.starts_with("https://") || template.starts_with("http://");
        if !ok_scheme {
            return Err(format!("{template:?}: use an http:// or https:// URL"));
        }
        if !template.contains("{sha}") {
            return Err(format!("{template:?}: put {{sha}} where the commit goes"));
        }
        if template.len() > 500
            || template
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "{template:?}: no spaces or control characters, at most 500 bytes"
            ));
        }
        Ok(CommitUrl(template.to_string()))
    }

    pub fn template(&self) -> &str {
        &self.0
    }

    /// The upstream page of one commit.
    pub fn of(&self, sha: &str) -> String {
        self.0.replace("{sha}", sha)
    }
}

/// What a commit broke and fixed compared with its (first) parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CommitChanges {
    pub project: Project,
    pub commit: StoredCommit,
    pub parent: Option<StoredCommit>,
    /// A commit whose parent this one is (the first by sha), if any.
    #[serde(default)]
    pub child: Option<StoredCommit>,
    /// The commit's page upstream, when the project says where its commits are browsed.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Every kernel tested on this commit with its result, streams in display order and each
    /// stream's kernels newest first.
    #[serde(default)]
    pub results: Vec<KernelResult>,
    pub streams: Vec<StreamChange>,
    /// Breakages whose first bad commit is this one, and those it fixed.
    pub opened: Vec<Breakage>,
    pub closed: Vec<Breakage>,
}

/// One kernel's result on a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KernelResult {
    pub kernel: Kernel,
    pub state: CellState,
}

impl KernelResult {
    /// The results of a commit's cells (state by kernel id) in display order: streams as the
    /// grid orders them, each stream's kernels newest first.
    pub fn list(kernels: &[StoredKernel], states: &HashMap<i64, CellState>) -> Vec<KernelResult> {
        let mut out: Vec<KernelResult> = kernels
            .iter()
            .filter_map(|k| {
                states.get(&k.id).map(|&state| KernelResult {
                    kernel: k.kernel.clone(),
                    state,
                })
            })
            .collect();
        out.sort_by(|a, b| {
            stream_cmp(&a.kernel.stream, &b.kernel.stream).then(b.kernel.rpm_cmp(&a.kernel))
        });
        out
    }
}

/// A cell whose latest failure shows a signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignatureCell {
    pub kernel: Kernel,
    pub sha: String,
    pub last_seen: i64,
}

/// Every cell that shows one error signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignatureCells {
    pub project: Project,
    pub id: String,
    pub signature: String,
    pub excerpt: Option<String>,
    // usize has no OpenAPI format of its own; counts fit int64.
    #[cfg_attr(feature = "openapi", schema(format = Int64))]
    pub kernels: usize,
    /// The oldest kernel (in RPM order, per stream) it appears on.
    pub since: Vec<String>,
    pub first_seen: i64,
    pub cells: Vec<SignatureCell>,
    /// The oldest and newest commit (in git order) it appears on.
    #[serde(default)]
    pub first_commit: Option<StoredCommit>,
    #[serde(default)]
    pub last_commit: Option<StoredCommit>,
    /// The breakages that show it.
    #[serde(default)]
    pub breakages: Vec<Breakage>,
    /// Other errors printed in the same logs, most frequent first.
    #[serde(default)]
    pub seen_together: Vec<SeenTogether>,
}

/// Another error that failing logs with a signature also printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SeenTogether {
    pub signature: String,
    /// Reports whose log printed both.
    pub reports: i64,
}

/// Counts the other errors of the reports of one signature (each report's list, newline
/// separated), most frequent first, at most `limit`.
pub fn seen_together<'a>(lists: impl Iterator<Item = &'a str>, limit: usize) -> Vec<SeenTogether> {
    let mut counts: std::collections::BTreeMap<&str, i64> = Default::default();
    for list in lists {
        for error in list.lines().filter(|l| !l.is_empty()) {
            *counts.entry(error).or_default() += 1;
        }
    }
    let mut out: Vec<SeenTogether> = counts
        .into_iter()
        .map(|(signature, reports)| SeenTogether {
            signature: signature.to_string(),
            reports,
        })
        .collect();
    out.sort_by(|a, b| {
        b.reports
            .cmp(&a.reports)
            .then(a.signature.cmp(&b.signature))
    });
    out.truncate(limit);
    out
}

impl SignatureCells {
    /// Gathers the cells that show one signature: on how many kernels, and since which kernel
    /// (the oldest in RPM order) in each stream.
    pub fn new(
        project: Project,
        id: String,
        signature: String,
        excerpt: Option<String>,
        first_seen: i64,
        cells: Vec<SignatureCell>,
    ) -> SignatureCells {
        let mut oldest: BTreeMap<&str, &Kernel> = BTreeMap::new();
        for cell in &cells {
            let k = &cell.kernel;
            let slot = oldest.entry(&k.stream).or_insert(k);
            if k.rpm_cmp(slot).is_lt() {
                *slot = k;
            }
        }
        let since = oldest.into_values().map(Kernel::uname).collect();
        let kernels = cells
            .iter()
            .map(|c| &c.kernel)
            .collect::<HashSet<_>>()
            .len();
        SignatureCells {
            project,
            id,
            signature,
            excerpt,
            kernels,
            since,
            first_seen,
            cells,
            first_commit: None,
            last_commit: None,
            breakages: Vec::new(),
            seen_together: Vec::new(),
        }
    }

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
    fn a_commit_url_template_names_where_the_sha_goes() {
        let url = CommitUrl::parse("https://git.zx2c4.com/wireguard-linux-compat/commit/?id={sha}")
            .unwrap();
        assert_eq!(
            url.of("3d3c92b"),
            "https://git.zx2c4.com/wireguard-linux-compat/commit/?id=3d3c92b"
        );
        for bad in [
            "ftp://x/{sha}",
            "https://x/commit/",
            "https://x/{sha} y",
            "javascript:{sha}",
        ] {
            assert!(CommitUrl::parse(bad).is_err(), "{bad}");
        }
    }

    fn kernel(uname: &str) -> Kernel {
        Kernel::parse(uname, None, None).unwrap()
    }

    fn state(c: char) -> Option<CellState> {
        match c {
            'P' => Some(CellState::Pass),
            'F' => Some(CellState::Fail),
            '~' => Some(CellState::Flaky),
            'E' => Some(CellState::Error),
            'S' => Some(CellState::Skip),
            _ => None,
        }
    }

    /// Kernels with their cell on the parent and on the commit: `P` pass, `F` fail, `~` flaky,
    /// `E` runner error, `S` skip, `.` untested.
    fn changes(rows: &[(&str, &str)]) -> Vec<StreamChange> {
        let mut kernels = Vec::new();
        let (mut parent, mut commit) = (HashMap::new(), HashMap::new());
        for (id, (uname, cells)) in (1..).zip(rows) {
            kernels.push(StoredKernel {
                id,
                kernel: kernel(uname),
            });
            let mut cells = cells.chars().map(state);
            parent.extend(cells.next().flatten().map(|s| (id, s)));
            commit.extend(cells.next().flatten().map(|s| (id, s)));
        }
        StreamChange::between(&kernels, &parent, &commit)
    }

    #[test]
    fn a_commit_breaks_and_fixes_kernels_stream_by_stream() {
        let streams = changes(&[
            ("3.10.0-1160.el7.x86_64", "PF"),
            ("4.18.0-477.el8_8.x86_64", "FP"),
            ("4.18.0-372.el8.x86_64", "PF"),
            ("4.18.0-513.el8.x86_64", "PF"),
            ("5.14.0-1.el9.x86_64", "P."),
        ]);
        let seen: Vec<(&str, &[String], &[String], usize)> = streams
            .iter()
            .map(|s| (s.stream.as_str(), &s.broke[..], &s.fixed[..], s.tested))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "el8",
                    &[
                        "4.18.0-372.el8.x86_64".to_string(),
                        "4.18.0-513.el8.x86_64".to_string()
                    ][..],
                    &["4.18.0-477.el8_8.x86_64".to_string()][..],
                    3
                ),
                (
                    "el7",
                    &["3.10.0-1160.el7.x86_64".to_string()][..],
                    &[][..],
                    1
                ),
            ]
        );
        assert_eq!(streams[0].label, "Enterprise Linux 8");
    }

    #[test]
    fn only_pass_to_fail_and_back_are_changes() {
        let streams = changes(&[
            ("4.18.0-372.el8.x86_64", "~F"),
            ("4.18.0-477.el8_8.x86_64", "EP"),
            ("4.18.0-483.el8.x86_64", ".F"),
            ("4.18.0-513.el8.x86_64", "PS"),
            ("4.18.0-553.el8_10.x86_64", "FF"),
        ]);
        assert_eq!(streams.len(), 1);
        let el8 = &streams[0];
        assert!(el8.broke.is_empty() && el8.fixed.is_empty());
        assert_eq!(el8.tested, 5);
        assert!(changes(&[("4.18.0-372.el8.x86_64", "P.")]).is_empty());
    }

    #[test]
    fn health_counts_flaky_cells_apart_from_their_latest_status() {
        let cell = |pass: i64, fail: i64, latest: Status| CellSummary {
            counts: StatusCounts {
                pass,
                fail,
                error: 0,
                skip: 0,
            },
            latest_status: latest,
            latest_report_id: 1,
            latest_finished_at: 0,
            signature: None,
        };
        let cells = [
            cell(2, 0, Status::Pass),
            cell(0, 1, Status::Fail),
            cell(1, 1, Status::Fail),
            cell(1, 1, Status::Pass),
            cell(0, 0, Status::Error),
            cell(1, 0, Status::Skip),
        ];
        let h = CommitHealth::of(column("3d3c92b4711b42169837e8c3b1fa2b8e5e1ea8e4"), &cells);
        assert_eq!(
            (
                h.cells.pass,
                h.cells.fail,
                h.cells.error,
                h.cells.skip,
                h.flaky
            ),
            (1, 1, 1, 1, 2)
        );
        assert_eq!(
            h.one_line(),
            "3d3c92b: 3 of 4 kernels failing (2 flaky), 1 with runner errors"
        );
    }

    #[test]
    fn a_signature_is_seen_since_the_oldest_kernel_of_each_stream() {
        let sighting = |uname: &str, sha: &str| SignatureCell {
            kernel: kernel(uname),
            sha: sha.to_string(),
            last_seen: 0,
        };
        let project = Project {
            id: 1,
            name: "demo".into(),
            description: String::new(),
            demo: false,
        };
        let cells = vec![
            sighting("4.18.0-553.el8_10.x86_64", "b"),
            sighting("4.18.0-483.el8.x86_64", "b"),
            sighting("4.18.0-483.el8.x86_64", "a"),
            sighting("5.14.0-503.el9_5.x86_64", "a"),
            sighting("4.18.0-513.el8.x86_64", "a"),
        ];
        let s = SignatureCells::new(project, "x".into(), "boom".into(), None, 5, cells);
        assert_eq!(s.kernels, 4);
        assert_eq!(
            s.since,
            ["4.18.0-483.el8.x86_64", "5.14.0-503.el9_5.x86_64"]
        );
        assert_eq!(
            s.one_line(),
            "appears on 4 kernels since 4.18.0-483.el8.x86_64, 5.14.0-503.el9_5.x86_64"
        );
        assert_eq!((s.first_seen, s.cells.len()), (5, 5));
    }

    fn column(sha: &str) -> StoredCommit {
        StoredCommit {
            id: 1,
            sha: sha.into(),
            subject: None,
            author: None,
            committed_at: None,
            tags: vec![],
        }
    }

    #[test]
    fn health_line_counts_failures_and_errors() {
        let commit = column("3d3c92b4711b42169837e8c3b1fa2b8e5e1ea8e4");
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

    #[test]
    fn times_read_as_a_coarse_age_and_never_negative() {
        let min = 60_000;
        assert_eq!(ago(0, 500), "just now");
        assert_eq!(ago(10_000, 0), "just now");
        assert_eq!(ago(0, 45_000), "45 s ago");
        assert_eq!(ago(0, 12 * min), "12 min ago");
        assert_eq!(ago(0, 3 * 60 * min + 5), "3 h ago");
        assert_eq!(ago(0, 50 * 60 * min), "2 days ago");
        assert_eq!(rfc3339_ms(1_764_151_200_000), "2025-11-26T10:00:00Z");
        assert_eq!(format_ms(1_764_151_200_000), "2025-11-26 10:00 UTC");
    }

    #[test]
    fn the_first_line_that_printed_the_error_is_marked() {
        let report = ReportDetail {
            id: 1,
            runner: "r".into(),
            run_id: "x".into(),
            status: Status::Fail,
            stages: Vec::new(),
            metadata: BTreeMap::new(),
            started_at: 0,
            finished_at: 0,
            received_at: 0,
            log: "make -C /lib/modules\nx.c:3:1: error: boom  \nx.c:3:1: error: boom\n".into(),
            log_original_bytes: 0,
            log_cut_bytes: 0,
            error_line: Some("x.c:3:1: error: boom".into()),
        };
        let lines = report.log_lines();
        let marked: Vec<(usize, bool)> = lines.iter().map(|l| (l.number, l.error)).collect();
        assert_eq!(marked, [(1, false), (2, true), (3, false)]);
        let passing = ReportDetail {
            error_line: None,
            ..report
        };
        assert!(passing.log_lines().iter().all(|l| !l.error));
    }

    #[test]
    fn the_previous_kernel_is_the_next_older_one_of_the_same_lane() {
        let stored = |id, uname: &str| StoredKernel {
            id,
            kernel: kernel(uname),
        };
        let kernels = [
            stored(1, "4.18.0-513.el8_9.x86_64"),
            stored(2, "4.18.0-553.el8_10.x86_64"),
            stored(3, "4.18.0-477.el8_8.x86_64"),
            stored(4, "4.18.0-513.el8_9.aarch64"),
            stored(5, "4.18.0-553.el8_10.x86_64+debug"),
        ];
        let prev = |uname| previous_in_lane(&kernels, &kernel(uname)).map(|k| k.id);
        assert_eq!(prev("4.18.0-553.el8_10.x86_64"), Some(1));
        assert_eq!(prev("4.18.0-513.el8_9.x86_64"), Some(3));
        assert_eq!(prev("4.18.0-477.el8_8.x86_64"), None);
        assert_eq!(prev("4.18.0-553.el8_10.aarch64"), Some(4));
        assert_eq!(prev("4.18.0-553.el8_10.x86_64+debug"), None);
    }

    #[test]
    fn a_commits_results_list_streams_in_grid_order_and_newest_kernels_first() {
        let kernels: Vec<StoredKernel> = [
            "3.10.0-1160.el7.x86_64",
            "4.18.0-513.el8_9.x86_64",
            "4.18.0-553.el8_10.x86_64",
            "4.18.0-477.el8_8.x86_64",
        ]
        .iter()
        .zip(1..)
        .map(|(u, id)| StoredKernel {
            id,
            kernel: kernel(u),
        })
        .collect();
        let states = HashMap::from([
            (1, CellState::Pass),
            (2, CellState::Fail),
            (3, CellState::Pass),
        ]);
        let list: Vec<(String, CellState)> = KernelResult::list(&kernels, &states)
            .into_iter()
            .map(|r| (r.kernel.uname(), r.state))
            .collect();
        assert_eq!(
            list,
            [
                ("4.18.0-553.el8_10.x86_64".to_string(), CellState::Pass),
                ("4.18.0-513.el8_9.x86_64".to_string(), CellState::Fail),
                ("3.10.0-1160.el7.x86_64".to_string(), CellState::Pass),
            ]
        );
    }

    #[test]
    fn a_cell_belongs_to_the_breakage_that_fails_on_its_kernel_and_commit() {
        use crate::now::tests::{breakages, sha};
        let found = breakages(&[
            ("4.18.0-513.el8_9.x86_64", "PPP"),
            ("4.18.0-553.el8_10.x86_64", "PFF"),
        ]);
        let b = breakage_of(&found, &kernel("4.18.0-553.el8_10.x86_64"), &sha(3));
        assert_eq!(b.map(|b| b.first_bad_commit.clone()), Some(sha(2)));
        assert!(breakage_of(&found, &kernel("4.18.0-553.el8_10.x86_64"), &sha(1)).is_none());
        assert!(breakage_of(&found, &kernel("4.18.0-513.el8_9.x86_64"), &sha(3)).is_none());
        assert_eq!(
            named_commits(&found[0]),
            [sha(2).as_str(), sha(1).as_str(), sha(2).as_str()]
        );
    }

    #[test]
    fn a_kernel_update_does_not_start_at_the_commit_it_first_fails_on() {
        use crate::now::tests::{breakages, sha};
        let module = breakages(&[("4.18.0-553.el8_10.x86_64", "PF")]);
        assert!(starts_at_commit(&module[0], &sha(2)));
        let kernel = breakages(&[
            ("4.18.0-513.el8_9.x86_64", "PP"),
            ("4.18.0-553.el8_10.x86_64", "FF"),
        ]);
        assert_eq!(kernel[0].first_bad_commit, sha(1));
        assert!(!starts_at_commit(&kernel[0], &sha(1)));
    }
}
