//! `trellis`: serve the dashboard; administer projects, runners, kernel sources and
//! subscriptions (see [`cli`]); back up and prune the database.

mod cli;

use clap::{Args, Parser, Subcommand};
use cli::{
    project::ProjectAction, runner::RunnerAction, source::SourceAction,
    subscription::SubscriptionAction,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use trellis_server::config::Config;
use trellis_server::storage::{Backend, Storage, DAY_MS};

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
    /// Add, describe and list projects.
    Project {
        #[command(subcommand)]
        action: ProjectAction,
        #[command(flatten)]
        db: Database,
    },
    /// Repositories whose kernel packages become a project's kernels.
    Source {
        #[command(subcommand)]
        action: SourceAction,
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
        Command::Runner { action, db } => cli::runner::run(action, &db.database_url).await,
        Command::Project { action, db } => cli::project::run(action, &db.database_url).await,
        Command::Source { action, db } => cli::source::run(action, &db.database_url).await,
        Command::Subscription { action, db } => {
            cli::subscription::run(action, &db.database_url).await
        }
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
