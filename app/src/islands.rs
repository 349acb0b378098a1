//! The grid page's two islands, the only code compiled to WebAssembly.
//!
//! - [`FilterBar`]: without JavaScript a plain GET form (the server keeps only the filter's
//!   rows). Once hydrated, it starts from what its controls hold (input made before it
//!   hydrated counts), and every change applies at once: a filter that narrows the one the
//!   page's rows were rendered under hides rows in place with the same [`GridFilter::matches`]
//!   the server uses; a wider one fetches the grid's HTML for it and swaps the table. The URL
//!   follows, so a reload or a shared link shows the same view.
//! - [`LiveGrid`]: follows the project's live stream and redraws the cells it names. The server
//!   sends each cell's [`CellFace`], drawn by the same code as the server-rendered grid, so a
//!   live cell and a reloaded one always look alike.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use trellis_domain::grid::{GridFilter, StreamOption};

/// How the grid draws a tested cell: the `<td>`'s class, and the symbol, title and link of its
/// `<a>`. Made by `CellFace::of` (in the grid page) for the page and the live stream alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellFace {
    pub class: String,
    pub symbol: String,
    pub title: String,
    pub href: String,
}

/// One changed cell on the live stream: its row (stream and `uname -r`), its commit column and
/// how to draw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellPatch {
    pub stream: String,
    pub kernel: String,
    pub sha: String,
    pub face: CellFace,
    /// The cell now holds a failure (a new result, so its row fails now).
    pub failing: bool,
    /// The cell's error signature, which the search finds its row by.
    pub signature: Option<String>,
}

/// Where the live stream stands, as the status line tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Only the browser follows the stream; the server renders the idle line.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
enum Link {
    /// Not following (the server's rendering, no JavaScript, a hidden tab): the line is empty.
    Idle,
    Open,
    /// Open, and this many cells changed since the page was loaded.
    Updated(usize),
    Reconnecting,
}

/// Follows the project's changes and redraws the cells on this page that changed; rows and
/// columns not on the page are left alone. The browser reconnects by itself (the stream asks
/// for a retry every two seconds) and replays what it missed from its last event's id; a hidden
/// tab pauses until it is shown again, then catches up the same way.
#[island]
pub fn LiveGrid(project: String) -> impl IntoView {
    let link = RwSignal::new(Link::Idle);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| live::follow(project.clone(), link));
    // The server renders only the (empty) status line.
    #[cfg(not(feature = "hydrate"))]
    drop(project);
    let text = move || match link.get() {
        Link::Idle => String::new(),
        Link::Open => "Live: new results appear as they arrive.".to_string(),
        Link::Updated(1) => "Live: 1 cell changed since this page loaded.".to_string(),
        Link::Updated(n) => format!("Live: {n} cells changed since this page loaded."),
        Link::Reconnecting => "Live updates interrupted; reconnecting…".to_string(),
    };
    let state = move || match link.get() {
        Link::Idle => None,
        Link::Open | Link::Updated(_) => Some("open"),
        Link::Reconnecting => Some("reconnecting"),
    };
    view! { <p class="live-status" role="status" data-live=state>{text}</p> }
}

/// A stream group's count: " 36 kernels", or " 1 of 36 kernels" when the filter keeps fewer;
/// the same words from the server and from the island narrowing rows in place.
pub fn stream_count(shown: usize, kernels: usize) -> String {
    if shown == kernels {
        format!(" {kernels} kernels")
    } else {
        format!(" {shown} of {kernels} kernels")
    }
}

