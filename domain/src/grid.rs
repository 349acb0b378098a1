//! The kernel x commit grid as a view model: rows grouped by stream in RPM order (newest first),
//! columns in git order, and the row filter. The server keeps only the rows the filter keeps (the
//! page and the API carry no hidden rows); the browser island runs the same filter code to narrow
//! the rows it has in place, and asks the server for rows only when a filter widens
//! ([`GridFilter::narrows`]), so both always agree.

use crate::breakage::Breakage;
use crate::kernel::{stream_cmp, stream_label, Kernel};
use crate::status::{CellState, CellSummary};
use crate::view::{StoredCommit, StoredKernel};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// One stored cell summary, keyed by storage ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellEntry {
    pub kernel_id: i64,
    pub commit_id: i64,
    pub summary: CellSummary,
}

/// Which rows (and whether every commit or only the tested ones) to show. Lives in the page
/// URL: `?stream=rhel-8&stream=rhel-9&arch=x86_64&failing=1&q=553&all=1`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridFilter {
    /// Empty means every stream.
    pub streams: Vec<String>,
    pub arch: Option<String>,
    /// Only rows that fail now ([`GridRow::fails_now`]).
    pub failing: bool,
    /// Case-insensitive substring of the kernel's `uname -r` or of its error text
    /// ([`error_text`]: the signatures of its cells on the page's columns).
    pub q: String,
    /// A column for every commit; by default untested commits collapse into markers.
    #[serde(default)]
    pub every_commit: bool,
}

/// A query parameter the filters cannot read: its name, the value sent and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub param: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.param, self.value, self.expected)
    }
}

impl std::error::Error for QueryError {}

/// The deepest grid page a query may ask for: deeper ones only make the database skip past
/// millions of commits to answer with none.
pub const MAX_PAGE: u32 = 100_000;

/// The grid page from URL query pairs (0 = the newest commits); the last `page` wins.
pub fn page_from_pairs<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<u32, QueryError> {
    let mut page = 0;
    for (_, v) in pairs.into_iter().filter(|(k, _)| *k == "page") {
        page = v
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= MAX_PAGE)
            .ok_or_else(|| QueryError {
                param: "page",
                value: v.to_string(),
                expected: "use a page number from 0 (the newest commits) to 100000",
            })?;
    }
    Ok(page)
}

impl GridFilter {
    /// The query parameters a filter reads; every other is ignored.
    pub const PARAMS: [&'static str; 5] = ["stream", "arch", "failing", "q", "all"];

    /// Builds a filter from URL query pairs. Empty values mean "any" (what the page's form sends
    /// for "all"); unknown keys are ignored; a `failing` or `all` value that is not a yes or a
    /// no is an error rather than a silent "no".
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<GridFilter, QueryError> {
        let mut f = GridFilter::default();
        for (k, v) in pairs {
            let v = v.trim();
            match k {
                "stream" if !v.is_empty() => {
                    for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        if !f.streams.iter().any(|x| x == s) {
                            f.streams.push(s.to_string());
                        }
                    }
                }
                "arch" if !v.is_empty() => f.arch = Some(v.to_string()),
                "failing" => {
                    f.failing = flag(
                        "failing",
                        v,
                        "use 1, true, on or yes for only rows failing now; \
                         0, false, off, no or nothing for all rows",
                    )?
                }
                "all" => {
                    f.every_commit = flag(
                        "all",
                        v,
                        "use 1, true, on or yes for every commit; \
                         0, false, off, no or nothing for tested commits only",
                    )?
                }
                "q" => f.q = v.to_string(),
                _ => {}
            }
        }
        Ok(f)
    }

