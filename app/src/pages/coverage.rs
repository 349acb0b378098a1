//! The coverage page: how far a project's CI can be trusted. Each stream's share of kernels
//! tested at the head commit first, then what lowers it (health problems, kernels never or not
//! lately tested), then the runners, leases and kernel sources behind it.

use super::breakages::{commit_link, count, kernel_link};
use super::time::When;
use super::{document, ScrollRegion, Shell};
use crate::paths;
use leptos::prelude::*;
use trellis_domain::coverage::{
    Coverage, HealthProblem, KernelSeen, LeaseView, RunnerHealth, SourceHealth, StreamCoverage,
};
use trellis_domain::schedule::Reason;
use trellis_domain::view::{elapsed, format_ms, rfc3339_ms};

/// "newest result 2 h ago", or that the stream has none: the age half of a trust figure.
pub(super) fn newest_result(s: &StreamCoverage, now: i64) -> impl IntoView {
    match s.newest_result_at {
        Some(t) => view! { "newest result " <When at=t now=now /> }.into_any(),
        None => "no result yet".into_any(),
    }
}

/// "el8 (Enterprise Linux 8): 97% of kernels tested at head (34 of 35), newest result 2 h ago".
fn trust_line(s: &StreamCoverage, now: i64) -> impl IntoView {
    let name = if s.label == s.stream {
        s.stream.clone()
    } else {
        format!("{} ({})", s.stream, s.label)
    };
    view! {
        <li>
            <span class="trust-stream">{name}</span>
            {format!(
                ": {}% of kernels tested at head ({} of {}), ",
                s.percent_at_head, s.tested_at_head, s.kernels
            )}
            {newest_result(s, now)}
        </li>
    }
}

/// A time that may lie ahead (a lease's expiry): "in 5 min", or "3 min ago" once past.
fn until(at: i64, now: i64) -> impl IntoView {
    let text = if at > now {
        format!("in {}", elapsed(at - now))
    } else {
        trellis_domain::view::ago(at, now)
    };
    view! { <time datetime=rfc3339_ms(at) title=format_ms(at)>{text}</time> }
}

/// A time, or what its absence means.
fn when_or(at: Option<i64>, now: i64, none: &'static str) -> impl IntoView {
    match at {
        Some(t) => view! { <When at=t now=now /> }.into_any(),
        None => none.into_any(),
    }
}

/// Why a lease's cell was chosen, in words.
fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::HeadUntested => "head commit untested",
        Reason::NewKernel => "new kernel",
        Reason::Bisect => "bisect a breakage",
        Reason::Confirm => "confirm a failure",
        Reason::Backfill => "backfill an older commit",
    }
}

fn problems_view(problems: &[HealthProblem], now: i64) -> impl IntoView {
    if problems.is_empty() {
        return view! {
            <section class="health-problems ok" aria-labelledby="problems">
                <h2 id="problems">"Health problems"</h2>
                <p>"✓ No health problems: no runner is silent, no kernel source fails and no stream's head coverage stays low."</p>
            </section>
        }
        .into_any();
    }
    let items = problems
        .iter()
        .map(|p| view! { <li>{p.describe(now)}</li> })
        .collect_view();
    view! {
        <section class="health-problems" aria-labelledby="problems">
            <h2 id="problems">{format!("⚠ Health problems ({})", problems.len())}</h2>
            <ul>{items}</ul>
        </section>
    }
    .into_any()
}

