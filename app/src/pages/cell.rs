//! The cell page, a workbench for one kernel and commit: links to both, the breakage the cell is
//! part of and its signature, its neighbours on both axes, and every report with its stages,
//! metadata and a numbered log (error line marked, a link to it, a raw download).

use super::breakages::commit_link;
use super::time::When;
use super::{document, state_class, status_class, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::breakage::NeighbourAxis;
use trellis_domain::kernel::stream_label;
use trellis_domain::view::{CellDetail, CellNeighbour, ReportDetail};
use trellis_domain::{short_sha, CellState, Kernel, Status};

/// Where a report's log and downloads live: the cell it belongs to.
struct Place<'a> {
    project: &'a str,
    kernel: &'a Kernel,
    sha: &'a str,
    now: i64,
}

/// A log with numbered, linkable lines; the line the error came from is marked.
fn log_view(r: &ReportDetail) -> impl IntoView {
    let lines = r
        .log_lines()
        .into_iter()
        .map(|l| {
            // The number is drawn by CSS from `data-n`, so copying the log copies no numbers.
            let id = paths::log_line_id(r.id, l.number);
            view! {
                <span class=if l.error { "line error-line" } else { "line" } id=id>
                    <a class="ln" href=paths::log_line(r.id, l.number) data-n=l.number aria-hidden="true" tabindex="-1"></a>
                    <span class="lt">{l.text.to_string()}</span>"\n"
                </span>
            }
        })
        .collect_view();
    view! { <pre class="log numbered" tabindex="0">{lines}</pre> }
}

fn report_view(r: ReportDetail, at: &Place<'_>) -> impl IntoView {
    let stages = r
        .stages
        .iter()
        .map(|s| {
            let duration = s
                .duration_ms
                .map(|d| format!("{:.1} s", d as f64 / 1000.0))
                .unwrap_or_default();
            view! {
                <tr>
                    <td>{s.name.clone()}</td>
                    <td class=status_class(s.status)>{s.status.as_str()}</td>
                    <td>{duration}</td>
                </tr>
            }
        })
        .collect_view();
    let metadata = r
        .metadata
        .iter()
        .map(|(k, v)| view! { <dt>{k.clone()}</dt><dd>{v.clone()}</dd> })
        .collect_view();
    let has_stages = !r.stages.is_empty();
    let has_metadata = !r.metadata.is_empty();
    let cut = (r.log_cut_bytes > 0).then(|| {
        view! {
            <p class="note">{format!("The log had {} bytes; {} were cut from its middle (marked below).", r.log_original_bytes, r.log_cut_bytes)}</p>
        }
    });
    let infrastructure = (r.status == Status::Error).then(|| {
        view! {
            <p class="note">"Status "<code>"error"</code>" means the runner could not run the job (infrastructure), not that the module failed. It neither opens nor fixes a breakage."</p>
        }
    });
    let first_error = r
        .log_lines()
        .into_iter()
        .find(|l| l.error)
        .map(|l| view! { <a class="jump" href=paths::log_line(r.id, l.number)>"jump to first error"</a>" · " });
    let raw = paths::report_log(at.project, at.kernel, at.sha, r.id);
    let log = log_view(&r);
    let now = at.now;
    view! {
        <section class="report" id=format!("report-{}", r.id)>
            <h2>
                <span class=format!("status {}", status_class(r.status))>{r.status.as_str()}</span>
                {format!(" report {} · runner {} · run {}", r.id, r.runner, r.run_id)}
            </h2>
            <p class="times">
                "started " <When at=r.started_at now=now />
                " · finished " <When at=r.finished_at now=now />
                " · received " <When at=r.received_at now=now />
            </p>
            {infrastructure}
            {has_stages.then(|| view! {
                <table class="stages">
                    <thead><tr><th>"stage"</th><th>"status"</th><th>"duration"</th></tr></thead>
                    <tbody>{stages}</tbody>
                </table>
            })}
            {has_metadata.then(|| view! { <dl class="metadata">{metadata}</dl> })}
            {cut}
            <details open=matches!(r.status, Status::Fail | Status::Error)>
                <summary>{format!("log ({} bytes)", r.log.len())}</summary>
                <p class="log-tools">{first_error}<a href=raw download>"raw log"</a></p>
                {log}
            </details>
        </section>
    }
}

