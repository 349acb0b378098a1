//! The "now" summary that opens the home and grid pages: every open breakage in one line (its
//! cause, the kernel update or module commit that caused it, its signature, how long it has been
//! open and the next step, linked), or a plain "nothing is broken" with the newest result's age.

use super::breakages::{commit_link, count, kernel_link};
use super::time::{Reading, When};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::breakage::NeighbourAxis;
use trellis_domain::now::{BrokenNow, Culprit, NextStep, NowLine};
use trellis_domain::{short_sha, Kernel};

fn culprit(project: &str, stream: &str, c: Culprit) -> AnyView {
    match c {
        Culprit::KernelUpdate { kernel } => {
            view! { "kernel update " {kernel_link(project, stream, &kernel)} }.into_any()
        }
        Culprit::ModuleCommit { sha, subject, on } => view! {
            "module commit " {commit_link(project, &sha)}
            {subject.map(|s| view! { " " <q class="subject">{s}</q> })}
            {on.map(|k| view! { " on kernels from " {kernel_link(project, stream, &k)} })}
        }
        .into_any(),
        Culprit::Unknown { kernel, commit } => view! {
            "cause unknown: fails on " {kernel_link(project, stream, &kernel)}
            " at " {commit_link(project, &commit)}
        }
        .into_any(),
    }
}

fn next_step(project: &str, stream: &str, culprit: &Culprit, step: NextStep) -> AnyView {
    match step {
        NextStep::BisectCommits { next, untested, .. } => view! {
            {format!("bisect: {}, test ", count(untested, "untested commit"))}
            {commit_link(project, &next)}
        }
        .into_any(),
        NextStep::TestKernel { next, untested } => view! {
            {format!("{} between the last good one and it, test ", count(untested, "untested kernel"))}
            {kernel_link(project, stream, &next)}
        }
        .into_any(),
        NextStep::TestCells(cells) => {
            let links = cells
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    let href = Kernel::parse(&c.kernel, None, Some(stream))
                        .map(|k| paths::cell(project, &k, &c.commit))
                        .unwrap_or_default();
                    let what = match c.axis {
                        NeighbourAxis::Kernel => "the previous kernel",
                        NeighbourAxis::Commit => "the previous commit",
                    };
                    view! {
                        {(i > 0).then_some(" or ")}
                        <a href=href>{format!("{what} ({} at {})", c.kernel, short_sha(&c.commit))}</a>
                    }
                })
                .collect_view();
            view! { "test " {links} }.into_any()
        }
        NextStep::TestOlder => "test an older commit or kernel".into_any(),
        NextStep::Fix => match culprit {
            Culprit::KernelUpdate { .. } => "adapt the module to this kernel".into_any(),
            _ => "fix or revert this commit".into_any(),
        },
    }
}

fn line(project: &str, l: NowLine, at: i64) -> impl IntoView {
    let href = paths::breakage(project, &l.id);
    let next = next_step(project, &l.stream, &l.culprit, l.next.clone());
    let signature = l.signature.clone().map(|s| {
        view! { " · " <a class="now-signature" href=paths::signature(project, &s)><code>{s.clone()}</code></a> }
    });
    let open_for = l
        .opened_at
        .map(|t| view! { " · open for " <When at=t now=at reading=Reading::Since /> });
    view! {
        <li class="now-line">
            <a class="now-stream" href=href>{l.stream_label.clone()}</a>": "
            {culprit(project, &l.stream, l.culprit)}
            {format!(" ({})", count(l.kernels, "kernel"))}
            {signature}
            {open_for}
            <span class="now-next">" · next: "{next}</span>
        </li>
    }
}

/// What is broken now in one project, seen at `at` (epoch milliseconds).
#[component]
pub fn NowSummary(now: BrokenNow, at: i64) -> impl IntoView {
    let project = now.project.clone();
    // One landmark per project on the home page: each named for its project.
    let label = format!("Broken now in {project}");
    let newest = now.newest_result;
    let open = now.open.len();
    if now.all_clear() {
        let age = match newest {
            Some(t) => {
                view! { "Nothing is broken; newest result " <When at=t now=at />"." }.into_any()
            }
            None => "No results yet.".into_any(),
        };
        return view! { <section class="now clear" aria-label=label><p>"✓ "{age}</p></section> }
            .into_any();
    }
    let lines = now
        .open
        .into_iter()
        .map(|l| line(&project, l, at))
        .collect_view();
    view! {
        <section class="now broken" aria-label=label>
            <h2>{format!("Broken now: {}", count(open, "open breakage"))}</h2>
            <ul>{lines}</ul>
        </section>
    }
    .into_any()
}
