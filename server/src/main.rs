//! `trellis`: serve the dashboard, manage runners and subscriptions, back up and prune the
//! database.

use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trellis_domain::breakage::Attribution;
use trellis_domain::view::CommitUrl;
use trellis_server::config::Config;
use trellis_server::storage::{Backend, Follows, Storage, Target, DAY_MS};

#[derive(Parser)]
#[command(
    name = "trellis",
    version,
    about = "Compatibility CI dashboard for out-of-tree kernel modules"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Database {
    /// Database: sqlite://PATH?mode=rwc or postgres://...
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/trellis.db?mode=rwc",
        global = true
    )]
    database_url: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the pages.
    Serve(Config),
    /// Manage runners, the machines allowed to post results.
    Runner {
        #[command(subcommand)]
        action: RunnerAction,
        #[command(flatten)]
        db: Database,
    },
    /// Project settings.
    Project {
        #[command(subcommand)]
        action: ProjectAction,
        #[command(flatten)]
        db: Database,
    },
    /// Manage who is told about breakages, by mail or webhook.
    Subscription {
        #[command(subcommand)]
        action: SubscriptionAction,
        #[command(flatten)]
        db: Database,
    },
    /// Write a consistent copy of the SQLite database to PATH while the server keeps running
    /// (PostgreSQL: use pg_dump). See "Backup and restore" in the README.
    Backup {
        /// The file to write; it must not exist.
        path: PathBuf,
        #[command(flatten)]
        db: Database,
    },
    /// Remove the logs of passing and skipped reports older than N days; failing and error
    /// logs, the reports and the grid stay.
    Prune {
        /// Keep the logs of passing and skipped reports for N days after they finished.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=36500))]
        keep_passing_logs_days: u32,
        #[command(flatten)]
        db: Database,
    },
}

#[derive(Subcommand)]
enum RunnerAction {
    /// Create a runner and print its token (shown once; only a hash is stored).
    Add { name: String },
    /// List runners.
    List,
    /// Refuse further reports from a runner.
    Disable { name: String },
    /// Accept reports from a disabled runner again.
    Enable { name: String },
}

#[derive(Subcommand)]
enum ProjectAction {
    /// Link each commit page to the commit upstream: a URL with {sha} where the commit goes,
    /// e.g. 'https://git.zx2c4.com/wireguard-linux-compat/commit/?id={sha}'; "" removes it.
    SetCommitUrl { name: String, template: String },
}

async fn project(action: ProjectAction, database_url: &str) -> anyhow::Result<ExitCode> {
    let ProjectAction::SetCommitUrl { name, template } = action;
    let url = match template.as_str() {
        "" => None,
        t => match CommitUrl::parse(t) {
            Ok(url) => Some(url),
            Err(problem) => {
                eprintln!("{problem}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let storage = Storage::connect(database_url).await?;
    let found = storage.set_commit_url(&name, url.as_ref()).await?;
    storage.close().await;
    if found {
        eprintln!("commit pages of {name:?} now link upstream");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no project named {name:?}");
        Ok(ExitCode::from(1))
    }
}

#[derive(Subcommand)]
enum SubscriptionAction {
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

async fn subscription(action: SubscriptionAction, database_url: &str) -> anyhow::Result<ExitCode> {
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

fn valid_runner_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

async fn runner(action: RunnerAction, database_url: &str) -> anyhow::Result<ExitCode> {
    let storage = Storage::connect(database_url).await?;
    let code = match action {
        RunnerAction::Add { name } if !valid_runner_name(&name) => {
            eprintln!("runner names are 1-64 letters, digits, '-', '_' or '.'");
            ExitCode::from(2)
        }
        RunnerAction::Add { name } => match storage.add_runner(&name).await? {
            Some(token) => {
                println!("{token}");
                eprintln!("Runner {name:?} added. Keep this token: it is not stored and will not be shown again.");
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("a runner named {name:?} already exists");
                ExitCode::from(1)
            }
        },
        RunnerAction::List => {
            println!(
                "{:<24} {:<9} {:<22} LAST REPORT",
                "NAME", "STATE", "CREATED"
            );
            for r in storage.list_runners().await? {
                let last = r
                    .last_seen_at
                    .map(trellis_domain::view::format_ms)
                    .unwrap_or_else(|| "never".into());
                let state = if r.enabled { "enabled" } else { "disabled" };
                println!(
                    "{:<24} {:<9} {:<22} {last}",
                    r.name,
                    state,
                    trellis_domain::view::format_ms(r.created_at)
                );
            }
            ExitCode::SUCCESS
        }
        RunnerAction::Disable { name } => toggle(&storage, &name, false).await?,
        RunnerAction::Enable { name } => toggle(&storage, &name, true).await?,
    };
    storage.close().await;
    Ok(code)
}

async fn toggle(storage: &Storage, name: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    if storage.set_runner_enabled(name, enabled).await? {
        eprintln!(
            "runner {name:?} {}",
            if enabled { "enabled" } else { "disabled" }
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no runner named {name:?}");
        Ok(ExitCode::from(1))
    }
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

async fn backup(path: &Path, database_url: &str) -> anyhow::Result<ExitCode> {
    // Said before connecting: the advice should not depend on reaching the database.
    if Backend::of(database_url) == Some(Backend::Postgres) {
        eprintln!(
            "DATABASE_URL is PostgreSQL: `trellis backup` copies SQLite databases only. Back PostgreSQL \
             up with `pg_dump -Fc -f trellis.dump DBNAME` and restore it with `pg_restore` \
             (README, \"Backup and restore\")."
        );
        return Ok(ExitCode::from(2));
    }
    let storage = Storage::connect(database_url).await?;
    let outcome = storage.backup(path).await;
    storage.close().await;
    let stats = outcome?;
    println!(
        "{}: {} reports, {}",
        path.display(),
        stats.reports,
        mib(stats.bytes as f64)
    );
    Ok(ExitCode::SUCCESS)
}

async fn prune(keep_days: u32, database_url: &str) -> anyhow::Result<ExitCode> {
    let storage = Storage::connect(database_url).await?;
    let outcome = storage
        .prune_passing_logs(i64::from(keep_days) * DAY_MS)
        .await;
    storage.close().await;
    let stats = outcome?;
    let n = stats.logs_removed;
    println!(
        "removed the {} of {n} passing or skipped {} finished before {} ({} compressed)",
        if n == 1 { "log" } else { "logs" },
        if n == 1 { "report" } else { "reports" },
        trellis_domain::view::format_ms(stats.cutoff_ms),
        mib(stats.bytes_removed as f64)
    );
    Ok(ExitCode::SUCCESS)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let result = match Cli::parse().command {
        Command::Serve(config) => trellis_server::serve(config)
            .await
            .map(|_| ExitCode::SUCCESS),
        Command::Runner { action, db } => runner(action, &db.database_url).await,
        Command::Project { action, db } => project(action, &db.database_url).await,
        Command::Subscription { action, db } => subscription(action, &db.database_url).await,
        Command::Backup { path, db } => backup(&path, &db.database_url).await,
        Command::Prune {
            keep_passing_logs_days,
            db,
        } => prune(keep_passing_logs_days, &db.database_url).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("trellis: {e:#}");
        ExitCode::FAILURE
    })
}
