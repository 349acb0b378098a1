//! The cell page: every report of one kernel and commit, with stages, metadata and the log.

use super::{document, state_class, status_class, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::kernel::stream_label;
use trellis_domain::view::{format_ms, CellDetail, ReportDetail};
use trellis_domain::{CellState, Status};

fn report_view(r: ReportDetail) -> impl IntoView {
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
    view! {
        <section class="report" id=format!("report-{}", r.id)>
            <h2>
                <span class=format!("status {}", status_class(r.status))>{r.status.as_str()}</span>
                {format!(" report {} · runner {} · run {}", r.id, r.runner, r.run_id)}
            </h2>
            <p class="times">
                {format!(
                    "started {} · finished {} · received {}",
                    format_ms(r.started_at),
                    format_ms(r.finished_at),
                    format_ms(r.received_at)
                )}
            </p>
            {has_stages.then(|| view! {
                <table class="stages">
                    <thead><tr><th>"stage"</th><th>"status"</th><th>"duration"</th></tr></thead>
                    <tbody>{stages}</tbody>
                </table>
            })}
            {has_metadata.then(|| view! { <dl class="metadata">{metadata}</dl> })}
            {cut}
            <details open=r.status == Status::Fail>
                <summary>{format!("log ({} bytes)", r.log.len())}</summary>
                <pre class="log" tabindex="0">{r.log}</pre>
            </details>
        </section>
    }
}

pub fn render_cell(cell: CellDetail) -> String {
    document(move || {
        let kernel = cell.kernel.kernel.clone();
        let title = format!("{} @ {}", kernel.uname(), cell.commit.short_sha());
        let summary = cell.summary.as_ref().map(|s| {
            let state = s.state();
            view! {
                <p class=format!("summary {}", state_class(state))>
                    {format!("{} {} — {}", state.symbol(), state.as_str(), s.counts.describe())}
                </p>
            }
        });
        let flaky = cell
            .summary
            .as_ref()
            .is_some_and(|s| s.state() == CellState::Flaky)
            .then(|| view! { <p class="note">"Reports disagree: some passed and some failed on this kernel and commit."</p> });
        let project = cell.project.name.clone();
        let reports = cell.reports.into_iter().map(report_view).collect_view();
        view! {
            <Shell title=title.clone() demo=cell.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / cell"</nav>
                <h1>{title}</h1>
                <dl class="cell-facts">
                    <dt>"kernel"</dt><dd>{kernel.uname()}</dd>
                    <dt>"stream"</dt><dd>{stream_label(&kernel.stream)}</dd>
                    <dt>"commit"</dt><dd><code>{cell.commit.sha.clone()}</code>" "{cell.commit.subject.clone().unwrap_or_default()}</dd>
                    <dt>"author"</dt><dd>{cell.commit.author.clone().unwrap_or_default()}</dd>
                </dl>
                {summary}
                {flaky}
                {reports}
            </Shell>
        }
        .into_any()
    })
}
