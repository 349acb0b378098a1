//! One leased job from start to report: find (or provision) the kernel tree, check the commit
//! out into a throwaway worktree, build, and post the result, heartbeating the lease meanwhile.

use crate::api::{Api, Beat, Lease};
use crate::boundedlog::BoundedLog;
use crate::config::{show_duration, Config};
use crate::exec::{self, Abort, Ending, KILL_GRACE};
use crate::git::Repo;
use crate::kernels::{self, KernelTree};
use crate::out;
use crate::report::{self, CommitRef, KernelRef, Report, Stage, Status};
use crate::spool::{self, Delivery, Spool};
use crate::template;
use chrono::Utc;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The shutdown level at which running jobs are aborted (the second Ctrl-C).
pub const ABORT_LEVEL: u8 = 2;

/// What every job shares.
pub struct Ctx {
    pub cfg: Config,
    pub api: Api,
    pub spool: Spool,
    pub repo: Repo,
    pub compiler: Option<String>,
    /// The `{jobs}` value: the host's CPUs shared among the parallel jobs.
    pub make_jobs: usize,
    pub shutdown: watch::Receiver<u8>,
}

impl Ctx {
    pub fn work_dir(&self) -> PathBuf {
        self.cfg.spool_dir.join("work")
    }

    pub fn kernel_cache(&self) -> PathBuf {
        self.cfg.spool_dir.join("kernels")
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

fn secs(d: Duration) -> Option<f64> {
    Some((d.as_secs_f64() * 10.0).round() / 10.0)
}

/// Runs a leased job and posts its report; an aborted job releases its lease instead.
pub async fn run(ctx: Arc<Ctx>, lease: Lease, trees: Vec<KernelTree>, lease_seconds: u64) {
    let uname = lease.kernel.uname.clone();
    let sha = lease.commit.sha.clone();
    let what = format!("{uname} @ {}", short(&sha));
    out::line(format_args!("leased {what} ({})", lease.reason));

    let heartbeat = tokio::spawn(heartbeat(ctx.api.clone(), lease.lease_id, lease_seconds));
    let run_id = report::run_id(&ctx.cfg.name, &lease.lease_id.to_string());
    let started_at = Utc::now();
    let mut log = BoundedLog::new(ctx.cfg.max_log_bytes);
    let subject = match &lease.commit.subject {
        Some(s) => format!(" {s:?}"),
        None => String::new(),
    };
    log.note(&format!(
        "job {run_id}: kernel {uname}, commit {sha}{subject} ({}), runner {} {}",
        lease.reason,
        ctx.cfg.name,
        env!("CARGO_PKG_VERSION")
    ));
    let mut abort = Abort {
        rx: ctx.shutdown.clone(),
        at: ABORT_LEVEL,
    };
    let mut stages = Vec::new();
    let status = steps(
        &ctx,
        &lease,
        &trees,
        &run_id,
        &mut log,
        &mut stages,
        &mut abort,
    )
    .await;
    heartbeat.abort();

    let Some(status) = status else {
        match ctx.api.release(lease.lease_id).await {
            Ok(()) => out::line(format_args!(
                "aborted {what}: released lease {}",
                lease.lease_id
            )),
            Err(e) => out::line(format_args!(
                "aborted {what}: releasing lease {} failed: {e}",
                lease.lease_id
            )),
        }
        return;
    };

    let mut metadata = report::base_metadata(&ctx.cfg.name);
    if let Some(c) = &ctx.compiler {
        metadata.insert("compiler".into(), c.clone());
    }
    let devel = lease
        .kernel
        .package_url
        .as_deref()
        .and_then(|u| u.rsplit('/').next())
        .map(|f| f.trim_end_matches(".rpm").to_string())
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| uname.clone());
    metadata.insert("kernel-devel".into(), crate::api::clip(&devel, 1024));
    let report = Report {
        project: ctx.cfg.conn.project.clone(),
        kernel: KernelRef {
            // The arch goes along only when the uname does not end with one (the server wants
            // them equal otherwise); the stream keeps the report on the leased row.
            arch: lease
                .kernel
                .arch
                .clone()
                .filter(|_| kernels::arch_of(&uname).is_none()),
            distro: lease.kernel.stream.clone().filter(|s| !s.is_empty()),
            version: uname,
        },
        commit: CommitRef { sha },
        status,
        stages,
        started_at: report::rfc3339(started_at),
        finished_at: report::rfc3339(Utc::now()),
        log: log.finish(),
        run_id: run_id.clone(),
        metadata,
    };
    post(&ctx.api, &ctx.spool, &report).await;
}

/// Sends a report through the spool and says how it went.
pub async fn post(api: &Api, spool: &Spool, report: &Report) {
    let body = match serde_json::to_vec(report) {
        Ok(b) => b,
        Err(e) => {
            out::line(format_args!("cannot encode report {}: {e}", report.run_id));
            return;
        }
    };
    match spool::deliver(api, Some(spool), &report.run_id, &body).await {
        Ok(Delivery::Posted(p)) => {
            out::line(format_args!("posted report {}", spool::describe_posted(&p)))
        }
        Ok(Delivery::Kept(reason)) => out::line(format_args!(
            "report {} spooled, will be re-sent: {reason}",
            report.run_id
        )),
        Ok(Delivery::Rejected { .. }) => {}
        Err(e) => out::line(format_args!("report {}: {e:#}", report.run_id)),
    }
}

/// Keeps the lease alive every lease_seconds/3. A lost lease is only told: the job goes on
/// and its report is still posted.
async fn heartbeat(api: Api, lease_id: i64, lease_seconds: u64) {
    let every = Duration::from_secs((lease_seconds / 3).max(1));
    loop {
        tokio::time::sleep(every).await;
        match api.heartbeat(lease_id).await {
            Ok(Beat::Extended) => out::debug(format_args!("heartbeat for lease {lease_id}")),
            Ok(Beat::Lost) => {
                out::line(format_args!(
                    "lease {lease_id} was lost (the server gave it up); finishing the job anyway"
                ));
                return;
            }
            Err(e) => out::line(format_args!("heartbeat for lease {lease_id} failed: {e}")),
        }
    }
}

/// The job's steps; None when it was aborted.
async fn steps(
    ctx: &Ctx,
    lease: &Lease,
    trees: &[KernelTree],
    run_id: &str,
    log: &mut BoundedLog,
    stages: &mut Vec<Stage>,
    abort: &mut Abort,
) -> Option<Status> {
    let uname = &lease.kernel.uname;
    let version = lease
        .kernel
        .version_release
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| kernels::version_release(uname));

