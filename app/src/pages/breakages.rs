//! The breakages page, and the breakage card the kernel and commit pages reuse.

use super::subscription::{Feeds, Subscribe};
use super::time::{Reading, When};
use super::{document, Shell};
use crate::copy::CopyButton;
use crate::paths;
use leptos::prelude::*;
use std::collections::BTreeMap;
use trellis_domain::breakage::{Attribution, BisectHint, Breakage, BreakageFilter, NeighbourAxis};
use trellis_domain::grid::StreamOption;
use trellis_domain::view::{elapsed, BreakageDetail, Project};
use trellis_domain::{short_sha, Kernel};

/// "1 kernel", "3 kernels".
pub(super) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A kernel of a stream by its `uname -r`, linked to its page.
pub(super) fn kernel_link(project: &str, stream: &str, uname: &str) -> impl IntoView {
    let href = Kernel::parse(uname, None, Some(stream))
        .map(|k| paths::kernel(project, &k))
        .unwrap_or_default();
    view! { <a href=href><code>{uname.to_string()}</code></a> }
}

/// A commit by its short sha, linked to its page.
pub(super) fn commit_link(project: &str, sha: &str) -> impl IntoView {
    view! { <a href=paths::commit(project, sha)><code>{short_sha(sha).to_string()}</code></a> }
}

/// A commit linked, with its subject when the history gives one.
fn commit_named(project: &str, sha: &str, subjects: &BTreeMap<String, String>) -> impl IntoView {
    let subject = subjects
        .get(sha)
        .map(|s| view! { " " <q class="subject">{s.clone()}</q> });
    view! { {commit_link(project, sha)}{subject} }
}

/// What the breakage blames, on the axis that explains it. A kernel update's breakage fails
/// from the oldest commit tested on that kernel, so no commit is named as its culprit.
fn culprit(project: &str, b: &Breakage, subjects: &BTreeMap<String, String>) -> impl IntoView {
    let kernel = kernel_link(project, &b.stream, &b.first_bad_kernel);
    match b.attribution {
        Attribution::Kernel => view! { "kernel update " {kernel} }.into_any(),
        Attribution::Module => {
            view! { "module commit " {commit_named(project, &b.first_bad_commit, subjects)} }
                .into_any()
        }
        Attribution::Both => view! {
            "module commit " {commit_named(project, &b.first_bad_commit, subjects)}
            ", on kernels from " {kernel}
        }
        .into_any(),
        Attribution::Unknown => view! {
            "fails on kernel " {kernel} " at commit "
            {commit_named(project, &b.first_bad_commit, subjects)}
            "; no neighbour cell passed"
        }
        .into_any(),
    }
}

/// The commit axis's next step. The first bad commit is named above, so only the last good
/// one, the untested ones between and the `git bisect` line are shown.
fn commit_step(
    project: &str,
    hint: &BisectHint,
    subjects: &BTreeMap<String, String>,
) -> impl IntoView {
    let good = commit_named(project, &hint.last_good, subjects);
    if hint.adjacent() {
        return view! { <p>"last good commit " {good} ": the first bad commit is known"</p> }
            .into_any();
    }
    let next = hint
        .next
        .as_deref()
        .map(|n| view! { "; test " {commit_named(project, n, subjects)} " next" });
    let command = hint.command.clone().map(|c| {
        view! {
            <div class="command">
                <pre><code>{c.clone()}</code></pre>
                <CopyButton text=c />
            </div>
        }
    });
    view! {
        <p>"last good commit " {good} {format!(", {} between", count(hint.untested.len(), "untested commit"))} {next}</p>
        {command}
    }
    .into_any()
}

/// The kernel axis's next step; the first bad kernel is named above.
fn kernel_step(project: &str, stream: &str, hint: &BisectHint) -> impl IntoView {
    let good = kernel_link(project, stream, &hint.last_good);
    let between = (!hint.adjacent()).then(|| {
        let next = hint
            .next
            .as_deref()
            .map(|n| view! { "; test " {kernel_link(project, stream, n)} " next" });
        view! { {format!(", {} between", count(hint.untested.len(), "untested kernel"))} {next} }
    });
    view! { <p>"last good kernel " {good} {between}</p> }
}

