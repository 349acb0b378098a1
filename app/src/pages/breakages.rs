//! The breakages page, and the breakage card the kernel and commit pages reuse.

use super::subscription::{Feeds, Subscribe};
use super::{document, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::breakage::{Attribution, BisectHint, Breakage, BreakageFilter};
use trellis_domain::grid::StreamOption;
use trellis_domain::view::{format_ms, BreakageDetail, Project};
use trellis_domain::{short_sha, Kernel};

/// "1 kernel", "3 kernels".
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn duration(ms: i64) -> String {
    let h = ms / 3_600_000;
    if h >= 48 {
        format!("{} days", h / 24)
    } else if h >= 1 {
        format!("{h} h")
    } else {
        format!("{} min", (ms / 60_000).max(1))
    }
}

fn kernel_link(project: &str, stream: &str, uname: &str) -> impl IntoView {
    let href = Kernel::parse(uname, None, Some(stream))
        .map(|k| paths::kernel(project, &k))
        .unwrap_or_default();
    view! { <a href=href><code>{uname.to_string()}</code></a> }
}

fn commit_link(project: &str, sha: &str) -> impl IntoView {
    view! { <a href=paths::commit(project, sha)><code>{short_sha(sha).to_string()}</code></a> }
}

fn bisect_view(
    project: &str,
    stream: &str,
    axis: &'static str,
    hint: &BisectHint,
) -> impl IntoView {
    let is_commit = hint.command.is_some();
    let label = |s: &str| {
        if is_commit {
            short_sha(s).to_string()
        } else {
            s.to_string()
        }
    };
    let summary = if hint.adjacent() {
        format!(
            "first bad {axis}: {} (last good: {})",
            label(&hint.first_bad),
            label(&hint.last_good)
        )
    } else {
        format!(
            "last good {axis} {}, first bad {}: {} untested between them; test {} next",
            label(&hint.last_good),
            label(&hint.first_bad),
            hint.untested.len(),
            hint.next.as_deref().map(label).unwrap_or_default()
        )
    };
    let next = hint.next.clone().map(|n| {
        if is_commit {
            commit_link(project, &n).into_any()
        } else {
            kernel_link(project, stream, &n).into_any()
        }
    });
    let command = hint.command.clone().filter(|_| !hint.adjacent());
    view! {
        <div class="bisect">
            <p>{summary}{next.map(|n| view! { " → " {n} })}</p>
            {command.map(|c| view! { <pre class="command"><code>{c}</code></pre> })}
        </div>
    }
}

/// What a breakage is, where it starts and ends, and what to test next.
/// `now` (epoch milliseconds) dates how long open breakages have been open.
pub(super) fn breakage_card(project: &str, d: BreakageDetail, now: i64) -> impl IntoView {
    let b: Breakage = d.breakage;
    let state = if b.open { "open" } else { "fixed" };
    let fixed = match (&b.fixed_by_commit, &b.fixed_by_kernel) {
        (Some(c), _) => {
            Some(view! { <span>"fixed by commit " {commit_link(project, c)}</span> }.into_any())
        }
        (None, Some(k)) => Some(
            view! { <span>"fixed in kernel " {kernel_link(project, &b.stream, k)}</span> }
                .into_any(),
        ),
        _ => None,
    };
    let ttf = match (b.open, b.time_to_fix_ms, b.opened_at) {
        (false, Some(ms), _) => Some(format!(" after {}", duration(ms))),
        (true, _, Some(opened)) => Some(format!(" · open for {}", duration(now - opened))),
        _ => None,
    };
    let opened = b.opened_at.map(|t| format!("opened {}", format_ms(t)));
    let signature = b.signature.clone().map(|s| {
        view! { <p class="signature"><a href=paths::signature(project, &s)><code>{s.clone()}</code></a></p> }
    });
    let excerpt = d.excerpt.map(|e| {
        view! {
            <details><summary>"error excerpt"</summary><pre class="log" tabindex="0">{e}</pre></details>
        }
    });
    let commit_hint = b
        .commit_bisect
        .as_ref()
        .map(|h| bisect_view(project, &b.stream, "commit", h));
    let kernel_hint = b
        .kernel_bisect
        .as_ref()
        .map(|h| bisect_view(project, &b.stream, "kernel", h));
    view! {
        <section class=format!("breakage {state}") id=b.id.clone()>
            <h2>
                <span class=format!("badge {state}")>{state}</span>
                " "{b.stream_label.clone()}": "{b.attribution.description()}
            </h2>
            <p>
                "first failing: kernel " {kernel_link(project, &b.stream, &b.first_bad_kernel)}
                " at commit " {commit_link(project, &b.first_bad_commit)}
                {format!(
                    " · {} × {}, {}",
                    count(b.kernels.len(), "kernel"),
                    count(b.commits.len(), "commit"),
                    count(b.failing_cells, "failing cell")
                )}
            </p>
            <p class="times">{opened}" "{fixed}{ttf}</p>
            {signature}
            {commit_hint}
            {kernel_hint}
            {excerpt}
        </section>
    }
}

pub fn render_breakages(
    project: Project,
    breakages: Vec<BreakageDetail>,
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
            .map(|d| breakage_card(&name, d, now))
            .collect_view();
        view! {
            <Shell title=format!("Breakages · {name}") demo=project.demo feeds=feeds.clone()>
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
        let html = render_breakages(project, Vec::new(), filter, Vec::new(), 0, false);
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
