//! Webhooks: each event (breakage or health) POSTed as JSON to the subscriber's URL, signed with HMAC-SHA256 of the
//! body (`X-Trellis-Signature: sha256=<hex>`) so that chat bridges and scripts can trust it.

use super::{links, Failure};
use crate::storage::Delivery;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use std::time::Duration;
use trellis_app::paths;
use trellis_domain::events::BreakageEvent;
use trellis_domain::health::HealthEvent;

/// What a webhook receives.
#[derive(Serialize)]
pub struct WebhookBody<'a> {
    pub event: &'a BreakageEvent,
    pub links: WebhookLinks,
}

/// What a webhook receives for a health event: the CI's own trouble.
#[derive(Serialize)]
pub struct HealthWebhookBody<'a> {
    pub health: &'a HealthEvent,
    pub links: HealthLinks,
}

#[derive(Serialize)]
pub struct HealthLinks {
    pub coverage: String,
}

#[derive(Serialize)]
pub struct WebhookLinks {
    pub breakage: String,
    pub cell: String,
    pub commit: String,
}

pub struct Poster {
    client: reqwest::Client,
    base: String,
}

/// `sha256=<hex>` of the body under the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Poster {
    pub fn new(base: String) -> anyhow::Result<Poster> {
        // rustls with ring and the webpki roots: nothing to build with cmake, no system store.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("trellis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Poster { client, base })
    }

    pub async fn post(&self, d: &Delivery, url: &str, secret: &str) -> Result<(), Failure> {
        let (body, kind) = match (&d.event, &d.health) {
            (Some(event), _) => {
                let l = links(&self.base, event);
                let body = serde_json::to_vec(&WebhookBody {
                    event,
                    links: WebhookLinks {
                        breakage: l.breakage,
                        cell: l.cell,
                        commit: l.commit,
                    },
                });
                (body, event.kind.as_str().to_string())
            }
            (None, Some(health)) => {
                let coverage = format!("{}{}", self.base, paths::coverage(&health.project));
                let body = serde_json::to_vec(&HealthWebhookBody {
                    health,
                    links: HealthLinks { coverage },
                });
                (body, format!("health-{}", health.kind.as_str()))
            }
            (None, None) => {
                return Err(Failure::Permanent(
                    "webhooks need no confirmation".to_string(),
                ))
            }
        };
        let body = body.expect("an event serialises");
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-trellis-event", kind)
            .header("x-trellis-delivery", d.id.to_string())
            .header("x-trellis-signature", signature(secret, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else if status.is_client_error() && status.as_u16() != 408 && status.as_u16() != 429 {
            Err(Failure::Permanent(format!("{url} answered {status}")))
        } else {
            Err(Failure::Transient(format!("{url} answered {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