/// For a cause that is unknown: the untested neighbour cells whose results tell it.
fn neighbour_steps(project: &str, b: &Breakage) -> impl IntoView {
    b.next_cells
        .iter()
        .map(|n| {
            let href = Kernel::parse(&n.kernel, None, Some(&b.stream))
                .map(|k| paths::cell(project, &k, &n.commit))
                .unwrap_or_default();
            let blames = match n.axis {
                NeighbourAxis::Kernel => "a pass there blames the kernel update",
                NeighbourAxis::Commit => "a pass there blames a module commit",
            };
            view! {
                <p>"test " <a href=href><code>{n.kernel.clone()}</code>" at "<code>{short_sha(&n.commit).to_string()}</code></a>
                {format!(": {blames}")}</p>
            }
        })
        .collect_view()
}

/// What a breakage is, what caused it, and what to test next.
/// `now` (epoch milliseconds) dates its opening and how long it has been open.
pub(super) fn breakage_card(
    project: &str,
    d: BreakageDetail,
    subjects: &BTreeMap<String, String>,
    now: i64,
) -> impl IntoView {
    let b: Breakage = d.breakage;
    let state = if b.open { "open" } else { "fixed" };
    let fixed = match (&b.fixed_by_commit, &b.fixed_by_kernel) {
        (Some(c), _) => Some(
            view! { <span>" · fixed by module commit " {commit_named(project, c, subjects)}</span> }
                .into_any(),
        ),
        (None, Some(k)) => Some(
            view! { <span>" · fixed in kernel " {kernel_link(project, &b.stream, k)}</span> }
                .into_any(),
        ),
        _ => None,
    };
    let ttf = match (b.open, b.time_to_fix_ms, b.opened_at) {
        (false, Some(ms), _) => Some(format!(" after {}", elapsed(ms)).into_any()),
        (true, _, Some(opened)) => Some(
            view! { " · open for " <When at=opened now=now reading=Reading::Since /> }.into_any(),
        ),
        _ => None,
    };
    let opened = b
        .opened_at
        .map(|t| view! { "opened " <When at=t now=now /> });
    let signature = b.signature.clone().map(|s| {
        view! { <p class="signature"><a href=paths::signature(project, &s)><code>{s.clone()}</code></a></p> }
    });
    // The fix that worked last time for the same error, on another stream most often.
    let seen_before = (!b.seen_before.is_empty()).then(|| {
        let items = b
            .seen_before
            .iter()
            .map(|p| {
                view! {
                    <li><a href=paths::commit(project, &p.fixed_by_commit)>{p.describe()}</a></li>
                }
            })
            .collect_view();
        view! {
            <div class="seen-before">
                <h3>"Seen before: the fix that worked last time"</h3>
                <ul>{items}</ul>
            </div>
        }
    });
    let excerpt = d.excerpt.map(|e| {
        view! {
            <details><summary>"error excerpt"</summary><pre class="log" tabindex="0">{e}</pre></details>
        }
    });
    let commit_hint = b
        .commit_bisect
        .as_ref()
        .map(|h| commit_step(project, h, subjects));
    let kernel_hint = b
        .kernel_bisect
        .as_ref()
        .map(|h| kernel_step(project, &b.stream, h));
    let kernels = b
        .kernels
        .iter()
        .map(|k| view! { <li>{kernel_link(project, &b.stream, k)}</li> })
        .collect_view();
    view! {
        <section class=format!("breakage {state}") id=b.id.clone()>
            <h2>
                <span class=format!("badge {state}")>{state}</span>
                " "{b.stream_label.clone()}": "{b.attribution.description()}
            </h2>
            <p class="culprit">{culprit(project, &b, subjects)}</p>
            <p class="times">{opened}{fixed}{ttf}</p>
            {signature}
            {seen_before}
            <div class="next-step">
                <h3>{if b.open { "Next step" } else { "Where it started" }}</h3>
                {commit_hint}
                {kernel_hint}
                {neighbour_steps(project, &b)}
            </div>
            <details class="kernels">
                <summary>{format!(
                    "{} × {}, {}",
                    count(b.kernels.len(), "kernel"),
                    count(b.commits.len(), "commit"),
                    count(b.failing_cells, "failing cell")
                )}</summary>
                <ul class="kernel-list">{kernels}</ul>
            </details>
            {excerpt}
        </section>
    }
}