#[island]
pub fn FilterBar(
    streams: Vec<StreamOption>,
    arches: Vec<String>,
    filter: GridFilter,
) -> impl IntoView {
    let state = RwSignal::new(filter.clone());
    #[cfg(feature = "hydrate")]
    {
        dom::rendered_under(filter.clone());
        // Boxes ticked or text typed while the bundle loaded are in the controls only.
        if let Some(live) = dom::controls() {
            state.set(live);
        }
        Effect::new(move |_| dom::apply(&state.get()));
        keys::install();
    }

    let stream_boxes = streams
        .into_iter()
        .map(|s| {
            let checked = filter.streams.contains(&s.stream);
            let slug = s.stream.clone();
            view! {
                <label class="chip">
                    <input
                        type="checkbox"
                        name="stream"
                        value=s.stream.clone()
                        checked=checked
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            state.update(|f| {
                                f.streams.retain(|x| *x != slug);
                                if on {
                                    f.streams.push(slug.clone());
                                }
                            });
                        }
                    />
                    {s.label}
                </label>
            }
        })
        .collect_view();
    let arch_options = arches
        .into_iter()
        .map(|a| {
            let selected = filter.arch.as_deref() == Some(a.as_str());
            view! { <option value=a.clone() selected=selected>{a.clone()}</option> }
        })
        .collect_view();

    view! {
        <fieldset class="filter-streams">
            <legend>"Streams"</legend>
            {stream_boxes}
        </fieldset>
        <label>
            "Arch "
            <select
                name="arch"
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    state.update(|f| f.arch = (!v.is_empty()).then_some(v));
                }
            >
                <option value="" selected=filter.arch.is_none()>"all"</option>
                {arch_options}
            </select>
        </label>
        <label class="chip">
            <input
                type="checkbox"
                name="failing"
                value="1"
                checked=filter.failing
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    state.update(|f| f.failing = on);
                }
            />
            "only rows failing now (at the newest tested commit or in an open breakage)"
        </label>
        <label>
            "Kernel or error "
            <input
                type="search"
                name="q"
                placeholder="e.g. 553, el9_4 or headers_end"
                value=filter.q.clone()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    state.update(|f| f.q = v.trim().to_string());
                }
            />
        </label>
        <label class="chip">
            <input
                type="checkbox"
                name="all"
                value="1"
                checked=filter.every_commit
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    state.update(|f| f.every_commit = on);
                }
            />
            "untested commits too"
        </label>
    }
}

