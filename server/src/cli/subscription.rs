//! `trellis subscription`: who is told about breakages, by mail or webhook.

use clap::Subcommand;
use std::process::ExitCode;
use trellis_domain::breakage::Attribution;
use trellis_server::storage::{Follows, Storage, Target};

#[derive(Subcommand)]
pub enum SubscriptionAction {
    /// Add a subscription (confirmed at once: no confirmation mail) and print its id.
    Add {
        /// Mail breakages to this address.
        #[arg(long, required_unless_present = "webhook", conflicts_with = "webhook")]
        email: Option<String>,
        /// POST breakage events as JSON to this URL, signed with --secret.
        #[arg(long, requires = "secret")]
        webhook: Option<String>,
        /// Key of the webhook's `X-Trellis-Signature: sha256=<HMAC-SHA256 of the body>`.
        #[arg(long)]
        secret: Option<String>,
        /// Only this project (default: every project).
        #[arg(long)]
        project: Option<String>,
        /// Only this stream, e.g. el8.
        #[arg(long)]
        stream: Option<String>,
        /// Only this cause: module, kernel, both or unknown.
        #[arg(long, value_parser = parse_cause)]
        cause: Option<Attribution>,
    },
    /// List subscriptions.
    List,
    /// Remove a subscription and the mails or webhooks it still had to receive.
    Remove { id: i64 },
}

fn parse_cause(s: &str) -> Result<Attribution, String> {
    Attribution::parse(s).ok_or_else(|| "use module, kernel, both or unknown".to_string())
}

pub async fn run(action: SubscriptionAction, database_url: &str) -> anyhow::Result<ExitCode> {
    let storage = Storage::connect(database_url).await?;
    let code = match action {
        SubscriptionAction::Add {
            email,
            webhook,
            secret,
            project,
            stream,
            cause,
        } => {
            let target = match (email, webhook, secret) {
                (Some(email), _, _) => Target::Email(email),
                (None, Some(url), Some(secret)) => Target::Webhook { url, secret },
                _ => unreachable!("clap requires --email, or --webhook with --secret"),
            };
            let follows = Follows {
                project: project.clone(),
                stream,
                attribution: cause,
            };
            if let Err(problem) = trellis_server::notify::check_target(&target) {
                eprintln!("{problem}");
                ExitCode::from(2)
            } else {
                match storage.add_subscription(&follows, &target).await? {
                    Some(s) => {
                        println!("{}", s.id);
                        eprintln!("subscription {} added", s.id);
                        ExitCode::SUCCESS
                    }
                    None => {
                        eprintln!("no project named {:?}", project.unwrap_or_default());
                        ExitCode::from(1)
                    }
                }
            }
        }
        SubscriptionAction::List => {
            println!(
                "{:<5} {:<40} {:<28} {:<10} {:<8} CONFIRMED",
                "ID", "TARGET", "PROJECT", "STREAM", "CAUSE"
            );
            for s in storage.subscriptions().await? {
                let target = match &s.target {
                    Target::Email(e) => e.clone(),
                    Target::Webhook { url, .. } => url.clone(),
                };
                println!(
                    "{:<5} {:<40} {:<28} {:<10} {:<8} {}",
                    s.id,
                    target,
                    s.follows.project.as_deref().unwrap_or("(every project)"),
                    s.follows.stream.as_deref().unwrap_or("(any)"),
                    s.follows.attribution.map_or("(any)", Attribution::as_str),
                    if s.confirmed { "yes" } else { "no" }
                );
            }
            ExitCode::SUCCESS
        }
        SubscriptionAction::Remove { id } => {
            if storage.remove_subscription(id).await? {
                eprintln!("subscription {id} removed");
                ExitCode::SUCCESS
            } else {
                eprintln!("no subscription {id}");
                ExitCode::from(1)
            }
        }
    };
    storage.close().await;
    Ok(code)
}
