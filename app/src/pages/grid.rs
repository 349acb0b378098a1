//! The grid page: kernels by stream in RPM order against commits in git order, with the filter
//! bar and live updates; and how a cell is drawn ([`CellFace::of`]), for the page and the live
//! stream alike.

use super::now::NowSummary;
use super::subscription::{Feeds, Subscribe};
use super::{document, state_class, Shell};
use crate::islands::{stream_count, CellFace, CellPatch, FilterBar, LiveGrid};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::events::FeedFilter;
use trellis_domain::grid::{error_text, Grid, GridCell, GridRow, Slot};
use trellis_domain::now::BrokenNow;
use trellis_domain::view::StoredCommit;
use trellis_domain::view::{format_ms, Project};
use trellis_domain::{CellState, Kernel};

/// Every state a cell can show, and what it means.
const LEGEND: [(CellState, &str); 5] = [
    (CellState::Pass, "pass"),
    (CellState::Fail, "fail"),
    (CellState::Flaky, "flaky (pass and fail)"),
    (CellState::Error, "runner error"),
    (CellState::Skip, "skipped"),
];

/// A commit's column header: its release tags, short sha and date, the rest on hover and focus.
fn commit_head(project: &str, c: &StoredCommit) -> impl IntoView {
    let date = c
        .committed_at
        .and_then(|at| format_ms(at).get(..10).map(str::to_string));
    let tags =
        (!c.tags.is_empty()).then(|| view! { <strong class="tag">{c.tags.join(" ")}</strong> " " });
    view! {
        <th class="commit" scope="col" data-sha=c.sha.clone()>
            <a href=paths::commit(project, &c.sha) title=column_title(c)>
                {tags}
                {c.short_sha().to_string()}
                {date.map(|d| view! { " " <span class="date">{d}</span> })}
            </a>
        </th>
    }
}

/// The header of a run of untested commits left out.
fn untested_head(n: usize) -> impl IntoView {
    let label = match n {
        1 => "1 untested commit".to_string(),
        n => format!("{n} untested commits"),
    };
    view! { <th class="gap" scope="col"><span>{label}</span></th> }
}

fn column_title(c: &StoredCommit) -> String {
    let mut t = format!("{} {}", c.short_sha(), c.subject.as_deref().unwrap_or(""));
    if !c.tags.is_empty() {
        t.push_str(&format!("\ntag {}", c.tags.join(", ")));
    }
    if let Some(a) = &c.author {
        t.push_str(&format!("\n{a}"));
    }
    if let Some(at) = c.committed_at {
        t.push_str(&format!(", {}", format_ms(at)));
    }
    t
}

impl CellFace {
    /// How the grid draws a kernel's cell at commit `sha`: the state's symbol and class (marked
    /// where a breakage starts), linking to the cell page. Its title sums up the reports in a
    /// few words: the row and column headers name the kernel and commit, and the cell page has
    /// the rest (a title per cell is most of a large grid's bytes).
    pub fn of(links: &paths::KernelCells, sha: &str, cell: &GridCell) -> CellFace {
        let state = cell.state;
        let mut class = state_class(state).to_string();
        let mut title = format!("{} ({})", state.as_str(), cell.summary.counts.describe());
        if cell.breakage_start {
            class.push_str(" start");
            title.push_str(", breakage starts here");
        }
        if let Some(s) = &cell.summary.signature {
            title.push_str(&format!("\n{}", s.chars().take(80).collect::<String>()));
        }
        CellFace {
            class,
            symbol: state.symbol().to_string(),
            title,
            href: links.cell(sha),
        }
    }
}

impl CellPatch {
    /// A changed cell as the live stream sends it to the grid of `project`.
    pub fn new(project: &str, kernel: &Kernel, sha: &str, cell: &GridCell) -> CellPatch {
        let face = CellFace::of(&paths::KernelCells::new(project, kernel), sha, cell);
        CellPatch {
            stream: kernel.stream.clone(),
            kernel: kernel.uname(),
            sha: sha.to_string(),
            face,
            failing: cell.state.is_failure(),
            signature: cell.summary.signature.clone(),
        }
    }
}

