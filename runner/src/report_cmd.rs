//! `trellis-runner report`: posts one result from a log file, for CI systems that run the job
//! themselves.

use crate::api::Api;
use crate::boundedlog::BoundedLog;
use crate::config::Connection;
use crate::out;
use crate::report::{self, CommitRef, KernelRef, Report, Stage, Status};
use crate::spool::{self, Delivery, Spool};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

pub struct ReportInput {
    pub kernel: String,
    pub arch: Option<String>,
    pub distro: Option<String>,
    pub commit: String,
    pub status: Status,
    /// A file, or `-` for stdin.
    pub log: PathBuf,
    pub stage: String,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub run_id: Option<String>,
    pub name: String,
    pub spool: Option<PathBuf>,
    pub metadata: Vec<(String, String)>,
    pub max_log_bytes: usize,
    /// Tries before giving up on a server that is down or busy.
    pub attempts: u32,
}

/// The log, bounded as the runner bounds its own.
fn read_log(path: &PathBuf, max: usize) -> Result<String> {
    let mut input: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(path)
                .with_context(|| format!("cannot read log {}", path.display()))?,
        )
    };
    let mut log = BoundedLog::new(max);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        log.push(&buf[..n]);
    }
    Ok(log.finish())
}

/// Builds, spools (when asked) and posts the report; Ok when the server has it or it is
/// safely spooled.
pub async fn report(conn: &Connection, input: ReportInput) -> Result<()> {
    let finished = input.finished_at.unwrap_or_else(Utc::now);
    let started = input.started_at.unwrap_or(finished);
    if started > finished {
        bail!("--started-at is after --finished-at");
    }
    let duration = (finished - started)
        .to_std()
        .ok()
        .filter(|_| input.started_at.is_some());
    let mut metadata: BTreeMap<String, String> = report::base_metadata(&input.name);
    metadata.extend(input.metadata);
    let run_id = input
        .run_id
        .unwrap_or_else(|| report::run_id(&input.name, "report"));
    let body = Report {
        project: conn.project.clone(),
        kernel: KernelRef {
            version: input.kernel,
            arch: input.arch,
            distro: input.distro,
        },
        commit: CommitRef {
            sha: input.commit.to_ascii_lowercase(),
        },
        status: input.status,
        stages: vec![Stage {
            name: input.stage,
            status: input.status,
            duration_s: duration.map(|d| (d.as_secs_f64() * 10.0).round() / 10.0),
        }],
        started_at: report::rfc3339(started),
        finished_at: report::rfc3339(finished),
        log: read_log(&input.log, input.max_log_bytes)?,
        run_id: run_id.clone(),
        metadata,
    };
    let body = serde_json::to_vec(&body)?;

    let api = Api::new(conn)?;
    let spool = match &input.spool {
        Some(dir) => Some(Spool::open(dir)?),
        None => None,
    };
    if let Some(s) = &spool {
        s.resend(&api).await;
    }
    let attempts = input.attempts.max(1);
    for attempt in 1..=attempts {
        match spool::deliver(&api, spool.as_ref(), &run_id, &body).await? {
            Delivery::Posted(p) => {
                out::line(format_args!(
                    "posted report {} (run_id {run_id})",
                    spool::describe_posted(&p)
                ));
                return Ok(());
            }
            Delivery::Rejected { status, message } => {
                bail!("the server refused the report ({status}): {message}")
            }
            Delivery::Kept(reason) if attempt < attempts => {
                out::line(format_args!(
                    "not delivered (attempt {attempt} of {attempts}): {reason}"
                ));
                tokio::time::sleep(Duration::from_secs(2u64.pow(attempt))).await;
            }
            Delivery::Kept(reason) if spool.is_some() => {
                out::line(format_args!(
                    "not delivered: {reason}; spooled as run_id {run_id}, sent again by the next \
                     `report --spool` or `run` with this spool dir"
                ));
                return Ok(());
            }
            Delivery::Kept(reason) => bail!("report not delivered: {reason}"),
        }
    }
    bail!("report not delivered")
}
