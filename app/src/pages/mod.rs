//! Server-rendered pages. Each `render_*` function takes a read model and returns a whole HTML
//! document; handlers load the data and call these, so rendering never touches storage.

mod breakages;
mod cell;
mod coverage;
mod grid;
mod history;
mod home;
mod now;
mod subscription;
mod time;

pub use breakages::render_breakages;
pub use cell::render_cell;
pub use coverage::render_coverage;
pub use grid::render_grid;
pub use history::{render_commit, render_commit_search, render_kernel, render_signature};
pub use home::render_home;
pub use now::NowSummary;
pub use subscription::{render_message, Feeds, Subscribe};

use hydration_context::SsrSharedContext;
use leptos::config::LeptosOptions;
use leptos::prelude::*;
use leptos::reactive::owner::Owner;
use std::sync::Arc;
use trellis_domain::{CellState, Status};

/// Where the browser finds the island bundle (`/pkg/trellis.js`, `/pkg/trellis_bg.wasm`).
pub const OUTPUT_NAME: &str = "trellis";
pub const PKG_DIR: &str = "pkg";

/// Renders a view to a complete HTML document inside a fresh reactive owner set up for islands.
fn document(view: impl FnOnce() -> AnyView) -> String {
    let owner = Owner::new_root(Some(Arc::new(SsrSharedContext::new_islands())));
    let html = owner.with(|| view().to_html());
    format!("<!DOCTYPE html>{html}")
}

/// The CSS class of a cell state (`s-pass`, ...); the stylesheet colours them. The one place
/// pages get a state's class from: statuses go through [`status_class`].
pub(super) fn state_class(state: CellState) -> &'static str {
    match state {
        CellState::Pass => "s-pass",
        CellState::Fail => "s-fail",
        CellState::Error => "s-error",
        CellState::Skip => "s-skip",
        CellState::Flaky => "s-flaky",
    }
}

/// The CSS class of a report's or stage's status: that of the cell it alone would make.
pub(super) fn status_class(status: Status) -> &'static str {
    state_class(status.into())
}

/// A wide table in a box that scrolls sideways on a narrow screen; named and reachable by
/// keyboard, so its hidden part can be scrolled without a mouse.
#[component]
fn ScrollRegion(label: &'static str, children: Children) -> impl IntoView {
    view! { <div class="table-scroll" tabindex="0" role="region" aria-label=label>{children()}</div> }
}

/// The frame of every page: a skip link to `<main id="content">`, the header, the demo banner
/// where the page shows demo data. `islands` adds the hydration script (only the grid needs it).
/// The theme follows the system's light or dark setting (`color-scheme`, and the stylesheet's
/// `prefers-color-scheme`), declared before the stylesheet so nothing flashes white.
#[component]
fn Shell(
    title: String,
    #[prop(optional)] islands: bool,
    #[prop(optional)] demo: bool,
    /// Feeds of what the page shows, linked for feed readers to find.
    #[prop(optional)]
    feeds: Option<Feeds>,
    children: Children,
) -> impl IntoView {
    view! {
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <title>{format!("{title} · Trellis")}</title>
                <link rel="stylesheet" href=concat!("/pkg/trellis.css?v=", env!("CARGO_PKG_VERSION")) />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                {feeds.as_ref().map(subscription::feed_links)}
                {islands.then(|| view! { <HydrationScripts options=island_options() islands=true /> })}
            </head>
            <body>
                <a class="skip-link" href="#content">"Skip to content"</a>
                <header class="top">
                    <a class="brand" href="/">"Trellis"</a>
                    <span class="tagline">"kernel module compatibility CI"</span>
                    <a class="api-link" href="/api/v1/openapi.json">"API"</a>
                </header>
                {demo.then(|| view! {
                    <aside class="demo-banner" aria-label="Demo data">
                        <strong>"Demo data. "</strong>
                        "The commits and kernel versions are real; every result is simulated."
                    </aside>
                })}
                <main id="content" tabindex="-1">{children()}</main>
            </body>
        </html>
    }
}

fn island_options() -> LeptosOptions {
    LeptosOptions::builder()
        .output_name(OUTPUT_NAME)
        .site_pkg_dir(PKG_DIR)
        .build()
}

/// The one inline script pages carry: leptos's island loader. The server's Content-Security-Policy
/// allows exactly this script, by its hash, so no injected inline script can run.
pub fn island_loader_script() -> String {
    let html = document(|| {
        view! { <HydrationScripts options=island_options() islands=true /> }.into_any()
    });
    html.split_once("<script type=\"module\">")
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .map(|(script, _)| script.to_string())
        .unwrap_or_default()
}

/// An error page for people (the API answers JSON instead).
pub fn render_error(status: u16, message: &str) -> String {
    let message = message.to_string();
    document(move || {
        view! {
            <Shell title=format!("Error {status}")>
                <h1>{format!("Error {status}")}</h1>
                <p class="error">{message}</p>
                <p><a href="/">"Back to the projects"</a></p>
            </Shell>
        }
        .into_any()
    })
}
