//! The grid page's two islands, the only code compiled to WebAssembly.
//!
//! - [`FilterBar`]: without JavaScript a plain GET form (the server applies the filter). Once
//!   hydrated, every change applies at once: rows are shown or hidden in place with the same
//!   [`GridFilter::matches`] the server uses, and the URL is updated so a reload or a shared
//!   link shows the same view.
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
    /// The cell now holds a failure, so its row passes "only rows with failures".
    pub failing: bool,
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

#[island]
pub fn FilterBar(
    streams: Vec<StreamOption>,
    arches: Vec<String>,
    filter: GridFilter,
) -> impl IntoView {
    let state = RwSignal::new(filter.clone());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| dom::apply(&state.get()));

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
            "only rows with failures"
        </label>
        <label>
            "Kernel "
            <input
                type="search"
                name="q"
                placeholder="e.g. 553 or el9_4"
                value=filter.q.clone()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    state.update(|f| f.q = v.trim().to_string());
                }
            />
        </label>
        <output id="row-count" aria-live="polite"></output>
    }
}

#[cfg(feature = "hydrate")]
mod dom {
    use crate::paths;
    use trellis_domain::events::FeedFilter;
    use trellis_domain::grid::GridFilter;
    use wasm_bindgen::JsCast;
    use web_sys::{Element, HtmlElement, UrlSearchParams};

    pub(super) fn elements(list: Result<web_sys::NodeList, wasm_bindgen::JsValue>) -> Vec<Element> {
        let Ok(list) = list else { return Vec::new() };
        (0..list.length())
            .filter_map(|i| list.item(i)?.dyn_into::<Element>().ok())
            .collect()
    }

    fn set_hidden(el: &Element, hidden: bool) {
        if let Some(el) = el.dyn_ref::<HtmlElement>() {
            el.set_hidden(hidden);
        }
    }

    thread_local! {
        /// The filter applied last, applied again when live results change which rows fail.
        static APPLIED: std::cell::RefCell<Option<GridFilter>> = const { std::cell::RefCell::new(None) };
    }

    /// Applies the filter of the last [`apply`] again (rows may have started failing).
    pub fn reapply() {
        if let Some(filter) = APPLIED.with(|a| a.borrow().clone()) {
            apply(&filter);
        }
    }

    /// Shows the rows the filter keeps, hides empty stream groups, and records the filter in
    /// the URL and in the paging links.
    pub fn apply(filter: &GridFilter) {
        APPLIED.with(|a| *a.borrow_mut() = Some(filter.clone()));
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return;
        };
        let (mut shown, mut total) = (0, 0);
        for group in elements(doc.query_selector_all("tbody[data-stream]")) {
            let mut any = false;
            for row in elements(group.query_selector_all("tr[data-kernel]")) {
                let attr = |name: &str| row.get_attribute(name).unwrap_or_default();
                let visible = filter.matches(
                    &attr("data-stream"),
                    &attr("data-arch"),
                    &attr("data-kernel"),
                    row.has_attribute("data-failing"),
                );
                set_hidden(&row, !visible);
                any |= visible;
                shown += usize::from(visible);
                total += 1;
            }
            set_hidden(&group, !any);
        }
        if let Some(out) = doc.get_element_by_id("row-count") {
            out.set_text_content(Some(&format!("{shown} of {total} kernels shown")));
        }

        // The same URLs the server renders, on the path the browser is at.
        for link in elements(doc.query_selector_all("a[data-page]")) {
            let page = page_number(link.get_attribute("data-page"));
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
            paths::grid_query(filter, page_number(current_page))
        );
        if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
            let _ = history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
        }
    }

    /// A page number from the URL or a link; anything else is the first page.
    fn page_number(page: Option<String>) -> u32 {
        page.and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    fn pathname() -> String {
        web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .unwrap_or_default()
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
    /// stylesheet flashes it), and the rows that now fail; the number of cells redrawn.
    fn apply(patches: &[CellPatch]) -> usize {
        let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
            return 0;
        };
        let mut patched = 0;
        let mut now_failing = false;
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
        for patch in patches {
            let Some(column) = columns.iter().position(|sha| *sha == patch.sha) else {
                continue;
            };
            let Some(row) = rows.get(&(patch.stream.clone(), patch.kernel.clone())) else {
                continue;
            };
            let cells = elements(row.query_selector_all("td"));
            let (Some(td), Ok(a)) = (cells.get(column), doc.create_element("a")) else {
                continue;
            };
            let face = &patch.face;
            td.set_class_name(&format!("{} changed", face.class));
            if patch.failing && !row.has_attribute("data-failing") {
                let _ = row.set_attribute("data-failing", "");
                now_failing = true;
            }
            patched += 1;
            let _ = a.set_attribute("href", &face.href);
            let _ = a.set_attribute("title", &face.title);
            a.set_text_content(Some(&face.symbol));
            td.set_text_content(None);
            let _ = td.append_child(&a);
        }
        if now_failing {
            super::dom::reapply();
        }
        patched
    }
}
