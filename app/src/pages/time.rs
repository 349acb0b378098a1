//! Times as people read them: relative ("3 h ago", or "3 h" for how long something has been
//! open), with the absolute UTC time on hover and in the `<time>` element's `datetime`. Every
//! page shows times through [`When`].

use leptos::prelude::*;
use trellis_domain::view::{ago, elapsed, format_ms, rfc3339_ms};

/// How a time reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// "3 h ago".
    #[default]
    Ago,
    /// "3 h": how long since then (how long a breakage has been open).
    Since,
}

/// `at` (epoch milliseconds) as seen at `now`.
#[component]
pub fn When(at: i64, now: i64, #[prop(optional)] reading: Reading) -> impl IntoView {
    let text = match reading {
        Reading::Ago => ago(at, now),
        Reading::Since => elapsed(now - at),
    };
    view! { <time datetime=rfc3339_ms(at) title=format_ms(at)>{text}</time> }
}
