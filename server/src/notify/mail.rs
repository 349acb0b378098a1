//! Mail over SMTP with lettre: one plain-text mail per event and subscriber, threaded (the
//! `fixed` mail answers the `opened` one, a health `cleared` the `raised`) and with RFC 8058 one-click unsubscribe.

use super::{following, links, Failure};
use crate::config::{Config, SmtpTls};
use crate::storage::{Delivery, Subscription, Target};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use trellis_app::paths;
use trellis_domain::events::EventKind;
use trellis_domain::notice;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The part of Message-IDs after `@`: the sender's domain.
    domain: String,
    base: String,
}

/// A header lettre does not know, by name.
macro_rules! text_header {
    ($type:ident, $name:literal) => {
        #[derive(Clone)]
        struct $type(String);

        impl Header for $type {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }

            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($type(s.to_string()))
            }

            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

text_header!(ListUnsubscribe, "List-Unsubscribe");
text_header!(ListUnsubscribePost, "List-Unsubscribe-Post");
text_header!(ListId, "List-Id");
text_header!(AutoSubmitted, "Auto-Submitted");

impl Mailer {
    /// The mailer the settings describe; `None` when no relay is set.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Mailer>> {
        let Some(host) = &config.smtp_host else {
            return Ok(None);
        };
        let builder = match config.smtp_tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        let mut builder = builder
            .port(config.smtp_port())
            .timeout(Some(Duration::from_secs(30)));
        if let (Some(user), Some(password)) = (&config.smtp_user, &config.smtp_password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|e| anyhow::anyhow!("TRELLIS_MAIL_FROM {:?}: {e}", config.mail_from))?;
        Ok(Some(Mailer {
            transport: builder.build(),
            domain: from.email.domain().to_string(),
            from,
            base: config.public_url(),
        }))
    }

    pub async fn send(&self, d: &Delivery) -> Result<(), Failure> {
        let message = self.compose(d).map_err(Failure::Permanent)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
            Err(e) => Err(Failure::Transient(e.to_string())),
        }
    }

    /// `<uuid.subscription@domain>`: one id per event and subscriber, the same on a resend.
    fn message_id(&self, uuid: &str, s: &Subscription) -> String {
        format!("<{uuid}.{}@{}>", s.id, self.domain)
    }

    fn compose(&self, d: &Delivery) -> Result<Message, String> {
        let s = &d.subscription;
        let Target::Email(address) = &s.target else {
            return Err("not a mail subscription".to_string());
        };
        let to: Mailbox = address
            .parse()
            .map_err(|e| format!("address {address:?}: {e}"))?;
        let unsubscribe = format!("{}{}", self.base, paths::unsubscribe(&s.token));
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .header(ListUnsubscribe(format!("<{unsubscribe}>")))
            .header(ListUnsubscribePost(
                "List-Unsubscribe=One-Click".to_string(),
            ))
            .header(ListId(format!(
                "Trellis breakages <breakages.{}>",
                self.domain
            )))
            .header(AutoSubmitted("auto-generated".to_string()))
            .header(ContentType::TEXT_PLAIN);
        let footer = format!(
            "You get this mail because {address} follows {}. Unsubscribe: {unsubscribe}",
            following(&s.follows)
        );
        let (subject, body) = match (&d.event, &d.health) {
            (None, Some(h)) => {
                builder = builder.message_id(Some(self.message_id(&h.uuid, s)));
                if let Some(raised) = &d.opened_uuid {
                    let parent = self.message_id(raised, s);
                    builder = builder.in_reply_to(parent.clone()).references(parent);
                }
                let coverage = format!("{}{}", self.base, paths::coverage(&h.project));
                (h.subject(), h.text_body(&coverage, &footer))
            }
            (None, None) => {
                let confirm = format!("{}{}", self.base, paths::confirm(&s.token));
                builder = builder.message_id(Some(format!(
                    "<confirm.{}.{}@{}>",
                    s.id, s.created_at, self.domain
                )));
                (
                    "[trellis] Confirm your subscription".to_string(),
                    notice::wrap(
                        &format!(
                            "Someone, probably you, asked Trellis to mail {address} when {}. \
                             Nothing is sent until you confirm. If it was not you, ignore this \
                             mail.\n",
                            following(&s.follows)
                        ),
                        notice::WIDTH,
                        "",
                    ) + &format!("\n\nConfirm: {confirm}\n"),
                )
            }
            (Some(e), _) => {
                builder = builder.message_id(Some(self.message_id(&e.uuid, s)));
                if e.kind == EventKind::Fixed {
                    if let Some(opened) = &d.opened_uuid {
                        let parent = self.message_id(opened, s);
                        builder = builder.in_reply_to(parent.clone()).references(parent);
                    }
                }
                (
                    notice::subject(e),
                    notice::text_body(e, &links(&self.base, e), &footer),
                )
            }
        };
        builder
            .subject(subject)
            .body(body)
            .map_err(|e| format!("composing the mail: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tls_mode_builds_a_mailer_with_the_default_port() {
        for (tls, port) in [
            (SmtpTls::None, 25),
            (SmtpTls::Starttls, 587),
            (SmtpTls::Tls, 465),
        ] {
            let mut config = Config::for_database("sqlite://unused.db");
            config.smtp_host = Some("smtp.example.org".to_string());
            config.smtp_tls = tls;
            config.mail_from = "Trellis <ci@example.org>".to_string();
            assert_eq!(config.smtp_port(), port);
            let mailer = Mailer::from_config(&config)
                .unwrap()
                .expect("a relay is set");
            assert_eq!(mailer.domain, "example.org");
        }
        let mut config = Config::for_database("sqlite://unused.db");
        config.smtp_host = Some("smtp.example.org".to_string());
        config.mail_from = "not an address".to_string();
        assert!(Mailer::from_config(&config).is_err());
    }
}