#[cfg(feature = "hydrate")]
mod dom {
    use crate::paths;
    use std::cell::{Cell, RefCell};
    use trellis_domain::events::FeedFilter;
    use trellis_domain::grid::GridFilter;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        Document, DomParser, Element, HtmlElement, HtmlInputElement, HtmlSelectElement, Response,
        SupportedType, UrlSearchParams,
    };

    pub(super) fn elements(list: Result<web_sys::NodeList, wasm_bindgen::JsValue>) -> Vec<Element> {
        let Ok(list) = list else { return Vec::new() };
        (0..list.length())
            .filter_map(|i| list.item(i)?.dyn_into::<Element>().ok())
            .collect()
    }

    fn document() -> Option<Document> {
        web_sys::window().and_then(|w| w.document())
    }

    fn set_hidden(el: &Element, hidden: bool) {
        if let Some(el) = el.dyn_ref::<HtmlElement>() {
            el.set_hidden(hidden);
        }
    }

    thread_local! {
        /// The filter applied last, applied again when live results change which rows fail.
        static APPLIED: RefCell<Option<GridFilter>> = const { RefCell::new(None) };
        /// The filter the table's rows were rendered under: the rows it can narrow in place.
        static RENDERED: RefCell<GridFilter> = RefCell::new(GridFilter::default());
        /// Counts the filters applied, so that only the latest one's fetched rows are shown.
        static APPLIED_COUNT: Cell<u64> = const { Cell::new(0) };
    }

    /// Records the filter the server rendered the page's rows under.
    pub fn rendered_under(filter: GridFilter) {
        RENDERED.with(|r| *r.borrow_mut() = filter);
    }

    /// The filter the form's controls hold now, read as the server reads the submitted form.
    pub fn controls() -> Option<GridFilter> {
        let doc = document()?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        let checked =
            "form.filters input[name=stream]:checked, form.filters input[name=failing]:checked";
        for el in elements(doc.query_selector_all(checked)) {
            let input = el.dyn_into::<HtmlInputElement>().ok()?;
            pairs.push((input.name(), input.value()));
        }
        let q = doc.query_selector("form.filters input[name=q]").ok()??;
        pairs.push((
            "q".to_string(),
            q.dyn_into::<HtmlInputElement>().ok()?.value(),
        ));
        let arch = doc
            .query_selector("form.filters select[name=arch]")
            .ok()??;
        pairs.push((
            "arch".to_string(),
            arch.dyn_into::<HtmlSelectElement>().ok()?.value(),
        ));
        GridFilter::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))).ok()
    }

    /// Shows the filter's rows again from what the table holds (rows may have started failing).
    pub fn reapply() {
        if let Some(filter) = APPLIED.with(|a| a.borrow().clone()) {
            show(&filter);
        }
    }

    /// Applies `filter`: records it in the URL and in the paging and feed links, then narrows
    /// the table in place, or fetches the rows when the table lacks some.
    pub fn apply(filter: &GridFilter) {
        let first = APPLIED
            .with(|a| a.borrow_mut().replace(filter.clone()))
            .is_none();
        let count = next_count();
        let url = record(filter);
        if RENDERED.with(|r| filter.narrows(&r.borrow())) {
            show(filter);
        } else {
            leptos::task::spawn_local(fetch_rows(filter.clone(), url, count));
        }
        // The form says once its filter applies as it is changed (browser tests wait for it).
        if first {
            if let Some(form) = document().and_then(|d| d.query_selector("form.filters").ok()?) {
                let _ = form.set_attribute("data-live-filter", "");
            }
        }
    }

    /// Fetches the table again when a commit that is no column got results: it may have been
    /// tested for the first time, so the tested commits' columns move (every commit is a column
    /// already when the filter asks for all).
    pub fn refetch() {
        let Some(filter) = APPLIED.with(|a| a.borrow().clone()) else {
            return;
        };
        if filter.every_commit {
            return;
        }
        let url = web_sys::window()
            .and_then(|w| Some(format!("{}{}", pathname(), w.location().search().ok()?)))
            .unwrap_or_default();
        leptos::task::spawn_local(fetch_rows(filter, url, next_count()));
    }

    /// Counts one more filter applied (or table asked for) and says its number.
    fn next_count() -> u64 {
        APPLIED_COUNT.with(|c| {
            c.set(c.get() + 1);
            c.get()
        })
    }

    /// Replaces the table by the server's for `filter` (the page at `url`), unless another
    /// filter was applied meanwhile; if it cannot be fetched, goes to that page.
    async fn fetch_rows(filter: GridFilter, url: String, count: u64) {
        let html = fetch_text(&url).await;
        if APPLIED_COUNT.with(Cell::get) != count {
            return;
        }
        if html.as_deref().and_then(swap_table).is_none() {
            if let Some(w) = web_sys::window() {
                let _ = w.location().assign(&url);
            }
            return;
        }
        rendered_under(filter.clone());
        show(&filter);
    }

    async fn fetch_text(url: &str) -> Option<String> {
        let response: Response = JsFuture::from(web_sys::window()?.fetch_with_str(url))
            .await
            .ok()?
            .dyn_into()
            .ok()?;
        if !response.ok() {
            return None;
        }
        JsFuture::from(response.text().ok()?)
            .await
            .ok()?
            .as_string()
    }

    /// Puts the grid table and pager of the page `html` in place of this page's (the columns
    /// and their range change with the untested commits).
    fn swap_table(html: &str) -> Option<()> {
        let fresh = DomParser::new()
            .ok()?
            .parse_from_string(html, SupportedType::TextHtml)
            .ok()?;
        let doc = document()?;
        for part in ["table.grid", "nav.pager"] {
            let new = fresh.query_selector(part).ok()??;
            doc.query_selector(part)
                .ok()??
                .replace_with_with_node_1(&new)
                .ok()?;
        }
        Some(())
    }

    /// Shows the rows the filter keeps, hides empty stream groups and counts what is shown.
    fn show(filter: &GridFilter) {
        let Some(doc) = document() else {
            return;
        };
        let mut shown = 0;
        for group in elements(doc.query_selector_all("tbody[data-stream]")) {
            let mut in_group = 0;
            for row in elements(group.query_selector_all("tr[data-kernel]")) {
                let attr = |name: &str| row.get_attribute(name).unwrap_or_default();
                let visible = filter.matches(
                    &attr("data-stream"),
                    &attr("data-arch"),
                    &attr("data-kernel"),
                    &attr("data-errors"),
                    row.has_attribute("data-failing"),
                );
                set_hidden(&row, !visible);
                in_group += usize::from(visible);
            }
            set_hidden(&group, in_group == 0);
            let kernels: usize = number(group.get_attribute("data-kernels"));
            if let Ok(Some(count)) = group.query_selector(".stream-count") {
                count.set_text_content(Some(&super::stream_count(in_group, kernels)));
            }
            shown += in_group;
        }
        let total = doc
            .query_selector("table.grid")
            .ok()
            .flatten()
            .map_or(0, |t| number::<usize>(t.get_attribute("data-kernels")));
        if let Some(out) = doc.get_element_by_id("row-count") {
            out.set_text_content(Some(&format!("{shown} of {total} kernels shown")));
        }
        if let Some(none) = doc.get_element_by_id("no-match") {
            set_hidden(&none, shown > 0 || total == 0);
        }
    }

    /// Puts `filter` in the paging and feed links and in the URL; the URL.
    fn record(filter: &GridFilter) -> String {
        let Some(doc) = document() else {
            return String::new();
        };
        // The same URLs the server renders, on the path the browser is at.
        for link in elements(doc.query_selector_all("a[data-page]")) {
            let page = number(link.get_attribute("data-page"));
            let href = format!("{}{}", pathname(), paths::grid_query(filter, page));
            let _ = link.set_attribute("href", &href);
        }
        // The Subscribe control's feeds follow the filter too.
        let feed = paths::feed_query(&FeedFilter::of_grid(filter));
        for link in elements(doc.query_selector_all("a[data-feed]")) {
            let href = link.get_attribute("href").unwrap_or_default();
            let href = format!("{}{feed}", href.split('?').next().unwrap_or_default());
            let _ = link.set_attribute("href", &href);
            link.set_text_content(Some(&href));
        }
        let current_page = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|s| UrlSearchParams::new_with_str(&s).ok())
            .and_then(|p| p.get("page"));
        let url = format!(
            "{}{}",
            pathname(),
            paths::grid_query(filter, number(current_page))
        );
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
        url
    }

    /// A number from the URL or an attribute; anything else is 0 (the first page, no kernels).
    fn number<N: std::str::FromStr + Default>(text: Option<String>) -> N {
        text.and_then(|p| p.parse().ok()).unwrap_or_default()
    }

    fn pathname() -> String {
        web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .unwrap_or_default()
    }
}