fn neighbour_view(project: &str, n: CellNeighbour) -> impl IntoView {
    let (label, what) = match n.axis {
        NeighbourAxis::Commit => ("parent commit", short_sha(&n.sha).to_string()),
        NeighbourAxis::Kernel => ("previous kernel", n.kernel.uname()),
    };
    let (class, state) = match n.state {
        Some(s) => (state_class(s), format!("{} {}", s.symbol(), s.as_str())),
        None => ("untested", "untested".to_string()),
    };
    view! {
        <li class="neighbour" data-axis=match n.axis { NeighbourAxis::Commit => "commit", NeighbourAxis::Kernel => "kernel" }>
            {format!("{label} ")}<code>{what}</code>": "
            <a class=class href=paths::cell(project, &n.kernel, &n.sha)>{state}</a>
        </li>
    }
}

pub fn render_cell(cell: CellDetail, now: i64) -> String {
    document(move || {
        let kernel = cell.kernel.kernel.clone();
        let title = format!("{} @ {}", kernel.uname(), cell.commit.short_sha());
        let summary = match &cell.summary {
            Some(s) => {
                let state = s.state();
                view! {
                    <p class=format!("summary {}", state_class(state))>
                        {format!("{} {} — {}", state.symbol(), state.as_str(), s.counts.describe())}
                    </p>
                }
                .into_any()
            }
            None => view! { <p class="summary">"untested: no report for this kernel and commit yet"</p> }
                .into_any(),
        };
        let flaky = cell
            .summary
            .as_ref()
            .is_some_and(|s| s.state() == CellState::Flaky)
            .then(|| view! { <p class="note">"Reports disagree: some passed and some failed on this kernel and commit."</p> });
        let project = cell.project.name.clone();
        let signature = cell.summary.as_ref().and_then(|s| s.signature.clone());
        let signature = signature.map(|s| {
            view! { <dt>"error"</dt><dd class="signature"><a href=paths::signature(&project, &s)><code>{s.clone()}</code></a></dd> }
        });
        let infrastructure = cell.infrastructure.then(|| {
            view! {
                <p class="note infrastructure">"This error says the runner lacked a kernel tree or a compiler: the runner's trouble, not the module's. The runner should have reported "<code>"error"</code>" for it."</p>
            }
        });
        let breakage = cell.breakage.as_ref().map(|b| {
            view! {
                <dt>"breakage"</dt>
                <dd><a href=paths::breakage(&project, &b.id)>
                    {format!("{} · {}: {}", if b.open { "open" } else { "fixed" }, b.stream_label, b.attribution.description())}
                </a></dd>
            }
        });
        let has_neighbours = !cell.neighbours.is_empty();
        let neighbours = cell
            .neighbours
            .into_iter()
            .map(|n| neighbour_view(&project, n))
            .collect_view();
        let place = Place {
            project: &project,
            kernel: &kernel,
            sha: &cell.commit.sha,
            now,
        };
        let reports = cell
            .reports
            .into_iter()
            .map(|r| report_view(r, &place))
            .collect_view();
        view! {
            <Shell title=title.clone() demo=cell.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / cell"</nav>
                <h1>{title}</h1>
                <dl class="cell-facts">
                    <dt>"kernel"</dt><dd><a href=paths::kernel(&project, &kernel)><code>{kernel.uname()}</code></a></dd>
                    <dt>"stream"</dt><dd>{stream_label(&kernel.stream)}</dd>
                    <dt>"commit"</dt><dd>{commit_link(&project, &cell.commit.sha)}" "{cell.commit.subject.clone().unwrap_or_default()}</dd>
                    <dt>"author"</dt><dd>{cell.commit.author.clone().unwrap_or_default()}</dd>
                    {breakage}
                    {signature}
                </dl>
                {summary}
                {infrastructure}
                {flaky}
                <h2>"Neighbours"</h2>
                {if has_neighbours {
                    view! { <ul class="neighbours">{neighbours}</ul> }.into_any()
                } else {
                    view! { <p>"No parent commit or older kernel of this lane is known."</p> }.into_any()
                }}
                {reports}
            </Shell>
        }
        .into_any()
    })
}