    let tree = match trees.iter().find(|t| kernels::names(&t.uname, uname)) {
        Some(t) => t.clone(),
        None => match &ctx.cfg.provision {
            None => {
                log.note(&format!(
                    "no kernel tree for {uname} on this host (looked in {}) and no [kernels] \
                     provision command is configured",
                    ctx.cfg.trees.join(", ")
                ));
                out::line(format_args!("no tree for {uname}: reporting error"));
                return Some(Status::Error);
            }
            Some(cmd) => {
                match provision(ctx, lease, cmd, &version, run_id, log, stages, abort).await? {
                    Some(t) => t,
                    None => return Some(Status::Error),
                }
            }
        },
    };

    let work = ctx.work_dir().join(run_id);
    let src = work.join("src");
    let t = Instant::now();
    let checkout = ctx.repo.add_worktree(&src, &lease.commit.sha).await;
    let status = match checkout {
        Err(e) => {
            log.note(&format!("checkout of {} failed: {e:#}", lease.commit.sha));
            stages.push(Stage {
                name: "checkout".into(),
                status: Status::Error,
                duration_s: secs(t.elapsed()),
            });
            let why = format!("{e:#}");
            out::line(format_args!(
                "checkout of {} failed: {}",
                short(&lease.commit.sha),
                why.lines().next().unwrap_or_default()
            ));
            Some(Status::Error)
        }
        Ok(()) => {
            stages.push(Stage {
                name: "checkout".into(),
                status: Status::Pass,
                duration_s: secs(t.elapsed()),
            });
            let status = build(ctx, lease, &tree, &version, &src, log, stages, abort).await;
            if let Err(e) = ctx.repo.remove_worktree(&src).await {
                out::line(format_args!(
                    "cannot remove worktree {}: {e:#}",
                    src.display()
                ));
            }
            status
        }
    };
    let _ = std::fs::remove_dir_all(&work);
    status
}

