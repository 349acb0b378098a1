//! The home page: every project with the health of its newest tested commit (linked to what
//! fails there), each stream's trust figure (linked to the coverage page) and what is broken in
//! it now. Demo projects carry their own label, so the
//! page never says "demo data" over real projects.

use super::coverage::newest_result;
use super::now::NowSummary;
use super::subscription::Feeds;
use super::{document, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::coverage::StreamCoverage;
use trellis_domain::now::BrokenNow;
use trellis_domain::view::ProjectSummary;

/// One line per stream: "el8: 97% of kernels tested at head, newest result 2 h ago".
fn trust_view(project: &str, trust: &[StreamCoverage], at: i64) -> impl IntoView {
    let href = paths::coverage(project);
    let lines = trust
        .iter()
        .map(|s| {
            view! {
                <li>
                    <a href=href.clone()>{format!("{}: {}% of kernels tested at head", s.stream, s.percent_at_head)}</a>
                    ", "{newest_result(s, at)}
                </li>
            }
        })
        .collect_view();
    (!trust.is_empty()).then(|| view! { <ul class="trust">{lines}</ul> })
}

fn project_view(p: ProjectSummary, now: BrokenNow, at: i64) -> impl IntoView {
    let name = p.project.name.clone();
    let health = match &p.latest {
        Some(h) => {
            let failing = h.cells.fail + h.flaky > 0;
            let class = if failing { "health failing" } else { "health" };
            let symbol = if failing { "✗ " } else { "✓ " };
            view! {
                <a class=class href=paths::commit(&name, &h.commit.sha)>{symbol}{h.one_line()}</a>
            }
            .into_any()
        }
        None => view! { <span class="health">"no reports yet"</span> }.into_any(),
    };
    let demo = p.project.demo;
    let badge = demo.then(|| view! { <span class="badge demo">"demo data"</span> });
    let note = demo.then(|| {
        view! { <p class="demo-note">"Demo data: the commits and kernel versions are real; every result is simulated."</p> }
    });
    view! {
        <li class="project">
            <a class="project-name" href=paths::project(&name)>{name.clone()}</a>
            {health}
            <span class="counts">
                {format!("{} kernels · {} commits · {} reports", p.kernels, p.commits, p.reports)}
            </span>
            {badge}
            {trust_view(&name, &p.trust, at)}
            {note}
            {(!p.project.description.is_empty()).then(|| view! { <p class="description">{p.project.description.clone()}</p> })}
            <NowSummary now=now at=at />
        </li>
    }
}

/// `at`: the time now (epoch milliseconds), for the age of results and breakages.
pub fn render_home(projects: Vec<(ProjectSummary, BrokenNow)>, at: i64) -> String {
    document(move || {
        let empty = projects.is_empty();
        let items = projects
            .into_iter()
            .map(|(p, now)| project_view(p, now, at))
            .collect_view();
        view! {
            <Shell title="Projects".to_string() feeds=Feeds::of(None, &[])>
                <h1>"Projects"</h1>
                {empty.then(|| view! {
                    <p>"No project yet. An administrator adds one with "<code>"trellis project add NAME"</code>
                    " and a runner for it with "<code>"trellis runner add NAME --scope PROJECT"</code>
                    "; the runner then posts its reports to "<code>"/api/v1/reports"</code>"."</p>
                })}
                <ul class="projects">{items}</ul>
                <p class="feeds">
                    "Breakages of every project, opened and fixed: "
                    <a href=Feeds::of(None, &[]).atom>"Atom feed"</a>", "
                    <a href=Feeds::of(None, &[]).rss>"RSS feed"</a>"."
                </p>
            </Shell>
        }
        .into_any()
    })
}
