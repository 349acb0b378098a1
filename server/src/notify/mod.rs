//! Telling people when something breaks. Three background tasks, apart from ingestion:
//!
//! - the announcer notices projects whose results changed and has their breakages recomputed,
//!   which records `opened`/`fixed` events and queues their mails and webhooks (see
//!   `storage::events`);
//! - the health watcher checks each project's CI health (stale runners, failing kernel
//!   sources, low head coverage) and records `raised`/`cleared` health events;
//! - the sender delivers what the outbox holds, by SMTP ([`mail`]) or signed HTTP POST
//!   ([`webhook`]), retrying with exponential backoff.
//!
//! Neither runs on a request's path, so a slow relay or webhook never slows a runner down.

pub mod mail;
pub mod webhook;

use crate::config::Config;
use crate::storage::{Delivery, Storage, Target};
use std::time::Duration;
use trellis_app::paths;
use trellis_domain::events::BreakageEvent;
use trellis_domain::notice::Links;
use trellis_domain::Kernel;

/// How often the announcer looks for changed projects (other processes' writes included).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// How often the outbox gauges are refreshed.
const COUNT_EVERY: Duration = Duration::from_secs(10);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(60 * 60);

/// Whether a failed delivery is worth another try.
#[derive(Debug)]
pub enum Failure {
    /// Trouble that passes (a relay down, a timeout, a 5xx answer).
    Transient(String),
    /// Refused for good (an unknown mailbox, a 4xx answer): retrying would not help.
    Permanent(String),
}

/// Whether a subscription's address or URL can be delivered to at all: said when it is made,
/// not found out at the first breakage.
pub fn check_target(target: &Target) -> Result<(), String> {
    match target {
        Target::Email(address) => address
            .parse::<lettre::Address>()
            .map(drop)
            .map_err(|e| format!("{address:?} is not a mail address: {e}")),
        Target::Webhook { url, secret } => {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("{url:?}: webhooks are http:// or https:// URLs"));
            }
            if secret.len() < 16 {
                return Err("a webhook secret needs at least 16 characters".to_string());
            }
            Ok(())
        }
    }
}

/// What a subscription follows, in words: "breakages of wg on el8 where a kernel update broke
/// it" (mails, and the pages of the subscribe form and its links).
pub fn following(f: &crate::storage::Follows) -> String {
    let mut what = format!(
        "breakages of {}",
        f.project.as_deref().unwrap_or("every project")
    );
    if let Some(stream) = &f.stream {
        what.push_str(&format!(" on {stream}"));
    }
    if let Some(a) = f.attribution {
        what.push_str(&format!(" where {}", a.description()));
    }
    what
}

/// Absolute links of an event's pages, under the public base URL.
pub fn links(base: &str, e: &BreakageEvent) -> Links {
    let b = &e.breakage.breakage;
    let cell = match Kernel::parse(&b.first_bad_kernel, None, Some(&b.stream)) {
        Ok(k) => paths::cell(&e.project, &k, &b.first_bad_commit),
        Err(_) => paths::breakage(&e.project, &b.id),
    };
    Links {
        breakage: format!("{base}{}", paths::breakage(&e.project, &b.id)),
        cell: format!("{base}{cell}"),
        commit: format!("{base}{}", paths::commit(&e.project, &b.first_bad_commit)),
        signature: b
            .signature
            .as_ref()
            .map(|s| format!("{base}{}", paths::signature(&e.project, s))),
        fixes: b
            .seen_before
            .iter()
            .map(|p| format!("{base}{}", paths::commit(&e.project, &p.fixed_by_commit)))
            .collect(),
    }
}

/// Starts the announcer and the sender.
pub fn start(storage: Storage, config: &Config) -> anyhow::Result<()> {
    storage.set_settle(Duration::from_secs(config.mail_settle_secs));
    let mailer = mail::Mailer::from_config(config)?;
    if mailer.is_none() {
        tracing::info!("no SMTP relay configured (TRELLIS_SMTP_HOST): mails wait in the outbox");
    }
    let sender = Sender {
        storage: storage.clone(),
        mailer,
        webhooks: webhook::Poster::new(config.public_url())?,
        retry_base: Duration::from_secs(config.outbox_retry_secs.max(1)),
    };
    let announcer = storage.clone();
    tokio::spawn(async move {
        loop {
            if let Err(e) = announcer.refresh_stale_breakages().await {
                tracing::warn!("looking for changed projects failed: {e}");
            }
            tokio::time::sleep(ANNOUNCE_EVERY).await;
        }
    });
    tokio::spawn(sender.run());
    tokio::spawn(watch_health(
        storage.clone(),
        config.health_thresholds(),
        Duration::from_secs(config.health_check_secs.max(1)),
    ));
    Ok(())
}

