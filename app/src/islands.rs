//! The grid's filter bar: the one interactive part of the grid page.
//!
//! Without JavaScript it is a plain GET form (the server applies the filter). Once hydrated, every
//! change applies at once: rows are shown or hidden in place with the same
//! [`GridFilter::matches`] the server uses, and the URL is updated so a reload or a shared link
//! shows the same view.

use leptos::prelude::*;
use trellis_domain::grid::{GridFilter, StreamOption};

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
    use trellis_domain::grid::GridFilter;
    use wasm_bindgen::JsCast;
    use web_sys::{Element, HtmlElement, UrlSearchParams};

    fn elements(list: Result<web_sys::NodeList, wasm_bindgen::JsValue>) -> Vec<Element> {
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

    /// Shows the rows the filter keeps, hides empty stream groups, and records the filter in
    /// the URL and in the paging links.
    pub fn apply(filter: &GridFilter) {
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
