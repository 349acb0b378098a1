//! The grid page: kernels by stream in RPM order against commits in git order, with the filter
//! bar and live updates; and how a cell is drawn ([`CellFace::of`]), for the page and the live
//! stream alike.

use super::subscription::{Feeds, Subscribe};
use super::{document, state_class, Shell};
use crate::islands::{CellFace, CellPatch, FilterBar, LiveGrid};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::events::FeedFilter;
use trellis_domain::grid::{Grid, GridCell, GridRow};
use trellis_domain::view::StoredCommit;
use trellis_domain::view::{format_ms, Project};
use trellis_domain::{short_sha, CellState, Kernel};

/// Every state a cell can show, and what it means.
const LEGEND: [(CellState, &str); 5] = [
    (CellState::Pass, "pass"),
    (CellState::Fail, "fail"),
    (CellState::Flaky, "flaky (pass and fail)"),
    (CellState::Error, "runner error"),
    (CellState::Skip, "skipped"),
];

fn column_title(c: &StoredCommit) -> String {
    let mut t = format!("{} {}", c.short_sha(), c.subject.as_deref().unwrap_or(""));
    if let Some(a) = &c.author {
        t.push_str(&format!("\n{a}"));
    }
    if let Some(at) = c.committed_at {
        t.push_str(&format!(", {}", format_ms(at)));
    }
    t
}

impl CellFace {
    /// How the grid draws `uname`'s cell at commit `sha`: the state's symbol and class (marked
    /// where a breakage starts), linking to the cell page, its title summing up the reports.
    pub fn of(links: &paths::KernelCells, uname: &str, sha: &str, cell: &GridCell) -> CellFace {
        let state = cell.state;
        let mut class = state_class(state).to_string();
        let mut title = format!(
            "{uname} @ {}: {} ({}), latest {}",
            short_sha(sha),
            state.as_str(),
            cell.summary.counts.describe(),
            format_ms(cell.summary.latest_finished_at)
        );
        if cell.breakage_start {
            class.push_str(" start");
            title.push_str("\nbreakage starts here");
        }
        if let Some(s) = &cell.summary.signature {
            title.push_str(&format!("\n{}", s.chars().take(160).collect::<String>()));
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
        let uname = kernel.uname();
        let face = CellFace::of(&paths::KernelCells::new(project, kernel), &uname, sha, cell);
        CellPatch {
            stream: kernel.stream.clone(),
            kernel: uname,
            sha: sha.to_string(),
            face,
            failing: cell.state.is_failure(),
        }
    }
}

/// One cell: empty when untested, else its [`CellFace`].
fn cell_view(
    links: &paths::KernelCells,
    uname: &str,
    column: &StoredCommit,
    cell: &Option<GridCell>,
) -> impl IntoView {
    let face = cell
        .as_ref()
        .map(|cell| CellFace::of(links, uname, &column.sha, cell));
    let class = face.as_ref().map(|f| f.class.clone());
    let link = face.map(|f| view! { <a href=f.href title=f.title>{f.symbol}</a> });
    view! { <td class=class>{link}</td> }
}

fn row_view(project: &str, columns: &[StoredCommit], row: GridRow) -> impl IntoView {
    let links = paths::KernelCells::new(project, &row.kernel);
    let cells = columns
        .iter()
        .zip(&row.cells)
        .map(|(col, cell)| cell_view(&links, &row.uname, col, cell))
        .collect_view();
    view! {
        <tr
            data-kernel=row.uname.clone()
            data-stream=row.kernel.stream.clone()
            data-arch=row.kernel.arch.clone()
            data-failing=row.has_failure.then_some("")
            hidden=!row.visible
        >
            <th scope="row"><a href=paths::kernel(project, &row.kernel)>{row.uname.clone()}</a></th>
            {cells}
        </tr>
    }
}

/// Link to another page of commits; the island keeps its query in step with the filter.
fn page_link(grid: &Grid, page: u32, label: &'static str) -> impl IntoView {
    let href = paths::grid_page(&grid.project, &grid.filter, page);
    view! { <a class="page-link" href=href data-page=page.to_string()>{label}</a> }
}

pub fn render_grid(project: Project, grid: Grid, per_page: u32) -> String {
    document(move || {
        let columns = grid.columns.clone();
        let width = columns.len() + 1;
        let first = grid.page * per_page + 1;
        let range = if columns.is_empty() {
            "no commits yet".to_string()
        } else {
            format!(
                "commits {}–{} (newest first)",
                first,
                first + columns.len() as u32 - 1
            )
        };
        let newer = (grid.page > 0).then(|| page_link(&grid, grid.page - 1, "← newer commits"));
        let older = grid
            .has_older
            .then(|| page_link(&grid, grid.page + 1, "older commits →"));
        let head = columns
            .iter()
            .map(|c| view! { <th class="commit" scope="col" title=column_title(c) data-sha=c.sha.clone()><a href=paths::commit(&grid.project, &c.sha)>{c.short_sha().to_string()}</a></th> })
            .collect_view();
        let name = grid.project.clone();
        let feeds = Feeds::of(Some(&name), &FeedFilter::of_grid(&grid.filter).to_pairs());
        let empty = grid.groups.is_empty();
        let bodies = grid
            .groups
            .clone()
            .into_iter()
            .map(|g| {
                let hidden = !g.visible();
                let count = g.rows.len();
                let rows = g
                    .rows
                    .into_iter()
                    .map(|r| row_view(&name, &columns, r))
                    .collect_view();
                view! {
                    <tbody data-stream=g.stream.clone() hidden=hidden>
                        <tr class="stream">
                            <th scope="rowgroup" colspan=width.to_string()>
                                {g.label}
                                <span class="stream-count">{format!(" {count} kernels")}</span>
                            </th>
                        </tr>
                        {rows}
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
                <form class="filters" method="get" role="search">
                    <FilterBar streams=grid.streams.clone() arches=grid.arches.clone() filter=grid.filter.clone() />
                    <noscript><button type="submit">"Apply"</button></noscript>
                </form>
                <p><a href=paths::breakages(&project.name)>"Breakages, bisect hints and error signatures →"</a></p>
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
                <div class="grid-wrap">
                    <table class="grid">
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
