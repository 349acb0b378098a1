//! Telling people: the Subscribe control of project pages (feed URLs for the filter in view, and
//! the mail form), and the pages behind a mail's links (confirm, unsubscribe).

use super::{document, Shell};
use crate::paths::{self, FeedFormat};
use leptos::prelude::*;
use trellis_domain::breakage::Attribution;
use trellis_domain::grid::StreamOption;

/// The feeds a page links with `<link rel="alternate">`: Atom and RSS of one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feeds {
    pub title: String,
    pub atom: String,
    pub rss: String,
}

impl Feeds {
    /// The feeds of `project` (or of every project) under the filter `pairs`.
    pub fn of(project: Option<&str>, pairs: &[(&str, String)]) -> Feeds {
        Feeds {
            title: match project {
                Some(p) => format!("Breakages of {p}"),
                None => "Breakages of every project".to_string(),
            },
            atom: paths::feed(project, FeedFormat::Atom, pairs),
            rss: paths::feed(project, FeedFormat::Rss, pairs),
        }
    }
}

/// `<link rel="alternate">` elements for a page's head.
pub(super) fn feed_links(feeds: &Feeds) -> impl IntoView {
    view! {
        <link rel="alternate" type="application/atom+xml" title=format!("{} (Atom)", feeds.title) href=feeds.atom.clone() />
        <link rel="alternate" type="application/rss+xml" title=format!("{} (RSS)", feeds.title) href=feeds.rss.clone() />
    }
}

/// The visible Subscribe control: the feed URLs of the filter in view, and a form that mails
/// breakages after a confirmation. A `<details>` keeps it out of the way until opened, with
/// no script.
#[component]
pub fn Subscribe(
    project: String,
    feeds: Feeds,
    streams: Vec<StreamOption>,
    /// What the page shows, chosen in the form to begin with.
    #[prop(default = None)]
    stream: Option<String>,
    #[prop(default = None)] attribution: Option<Attribution>,
) -> impl IntoView {
    let stream_options = streams
        .into_iter()
        .map(|s| {
            let selected = stream.as_deref() == Some(s.stream.as_str());
            view! { <option value=s.stream selected=selected>{s.label}</option> }
        })
        .collect_view();
    let causes = Attribution::ALL.map(|a| {
        view! { <option value=a.as_str() selected=attribution == Some(a)>{a.description()}</option> }
    });
    view! {
        <details class="subscribe">
            <summary>"Subscribe"</summary>
            <p>"Feeds of what this page shows, one entry per breakage opened or fixed:"</p>
            <ul class="feeds">
                <li>"Atom: "<a data-feed="" href=feeds.atom.clone()>{feeds.atom.clone()}</a></li>
                <li>"RSS: "<a data-feed="" href=feeds.rss.clone()>{feeds.rss.clone()}</a></li>
            </ul>
            <form class="subscribe-form" method="post" action=paths::subscribe(&project)>
                <fieldset>
                    <legend>"Or get one mail per breakage opened or fixed (you confirm by mail first):"</legend>
                    <label>"Address "<input type="email" name="email" required=true autocomplete="email" maxlength="254" /></label>
                    <label>"Mail me about stream "
                        <select name="stream">
                            <option value="">"any"</option>
                            {stream_options}
                        </select>
                    </label>
                    <label>"with cause "
                        <select name="attribution">
                            <option value="">"any"</option>
                            {causes}
                        </select>
                    </label>
                    <button type="submit">"Subscribe by mail"</button>
                </fieldset>
            </form>
        </details>
    }
}

/// A short page that says one thing, with an optional button (`action`, `label`) that posts to
/// confirm it: links in mails only show this page, so a mail scanner following them changes
/// nothing. It leads back to the project it is about, when there is one.
pub fn render_message(
    title: &str,
    paragraphs: Vec<String>,
    button: Option<(String, &'static str)>,
    project: Option<String>,
) -> String {
    let title = title.to_string();
    document(move || {
        let back = match &project {
            Some(p) => view! { <a href=paths::project(p)>{format!("Back to {p}")}</a> }.into_any(),
            None => view! { <a href="/">"Back to the projects"</a> }.into_any(),
        };
        view! {
            <Shell title=title.clone()>
                <h1>{title.clone()}</h1>
                {paragraphs.into_iter().map(|p| view! { <p>{p}</p> }).collect_view()}
                {button.map(|(action, label)| view! {
                    <form method="post" action=action>
                        <button type="submit">{label}</button>
                    </form>
                })}
                <p>{back}</p>
            </Shell>
        }
        .into_any()
    })
}
