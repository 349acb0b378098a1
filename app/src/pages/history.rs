//! The kernel, commit and signature pages: one axis of the grid, or one error, at a time.

use super::breakages::breakage_card;
use super::{document, state_class, ScrollRegion, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::breakage::Breakage;
use trellis_domain::kernel::stream_label;
use trellis_domain::view::{format_ms, CommitChanges, KernelHistory, SignatureCells};
use trellis_domain::{short_sha, CellState};

pub fn render_kernel(h: KernelHistory, now: i64) -> String {
    document(move || {
        let project = h.project.name.clone();
        let kernel = h.kernel.kernel.clone();
        let uname = kernel.uname();
        let links = paths::KernelCells::new(&project, &kernel);
        let rows = h
            .cells
            .into_iter()
            .map(|(commit, cell)| {
                let state = cell.state();
                view! {
                    <tr>
                        <td class=state_class(state)>
                            <a href=links.cell(&commit.sha)>{format!("{} {}", state.symbol(), state.as_str())}</a>
                        </td>
                        <td><a href=paths::commit(&project, &commit.sha)><code>{commit.short_sha().to_string()}</code></a></td>
                        <td>{commit.subject.clone().unwrap_or_default()}</td>
                        <td>{cell.counts.describe()}</td>
                        <td class="signature">{cell.signature.clone().unwrap_or_default()}</td>
                    </tr>
                }
            })
            .collect_view();
        let count = h.breakages.len();
        let cards = h
            .breakages
            .into_iter()
            .map(|d| breakage_card(&project, d, now))
            .collect_view();
        view! {
            <Shell title=uname.clone() demo=h.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / kernel"</nav>
                <h1>{uname.clone()}</h1>
                <p>{stream_label(&kernel.stream)}</p>
                <h2>{format!("Breakages ({count})")}</h2>
                {cards}
                <h2>"Results along the commits (newest first)"</h2>
                <ScrollRegion label="Results along the commits"><table class="history">
                    <thead><tr><th>"result"</th><th>"commit"</th><th>"subject"</th><th>"reports"</th><th>"error"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></ScrollRegion>
            </Shell>
        }
        .into_any()
    })
}

fn breakage_links(project: &str, list: &[Breakage]) -> impl IntoView {
    let items = list
        .iter()
        .map(|b| {
            view! {
                <li>
                    <a href=paths::breakage(project, &b.id)>{format!("{}: {}", b.stream_label, b.attribution.description())}</a>
                    {format!(" — {} kernels from {}", b.kernels.len(), b.first_bad_kernel)}
                    {b.signature.clone().map(|s| view! { " · " <code>{s}</code> })}
                </li>
            }
        })
        .collect_view();
    view! { <ul>{items}</ul> }
}

pub fn render_commit(c: CommitChanges) -> String {
    document(move || {
        let project = c.project.name.clone();
        let title = format!(
            "{} {}",
            c.commit.short_sha(),
            c.commit.subject.clone().unwrap_or_default()
        );
        let parent = c.parent.as_ref().map(|p| {
            view! { <p>"compared with its parent " <a href=paths::commit(&project, &p.sha)><code>{p.short_sha().to_string()}</code></a></p> }
        });
        let streams = c
            .streams
            .iter()
            .map(|s| {
                view! {
                    <tr>
                        <td>{s.label.clone()}</td>
                        <td>{s.tested}</td>
                        <td class=(!s.broke.is_empty()).then_some(state_class(CellState::Fail))>{format!("{} broke", s.broke.len())}" "<small>{s.broke.join(", ")}</small></td>
                        <td class=(!s.fixed.is_empty()).then_some(state_class(CellState::Pass))>{format!("{} fixed", s.fixed.len())}" "<small>{s.fixed.join(", ")}</small></td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <Shell title=title.clone() demo=c.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / commit"</nav>
                <h1>{title}</h1>
                <dl class="cell-facts">
                    <dt>"sha"</dt><dd><code>{c.commit.sha.clone()}</code></dd>
                    <dt>"author"</dt><dd>{c.commit.author.clone().unwrap_or_default()}</dd>
                    <dt>"committed"</dt><dd>{c.commit.committed_at.map(format_ms).unwrap_or_default()}</dd>
                </dl>
                {parent}
                <h2>"Per stream"</h2>
                <ScrollRegion label="Per stream"><table class="history">
                    <thead><tr><th>"stream"</th><th>"kernels tested"</th><th>"broke"</th><th>"fixed"</th></tr></thead>
                    <tbody>{streams}</tbody>
                </table></ScrollRegion>
                <h2>{format!("Breakages that start here ({})", c.opened.len())}</h2>
                {breakage_links(&project, &c.opened)}
                <h2>{format!("Breakages this commit fixed ({})", c.closed.len())}</h2>
                {breakage_links(&project, &c.closed)}
            </Shell>
        }
        .into_any()
    })
}

pub fn render_signature(s: SignatureCells) -> String {
    document(move || {
        let project = s.project.name.clone();
        let summary = format!(
            "This error {}; first seen {}.",
            s.one_line(),
            format_ms(s.first_seen)
        );
        let rows = s
            .cells
            .iter()
            .map(|cell| {
                view! {
                    <tr>
                        <td><a href=paths::kernel(&project, &cell.kernel)>{cell.kernel.uname()}</a></td>
                        <td>{stream_label(&cell.kernel.stream)}</td>
                        <td><a href=paths::cell(&project, &cell.kernel, &cell.sha)><code>{short_sha(&cell.sha).to_string()}</code></a></td>
                        <td>{format_ms(cell.last_seen)}</td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <Shell title="Error signature".to_string() demo=s.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / signature"</nav>
                <h1>"Error signature"</h1>
                <p class="signature"><code>{s.signature.clone()}</code></p>
                <p>{summary}</p>
                {s.excerpt.clone().map(|e| view! { <details><summary>"latest excerpt"</summary><pre class="log" tabindex="0">{e}</pre></details> })}
                <ScrollRegion label="Kernels with this error"><table class="history">
                    <thead><tr><th>"kernel"</th><th>"stream"</th><th>"commit"</th><th>"last seen"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></ScrollRegion>
            </Shell>
        }
        .into_any()
    })
}
