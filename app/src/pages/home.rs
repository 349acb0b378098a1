//! The home page: every project with the health of its newest tested commit.

use super::subscription::Feeds;
use super::{document, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::view::ProjectSummary;

pub fn render_home(projects: Vec<ProjectSummary>) -> String {
    document(move || {
        let any_demo = projects.iter().any(|p| p.project.demo);
        let empty = projects.is_empty();
        let items = projects
            .into_iter()
            .map(|p| {
                let health = p
                    .latest
                    .as_ref()
                    .map(|h| h.one_line())
                    .unwrap_or_else(|| "no reports yet".to_string());
                let failing = p.latest.as_ref().is_some_and(|h| h.cells.fail + h.flaky > 0);
                view! {
                    <li class="project">
                        <a class="project-name" href=paths::project(&p.project.name)>{p.project.name.clone()}</a>
                        {p.project.demo.then(|| view! { <span class="badge demo">"demo data"</span> })}
                        <span class=if failing { "health failing" } else { "health" }>
                            {if failing { "✗ " } else { "✓ " }}{health}
                        </span>
                        <span class="counts">
                            {format!("{} kernels · {} commits · {} reports", p.kernels, p.commits, p.reports)}
                        </span>
                        {(!p.project.description.is_empty()).then(|| view! { <p class="description">{p.project.description.clone()}</p> })}
                    </li>
                }
            })
            .collect_view();
        view! {
            <Shell title="Projects".to_string() demo=any_demo feeds=Feeds::of(None, &[])>
                <h1>"Projects"</h1>
                {empty.then(|| view! {
                    <p>"No project has reported yet. Add a runner with "<code>"trellis runner add NAME"</code>
                    " and post a report to "<code>"/api/v1/reports"</code>"."</p>
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