/// One cell: empty when untested, else its [`CellFace`].
fn cell_view(
    links: &paths::KernelCells,
    column: &StoredCommit,
    cell: &Option<GridCell>,
) -> impl IntoView {
    let face = cell
        .as_ref()
        .map(|cell| CellFace::of(links, &column.sha, cell));
    let class = face.as_ref().map(|f| f.class.clone());
    let link = face.map(|f| view! { <a href=f.href title=f.title>{f.symbol}</a> });
    view! { <td class=class>{link}</td> }
}

fn row_view(
    project: &str,
    columns: &[StoredCommit],
    slots: &[Slot],
    row: GridRow,
) -> impl IntoView {
    let links = paths::KernelCells::new(project, &row.kernel);
    // What the search looks in besides the kernel name, for the island to narrow in place.
    let errors = Some(error_text(&row.cells)).filter(|e| !e.is_empty());
    let cells = slots
        .iter()
        .map(|slot| match *slot {
            Slot::Commit(i) => cell_view(&links, &columns[i], &row.cells[i]).into_any(),
            Slot::Untested(_) => view! { <td class="gap"></td> }.into_any(),
        })
        .collect_view();
    view! {
        <tr
            data-kernel=row.uname.clone()
            data-stream=row.kernel.stream.clone()
            data-arch=row.kernel.arch.clone()
            data-failing=row.fails_now.then_some("")
            data-errors=errors
        >
            <th scope="row">{kernel_link(project, &row)}</th>
            {cells}
        </tr>
    }
}

/// A row's kernel link. Its dist tag and arch are a suffix that narrow screens leave out
/// (shown again on focus), since the stream's group label says them already.
fn kernel_link(project: &str, row: &GridRow) -> impl IntoView {
    let (version, suffix) = split_uname(&row.uname, &row.kernel.arch);
    view! {
        <a href=paths::kernel(project, &row.kernel) title=row.uname.clone()>
            {version.to_string()}
            <span class="uname-suffix">{suffix.to_string()}</span>
        </a>
    }
}

/// `5.14.0-427.13.1.el9_4.x86_64` as `5.14.0-427.13.1` and `.el9_4.x86_64`: the version and
/// release before the dist tag, and the rest (a name without a dist tag loses only its arch).
fn split_uname<'a>(uname: &'a str, arch: &str) -> (&'a str, &'a str) {
    let dist = uname
        .match_indices(".el")
        .map(|(i, _)| i)
        .find(|&i| uname[i + 3..].starts_with(|c: char| c.is_ascii_digit()));
    let arch = uname.rfind(&format!(".{arch}"));
    uname.split_at(dist.or(arch).unwrap_or(uname.len()))
}

/// Link to another page of commits; the island keeps its query in step with the filter.
fn page_link(grid: &Grid, page: u32, label: &'static str) -> impl IntoView {
    let href = paths::grid_page(&grid.project, &grid.filter, page);
    view! { <a class="page-link" href=href data-page=page.to_string()>{label}</a> }
}

