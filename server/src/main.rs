//! `trellis`: serve the dashboard, manage runners.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use trellis_server::config::Config;
use trellis_server::storage::Storage;

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

#[derive(Subcommand)]
enum Command {
    /// Serve the API and the pages.
    Serve(Config),
    /// Manage runners, the machines allowed to post results.
    Runner {
        #[command(subcommand)]
        action: RunnerAction,
        /// Database: sqlite://PATH?mode=rwc or postgres://...
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "sqlite://data/trellis.db?mode=rwc",
            global = true
        )]
        database_url: String,
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
                    .map(trellis_domain::project::format_ms)
                    .unwrap_or_else(|| "never".into());
                let state = if r.enabled { "enabled" } else { "disabled" };
                println!(
                    "{:<24} {:<9} {:<22} {last}",
                    r.name,
                    state,
                    trellis_domain::project::format_ms(r.created_at)
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
        Command::Runner {
            action,
            database_url,
        } => runner(action, &database_url).await,
    };
    result.unwrap_or_else(|e| {
        eprintln!("trellis: {e:#}");
        ExitCode::FAILURE
    })
}