/// Kernels with no result, as a table; `label` names it for assistive technology.
fn kernels_table(
    project: &str,
    kernels: Vec<KernelSeen>,
    label: &'static str,
    now: i64,
) -> impl IntoView {
    let rows = kernels
        .into_iter()
        .map(|k| {
            view! {
                <tr>
                    <th scope="row">{kernel_link(project, &k.stream, &k.uname)}</th>
                    <td>{k.stream.clone()}</td>
                    <td><When at=k.first_seen_at now=now /></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <ScrollRegion label=label><table class="history coverage">
            <caption>{label}</caption>
            <thead><tr><th scope="col">"kernel"</th><th scope="col">"stream"</th><th scope="col">"first seen"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table></ScrollRegion>
    }
}

fn runners_view(project: &str, runners: Vec<RunnerHealth>, now: i64) -> impl IntoView {
    if runners.is_empty() {
        return view! {
            <p>"No runner may post to this project: add one with "
            <code>{format!("trellis runner add NAME --scope {project}")}</code>"."</p>
        }
        .into_any();
    }
    let rows = runners
        .into_iter()
        .map(|r| {
            let stale = if r.enabled && r.stale {
                view! { <span class="flag bad">"⚠ stale"</span> }.into_any()
            } else {
                "no".into_any()
            };
            let disabled = !r.enabled;
            view! {
                <tr class:disabled=disabled>
                    <th scope="row">{r.name.clone()}</th>
                    <td>{if r.enabled { "yes" } else { "no" }}</td>
                    <td>{when_or(r.last_contact_at, now, "never")}</td>
                    <td>{when_or(r.last_report_at, now, "never")}</td>
                    <td class="num">{r.reports}</td>
                    <td class="num">{r.error_percent.map_or("—".to_string(), |p| format!("{p}%"))}</td>
                    <td>{stale}</td>
                    <td><code>{r.scope.join(", ")}</code></td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <ScrollRegion label="Runners"><table class="history coverage">
            <caption>"Runners that may post to this project"</caption>
            <thead><tr>
                <th scope="col">"runner"</th><th scope="col">"enabled"</th>
                <th scope="col">"last contact"</th><th scope="col">"last report"</th>
                <th scope="col">"reports"</th><th scope="col">"errors"</th>
                <th scope="col">"stale"</th><th scope="col">"scope"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table></ScrollRegion>
    }
    .into_any()
}

fn leases_view(project: &str, leases: Vec<LeaseView>, now: i64) -> impl IntoView {
    if leases.is_empty() {
        return view! { <p>"No open leases: no runner is building a job of this project now."</p> }
            .into_any();
    }
    let rows = leases
        .into_iter()
        .map(|l| {
            view! {
                <tr>
                    <th scope="row">{l.runner.clone()}</th>
                    <td>{kernel_link(project, &l.stream, &l.uname)}</td>
                    <td>{commit_link(project, &l.sha)}</td>
                    <td>{reason_text(l.reason)}</td>
                    <td><When at=l.leased_at now=now /></td>
                    <td>{until(l.expires_at, now)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <ScrollRegion label="Open leases"><table class="history coverage">
            <caption>"Jobs runners are building now"</caption>
            <thead><tr>
                <th scope="col">"runner"</th><th scope="col">"kernel"</th><th scope="col">"commit"</th>
                <th scope="col">"reason"</th><th scope="col">"leased"</th><th scope="col">"expires"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table></ScrollRegion>
    }
    .into_any()
}

fn sources_view(project: &str, sources: Vec<SourceHealth>, now: i64) -> impl IntoView {
    if sources.is_empty() {
        return view! {
            <p>"No kernel sources: kernels come only from reports. Add one with "
            <code>{format!("trellis source add {project} --url ... --stream el8")}</code>"."</p>
        }
        .into_any();
    }
    let rows = sources
        .into_iter()
        .map(|s| {
            let state = match (&s.error, s.failing_since) {
                (Some(error), since) => view! {
                    <span class="flag bad">"✗ failing"</span>
                    {since.map(|t| view! { " since " <When at=t now=now /> })}
                    ": "<span class="error">{error.clone()}</span>
                }
                .into_any(),
                (None, _) if s.checked_at.is_none() => "not polled yet".into_any(),
                (None, _) => view! { <span class="flag good">"✓ ok"</span> }.into_any(),
            };
            view! {
                <tr class:failing=s.error.is_some()>
                    <th scope="row" class="url">{s.url.clone()}</th>
                    <td>{s.package.clone()}</td>
                    <td>{format!("{} / {}", s.stream, s.arch)}</td>
                    <td class="num">{s.packages}</td>
                    <td>{when_or(s.succeeded_at, now, "never")}</td>
                    <td class="state">{state}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <ScrollRegion label="Kernel sources"><table class="history coverage">
            <caption>"Repositories polled for new kernels"</caption>
            <thead><tr>
                <th scope="col">"repository"</th><th scope="col">"package"</th>
                <th scope="col">"stream / arch"</th><th scope="col">"packages found"</th>
                <th scope="col">"last success"</th><th scope="col">"state"</th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table></ScrollRegion>
    }
    .into_any()
}

pub fn render_coverage(coverage: Coverage) -> String {
    document(move || {
        let Coverage {
            project,
            head,
            streams,
            never_tested,
            since,
            untested_since,
            runners,
            leases,
            sources,
            problems,
            now,
        } = coverage;
        let name = project.name.clone();
        let trust = if streams.is_empty() {
            view! { <p>"No kernel is known yet: kernels come from the project's kernel sources and from reports."</p> }
                .into_any()
        } else {
            let lines = streams.iter().map(|s| trust_line(s, now)).collect_view();
            view! { <ul class="trust">{lines}</ul> }.into_any()
        };
        let untested_at_head: i64 = streams.iter().map(|s| s.kernels - s.tested_at_head).sum();
        let head_view = match &head {
            Some(c) => {
                // The kernels untested at head are those untested since the head commit.
                let missing = (untested_at_head > 0).then(|| {
                    view! {
                        " · "<a href=paths::coverage_since(&name, &c.sha)>
                            {format!("{} without a result at head", count(untested_at_head as usize, "kernel"))}
                        </a>
                    }
                });
                view! {
                    <p>
                        {commit_link(&name, &c.sha)}
                        {c.subject.clone().map(|s| view! { " " <q class="subject">{s}</q> })}
                        {missing}
                    </p>
                }
                .into_any()
            }
            None => view! { <p>"No commit is known yet: runners post the module's commits with their reports."</p> }
                .into_any(),
        };
        let never = if never_tested.is_empty() {
            view! { <p>"Every known kernel has at least one result."</p> }.into_any()
        } else {
            kernels_table(&name, never_tested, "Kernels never tested", now).into_any()
        };
        let since_sha = since.as_ref().map(|c| c.sha.clone()).unwrap_or_default();
        let since_view = since.map(|c| {
            let list = if untested_since.is_empty() {
                view! { <p>"Every known kernel has a result on this commit or a newer one."</p> }
                    .into_any()
            } else {
                kernels_table(
                    &name,
                    untested_since,
                    "Kernels untested since the commit",
                    now,
                )
                .into_any()
            };
            view! {
                <p>
                    "Kernels with no result on "{commit_link(&name, &c.sha)}
                    {c.subject.clone().map(|s| view! { " " <q class="subject">{s}</q> })}
                    " or any newer commit:"
                </p>
                {list}
            }
        });
        view! {
            <Shell title=format!("Coverage · {name}") demo=project.demo>
                <nav class="crumbs"><a href=paths::project(&name)>{name.clone()}</a>" / coverage"</nav>
                <h1>"Coverage"</h1>
                <p class="description">"How far the CI can be trusted: the kernels tested at the newest commit, and the health of the runners and kernel sources behind it."</p>
                <section aria-labelledby="trust">
                    <h2 id="trust">"Kernels tested at the head commit"</h2>
                    {trust}
                </section>
                {problems_view(&problems, now)}
                <h2>"Head commit"</h2>
                {head_view}
                <h2>"Kernels never tested"</h2>
                {never}
                <h2>"Kernels untested since a commit"</h2>
                <form class="filters since-form" method="get" action=paths::coverage(&name)>
                    <label for="since">"Commit sha (40 hex digits)"</label>
                    <input id="since" name="since" type="text" value=since_sha
                        autocomplete="off" spellcheck="false"
                        pattern="[0-9a-fA-F]{40}" maxlength="40" />
                    <button type="submit">"Show"</button>
                </form>
                {since_view}
                <h2>"Runners"</h2>
                {runners_view(&name, runners, now)}
                <h2>"Open leases"</h2>
                {leases_view(&name, leases, now)}
                <h2>"Kernel sources"</h2>
                {sources_view(&name, sources, now)}
            </Shell>
        }
        .into_any()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_domain::view::{Project, StoredCommit};

    fn coverage() -> Coverage {
        Coverage {
            project: Project {
                id: 1,
                name: "wg".into(),
                description: String::new(),
                demo: false,
            },
            head: Some(StoredCommit {
                id: 1,
                sha: "a".repeat(40),
                subject: Some("fix build".into()),
                author: None,
                committed_at: None,
                tags: vec![],
            }),
            streams: vec![StreamCoverage {
                stream: "el8".into(),
                label: "Enterprise Linux 8".into(),
                kernels: 35,
                tested_at_head: 34,
                percent_at_head: 97,
                newest_result_at: Some(0),
            }],
            never_tested: vec![],
            since: None,
            untested_since: vec![],
            runners: vec![],
            leases: vec![],
            sources: vec![],
            problems: vec![],
            now: 2 * 3600 * 1000,
        }
    }

    /// The page's text, tags dropped.
    fn text(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn the_trust_figure_names_the_stream_its_share_and_its_newest_result() {
        let page = text(&render_coverage(coverage()));
        assert!(page.contains(
            "el8 (Enterprise Linux 8): 97% of kernels tested at head (34 of 35), newest result 2 h ago"
        ), "{page}");
        assert!(page.contains("1 kernel without a result at head"));
        assert!(page.contains("No health problems"));
        assert!(page.contains("No kernel sources"));
    }

    #[test]
    fn problems_are_listed_and_a_failing_source_is_marked() {
        let mut c = coverage();
        c.sources.push(SourceHealth {
            id: 3,
            url: "http://repo/".into(),
            package: "kernel-devel".into(),
            stream: "el8".into(),
            arch: "x86_64".into(),
            checked_at: Some(10),
            succeeded_at: None,
            error: Some("HTTP 404".into()),
            failing_since: Some(0),
            packages: 0,
        });
        let problem = HealthProblem::SourceFailing {
            source: 3,
            stream: "el8".into(),
            url: "http://repo/".into(),
            error: "HTTP 404".into(),
            since: 0,
        };
        let told = problem.describe(c.now);
        c.problems.push(problem);
        let html = render_coverage(c);
        let page = text(&html);
        assert!(page.contains("Health problems (1)"), "{page}");
        assert!(page.contains(&told));
        assert!(html.contains("<tr class=\"failing\">"), "{html}");
        assert!(page.contains("✗ failing since 2 h ago: HTTP 404"));
    }
}
