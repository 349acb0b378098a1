//! `trellis runner`: the machines allowed to post results, each within its scope.

use clap::Subcommand;
use std::process::ExitCode;
use trellis_domain::scope::Grant;
use trellis_domain::view::format_ms;
use trellis_server::storage::{AddedRunner, Storage};

#[derive(Subcommand)]
pub enum RunnerAction {
    /// Create a runner and print its token (shown once; only a hash is stored).
    Add {
        name: String,
        /// What it may post: PROJECT, PROJECT:STREAM, PROJECT:STREAM:ARCH or PROJECT::ARCH.
        /// Repeat for more; at least one.
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_parser = Grant::parse)]
        scopes: Vec<Grant>,
    },
    /// List runners, their scopes and health.
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

pub async fn run(action: RunnerAction, database_url: &str) -> anyhow::Result<ExitCode> {
    if let RunnerAction::Add { name, .. } = &action {
        if !valid_runner_name(name) {
            eprintln!("runner names are 1-64 letters, digits, '-', '_' or '.'");
            return Ok(ExitCode::from(2));
        }
    }
    let storage = Storage::connect(database_url).await?;
    let code = match action {
        RunnerAction::Add { name, scopes } => match storage.add_runner(&name, &scopes).await? {
            AddedRunner::Added(token) => {
                println!("{token}");
                eprintln!("Runner {name:?} added. Keep this token: it is not stored and will not be shown again.");
                ExitCode::SUCCESS
            }
            AddedRunner::NameTaken => {
                eprintln!("a runner named {name:?} already exists");
                ExitCode::from(1)
            }
            AddedRunner::NoSuchProject(project) => {
                eprintln!("no project named {project:?}; add it first with `trellis project add {project}`");
                ExitCode::from(1)
            }
        },
        RunnerAction::List => {
            println!(
                "{:<24} {:<9} {:<30} {:<20} {:>7} {:>6}  SCOPE",
                "NAME", "STATE", "LAST CONTACT", "LAST REPORT", "REPORTS", "ERROR"
            );
            for r in storage.list_runners().await? {
                let when = |t: Option<i64>| t.map(format_ms).unwrap_or_else(|| "never".into());
                let error_share = if r.reports_total == 0 {
                    "-".to_string()
                } else {
                    format!(
                        "{:.0}%",
                        100.0 * r.reports_error as f64 / r.reports_total as f64
                    )
                };
                println!(
                    "{:<24} {:<9} {:<30} {:<20} {:>7} {:>6}  {}",
                    r.name,
                    if r.enabled { "enabled" } else { "disabled" },
                    when(r.last_contact_at),
                    when(r.last_seen_at),
                    r.reports_total,
                    error_share,
                    match r.scope.describe().join(", ") {
                        s if s.is_empty() => "(none: posts nothing)".to_string(),
                        s => s,
                    }
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
