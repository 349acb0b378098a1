//! The copy button of a command (the `git bisect` line of breakage cards). Without JavaScript
//! the button stays hidden and the command beside it is plain, selectable text; once the island
//! hydrates, the button shows and puts the command on the clipboard.

use leptos::prelude::*;

#[island]
pub fn CopyButton(text: String) -> impl IntoView {
    let ready = RwSignal::new(false);
    let copied = RwSignal::new(false);
    // Effects run only in the browser: the button appears once it can work.
    Effect::new(move |_| ready.set(true));
    view! {
        <button
            type="button"
            class="copy"
            aria-live="polite"
            hidden=move || !ready.get()
            on:click=move |_| {
                write_clipboard(&text);
                copied.set(true);
            }
        >
            {move || if copied.get() { "copied" } else { "copy" }}
        </button>
    }
}

#[cfg(feature = "hydrate")]
fn write_clipboard(text: &str) {
    if let Some(window) = web_sys::window() {
        // The promise settles on its own; a refusal leaves the text there to select.
        let _ = window.navigator().clipboard().write_text(text);
    }
}

/// The server renders the button but never clicks it.
#[cfg(not(feature = "hydrate"))]
fn write_clipboard(_: &str) {}