pub fn render_breakages(
    project: Project,
    breakages: Vec<BreakageDetail>,
    subjects: BTreeMap<String, String>,
    filter: BreakageFilter,
    streams: Vec<StreamOption>,
    now: i64,
    updating: bool,
) -> String {
    document(move || {
        let name = project.name.clone();
        let open = breakages.iter().filter(|b| b.breakage.open).count();
        let total = breakages.len();
        let causes = Attribution::ALL.map(|a| {
            view! { <option value=a.as_str() selected=filter.attribution == Some(a)>{a.description()}</option> }
        });
        let feeds = Feeds::of(Some(&name), &filter.to_pairs());
        let subscribe_streams = streams.clone();
        let stream_options = streams
            .into_iter()
            .map(|s| {
                let selected = filter.stream.as_deref() == Some(s.stream.as_str());
                view! { <option value=s.stream.clone() selected=selected>{s.label}</option> }
            })
            .collect_view();
        let cards = breakages
            .into_iter()
            .map(|d| breakage_card(&name, d, &subjects, now))
            .collect_view();
        view! {
            <Shell title=format!("Breakages · {name}") demo=project.demo feeds=feeds.clone() islands=true>
                <nav class="crumbs"><a href=paths::project(&name)>{name.clone()}</a>" / breakages"</nav>
                <h1>"Breakages"</h1>
                {updating.then(|| view! {
                    <p class="note">"Newer results are being taken into account; reload in a moment for the latest breakages."</p>
                })}
                <form class="filters" method="get">
                    <label>"Stream "
                        <select name="stream">
                            <option value="">"any"</option>
                            {stream_options}
                        </select>
                    </label>
                    <label>"Cause "
                        <select name="attribution">
                            <option value="">"any"</option>
                            {causes}
                        </select>
                    </label>
                    <label>"State "
                        <select name="state">
                            <option value="">"any"</option>
                            <option value="open" selected=filter.open == Some(true)>"open"</option>
                            <option value="fixed" selected=filter.open == Some(false)>"fixed"</option>
                        </select>
                    </label>
                    <button type="submit">"Apply"</button>
                </form>
                <Subscribe
                    project=name.clone()
                    feeds=feeds
                    streams=subscribe_streams
                    stream=filter.stream.clone()
                    attribution=filter.attribution
                />
                <p>{format!("{open} open, {} fixed", total - open)}</p>
                {cards}
            </Shell>
        }
        .into_any()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_filter_offers_every_attribution_in_words_and_keeps_the_chosen_one() {
        let project = Project {
            id: 1,
            name: "wg".into(),
            description: String::new(),
            demo: false,
        };
        let filter = BreakageFilter {
            attribution: Some(Attribution::Kernel),
            ..BreakageFilter::default()
        };
        let html = render_breakages(
            project,
            Vec::new(),
            BTreeMap::new(),
            filter,
            Vec::new(),
            0,
            false,
        );
        let (_, select) = html.split_once("<select name=\"attribution\">").unwrap();
        let (mut rest, _) = select.split_once("</select>").unwrap();
        let mut options = Vec::new();
        while let Some((_, after)) = rest.split_once("<option value=\"") {
            let (option, after) = after.split_once("</option>").unwrap();
            options.push(option.to_string());
            rest = after;
        }
        assert_eq!(
            options,
            [
                "\">any",
                "module\">a module commit broke it",
                "kernel\" selected>a kernel update broke it",
                "both\">a module commit broke it on newer kernels",
                "unknown\">cause unknown",
            ]
        );
    }
}
