//! Server settings, from flags or environment variables (see `trellis serve --help`).

use clap::{Args, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Database: sqlite://PATH?mode=rwc (default) or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://data/trellis.db?mode=rwc"
    )]
    pub database_url: String,
    /// Address to listen on.
    #[arg(long, env = "TRELLIS_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Folder with the built site: pkg/ (island bundle, CSS) and public files.
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "TRELLIS_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Logs longer than this keep their first and last halves, with a marker of the cut.
    #[arg(long, env = "TRELLIS_MAX_LOG_BYTES", default_value_t = 2 * 1024 * 1024)]
    pub max_log_bytes: usize,
    /// Commit columns per grid page.
    #[arg(long, env = "TRELLIS_GRID_COMMITS", default_value_t = 50)]
    pub grid_commits: u32,
    /// A write running longer than this many seconds makes `/api/v1/health` answer 503.
    #[arg(long, env = "TRELLIS_WRITER_STALL_SECS", default_value_t = 30)]
    pub writer_stall_secs: u64,
    /// Seed the labelled demo project, unless the database has it already.
    #[arg(long, env = "TRELLIS_DEMO")]
    pub demo: bool,
    /// Seconds a client has to send a whole request head, counted from the connection's start
    /// or from the head's first byte on a kept-alive connection.
    #[arg(long, env = "TRELLIS_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub header_timeout_secs: u64,
    /// Longest pause, in seconds, while a request body is being received.
    #[arg(long, env = "TRELLIS_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub body_timeout_secs: u64,
    /// Seconds a kept-alive connection may wait for its next request before it is closed.
    #[arg(long, env = "TRELLIS_IDLE_TIMEOUT_SECS", default_value_t = 30)]
    pub idle_timeout_secs: u64,
    /// Most connections open at once (lowered to fit the open-file limit); more wait to be accepted.
    #[arg(long, env = "TRELLIS_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Logs of passing and skipped reports are replaced by a note this many days after the
    /// report finished; failing and error logs are kept. 0 keeps every log.
    #[arg(long, env = "TRELLIS_KEEP_PASSING_LOGS_DAYS", default_value_t = 30)]
    pub keep_passing_logs_days: u32,
    /// This Trellis as the world reaches it (`https://ci.example.org`), for links in mails,
    /// feeds and webhooks. Defaults to `http://` plus the listening address.
    #[arg(long, env = "TRELLIS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// SMTP relay for breakage mails. Without one, mails wait in the outbox.
    #[arg(long, env = "TRELLIS_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port; defaults to 465 with `tls`, 587 with `starttls`, 25 with `none`.
    #[arg(long, env = "TRELLIS_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// How the SMTP connection is encrypted.
    #[arg(long, env = "TRELLIS_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub smtp_tls: SmtpTls,
    /// SMTP user name, if the relay wants one (with `TRELLIS_SMTP_PASSWORD`).
    #[arg(long, env = "TRELLIS_SMTP_USER")]
    pub smtp_user: Option<String>,
    #[arg(long, env = "TRELLIS_SMTP_PASSWORD", hide_env_values = true)]
    pub smtp_password: Option<String>,
    /// Sender of breakage mails: `Trellis <trellis@example.org>`.
    #[arg(
        long,
        env = "TRELLIS_MAIL_FROM",
        default_value = "Trellis <trellis@localhost>"
    )]
    pub mail_from: String,
    /// Seconds an `opened` mail or webhook waits, so that a burst of failing reports becomes
    /// one message naming every kernel.
    #[arg(long, env = "TRELLIS_MAIL_SETTLE_SECS", default_value_t = 15 * 60)]
    pub mail_settle_secs: u64,
    /// Seconds before the first retry of a failed mail or webhook; each retry waits twice as
    /// long, up to an hour.
    #[arg(long, env = "TRELLIS_OUTBOX_RETRY_SECS", default_value_t = 30)]
    pub outbox_retry_secs: u64,
    /// Most subscribe-form requests one client address may make per hour.
    #[arg(long, env = "TRELLIS_SUBSCRIBE_PER_HOUR", default_value_t = 10)]
    pub subscribe_per_hour: u32,
    /// Token of the administration API (`/api/v1/admin/...`): projects and kernel sources.
    /// Without one, only the command line administers.
    #[arg(long, env = "TRELLIS_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Seconds a leased job is a runner's; a heartbeat extends it, and it is then offered again.
    #[arg(long, env = "TRELLIS_LEASE_SECS", default_value_t = 600)]
    pub lease_secs: u64,
    /// Seconds between polls of each kernel source (dnf/yum repository); 0 turns polling off.
    #[arg(long, env = "TRELLIS_DISCOVERY_INTERVAL_SECS", default_value_t = 3600)]
    pub discovery_interval_secs: u64,
    /// A runner silent this many seconds is stale on the coverage page.
    #[arg(long, env = "TRELLIS_RUNNER_STALE_SECS", default_value_t = 6 * 3600)]
    pub runner_stale_secs: u64,
    /// Percent of a stream's kernels tested at the head commit below which, after a lease's
    /// time to catch up, coverage is unhealthy.
    #[arg(long, env = "TRELLIS_COVERAGE_THRESHOLD", default_value_t = 90)]
    pub coverage_threshold: u8,
    /// Seconds between checks of every project's CI health (stale runners, failing sources, low
    /// head coverage), which raise and clear health events.
    #[arg(long, env = "TRELLIS_HEALTH_CHECK_SECS", default_value_t = 60)]
    pub health_check_secs: u64,
}

/// How Trellis talks to its SMTP relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Plain SMTP: only for a relay on the same host or network.
    None,
    /// SMTP upgraded with STARTTLS (submission, port 587); the upgrade is required.
    Starttls,
    /// TLS from the first byte (submissions, port 465).
    Tls,
}

impl Config {
    /// The public base URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.addr),
        }
    }

    /// What makes a runner stale and head coverage low.
    pub fn health_thresholds(&self) -> trellis_domain::coverage::Thresholds {
        trellis_domain::coverage::Thresholds {
            runner_stale_ms: self.runner_stale_secs as i64 * 1000,
            coverage: i64::from(self.coverage_threshold),
            // A new kernel or commit has twice a lease's time to get its results.
            grace_ms: 2 * self.lease_secs as i64 * 1000,
        }
    }

    pub fn smtp_port(&self) -> u16 {
        self.smtp_port.unwrap_or(match self.smtp_tls {
            SmtpTls::Tls => 465,
            SmtpTls::Starttls => 587,
            SmtpTls::None => 25,
        })
    }

    /// Settings for tests: a given database, every other setting as `trellis serve` defaults
    /// it. Read by the binary's own parser, so the two cannot drift apart.
    pub fn for_database(database_url: &str) -> Config {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            config: Config,
        }
        let args = [
            "trellis",
            "--database-url",
            database_url,
            "--addr",
            "127.0.0.1:0",
        ];
        <Serve as clap::Parser>::try_parse_from(args)
            .expect("the defaults parse")
            .config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_settings_are_the_served_defaults() {
        let c = Config::for_database("sqlite://x.db");
        assert_eq!(c.database_url, "sqlite://x.db");
        assert_eq!((c.grid_commits, c.max_connections), (50, 4096));
        assert_eq!(c.addr.port(), 0);
    }
}
