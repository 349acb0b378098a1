//! trellis-runner: builds module commits against kernel trees as the Trellis server leases them
//! and posts the results; `report` posts one result a CI system produced itself.

mod api;
mod boundedlog;
mod config;
mod exec;
mod git;
mod history;
mod job;
mod kernels;
mod out;
mod report;
mod report_cmd;
mod run;
mod spool;
mod template;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Parser, Subcommand};
use report::Status;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const CONFIG_ERROR: u8 = 2;

#[derive(Parser)]
#[command(
    name = "trellis-runner",
    version,
    about = "Builds out-of-tree kernel module commits against kernel trees for a Trellis server",
    after_help = "Exit status: 0 ok, 1 failure, 2 configuration or usage error."
)]
struct Cli {
    /// More output (HTTP requests, git commands, heartbeats).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch and push history, lease jobs, build them and post their reports, until stopped
    /// (Ctrl-C or SIGTERM once: finish running jobs; twice: abort them and release the leases).
    Run(RunArgs),
    /// Post one result from a log file (for CI systems that run the build themselves).
    Report(Box<ReportArgs>),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The configuration file.
    #[arg(long, value_name = "PATH", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// One pass: fetch, push, lease until the server has no more jobs, finish them and exit.
    #[arg(long)]
    once: bool,
    /// Fetch and discover kernels, print what would be announced and pushed; lease and post
    /// nothing.
    #[arg(long)]
    dry_run: bool,
    /// Seconds (or a duration: 90s, 5m) to wait when there is no job (default: the server's
    /// poll_after_seconds).
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    poll_interval: Option<Duration>,
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("result").required(true).args(["status", "status_from_exit"])))]
struct ReportArgs {
    /// Configuration file to take server, token and project from (default: /etc/trellis-runner.toml
    /// when the flags or environment do not give all three).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Server base URL.
    #[arg(long, env = "TRELLIS_SERVER")]
    server: Option<String>,
    /// Runner token.
    #[arg(long, env = "TRELLIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Project slug.
    #[arg(long, env = "TRELLIS_PROJECT")]
    project: Option<String>,
    /// The kernel: `uname -r`.
    #[arg(long, value_name = "UNAME")]
    kernel: String,
    /// The kernel's arch, when the uname does not end with one.
    #[arg(long)]
    arch: Option<String>,
    /// The kernel's stream slug (rhel-8, centos-stream-9, ...), when its dist tag is not enough.
    #[arg(long)]
    distro: Option<String>,
    /// The module commit: full 40-hex sha.
    #[arg(long, value_name = "SHA", value_parser = parse_sha)]
    commit: String,
    /// The result.
    #[arg(long, value_name = "pass|fail|error|skip", value_parser = parse_status)]
    status: Option<Status>,
    /// The job's exit code: 0 is pass, anything else fail.
    #[arg(long, value_name = "CODE", allow_negative_numbers = true)]
    status_from_exit: Option<i64>,
    /// The job's log (`-` for stdin); its head and tail are kept when it is long.
    #[arg(long, value_name = "FILE")]
    log: PathBuf,
    /// The stage's name.
    #[arg(long, default_value = "build")]
    stage: String,
    /// RFC 3339; default: --finished-at.
    #[arg(long, value_parser = parse_time)]
    started_at: Option<DateTime<Utc>>,
    /// RFC 3339; default: now.
    #[arg(long, value_parser = parse_time)]
    finished_at: Option<DateTime<Utc>>,
    /// Idempotency key; give a stable one (e.g. the CI job id) so a retried step is not
    /// stored twice. Default: <name>-report-<random>.
    #[arg(long)]
    run_id: Option<String>,
    /// Runner name for metadata and the default run id (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// Write the report here before sending; one the server cannot take now stays there (exit
    /// 0) and is sent again by a later `report --spool DIR` or `run` with that spool dir.
    #[arg(long, value_name = "DIR")]
    spool: Option<PathBuf>,
    /// Extra metadata (repeatable), e.g. --metadata ci-job=https://ci.example.org/123.
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_pair)]
    metadata: Vec<(String, String)>,
    /// Log size kept (head and tail).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    max_log_bytes: usize,
    /// Tries while the server is unreachable or busy (2 s, then 4 s, ... apart).
    #[arg(long, value_name = "N", default_value_t = 3)]
    attempts: u32,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    config::parse_duration(s)
}

/// The server's own rules, so a value it would refuse is refused here first.
fn parse_sha(s: &str) -> Result<String, String> {
    trellis_domain::report::parse_sha(s)
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| "use pass, fail, error or skip".to_string())
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not RFC 3339 ({e})"))
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    out::init(cli.verbose);
    match cli.command {
        Command::Run(args) => {
            let cfg = match config::load(&args.config) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(CONFIG_ERROR);
                }
            };
            let opts = run::Options {
                once: args.once,
                dry_run: args.dry_run,
                poll_interval: args.poll_interval,
            };
            finish(run::run(cfg, opts).await)
        }
        Command::Report(args) => {
            let args = *args;
            let over = config::Overrides {
                server: args.server,
                token: args.token,
                project: args.project,
            };
            let path = args
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
            let conn = match config::load_connection(&path, args.config.is_some(), &over) {
                Ok(c) => c,
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(CONFIG_ERROR);
                }
            };
            let name = args.name.unwrap_or_else(report::hostname);
            if !config::valid_name(&name) {
                eprintln!("--name {name:?}: use letters, digits, . _ - (at most 64)");
                return ExitCode::from(CONFIG_ERROR);
            }
            let status = match (args.status, args.status_from_exit) {
                (Some(s), _) => s,
                (None, Some(0)) => Status::Pass,
                (None, _) => Status::Fail,
            };
            let input = report_cmd::ReportInput {
                kernel: args.kernel,
                arch: args.arch,
                distro: args.distro,
                commit: args.commit,
                status,
                log: args.log,
                stage: args.stage,
                started_at: args.started_at,
                finished_at: args.finished_at,
                run_id: args.run_id,
                name,
                spool: args.spool,
                metadata: args.metadata,
                max_log_bytes: args.max_log_bytes.max(1024),
                attempts: args.attempts,
            };
            finish(report_cmd::report(&conn, input).await)
        }
    }
}

fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out::line(format_args!("error: {e:#}"));
            ExitCode::FAILURE
        }
    }
}
