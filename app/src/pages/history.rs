//! The kernel, commit and signature pages: one axis of the grid, or one error, at a time.

use super::breakages::{breakage_card, commit_link, count, kernel_link};
use super::time::When;
use super::{document, state_class, ScrollRegion, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::breakage::Breakage;
use trellis_domain::kernel::stream_label;
use trellis_domain::search::CommitMatches;
use trellis_domain::view::{CommitChanges, KernelHistory, SignatureCells, StoredCommit};
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
                        <td>{commit_link(&project, &commit.sha)}</td>
                        <td>{commit.subject.clone().unwrap_or_default()}</td>
                        <td>{cell.counts.describe()}</td>
                        <td class="signature">{cell.signature.clone().unwrap_or_default()}</td>
                    </tr>
                }
            })
            .collect_view();
        let count = h.breakages.len();
        let subjects = h.subjects;
        let cards = h
            .breakages
            .into_iter()
            .map(|d| breakage_card(&project, d, &subjects, now))
            .collect_view();
        view! {
            <Shell title=uname.clone() demo=h.project.demo islands=true>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / kernel"</nav>
                <h1 class="long-name">{uname.clone()}</h1>
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

/// Breakages as a list of links, each with its cause and first failing kernel.
fn breakage_links(project: &str, list: &[Breakage]) -> impl IntoView {
    let items = list
        .iter()
        .map(|b| {
            view! {
                <li>
                    <a href=paths::breakage(project, &b.id)>{format!("{}: {}", b.stream_label, b.attribution.description())}</a>
                    {format!(" — {} from ", count(b.kernels.len(), "kernel"))}
                    {kernel_link(project, &b.stream, &b.first_bad_kernel)}
                    {b.signature.clone().map(|s| view! { " · " <a href=paths::signature(project, &s)><code>{s.clone()}</code></a> })}
                </li>
            }
        })
        .collect_view();
    view! { <ul class="breakage-links">{items}</ul> }
}

/// A commit linked with its subject, or "none".
fn commit_line(project: &str, c: Option<&StoredCommit>) -> AnyView {
    match c {
        Some(c) => {
            let tags = (!c.tags.is_empty()).then(|| view! { " "{tag_list(&c.tags)} });
            view! { {commit_link(project, &c.sha)}{tags}" "{c.subject.clone().unwrap_or_default()} }
                .into_any()
        }
        None => "none known".into_any(),
    }
}

/// Release tags, each as code: `v1.0.20220627`.
fn tag_list(tags: &[String]) -> impl IntoView {
    tags.iter()
        .map(|t| view! { <code class="tag">{t.clone()}</code>" " })
        .collect_view()
}

/// Kernels as a wrapped list of links.
fn kernel_list(project: &str, stream: &str, unames: &[String]) -> impl IntoView {
    let items = unames
        .iter()
        .map(|u| view! { <li>{kernel_link(project, stream, u)}</li> })
        .collect_view();
    view! { <ul class="kernel-list">{items}</ul> }
}

pub fn render_commit(c: CommitChanges, now: i64) -> String {
    document(move || {
        let project = c.project.name.clone();
        let sha = c.commit.sha.clone();
        let title = format!(
            "{} {}",
            c.commit.short_sha(),
            c.commit.subject.clone().unwrap_or_default()
        );
        let streams = c
            .streams
            .iter()
            .map(|s| {
                let broke = (!s.broke.is_empty()).then(|| view! {
                    <p class=state_class(CellState::Fail)>{format!("broke {}:", s.broke.len())}</p>
                    {kernel_list(&project, &s.stream, &s.broke)}
                });
                let fixed = (!s.fixed.is_empty()).then(|| view! {
                    <p class=state_class(CellState::Pass)>{format!("fixed {}:", s.fixed.len())}</p>
                    {kernel_list(&project, &s.stream, &s.fixed)}
                });
                let quiet = (s.broke.is_empty() && s.fixed.is_empty()).then_some(" · nothing changed");
                view! {
                    <section class="stream-change">
                        <h3>{s.label.clone()}<small>{format!(" · {} kernels tested", s.tested)}{quiet}</small></h3>
                        {broke}
                        {fixed}
                    </section>
                }
            })
            .collect_view();
        let results = c
            .results
            .iter()
            .map(|r| {
                let state = r.state;
                view! {
                    <li>
                        <a class=state_class(state) href=paths::cell(&project, &r.kernel, &sha)>{format!("{} {}", state.symbol(), state.as_str())}</a>
                        " "<code>{r.kernel.uname()}</code>
                    </li>
                }
            })
            .collect_view();
        let tags = match c.commit.tags.as_slice() {
            [] => "none".into_any(),
            tags => tag_list(tags).into_any(),
        };
        let committed = c
            .commit
            .committed_at
            .map(|t| view! { <When at=t now=now /> });
        view! {
            <Shell title=title.clone() demo=c.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / commit"</nav>
                <h1 class="long-name">{title}</h1>
                <dl class="cell-facts">
                    <dt>"sha"</dt>
                    <dd>
                        <code>{sha.clone()}</code>
                        {c.upstream.clone().map(|u| view! { " · "<a href=u rel="external">"upstream"</a> })}
                    </dd>
                    <dt>"tags"</dt><dd>{tags}</dd>
                    <dt>"author"</dt><dd>{c.commit.author.clone().unwrap_or_default()}</dd>
                    <dt>"committed"</dt><dd>{committed}</dd>
                    <dt>"parent"</dt><dd>{commit_line(&project, c.parent.as_ref())}</dd>
                    <dt>"child"</dt><dd>{commit_line(&project, c.child.as_ref())}</dd>
                </dl>
                <h2>"Compared with its parent"</h2>
                {streams}
                <h2>{format!("Breakages that start here ({})", c.opened.len())}</h2>
                {breakage_links(&project, &c.opened)}
                <h2>{format!("Breakages this commit fixed ({})", c.closed.len())}</h2>
                {breakage_links(&project, &c.closed)}
                <h2>{format!("Results on this commit ({} kernels)", c.results.len())}</h2>
                <ul class="results">{results}</ul>
            </Shell>
        }
        .into_any()
    })
}

/// The commit search: a plain form, and the newest matching commits with their tags, subjects
/// and dates, each linked to its commit page.
pub fn render_commit_search(m: CommitMatches, now: i64) -> String {
    document(move || {
        let project = m.project.name.clone();
        let q = m.search.q.clone();
        let found = m
            .commits
            .iter()
            .map(|c| {
                let at = c.committed_at.map(|t| view! { " · "<When at=t now=now /> });
                view! { <li>{commit_line(&project, Some(c))}{at}</li> }
            })
            .collect_view();
        let summary = match (q.is_empty(), m.commits.len(), m.more) {
            (true, _, _) => String::new(),
            (false, 0, _) => format!("No commit matches “{q}”."),
            (false, n, false) => format!("{} matching “{q}”, newest first.", count(n, "commit")),
            (false, n, true) => format!("The newest {n} of the commits matching “{q}”."),
        };
        view! {
            <Shell title=format!("Commits of {project}") demo=m.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / commits"</nav>
                <h1>"Find a commit"</h1>
                <form method="get" role="search" action=paths::commit_search(&project, "")>
                    <label>
                        "Start of its sha, words of its subject, or its release tag "
                        <input type="search" name="q" value=q.clone() placeholder="e.g. 3d3c92b, napi or v1.0.20220627" />
                    </label>
                    " "<button type="submit">"Search"</button>
                </form>
                <p>{summary}</p>
                <ul class="results">{found}</ul>
            </Shell>
        }
        .into_any()
    })
}

pub fn render_signature(s: SignatureCells, now: i64) -> String {
    document(move || {
        let project = s.project.name.clone();
        let rows = s
            .cells
            .iter()
            .map(|cell| {
                view! {
                    <tr>
                        <td><a href=paths::kernel(&project, &cell.kernel)>{cell.kernel.uname()}</a></td>
                        <td>{stream_label(&cell.kernel.stream)}</td>
                        <td><a href=paths::cell(&project, &cell.kernel, &cell.sha)><code>{short_sha(&cell.sha).to_string()}</code></a></td>
                        <td><When at=cell.last_seen now=now /></td>
                    </tr>
                }
            })
            .collect_view();
        let range = match (&s.first_commit, &s.last_commit) {
            (Some(first), Some(last)) if first.sha == last.sha => {
                view! { <p>"Seen on commit " {commit_line(&project, Some(first))}"."</p> }
                    .into_any()
            }
            (Some(first), Some(last)) => view! {
                <p>"Seen on commits from " {commit_line(&project, Some(first))}
                " to " {commit_line(&project, Some(last))}" (git order)."</p>
            }
            .into_any(),
            _ => ().into_any(),
        };
        view! {
            <Shell title="Error signature".to_string() demo=s.project.demo>
                <nav class="crumbs"><a href=paths::project(&project)>{project.clone()}</a>" / signature"</nav>
                <h1>"Error signature"</h1>
                <p class="signature"><code>{s.signature.clone()}</code></p>
                <p>"This error "{s.one_line()}"; first seen "<When at=s.first_seen now=now />"."</p>
                {range}
                <h2>{format!("Breakages with this error ({})", s.breakages.len())}</h2>
                {breakage_links(&project, &s.breakages)}
                {(!s.seen_together.is_empty()).then(|| {
                    let items = s
                        .seen_together
                        .iter()
                        .map(|t| view! {
                            <li>
                                <a href=paths::signature(&project, &t.signature)><code>{t.signature.clone()}</code></a>
                                {format!(" · in {} of the same logs", t.reports)}
                            </li>
                        })
                        .collect_view();
                    view! {
                        <h2>"Also seen together with"</h2>
                        <ul class="seen-together">{items}</ul>
                    }
                })}
                {s.excerpt.clone().map(|e| view! { <h2>"Latest excerpt"</h2><pre class="log" tabindex="0">{e}</pre> })}
                <h2>"Cells with this error"</h2>
                <ScrollRegion label="Kernels with this error"><table class="history">
                    <thead><tr><th>"kernel"</th><th>"stream"</th><th>"commit"</th><th>"last seen"</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table></ScrollRegion>
            </Shell>
        }
        .into_any()
    })
}