/// The grid from the keyboard, and the column under the pointer or focus. The table is one tab
/// stop (the cell last focused); arrow keys move between the links of neighbouring cells, `j`
/// and `k` to the next and previous failure, and `/` to the search box. Cells are found when a
/// key is pressed, so a table swapped by the filter needs nothing set up again.
#[cfg(feature = "hydrate")]
mod keys {
    use super::dom::elements;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{Element, Event, HtmlElement, HtmlTableCellElement, KeyboardEvent};

    /// Cells that hold a failure, as the stylesheet draws them.
    const FAILURES: &str =
        "tr[data-kernel]:not([hidden]) td.s-fail a, tr[data-kernel]:not([hidden]) td.s-flaky a";

    pub fn install() {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let listen = |kind: &str, f: fn(Event)| {
            let f = Closure::<dyn FnMut(Event)>::new(f);
            let _ = doc.add_event_listener_with_callback(kind, f.as_ref().unchecked_ref());
            // Lives as long as the page.
            f.forget();
        };
        listen("keydown", key);
        listen("focusin", |ev| {
            if let Some(cell) = cell_of(&ev) {
                rove_to(&cell);
                highlight(Some(&cell));
            }
        });
        listen("mouseover", |ev| highlight(cell_of(&ev).as_ref()));
        if let Some(first) = grid_links().first() {
            rove_to(first);
        }
    }