/// The grid page of `project`, opening with what is broken in it now (as of `at`).
pub fn render_grid(project: Project, grid: Grid, now: BrokenNow, at: i64, per_page: u32) -> String {
    document(move || {
        let columns = grid.columns.clone();
        let slots = grid.slots();
        let width = slots.len() + 1;
        let first = grid.page * per_page + 1;
        let which = if grid.filter.every_commit {
            "commits"
        } else {
            "tested commits"
        };
        let range = if columns.is_empty() {
            format!("no {which} yet")
        } else {
            format!(
                "{which} {}–{} (newest first)",
                first,
                first + columns.len() as u32 - 1
            )
        };
        let newer = (grid.page > 0).then(|| page_link(&grid, grid.page - 1, "← newer commits"));
        let older = grid
            .has_older
            .then(|| page_link(&grid, grid.page + 1, "older commits →"));
        let head = slots
            .iter()
            .map(|slot| match *slot {
                Slot::Commit(i) => commit_head(&grid.project, &columns[i]).into_any(),
                Slot::Untested(n) => untested_head(n).into_any(),
            })
            .collect_view();
        let name = grid.project.clone();
        let feeds = Feeds::of(Some(&name), &FeedFilter::of_grid(&grid.filter).to_pairs());
        let empty = grid.kernels == 0;
        let shown: usize = grid.groups.iter().map(|g| g.rows.len()).sum();
        let row_count = format!("{shown} of {} kernels shown", grid.kernels);
        let bodies = grid
            .groups
            .clone()
            .into_iter()
            .map(|g| {
                let rows = g.rows.len();
                let rows_view = g
                    .rows
                    .into_iter()
                    .map(|r| row_view(&name, &columns, &slots, r))
                    .collect_view();
                view! {
                    <tbody data-stream=g.stream.clone() data-kernels=g.kernels.to_string()>
                        <tr class="stream">
                            <th scope="rowgroup" colspan=width.to_string()>
                                <span class="stream-label">
                                    {g.label}
                                    <span class="stream-count">{stream_count(rows, g.kernels)}</span>
                                </span>
                            </th>
                        </tr>
                        {rows_view}
                    </tbody>
                }
            })
            .collect_view();
        view! {
            <Shell title=project.name.clone() islands=true demo=project.demo feeds=feeds.clone()>
                <h1>
                    {project.name.clone()}
                    {project.demo.then(|| view! { <span class="badge demo">"demo data"</span> })}
                </h1>
                {(!project.description.is_empty()).then(|| view! { <p class="description">{project.description.clone()}</p> })}
                <NowSummary now=now at=at />
                // Past the filters, feeds and legend, straight to the cells.
                <a class="skip-link" href="#grid">"Skip to the grid"</a>
                <form class="filters" method="get" role="search">
                    <FilterBar streams=grid.streams.clone() arches=grid.arches.clone() filter=grid.filter.clone() />
                    <output id="row-count" aria-live="polite">{row_count}</output>
                    <noscript><button type="submit">"Apply"</button></noscript>
                </form>
                <p>
                    <a href=paths::breakages(&project.name)>"Breakages, bisect hints and error signatures →"</a>
                    " · "<a href=paths::commit_search(&project.name, "")>"Find a commit by sha, subject or tag →"</a>
                    " · "<a href=paths::coverage(&project.name)>"Coverage: how far the CI can be trusted →"</a>
                </p>
                <Subscribe
                    project=project.name.clone()
                    feeds=feeds
                    streams=grid.streams.clone()
                    stream=FeedFilter::of_grid(&grid.filter).breakages.stream
                />
                <nav class="pager">{newer}<span class="range">{range}</span>{older}</nav>
                <LiveGrid project=project.name.clone() />
                <p class="legend">
                    {LEGEND.map(|(state, meaning)| view! { <span class=state_class(state)>{format!("{} {meaning}", state.symbol())}</span> })}
                    <span>"blank: not tested"</span>
                </p>
                {empty.then(|| view! { <p>"No kernel has been reported for this project yet."</p> })}
                <p id="no-match" hidden=empty || (shown > 0)>"No kernel matches this filter."</p>
                <div class="grid-wrap">
                    <table class="grid" id="grid" data-kernels=grid.kernels.to_string()>
                        <thead>
                            <tr>
                                <th class="corner" scope="col">"kernel \\ commit"</th>
                                {head}
                            </tr>
                        </thead>
                        {bodies}
                    </table>
                </div>
            </Shell>
        }
        .into_any()
    })
}

#[cfg(test)]
mod tests {
    use super::split_uname;

    #[test]
    fn a_kernel_name_splits_before_its_dist_tag() {
        for (uname, short) in [
            ("5.14.0-427.13.1.el9_4.x86_64", "5.14.0-427.13.1"),
            ("3.10.0-1160.el7.x86_64+debug", "3.10.0-1160"),
            ("4.18.0-553.el8_10.aarch64", "4.18.0-553"),
            ("5.4.280.x86_64", "5.4.280"),
            ("6.1.0", "6.1.0"),
        ] {
            let (version, suffix) = split_uname(uname, "x86_64");
            assert_eq!(
                (version, format!("{version}{suffix}")),
                (short, uname.to_string())
            );
        }
    }
}