/// Checks every project's CI health now and then: a problem that appears is raised, one that
/// goes is cleared (each once), into the same feeds, mails and webhooks as breakages.
async fn watch_health(
    storage: Storage,
    thresholds: trellis_domain::coverage::Thresholds,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let projects = match storage.projects().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("checking CI health: {e}");
                continue;
            }
        };
        for project in projects.iter().filter(|p| !p.demo) {
            let checked = match storage.coverage(project, None, thresholds).await {
                Ok(Some(c)) => storage.record_health(project, &c.problems).await,
                Ok(None) => Ok(0),
                Err(e) => Err(e),
            };
            match checked {
                Ok(0) => {}
                Ok(n) => tracing::info!("{}: {n} CI health event(s)", project.name),
                Err(e) => tracing::warn!("checking the CI health of {}: {e}", project.name),
            }
        }
    }
}

struct Sender {
    storage: Storage,
    mailer: Option<mail::Mailer>,
    webhooks: webhook::Poster,
    retry_base: Duration,
}

impl Sender {
    async fn run(self) {
        let mut counted = std::time::Instant::now() - COUNT_EVERY;
        loop {
            if counted.elapsed() >= COUNT_EVERY {
                counted = std::time::Instant::now();
                self.count().await;
            }
            let due = match self.storage.claim_due(20).await {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!("reading the outbox failed: {e}");
                    Vec::new()
                }
            };
            if due.is_empty() {
                self.storage.outbox_changed(Duration::from_secs(1)).await;
                continue;
            }
            for d in due {
                self.deliver(d).await;
            }
        }
    }

    /// What the outbox holds, as gauges on `/metrics`: undelivered news shows up there.
    async fn count(&self) {
        match self.storage.outbox_counts().await {
            Ok(c) => {
                metrics::gauge!("trellis_outbox_waiting").set(c.waiting as f64);
                metrics::gauge!("trellis_outbox_retrying").set(c.retrying as f64);
                metrics::gauge!("trellis_outbox_given_up").set(c.given_up as f64);
            }
            Err(e) => tracing::warn!("counting the outbox failed: {e}"),
        }
    }

    async fn deliver(&self, d: Delivery) {
        let (channel, outcome) = match &d.subscription.target {
            Target::Email(_) => (
                "mail",
                match &self.mailer {
                    Some(m) => m.send(&d).await,
                    None => Err(Failure::Transient(
                        "no SMTP relay is configured (TRELLIS_SMTP_HOST)".to_string(),
                    )),
                },
            ),
            Target::Webhook { url, secret } => {
                ("webhook", self.webhooks.post(&d, url, secret).await)
            }
        };
        let recorded = match outcome {
            Ok(()) => {
                metrics::counter!("trellis_notifications_sent_total", "channel" => channel)
                    .increment(1);
                self.storage.mark_sent(d.id).await
            }
            Err(failure) => {
                metrics::counter!("trellis_notifications_failed_total", "channel" => channel)
                    .increment(1);
                let (error, retry_at) = match failure {
                    Failure::Transient(e) => {
                        let wait = backoff(self.retry_base, d.attempts);
                        let at = crate::storage::now_ms()
                            + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 2);
                        tracing::warn!(
                            "{channel} {} failed (attempt {}), retrying in {} s: {e}",
                            d.id,
                            d.attempts,
                            wait.as_secs()
                        );
                        (e, Some(at))
                    }
                    Failure::Permanent(e) => {
                        tracing::error!("{channel} {} refused for good: {e}", d.id);
                        (e, None)
                    }
                };
                self.storage.mark_failed(d.id, &error, retry_at).await
            }
        };
        if let Err(e) = recorded {
            // The row stays claimed and falls due again when its claim ends.
            tracing::warn!("recording delivery {} failed: {e}", d.id);
        }
    }
}

/// `base`, doubled for every failed attempt, up to an hour.
fn backoff(base: Duration, attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(20);
    base.saturating_mul(1 << doublings).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1), Duration::from_secs(30));
        assert_eq!(backoff(base, 3), Duration::from_secs(120));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
