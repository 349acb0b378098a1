//! The public subscribe form (double opt-in, rate-limited per client address) and the pages
//! behind the links every mail carries: confirm and unsubscribe. A link only shows a page with
//! a button; the change is a POST, so mail scanners that follow links change nothing. The
//! unsubscribe URL also takes RFC 8058's one-click POST (`List-Unsubscribe=One-Click`).

use super::extract::{ClientAddr, PagePath};
use super::AppState;
use crate::error::{ApiError, PageError};
use crate::notify::{check_target, following};
use crate::storage::{Follows, Subscription, Target};
use axum::body::Body;
use axum::extract::State;
use axum::response::Html;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use trellis_app::pages::render_message;
use trellis_app::paths;
use trellis_domain::breakage::Attribution;

/// The largest form accepted.
const MAX_FORM_BYTES: usize = 16 * 1024;
const HOUR: Duration = Duration::from_secs(60 * 60);

/// Requests per client address in the last hour, so the form cannot be used to flood inboxes
/// (each confirmation is a mail) or the database.
pub struct RateLimit {
    per_hour: usize,
    seen: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimit {
    pub fn per_hour(per_hour: u32) -> RateLimit {
        RateLimit {
            per_hour: per_hour as usize,
            seen: Mutex::default(),
        }
    }

    /// Counts a request from `ip`; `Err(seconds to wait)` past the limit.
    fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let now = Instant::now();
        let mut seen = self.seen.lock().expect("rate limit lock");
        // Forget addresses whose requests are all older than an hour: the map stays small.
        seen.retain(|_, times| times.back().is_some_and(|t| now - *t < HOUR));
        let times = seen.entry(ip).or_default();
        while times.front().is_some_and(|t| now - *t >= HOUR) {
            times.pop_front();
        }
        if times.len() >= self.per_hour {
            let oldest = times.front().copied().unwrap_or(now);
            return Err((HOUR - (now - oldest)).as_secs().max(1));
        }
        times.push_back(now);
        Ok(())
    }
}

async fn form(body: Body) -> Result<HashMap<String, String>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge {
            limit: MAX_FORM_BYTES,
        })?;
    Ok(form_urlencoded::parse(&bytes)
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k.into_owned(), v.trim().to_string()))
        .collect())
}

pub async fn subscribe(
    State(state): State<AppState>,
    PagePath(project): PagePath<String>,
    ClientAddr(client): ClientAddr,
    body: Body,
) -> Result<Html<String>, PageError> {
    state
        .subscribe_limit
        .check(client)
        .map_err(|retry_after_secs| ApiError::TooManyRequests { retry_after_secs })?;
    let project = state
        .storage
        .project(&project)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no project named {project:?}")))?;
    let fields = form(body).await?;
    let email = fields
        .get("email")
        .ok_or_else(|| ApiError::BadRequest("give the mail address to send breakages to".into()))?;
    check_target(&Target::Email(email.clone())).map_err(ApiError::BadRequest)?;
    let attribution = match fields.get("attribution") {
        None => None,
        Some(a) => Some(Attribution::parse(a).ok_or_else(|| {
            ApiError::BadRequest(format!("cause {a:?}: use module, kernel, both or unknown"))
        })?),
    };
    let stream = fields.get("stream").cloned();
    if let Some(stream) = &stream {
        if !state
            .storage
            .project_streams(&project)
            .await?
            .contains(stream)
        {
            return Err(ApiError::BadRequest(format!(
                "{} has no stream {stream:?}: choose one the page offers, or any",
                project.name
            ))
            .into());
        }
    }
    let follows = Follows {
        project: Some(project.name.clone()),
        stream,
        attribution,
    };
    state.storage.request_subscription(&follows, email).await?;
    // The same answer whatever the address's state, so the form tells nobody who subscribed.
    Ok(Html(render_message(
        "Check your inbox",
        vec![
            format!(
                "If {email} does not follow these breakages yet, a mail with a confirmation link \
                 is on its way. Nothing else is sent until the link is followed."
            ),
            format!("It will follow {}.", following(&follows)),
        ],
        None,
        Some(project.name),
    )))
}

async fn subscription_of(state: &AppState, token: &str) -> Result<Subscription, ApiError> {
    state
        .storage
        .subscription_by_token(token)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(
                "this link is not valid, or its subscription has already ended".to_string(),
            )
        })
}

pub async fn confirm_page(
    State(state): State<AppState>,
    PagePath(token): PagePath<String>,
) -> Result<Html<String>, PageError> {
    let s = subscription_of(&state, &token).await?;
    let page = if s.confirmed {
        render_message(
            "Already subscribed",
            vec![format!(
                "{} already follows {}.",
                target(&s),
                following(&s.follows)
            )],
            Some((paths::unsubscribe(&token), "Unsubscribe")),
            s.follows.project.clone(),
        )
    } else {
        render_message(
            "Confirm your subscription",
            vec![format!(
                "{} will get a mail each time one of the {} opens or is fixed.",
                target(&s),
                following(&s.follows)
            )],
            Some((paths::confirm(&token), "Confirm")),
            s.follows.project.clone(),
        )
    };
    Ok(Html(page))
}

pub async fn confirm(
    State(state): State<AppState>,
    PagePath(token): PagePath<String>,
) -> Result<Html<String>, PageError> {
    let s = subscription_of(&state, &token).await?;
    state.storage.confirm_subscription(&token).await?;
    Ok(Html(render_message(
        "Subscribed",
        vec![format!(
            "{} now follows {}. Every mail ends with a link to unsubscribe.",
            target(&s),
            following(&s.follows)
        )],
        None,
        s.follows.project.clone(),
    )))
}

pub async fn unsubscribe_page(
    State(state): State<AppState>,
    PagePath(token): PagePath<String>,
) -> Result<Html<String>, PageError> {
    let page = match state.storage.subscription_by_token(&token).await? {
        Some(s) => render_message(
            "Unsubscribe",
            vec![format!(
                "Stop telling {} about {}?",
                target(&s),
                following(&s.follows)
            )],
            Some((paths::unsubscribe(&token), "Unsubscribe")),
            s.follows.project.clone(),
        ),
        None => not_subscribed(),
    };
    Ok(Html(page))
}

/// The button of the page above, and RFC 8058's one-click POST from a mail client. Asking
/// twice is no mistake: the second time says there is nothing left to stop.
pub async fn unsubscribe(
    State(state): State<AppState>,
    PagePath(token): PagePath<String>,
) -> Result<Html<String>, PageError> {
    let page = match state.storage.unsubscribe(&token).await? {
        Some(s) => render_message(
            "Unsubscribed",
            vec![format!(
                "{} no longer follows {}.",
                target(&s),
                following(&s.follows)
            )],
            None,
            s.follows.project.clone(),
        ),
        None => not_subscribed(),
    };
    Ok(Html(page))
}

fn not_subscribed() -> String {
    render_message(
        "Not subscribed",
        vec![
            "This link's subscription has ended (or never existed): nothing more will be sent \
             for it."
                .to_string(),
        ],
        None,
        None,
    )
}

fn target(s: &Subscription) -> String {
    match &s.target {
        Target::Email(e) => e.clone(),
        Target::Webhook { url, .. } => url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_past_its_hourly_limit_is_told_when_to_come_back() {
        let limit = RateLimit::per_hour(2);
        let (a, b) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(limit.check(a).is_ok() && limit.check(a).is_ok());
        let wait = limit.check(a).unwrap_err();
        assert!((3590..=3600).contains(&wait), "{wait}");
        assert!(limit.check(b).is_ok(), "other addresses are not limited");
    }
}