    /// The filter as query pairs, in a stable order (for links and `history.replaceState`).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs: Vec<(&'static str, String)> =
            self.streams.iter().map(|s| ("stream", s.clone())).collect();
        if let Some(a) = &self.arch {
            pairs.push(("arch", a.clone()));
        }
        if self.failing {
            pairs.push(("failing", "1".to_string()));
        }
        if !self.q.is_empty() {
            pairs.push(("q", self.q.clone()));
        }
        if self.every_commit {
            pairs.push(("all", "1".to_string()));
        }
        pairs
    }

    /// Whether the filter keeps a row: its kernel's stream, arch and `uname -r`, its
    /// [`error_text`] and whether it fails now.
    pub fn matches(
        &self,
        stream: &str,
        arch: &str,
        uname: &str,
        errors: &str,
        fails_now: bool,
    ) -> bool {
        let q = self.q.to_lowercase();
        (self.streams.is_empty() || self.streams.iter().any(|s| s == stream))
            && self.arch.as_deref().is_none_or(|a| a == arch)
            && (!self.failing || fails_now)
            && (q.is_empty()
                || uname.to_lowercase().contains(&q)
                || errors.to_lowercase().contains(&q))
    }

    pub fn is_empty(&self) -> bool {
        *self == GridFilter::default()
    }

    /// Whether every row this filter keeps is kept by `wider` too: a page rendered under `wider`
    /// already holds all of this filter's rows, so the island can narrow it in place.
    pub fn narrows(&self, wider: &GridFilter) -> bool {
        let streams = wider.streams.is_empty()
            || (!self.streams.is_empty() && self.streams.iter().all(|s| wider.streams.contains(s)));
        let arch = wider.arch.is_none() || self.arch == wider.arch;
        let q = self.q.to_lowercase().contains(&wider.q.to_lowercase());
        let columns = self.every_commit == wider.every_commit;
        streams && arch && (self.failing || !wider.failing) && q && columns
    }
}

/// A yes or a no from the URL; anything else is an error rather than a silent "no".
fn flag(param: &'static str, v: &str, expected: &'static str) -> Result<bool, QueryError> {
    match v {
        "1" | "true" | "on" | "yes" => Ok(true),
        "" | "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(QueryError {
            param,
            value: v.to_string(),
            expected,
        }),
    }
}

/// The error text the search looks in for a row: the distinct error signatures of its cells,
/// in column order, one per line. The page carries it on each row, so the browser narrows by
/// the same text the server filtered by.
pub fn error_text(cells: &[Option<GridCell>]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in cells
        .iter()
        .flatten()
        .filter_map(|c| c.summary.signature.as_deref())
    {
        if !seen.contains(&s) {
            seen.push(s);
        }
    }
    seen.join("\n")
}

/// Where one grid page's columns sit in the project's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnPage {
    /// The columns' commit ids, newest first.
    pub ids: Vec<i64>,
    /// Per column: the untested commits between it and the next older tested commit.
    pub untested_after: Vec<usize>,
    /// Untested commits newer than the first column (on the first page only).
    pub untested_before: usize,
    pub has_older: bool,
}