    /// The links of the visible rows (the kernel's and its cells').
    fn grid_links() -> Vec<Element> {
        let doc = web_sys::window().and_then(|w| w.document());
        doc.map(|d| elements(d.query_selector_all("table.grid tr[data-kernel]:not([hidden]) a")))
            .unwrap_or_default()
    }

    /// The grid link an event happened on.
    fn cell_of(ev: &Event) -> Option<Element> {
        let target = ev.target()?.dyn_into::<Element>().ok()?;
        target.closest("table.grid tr[data-kernel] a").ok()?
    }

    /// Makes `link` the grid's one tab stop.
    fn rove_to(link: &Element) {
        for other in grid_links() {
            let _ = other.set_attribute("tabindex", "-1");
        }
        let _ = link.set_attribute("tabindex", "0");
    }

    fn focus(link: &Element) {
        if let Some(el) = link.dyn_ref::<HtmlElement>() {
            let _ = el.focus();
        }
    }

    fn typing(ev: &Event) -> bool {
        ev.target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .is_some_and(|t| matches!(t.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"))
    }

    fn key(ev: Event) {
        let Ok(kev) = ev.clone().dyn_into::<KeyboardEvent>() else {
            return;
        };
        if kev.ctrl_key() || kev.meta_key() || kev.alt_key() || typing(&ev) {
            return;
        }
        let here = cell_of(&ev);
        let target = match kev.key().as_str() {
            "/" => web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.query_selector("form.filters input[name=q]").ok()?),
            "j" | "k" => next_failure(here.as_ref(), kev.key() == "j"),
            "ArrowLeft" | "ArrowRight" | "ArrowUp" | "ArrowDown" => {
                here.as_ref().and_then(|h| neighbour(h, &kev.key()))
            }
            _ => return,
        };
        if let Some(target) = target {
            ev.prevent_default();
            focus(&target);
        }
    }

    /// The next (or previous) failing cell after the focused link, in reading order.
    fn next_failure(here: Option<&Element>, forward: bool) -> Option<Element> {
        let doc = web_sys::window()?.document()?;
        let failures = elements(doc.query_selector_all(FAILURES));
        let Some(here) = here else {
            return if forward {
                failures.first()
            } else {
                failures.last()
            }
            .cloned();
        };
        // DOCUMENT_POSITION_FOLLOWING: the failure comes after the focused link.
        let after = |f: &Element| here.compare_document_position(f) & 4 != 0;
        if forward {
            failures.into_iter().find(|f| after(f))
        } else {
            failures.into_iter().rev().find(|f| !after(f) && f != here)
        }
    }

    /// The link an arrow key moves to from `here`: the nearest link that way in the same row,
    /// or in the same column of the nearest visible row that has one.
    fn neighbour(here: &Element, key: &str) -> Option<Element> {
        let cell = here.parent_element()?;
        let row = cell.parent_element()?;
        let links = |row: &Element| elements(row.query_selector_all("a"));
        match key {
            "ArrowLeft" | "ArrowRight" => {
                let in_row = links(&row);
                let i = in_row.iter().position(|l| l == here)?;
                let j = if key == "ArrowRight" {
                    i + 1
                } else {
                    i.checked_sub(1)?
                };
                in_row.get(j).cloned()
            }
            _ => {
                let column = cell.dyn_ref::<HtmlTableCellElement>()?.cell_index();
                let doc = web_sys::window()?.document()?;
                let rows =
                    elements(doc.query_selector_all("table.grid tr[data-kernel]:not([hidden])"));
                let i = rows.iter().position(|r| *r == row)?;
                let at =
                    |r: &Element| r.children().item(column as u32)?.query_selector("a").ok()?;
                if key == "ArrowDown" {
                    rows[i + 1..].iter().find_map(at)
                } else {
                    rows[..i].iter().rev().find_map(at)
                }
            }
        }
    }

    /// Marks the column of `link` (its header and cells) as the row is marked on hover.
    fn highlight(link: Option<&Element>) {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        for marked in elements(doc.query_selector_all("table.grid .col-hi")) {
            let _ = marked.class_list().remove_1("col-hi");
        }
        let column = link
            .and_then(|l| l.parent_element())
            .and_then(|c| c.dyn_into::<HtmlTableCellElement>().ok())
            .map(|c| c.cell_index())
            .filter(|i| *i > 0);
        let Some(column) = column else {
            return;
        };
        let rows =
            elements(doc.query_selector_all("table.grid thead tr, table.grid tr[data-kernel]"));
        for row in rows {
            if let Some(cell) = row.children().item(column as u32) {
                let _ = cell.class_list().add_1("col-hi");
            }
        }
    }
}

#[cfg(feature = "hydrate")]
mod live {
    use super::dom::elements;
    use super::{CellPatch, Link};
    use crate::paths;
    use leptos::prelude::*;
    use std::cell::{Cell, OnceCell, RefCell};
    use std::collections::HashMap;
    use std::rc::Rc;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    use web_sys::{Element, Event, EventSource, MessageEvent};

