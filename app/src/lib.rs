//! Trellis's pages. Everything renders on the server as plain HTML; only the islands in
//! [`islands`] and [`copy`] are compiled to WebAssembly and hydrate in the browser.

pub mod copy;
pub mod islands;
#[cfg(feature = "ssr")]
pub mod pages;
pub mod paths;

/// The browser entry point: hydrates the islands of a server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_islands();
}