/// Chooses page `page` of `per_page` columns from the history (git order, newest first, each
/// commit flagged tested or not). By default only tested commits are columns, and the untested
/// ones between them are counted so the page can mark where they were left out; with
/// `every_commit`, every commit is a column.
pub fn column_page(
    history: &[(i64, bool)],
    page: u32,
    per_page: u32,
    every_commit: bool,
) -> ColumnPage {
    let (skip, per) = (page as usize * per_page as usize, per_page as usize);
    let shown: Vec<usize> = (0..history.len())
        .filter(|&i| every_commit || history[i].1)
        .collect();
    let on_page = shown.get(skip..).unwrap_or_default();
    let on_page = &on_page[..per.min(on_page.len())];
    let next_shown = |k: usize| shown.get(skip + k + 1).copied().unwrap_or(history.len());
    ColumnPage {
        ids: on_page.iter().map(|&i| history[i].0).collect(),
        untested_after: on_page
            .iter()
            .enumerate()
            .map(|(k, &i)| next_shown(k) - i - 1)
            .collect(),
        untested_before: if page == 0 {
            shown.first().copied().unwrap_or(history.len())
        } else {
            0
        },
        has_older: shown.len() > skip + per,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridCell {
    pub state: CellState,
    pub summary: CellSummary,
    /// The first failing cell of a breakage.
    pub breakage_start: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridRow {
    pub kernel_id: i64,
    pub kernel: Kernel,
    pub uname: String,
    /// One entry per column; `None` (null) where the pair was never tested.
    pub cells: Vec<Option<GridCell>>,
    /// A failing or flaky cell among the columns.
    pub has_failure: bool,
    /// The kernel fails now: it fails at the newest tested commit shown, or it is in an open
    /// breakage (a kernel left failing on older commits only, fixed since, does not count).
    /// What "only rows failing now" keeps.
    pub fails_now: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamGroup {
    pub stream: String,
    pub label: String,
    /// The rows the filter keeps (never none: a stream without one is left out).
    pub rows: Vec<GridRow>,
    /// The stream's kernels before filtering ("1 of 36 kernels").
    pub kernels: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamOption {
    pub stream: String,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grid {
    pub project: String,
    /// Commits in git order, newest first: the tested ones, or every one with `filter.every_commit`.
    pub columns: Vec<StoredCommit>,
    /// Per column: the untested commits left out between it and the next older column.
    pub untested_after: Vec<usize>,
    /// Untested commits left out before the first column (newer than it).
    pub untested_before: usize,
    /// The streams with a row the filter keeps.
    pub groups: Vec<StreamGroup>,
    /// The project's kernels before filtering.
    pub kernels: usize,
    pub filter: GridFilter,
    /// 0 = the newest commits.
    pub page: u32,
    pub has_older: bool,
    pub streams: Vec<StreamOption>,
    pub arches: Vec<String>,
}

/// What the grid marks from the breakages as last computed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BreakageMarks {
    /// The (kernel id, commit id) cells where breakages begin.
    pub starts: HashSet<(i64, i64)>,
    /// The (stream, `uname -r`) of every kernel in an open breakage.
    pub open: HashSet<(String, String)>,
}

impl BreakageMarks {
    pub fn of(breakages: &[Breakage]) -> BreakageMarks {
        BreakageMarks {
            starts: breakages
                .iter()
                .map(|b| (b.start_kernel_id, b.start_commit_id))
                .collect(),
            open: breakages
                .iter()
                .filter(|b| b.open)
                .flat_map(|b| b.kernels.iter().map(|k| (b.stream.clone(), k.clone())))
                .collect(),
        }
    }
}

/// One column of the drawn grid, left to right (newest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// The commit `columns[i]`.
    Commit(usize),
    /// A run of this many untested commits, left out.
    Untested(usize),
}

impl Grid {
    /// The columns as drawn: each commit, with its untested neighbours collapsed into markers.
    pub fn slots(&self) -> Vec<Slot> {
        let gaps = std::iter::once(self.untested_before)
            .filter(|n| *n > 0)
            .map(Slot::Untested);
        let columns = self.untested_after.iter().enumerate().flat_map(|(i, n)| {
            std::iter::once(Slot::Commit(i)).chain((*n > 0).then_some(Slot::Untested(*n)))
        });
        gaps.chain(columns).collect()
    }

    /// Assembles the grid of the rows `filter` keeps. `columns` are the commits of `placement`,
    /// in its order; `marks` come from the breakages as last computed.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        project: &str,
        kernels: Vec<StoredKernel>,
        columns: Vec<StoredCommit>,
        placement: &ColumnPage,
        cells: Vec<CellEntry>,
        filter: GridFilter,
        page: u32,
        marks: &BreakageMarks,
    ) -> Grid {
        let col_index: HashMap<i64, usize> =
            columns.iter().enumerate().map(|(i, c)| (c.id, i)).collect();
        let mut by_kernel: HashMap<i64, Vec<Option<GridCell>>> = HashMap::new();
        for entry in cells {
            let Some(&ci) = col_index.get(&entry.commit_id) else {
                continue;
            };
            let row = by_kernel
                .entry(entry.kernel_id)
                .or_insert_with(|| vec![None; columns.len()]);
            row[ci] = Some(GridCell {
                state: entry.summary.state(),
                summary: entry.summary,
                breakage_start: marks.starts.contains(&(entry.kernel_id, entry.commit_id)),
            });
        }

        let mut arches: Vec<String> = kernels.iter().map(|k| k.kernel.arch.clone()).collect();
        arches.sort();
        arches.dedup();

        let mut kernels = kernels;
        kernels.sort_by(|a, b| {
            stream_cmp(&a.kernel.stream, &b.kernel.stream).then_with(|| b.kernel.rpm_cmp(&a.kernel))
        });
        // The newest commit shown that any kernel was tested on: "failing now" is failing there.
        let newest_tested =
            (0..columns.len()).find(|i| by_kernel.values().any(|cells| cells[*i].is_some()));
        let total = kernels.len();
        let mut groups: Vec<StreamGroup> = Vec::new();
        let mut streams: Vec<StreamOption> = Vec::new();
        for StoredKernel { id, kernel } in kernels {
            if streams.last().is_none_or(|s| s.stream != kernel.stream) {
                streams.push(StreamOption {
                    stream: kernel.stream.clone(),
                    label: stream_label(&kernel.stream),
                });
                groups.push(StreamGroup {
                    stream: kernel.stream.clone(),
                    label: stream_label(&kernel.stream),
                    rows: Vec::new(),
                    kernels: 0,
                });
            }
            let group = groups.last_mut().expect("pushed above");
            group.kernels += 1;
            let cells = by_kernel
                .remove(&id)
                .unwrap_or_else(|| vec![None; columns.len()]);
            let has_failure = cells.iter().flatten().any(|c| c.state.is_failure());
            let uname = kernel.uname();
            let newest_fails = newest_tested
                .and_then(|i| cells[i].as_ref())
                .is_some_and(|c| c.state.is_failure());
            let fails_now =
                newest_fails || marks.open.contains(&(kernel.stream.clone(), uname.clone()));
            // Only a search reads the error text: no row pays for it otherwise.
            let errors = if filter.q.is_empty() {
                String::new()
            } else {
                error_text(&cells)
            };
            if filter.matches(&kernel.stream, &kernel.arch, &uname, &errors, fails_now) {
                group.rows.push(GridRow {
                    kernel_id: id,
                    uname,
                    cells,
                    has_failure,
                    fails_now,
                    kernel,
                });
            }
        }
        groups.retain(|g| !g.rows.is_empty());
        Grid {
            project: project.to_string(),
            columns,
            untested_after: placement.untested_after.clone(),
            untested_before: placement.untested_before,
            groups,
            kernels: total,
            filter,
            page,
            has_older: placement.has_older,
            streams,
            arches,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Status, StatusCounts};

    fn kernel(id: i64, uname: &str, distro: Option<&str>) -> StoredKernel {
        StoredKernel {
            id,
            kernel: Kernel::parse(uname, None, distro).unwrap(),
        }
    }

    fn column(id: i64) -> StoredCommit {
        StoredCommit {
            id,
            sha: format!("{id:040x}"),
            subject: None,
            author: None,
            committed_at: None,
            tags: vec![],
        }
    }

    fn cell(kernel_id: i64, commit_id: i64, statuses: &[Status]) -> CellEntry {
        let mut counts = StatusCounts::default();
        statuses.iter().for_each(|s| counts.add(*s));
        CellEntry {
            kernel_id,
            commit_id,
            summary: CellSummary {
                counts,
                latest_status: *statuses.last().unwrap(),
                latest_report_id: 1,
                latest_finished_at: 0,
                signature: None,
            },
        }
    }

    fn sample(filter: GridFilter) -> Grid {
        let kernels = vec![
            kernel(1, "3.10.0-1160.el7.x86_64", None),
            kernel(2, "4.18.0-553.el8_10.x86_64", Some("rhel-8")),
            kernel(3, "4.18.0-553.5.1.el8_10.x86_64", Some("rhel-8")),
            kernel(4, "4.18.0-477.10.1.el8_8.aarch64", Some("rhel-8")),
            kernel(5, "3.10.0-1160.119.1.el7.x86_64", None),
            kernel(6, "4.18.0-80.el8.x86_64", Some("rhel-8")),
        ];
        let cells = vec![
            cell(2, 10, &[Status::Pass]),
            cell(3, 10, &[Status::Fail]),
            cell(3, 11, &[Status::Pass]),
            cell(4, 11, &[Status::Pass, Status::Fail]),
            // Failed on the older commit, passes on the newest: fixed, not failing now.
            cell(6, 10, &[Status::Pass]),
            cell(6, 11, &[Status::Fail]),
            cell(1, 99, &[Status::Fail]), // a commit not on this page
        ];
        let marks = BreakageMarks {
            starts: HashSet::from([(3, 10)]),
            // Open on an EL7 kernel whose failure is on no shown commit.
            open: HashSet::from([("el7".to_string(), "3.10.0-1160.el7.x86_64".to_string())]),
        };
        let placement = column_page(&[(10, true), (11, true)], 0, 50, false);
        Grid::build(
            "wg",
            kernels,
            vec![column(10), column(11)],
            &placement,
            cells,
            filter,
            0,
            &marks,
        )
    }

    #[test]
    fn groups_by_stream_newest_kernel_first() {
        let grid = sample(GridFilter::default());
        let layout: Vec<(String, Vec<String>)> = grid
            .groups
            .iter()
            .map(|g| {
                (
                    g.label.clone(),
                    g.rows.iter().map(|r| r.uname.clone()).collect(),
                )
            })
            .collect();
        assert_eq!(
            layout,
            [
                (
                    "RHEL 8".to_string(),
                    vec![
                        "4.18.0-553.5.1.el8_10.x86_64".to_string(),
                        "4.18.0-553.el8_10.x86_64".to_string(),
                        "4.18.0-477.10.1.el8_8.aarch64".to_string(),
                        "4.18.0-80.el8.x86_64".to_string()
                    ]
                ),
                (
                    "Enterprise Linux 7".to_string(),
                    vec![
                        "3.10.0-1160.119.1.el7.x86_64".to_string(),
                        "3.10.0-1160.el7.x86_64".to_string()
                    ]
                ),
            ]
        );
        assert_eq!(grid.arches, ["aarch64", "x86_64"]);
    }

    #[test]
    fn places_cells_in_their_columns_and_flags_failures() {
        let grid = sample(GridFilter::default());
        let rhel8 = &grid.groups[0].rows;
        assert_eq!(rhel8[0].cells[0].as_ref().unwrap().state, CellState::Fail);
        assert!(rhel8[0].cells[0].as_ref().unwrap().breakage_start);
        assert!(!rhel8[0].cells[1].as_ref().unwrap().breakage_start);
        assert_eq!(rhel8[0].cells[1].as_ref().unwrap().state, CellState::Pass);
        assert!(rhel8[0].has_failure);
        assert!(!rhel8[1].has_failure && rhel8[1].cells[1].is_none());
        assert_eq!(rhel8[2].cells[1].as_ref().unwrap().state, CellState::Flaky);
        // A failure outside the shown commits does not mark the row; the stream stays listed.
        let el7 = &grid.groups[1].rows;
        assert!(el7
            .iter()
            .all(|r| !r.has_failure && r.cells.iter().all(Option::is_none)));
    }

    #[test]
    fn filter_keeps_only_its_rows_and_counts_the_rest() {
        let grid = sample(GridFilter::from_pairs([("failing", "1"), ("arch", "x86_64")]).unwrap());
        let kept: Vec<(&str, usize, Vec<&str>)> = grid
            .groups
            .iter()
            .map(|g| {
                let rows = g.rows.iter().map(|r| r.uname.as_str()).collect();
                (g.stream.as_str(), g.kernels, rows)
            })
            .collect();
        // 553.5.1 fails at the newest tested commit, the EL7 kernel is in an open breakage; 80
        // failed once but passes now.
        assert_eq!(
            kept,
            [
                ("rhel-8", 4, vec!["4.18.0-553.5.1.el8_10.x86_64"]),
                ("el7", 2, vec!["3.10.0-1160.el7.x86_64"])
            ]
        );
        assert_eq!(grid.kernels, 6);
        let none = sample(GridFilter::from_pairs([("q", "nothing")]).unwrap());
        // A stream that keeps no row is left out of the groups but stays a stream to choose.
        assert!(none.groups.is_empty());
        assert_eq!(none.streams.len(), 2);
    }

    #[test]
    fn search_finds_kernels_and_the_error_text_of_their_cells() {
        let kernels = vec![
            kernel(1, "4.18.0-553.el8_10.x86_64", None),
            kernel(2, "4.18.0-477.10.1.el8_8.x86_64", None),
            kernel(3, "4.18.0-80.el8.x86_64", None),
        ];
        let headers = "error: struct sk_buff has no member named 'headers_end'";
        let napi = "error: too many arguments to function 'netif_napi_add'";
        let signed = |kernel_id, commit_id, signature: &str| {
            let mut c = cell(kernel_id, commit_id, &[Status::Fail]);
            c.summary.signature = Some(signature.to_string());
            c
        };
        let cells = vec![
            signed(1, 10, headers),
            signed(1, 11, headers),
            signed(2, 11, napi),
            // On a commit that is no column of the page: not searched.
            signed(3, 99, "error: HEADERS_END moved"),
        ];
        let placement = column_page(&[(10, true), (11, true)], 0, 50, false);
        let grid = |q: &str| {
            Grid::build(
                "wg",
                kernels.clone(),
                vec![column(10), column(11)],
                &placement,
                cells.clone(),
                GridFilter::from_pairs([("q", q)]).unwrap(),
                0,
                &BreakageMarks::default(),
            )
        };
        let rows = |q: &str| -> Vec<String> {
            grid(q)
                .groups
                .iter()
                .flat_map(|g| g.rows.iter().map(|r| r.uname.clone()))
                .collect()
        };
        assert_eq!(rows("Headers_End"), ["4.18.0-553.el8_10.x86_64"]);
        assert_eq!(rows("netif_napi"), ["4.18.0-477.10.1.el8_8.x86_64"]);
        assert_eq!(rows("553"), ["4.18.0-553.el8_10.x86_64"]);
        assert_eq!(rows("error:").len(), 2);
        // Each signature once, in column order: the text the page carries for the browser.
        let all = grid("");
        let texts: Vec<String> = all.groups[0]
            .rows
            .iter()
            .map(|r| error_text(&r.cells))
            .collect();
        assert_eq!(texts, [headers, napi, ""]);
    }

    #[test]
    fn a_row_fails_now_at_its_newest_result_or_in_an_open_breakage() {
        let grid = sample(GridFilter::default());
        let now: Vec<(&str, bool, bool)> = grid
            .groups
            .iter()
            .flat_map(|g| &g.rows)
            .map(|r| (r.uname.as_str(), r.has_failure, r.fails_now))
            .collect();
        assert_eq!(
            now,
            [
                ("4.18.0-553.5.1.el8_10.x86_64", true, true),
                ("4.18.0-553.el8_10.x86_64", false, false),
                // Flaky on the older commit only: not tested at the newest.
                ("4.18.0-477.10.1.el8_8.aarch64", true, false),
                ("4.18.0-80.el8.x86_64", true, false),
                ("3.10.0-1160.119.1.el7.x86_64", false, false),
                ("3.10.0-1160.el7.x86_64", false, true),
            ]
        );
    }

    #[test]
    fn a_narrower_filter_needs_no_rows_the_wider_page_lacks() {
        let f = |q: &str| GridFilter::from_pairs(url_pairs(q)).unwrap();
        for (narrow, wide) in [
            ("", ""),
            ("stream=el8", ""),
            ("stream=el8", "stream=el8&stream=el9"),
            ("arch=x86_64&failing=1", "failing=1"),
            ("q=553.5", "q=553"),
            ("q=EL8_10", "q=el8"),
            ("all=1&q=5", "all=1"),
        ] {
            assert!(f(narrow).narrows(&f(wide)), "{narrow:?} within {wide:?}");
        }
        for (wider, narrow) in [
            ("", "stream=el8"),
            ("stream=el8&stream=el9", "stream=el8"),
            ("", "arch=x86_64"),
            ("arch=aarch64", "arch=x86_64"),
            ("", "failing=1"),
            ("q=55", "q=553"),
            ("q=", "q=553"),
            ("", "all=1"),
            ("all=1", ""),
        ] {
            assert!(
                !f(wider).narrows(&f(narrow)),
                "{wider:?} needs more than {narrow:?}"
            );
        }
    }

    /// A history from a scenario string, newest first: `x` a tested commit, `.` an untested
    /// one; ids count from 1.
    fn history(scenario: &str) -> Vec<(i64, bool)> {
        (1..).zip(scenario.chars().map(|c| c == 'x')).collect()
    }

    #[test]
    fn tested_commits_are_the_columns_and_untested_runs_are_counted() {
        let h = history("..x.xx...x.x");
        let first = column_page(&h, 0, 2, false);
        assert_eq!(
            first,
            ColumnPage {
                ids: vec![3, 5],
                untested_after: vec![1, 0],
                untested_before: 2,
                has_older: true,
            }
        );
        let second = column_page(&h, 1, 2, false);
        assert_eq!(
            (second.ids, second.untested_after, second.untested_before),
            (vec![6, 10], vec![3, 1], 0)
        );
        let last = column_page(&h, 2, 2, false);
        assert_eq!((last.ids, last.has_older), (vec![12], false));
        assert_eq!(column_page(&h, 3, 2, false).ids, Vec::<i64>::new());
        // Every commit: no gaps, and paging counts all of them.
        let all = column_page(&h, 1, 5, true);
        assert_eq!(
            (
                all.ids,
                all.untested_after,
                all.untested_before,
                all.has_older
            ),
            (vec![6, 7, 8, 9, 10], vec![0; 5], 0, true)
        );
        // Nothing tested yet: one marker for the whole history.
        let none = column_page(&history("...."), 0, 2, false);
        assert_eq!((none.ids.len(), none.untested_before), (0, 4));
    }

    #[test]
    fn untested_runs_are_drawn_between_their_columns() {
        let mut grid = sample(GridFilter::default());
        assert_eq!(grid.slots(), [Slot::Commit(0), Slot::Commit(1)]);
        (grid.untested_before, grid.untested_after) = (2, vec![12, 0]);
        assert_eq!(
            grid.slots(),
            [
                Slot::Untested(2),
                Slot::Commit(0),
                Slot::Untested(12),
                Slot::Commit(1)
            ]
        );
    }

    /// `a=1&b=2` as query pairs.
    fn url_pairs(q: &str) -> Vec<(&str, &str)> {
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap())
            .collect()
    }

    #[test]
    fn filter_round_trips_through_the_url() {
        let f = GridFilter::from_pairs([
            ("stream", "rhel-8,rhel-9"),
            ("stream", "rhel-8"),
            ("q", " 553 "),
            ("x", "y"),
        ])
        .unwrap();
        assert_eq!(f.streams, ["rhel-8", "rhel-9"]);
        assert_eq!(f.q, "553");
        let pairs = f.to_pairs();
        let back = GridFilter::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))).unwrap();
        assert_eq!(back, f);
        assert!(f.matches("rhel-9", "x86_64", "5.14.0-553.el9.X86_64", "", false));
        assert!(!f.matches("el7", "x86_64", "553", "", false));
        assert!(GridFilter::from_pairs([("failing", "0")])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn failing_takes_a_yes_or_a_no_and_nothing_else() {
        let failing = |v| GridFilter::from_pairs([("failing", v)]).map(|f| f.failing);
        for yes in ["1", "true", "on", "yes", " 1 "] {
            assert_eq!(failing(yes), Ok(true), "{yes:?}");
        }
        for no in ["", "0", "false", "off", "no"] {
            assert_eq!(failing(no), Ok(false), "{no:?}");
        }
        for junk in ["banana", "2", "TRUE", "1,0"] {
            let err = failing(junk).unwrap_err();
            assert_eq!((err.param, err.value.as_str()), ("failing", junk));
        }
        assert_eq!(
            GridFilter::from_pairs([("failing", "1"), ("failing", "maybe")])
                .unwrap_err()
                .to_string(),
            "failing=\"maybe\": use 1, true, on or yes for only rows failing now; \
             0, false, off, no or nothing for all rows"
        );
    }

    #[test]
    fn page_is_a_bounded_number() {
        let page = |pairs: &[(&'static str, &'static str)]| page_from_pairs(pairs.iter().copied());
        assert_eq!(page(&[]), Ok(0));
        assert_eq!(page(&[("page", "3"), ("stream", "el8")]), Ok(3));
        assert_eq!(page(&[("page", "100000")]), Ok(MAX_PAGE));
        assert_eq!(page(&[("page", "1"), ("page", "2")]), Ok(2));
        for bad in ["100001", "-1", "", "1.5", "x", "99999999999"] {
            let err = page(&[("page", bad)]).unwrap_err();
            assert_eq!((err.param, err.value.as_str()), ("page", bad));
        }
        assert!(page(&[("page", "x"), ("page", "1")]).is_err());
    }
}