    /// Wait before opening a new stream when the browser gave up on one (as the server's
    /// `retry` asks of its own reconnections).
    const REOPEN_AFTER_MS: i32 = 2000;

    type Listener = Closure<dyn FnMut(Event)>;

    struct Follow {
        project: String,
        link: RwSignal<Link>,
        /// The last event's id: the revision the page is drawn at.
        last_id: Cell<Option<i64>>,
        /// Cells redrawn since the page was loaded.
        changed: Cell<usize>,
        /// The stream open now.
        source: RefCell<Option<EventSource>>,
        /// The listeners of every stream the page opens, made once.
        listeners: OnceCell<[(&'static str, Listener); 4]>,
    }

    /// Follows the stream while the page is shown. Browsers allow six connections per site
    /// over HTTP/1.1, so a hidden tab gives its stream up for other tabs' pages, and catches up
    /// from its last event when shown again.
    pub fn follow(project: String, link: RwSignal<Link>) {
        let follow = Rc::new(Follow {
            project,
            link,
            last_id: Cell::new(None),
            changed: Cell::new(0),
            source: RefCell::new(None),
            listeners: OnceCell::new(),
        });
        let listeners = [
            ("open", listener(&follow, |f, _| f.opened())),
            ("cells", listener(&follow, |f, ev| f.cells(ev))),
            ("reload", listener(&follow, |_, _| reload())),
            ("error", listener(&follow, |f, _| f.broken())),
        ];
        let _ = follow.listeners.set(listeners);
        open(&follow);
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let shown = listener(&follow, |f, _| {
            if is_hidden() {
                f.close();
            } else {
                open(f);
            }
        });
        let _ = doc
            .add_event_listener_with_callback("visibilitychange", shown.as_ref().unchecked_ref());
        // Lives as long as the page.
        shown.forget();
    }

    /// `f` with the follow, as an event listener.
    fn listener(follow: &Rc<Follow>, f: impl Fn(&Rc<Follow>, Event) + 'static) -> Listener {
        let follow = follow.clone();
        Closure::new(move |ev| f(&follow, ev))
    }

    fn is_hidden() -> bool {
        web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.hidden())
    }

    fn reload() {
        if let Some(w) = web_sys::window() {
            let _ = w.location().reload();
        }
    }

    /// Opens a stream from the last event's id, unless one is open or the page is hidden.
    fn open(follow: &Rc<Follow>) {
        if follow.source.borrow().is_some() || is_hidden() {
            return;
        }
        let url = paths::live(&follow.project, follow.last_id.get());
        let Ok(source) = EventSource::new(&url) else {
            return;
        };
        for (kind, listener) in follow.listeners.get().into_iter().flatten() {
            let _ =
                source.add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref());
        }
        follow.source.replace(Some(source));
    }