#[allow(clippy::too_many_arguments)]
async fn build(
    ctx: &Ctx,
    lease: &Lease,
    tree: &KernelTree,
    version: &str,
    src: &Path,
    log: &mut BoundedLog,
    stages: &mut Vec<Stage>,
    abort: &mut Abort,
) -> Option<Status> {
    let jobs = ctx.make_jobs.to_string();
    let kernel_dir = tree.dir.to_string_lossy();
    let src_s = src.to_string_lossy();
    let command = template::expand(
        &ctx.cfg.command,
        &[
            ("kernel_dir", &kernel_dir),
            ("uname", &tree.uname),
            ("src", &src_s),
            ("sha", &lease.commit.sha),
            ("jobs", &jobs),
            ("version", version),
        ],
    );
    log.note(&format!("$ {command}"));
    let what = format!("{} @ {}", tree.uname, short(&lease.commit.sha));
    let bar = out::spinner(format!("building {what}"));
    let t = Instant::now();
    let ending = exec::run_shell(&command, src, ctx.cfg.timeout, KILL_GRACE, log, abort).await;
    out::done(bar);
    let took = t.elapsed();
    let status = match &ending {
        Ok(Ending::Exited(0)) => Status::Pass,
        Ok(Ending::Exited(_) | Ending::Signaled(_)) => Status::Fail,
        Ok(Ending::TimedOut) => Status::Error,
        Ok(Ending::Aborted) => return None,
        Err(e) => {
            log.note(&format!("cannot run the build command: {e}"));
            Status::Error
        }
    };
    stages.push(Stage {
        name: "build".into(),
        status,
        duration_s: secs(took),
    });
    let note = if ending.as_ref().is_ok_and(|e| *e == Ending::TimedOut) {
        format!(" (timed out after {})", show_duration(ctx.cfg.timeout))
    } else {
        String::new()
    };
    out::line(format_args!(
        "{what}: built in {} s: {}{note}",
        took.as_secs(),
        status.as_str()
    ));
    Some(status)
}

/// Fetches a tree the host lacks with the configured command, into a private directory that
/// is renamed into the kernel cache once complete. Outer None: aborted; inner None: failed.
#[allow(clippy::too_many_arguments)]
async fn provision(
    ctx: &Ctx,
    lease: &Lease,
    template_cmd: &str,
    version: &str,
    run_id: &str,
    log: &mut BoundedLog,
    stages: &mut Vec<Stage>,
    abort: &mut Abort,
) -> Option<Option<KernelTree>> {
    let uname = &lease.kernel.uname;
    let cache = ctx.kernel_cache();
    let partial = cache.join(format!(".partial-{run_id}"));
    let done = cache.join(uname);
    let t = Instant::now();
    out::line(format_args!("provisioning kernel tree {uname}"));
    let failed = |log: &mut BoundedLog, stages: &mut Vec<Stage>, why: String| {
        log.note(&format!("provisioning {uname} failed: {why}"));
        out::line(format_args!("provisioning {uname} failed: {why}"));
        stages.push(Stage {
            name: "provision".into(),
            status: Status::Error,
            duration_s: secs(t.elapsed()),
        });
        let _ = std::fs::remove_dir_all(&partial);
        Some(None)
    };
    if let Err(e) = std::fs::create_dir_all(&partial) {
        return failed(
            log,
            stages,
            format!("cannot create {}: {e}", partial.display()),
        );
    }
    let dest = partial.to_string_lossy();
    let command = template::expand(
        template_cmd,
        &[
            ("uname", uname),
            ("version", version),
            ("dest", &dest),
            ("arch", lease.kernel.arch.as_deref().unwrap_or("")),
            (
                "package_url",
                lease.kernel.package_url.as_deref().unwrap_or(""),
            ),
        ],
    );
    log.note(&format!("$ {command}"));
    let bar = out::spinner(format!("provisioning {uname}"));
    let ending = exec::run_shell(&command, &cache, ctx.cfg.timeout, KILL_GRACE, log, abort).await;
    out::done(bar);
    match ending {
        Ok(Ending::Exited(0)) => {}
        Ok(Ending::Aborted) => {
            let _ = std::fs::remove_dir_all(&partial);
            return None;
        }
        Ok(Ending::TimedOut) => {
            return failed(
                log,
                stages,
                format!("timed out after {}", show_duration(ctx.cfg.timeout)),
            )
        }
        Ok(Ending::Exited(code)) => return failed(log, stages, format!("exit status {code}")),
        Ok(Ending::Signaled(sig)) => return failed(log, stages, format!("killed by signal {sig}")),
        Err(e) => return failed(log, stages, format!("cannot run it: {e}")),
    }
    let empty = std::fs::read_dir(&partial).map_or(true, |mut d| d.next().is_none());
    if empty {
        return failed(log, stages, format!("it left {} empty", partial.display()));
    }
    // Another job may have provisioned the same kernel meanwhile: then its tree is used.
    if std::fs::rename(&partial, &done).is_err() && !done.is_dir() {
        return failed(
            log,
            stages,
            format!("cannot move the tree to {}", done.display()),
        );
    }
    let _ = std::fs::remove_dir_all(&partial);
    stages.push(Stage {
        name: "provision".into(),
        status: Status::Pass,
        duration_s: secs(t.elapsed()),
    });
    Some(Some(KernelTree {
        dir: kernels::provisioned_tree(&done, uname),
        uname: uname.clone(),
    }))
}
