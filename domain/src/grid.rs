//! The kernel x commit grid as a view model: rows grouped by stream in RPM order (newest first),
//! columns in git order, and the row filter. The same filter code runs on the server (for the
//! no-JavaScript page and the API) and in the browser island, so both always agree.

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

/// Which rows to show. Lives in the page URL: `?stream=rhel-8&stream=rhel-9&arch=x86_64&failing=1&q=553`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GridFilter {
    /// Empty means every stream.
    pub streams: Vec<String>,
    pub arch: Option<String>,
    /// Only rows with a failing or flaky cell among the shown commits.
    pub failing: bool,
    /// Case-insensitive substring of the kernel's `uname -r`.
    pub q: String,
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
    /// Builds a filter from URL query pairs. Empty values mean "any" (what the page's form sends
    /// for "all"); unknown keys are ignored; a `failing` value that is not a yes or a no is an
    /// error rather than a silent "no".
    /// The query parameters a filter reads; every other is ignored.
    pub const PARAMS: [&'static str; 4] = ["stream", "arch", "failing", "q"];

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
                    f.failing = match v {
                        "1" | "true" | "on" | "yes" => true,
                        "" | "0" | "false" | "off" | "no" => false,
                        _ => {
                            return Err(QueryError {
                                param: "failing",
                                value: v.to_string(),
                                expected: "use 1, true, on or yes for only rows with failures; \
                                           0, false, off, no or nothing for all rows",
                            })
                        }
                    }
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
        pairs
    }

    pub fn matches(&self, stream: &str, arch: &str, uname: &str, has_failure: bool) -> bool {
        (self.streams.is_empty() || self.streams.iter().any(|s| s == stream))
            && self.arch.as_deref().is_none_or(|a| a == arch)
            && (!self.failing || has_failure)
            && (self.q.is_empty() || uname.to_lowercase().contains(&self.q.to_lowercase()))
    }

    pub fn is_empty(&self) -> bool {
        *self == GridFilter::default()
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
    pub has_failure: bool,
    /// False when the filter hides the row (the page still carries it, hidden, for the island).
    pub visible: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamGroup {
    pub stream: String,
    pub label: String,
    pub rows: Vec<GridRow>,
}

impl StreamGroup {
    pub fn visible(&self) -> bool {
        self.rows.iter().any(|r| r.visible)
    }
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
    /// Commits in git order, newest first.
    pub columns: Vec<StoredCommit>,
    pub groups: Vec<StreamGroup>,
    pub filter: GridFilter,
    /// 0 = the newest commits.
    pub page: u32,
    pub has_older: bool,
    pub streams: Vec<StreamOption>,
    pub arches: Vec<String>,
}

impl Grid {
    /// Assembles the grid. `columns` must already be in git order, newest first; `starts` are
    /// the (kernel id, commit id) cells where breakages begin.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        project: &str,
        kernels: Vec<StoredKernel>,
        columns: Vec<StoredCommit>,
        cells: Vec<CellEntry>,
        filter: GridFilter,
        page: u32,
        has_older: bool,
        starts: &HashSet<(i64, i64)>,
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
                breakage_start: starts.contains(&(entry.kernel_id, entry.commit_id)),
            });
        }

        let mut arches: Vec<String> = kernels.iter().map(|k| k.kernel.arch.clone()).collect();
        arches.sort();
        arches.dedup();

        let mut kernels = kernels;
        kernels.sort_by(|a, b| {
            stream_cmp(&a.kernel.stream, &b.kernel.stream).then_with(|| b.kernel.rpm_cmp(&a.kernel))
        });
        let mut groups: Vec<StreamGroup> = Vec::new();
        for StoredKernel { id, kernel } in kernels {
            let cells = by_kernel
                .remove(&id)
                .unwrap_or_else(|| vec![None; columns.len()]);
            let has_failure = cells.iter().flatten().any(|c| c.state.is_failure());
            let uname = kernel.uname();
            let visible = filter.matches(&kernel.stream, &kernel.arch, &uname, has_failure);
            let row = GridRow {
                kernel_id: id,
                uname,
                cells,
                has_failure,
                visible,
                kernel,
            };
            match groups.last_mut() {
                Some(g) if g.stream == row.kernel.stream => g.rows.push(row),
                _ => groups.push(StreamGroup {
                    stream: row.kernel.stream.clone(),
                    label: stream_label(&row.kernel.stream),
                    rows: vec![row],
                }),
            }
        }
        let streams = groups
            .iter()
            .map(|g| StreamOption {
                stream: g.stream.clone(),
                label: g.label.clone(),
            })
            .collect();
        Grid {
            project: project.to_string(),
            columns,
            groups,
            filter,
            page,
            has_older,
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
        ];
        let cells = vec![
            cell(2, 10, &[Status::Pass]),
            cell(3, 10, &[Status::Fail]),
            cell(3, 11, &[Status::Pass]),
            cell(4, 11, &[Status::Pass, Status::Fail]),
            cell(1, 99, &[Status::Fail]), // a commit not on this page
        ];
        let starts = HashSet::from([(3, 10)]);
        Grid::build(
            "wg",
            kernels,
            vec![column(10), column(11)],
            cells,
            filter,
            0,
            false,
            &starts,
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
                        "4.18.0-477.10.1.el8_8.aarch64".to_string()
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
    fn filter_hides_rows_but_keeps_them() {
        let grid = sample(GridFilter::from_pairs([("failing", "1"), ("arch", "x86_64")]).unwrap());
        let visible: Vec<&str> = grid
            .groups
            .iter()
            .flat_map(|g| g.rows.iter())
            .filter(|r| r.visible)
            .map(|r| r.uname.as_str())
            .collect();
        assert_eq!(visible, ["4.18.0-553.5.1.el8_10.x86_64"]);
        assert_eq!(grid.groups.iter().map(|g| g.rows.len()).sum::<usize>(), 5);
        assert!(!grid.groups[1].visible());
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
        assert!(f.matches("rhel-9", "x86_64", "5.14.0-553.el9.X86_64", false));
        assert!(!f.matches("el7", "x86_64", "553", false));
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
            "failing=\"maybe\": use 1, true, on or yes for only rows with failures; \
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