    impl Follow {
        fn cells(&self, ev: Event) {
            let Ok(ev) = ev.dyn_into::<MessageEvent>() else {
                return;
            };
            let patches = ev
                .data()
                .as_string()
                .and_then(|data| serde_json::from_str::<Vec<CellPatch>>(&data).ok());
            let patched = apply(&patches.unwrap_or_default());
            if patched > 0 {
                self.changed.set(self.changed.get() + patched);
                self.link.set(Link::Updated(self.changed.get()));
            }
            if let Ok(id) = ev.last_event_id().parse() {
                self.last_id.set(Some(id));
            }
        }

        fn opened(&self) {
            self.link.set(match self.changed.get() {
                0 => Link::Open,
                n => Link::Updated(n),
            });
        }

        fn close(&self) {
            if let Some(source) = self.source.take() {
                source.close();
            }
            self.link.set(Link::Idle);
        }

        /// The browser reconnects by itself after a network error (sending the last event's
        /// id); an HTTP error (a proxy's 502, a 503 while the database restarts) closes the
        /// stream for good, so then a new one is opened.
        fn broken(self: &Rc<Self>) {
            self.link.set(Link::Reconnecting);
            let closed = self
                .source
                .borrow()
                .as_ref()
                .is_some_and(|s| s.ready_state() == EventSource::CLOSED);
            if !closed {
                return;
            }
            self.source.take();
            let follow = self.clone();
            let reopen = Closure::once_into_js(move || open(&follow));
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(
                    reopen.unchecked_ref(),
                    REOPEN_AFTER_MS,
                );
            }
        }
    }

    /// Redraws each patched cell whose row and column are on this page, marked `changed` (the
    /// stylesheet flashes it), the rows that now fail and the error text they are searched by; a
    /// cell of a commit with no column fetches the table again. The number of cells redrawn.
    fn apply(patches: &[CellPatch]) -> usize {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return 0;
        };
        let mut patched = 0;
        let mut refilter = false;
        let columns: Vec<String> = elements(doc.query_selector_all("thead th[data-sha]"))
            .iter()
            .map(|th| th.get_attribute("data-sha").unwrap_or_default())
            .collect();
        let rows: HashMap<(String, String), Element> =
            elements(doc.query_selector_all("tr[data-kernel]"))
                .into_iter()
                .map(|row| {
                    let attr = |name| row.get_attribute(name).unwrap_or_default();
                    ((attr("data-stream"), attr("data-kernel")), row)
                })
                .collect();
        let mut new_column = false;
        for patch in patches {
            let Some(column) = columns.iter().position(|sha| *sha == patch.sha) else {
                new_column = true;
                continue;
            };
            let Some(row) = rows.get(&(patch.stream.clone(), patch.kernel.clone())) else {
                continue;
            };
            // Markers of untested commits are no column of a commit.
            let cells = elements(row.query_selector_all("td:not(.gap)"));
            let (Some(td), Ok(a)) = (cells.get(column), doc.create_element("a")) else {
                continue;
            };
            let face = &patch.face;
            td.set_class_name(&format!("{} changed", face.class));
            if patch.failing && !row.has_attribute("data-failing") {
                let _ = row.set_attribute("data-failing", "");
                refilter = true;
            }
            // A new signature is more text the search finds the row by.
            if let Some(signature) = &patch.signature {
                let errors = row.get_attribute("data-errors").unwrap_or_default();
                if !errors.split('\n').any(|e| e == signature) {
                    let errors = if errors.is_empty() {
                        signature.clone()
                    } else {
                        format!("{errors}\n{signature}")
                    };
                    let _ = row.set_attribute("data-errors", &errors);
                    refilter = true;
                }
            }
            patched += 1;
            let _ = a.set_attribute("href", &face.href);
            let _ = a.set_attribute("title", &face.title);
            a.set_text_content(Some(&face.symbol));
            td.set_text_content(None);
            let _ = td.append_child(&a);
        }
        if new_column {
            super::dom::refetch();
        } else if refilter {
            super::dom::reapply();
        }
        patched
    }
}
