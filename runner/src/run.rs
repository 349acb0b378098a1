//! The `run` loop: fetch and push history, announce kernels and lease jobs, run them up to the
//! configured parallelism, and stop cleanly on Ctrl-C / SIGTERM.

use crate::api::{Api, ApiError, Offer};
use crate::config::Config;
use crate::git::Repo;
use crate::history::{self, State};
use crate::job::{self, Ctx, ABORT_LEVEL};
use crate::kernels::{self, KernelTree};
use crate::out;
use crate::report;
use crate::report::KernelRef;
use crate::spool::Spool;
use anyhow::{bail, Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub struct Options {
    pub once: bool,
    pub dry_run: bool,
    /// Overrides the server's poll_after_seconds.
    pub poll_interval: Option<Duration>,
}

/// Kernel trees from the configured globs, then the ones the runner provisioned.
fn discover(cfg: &Config) -> Vec<KernelTree> {
    let mut trees = kernels::discover(&cfg.trees);
    for t in kernels::provisioned(&cfg.spool_dir.join("kernels")) {
        if !trees.iter().any(|k| k.uname == t.uname) {
            trees.push(t);
        }
    }
    trees
}

fn offer(cfg: &Config, trees: &[KernelTree]) -> Offer {
    match &cfg.streams {
        Some(streams) => Offer::Streams {
            streams: streams.clone(),
            arch: cfg.arch.clone(),
        },
        None => Offer::Kernels(
            trees
                .iter()
                // A kernel the host has, announced in the lease call; the host's arch goes along
                // for trees whose uname does not end with one (Debian's `6.1.0-26-amd64`).
                .map(|t| KernelRef {
                    version: t.uname.clone(),
                    arch: crate::kernels::arch_of(&t.uname)
                        .is_none()
                        .then(|| crate::kernels::host_arch().to_string()),
                    distro: cfg.distro.clone(),
                })
                .collect(),
        ),
    }
}

/// Holds the spool dir for one runner process: two sharing it would send each other's reports
/// and fight over the repository.
fn lock_spool(dir: &Path) -> Result<Flock<std::fs::File>> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| {
        anyhow::anyhow!(
            "{}: another trellis-runner uses this spool dir ({e})",
            path.display()
        )
    })
}

/// Counts Ctrl-C / SIGTERM: 1 stops leasing, 2 aborts running jobs.
fn watch_signals() -> Result<watch::Receiver<u8>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let (tx, rx) = watch::channel(0u8);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            let level = tx.borrow().saturating_add(1);
            match level {
                1 => out::line(
                    "stopping: no new leases; running jobs finish and report \
                     (signal again to abort them)",
                ),
                ABORT_LEVEL => {
                    out::line("aborting: killing running builds and releasing their leases")
                }
                _ => {}
            }
            if tx.send(level).is_err() {
                return;
            }
        }
    });
    Ok(rx)
}

/// Pushes what the server has not been sent; keeps the state only once pushed.
async fn push_history(api: &Api, repo: &Repo, cfg: &Config, state: &mut Option<State>) {
    let result = async {
        let branch = repo.branch(cfg.branch.as_deref()).await?;
        let pending = history::pending(repo, &branch, state.as_ref()).await?;
        if !pending.commits.is_empty() {
            let new = history::push(api, &pending.commits).await?;
            out::line(format_args!(
                "pushed {} commit(s) of {branch}, {new} new to the server",
                pending.commits.len()
            ));
        }
        pending.after.save(&cfg.spool_dir)?;
        *state = Some(pending.after);
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        out::line(format_args!("history not pushed (will retry): {e:#}"));
    }
}

/// Removes what an earlier run left behind when it was killed: worktrees and partial trees.
async fn clean_leftovers(spool: &Path, repo: &Repo) {
    let work = spool.join("work");
    if work.exists() {
        let _ = std::fs::remove_dir_all(&work);
    }
    if let Ok(entries) = std::fs::read_dir(spool.join("kernels")) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(".partial-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    if let Err(e) = repo.prune_worktrees().await {
        out::debug(format_args!("git worktree prune: {e:#}"));
    }
}

pub async fn run(cfg: Config, opts: Options) -> Result<()> {
    std::fs::create_dir_all(&cfg.spool_dir)
        .with_context(|| format!("cannot create spool dir {}", cfg.spool_dir.display()))?;
    let _lock = lock_spool(&cfg.spool_dir)?;
    let shutdown = watch_signals()?;
    let repo_dir = cfg.spool_dir.join("repo");
    if !repo_dir.exists() {
        out::line(format_args!(
            "cloning {} into {}",
            cfg.git,
            repo_dir.display()
        ));
    }
    let repo = Repo::open_or_clone(&repo_dir, &cfg.git).await?;
    clean_leftovers(&cfg.spool_dir, &repo).await;
    // The clone at hand is still worth building from when the remote is down.
    if let Err(e) = repo.fetch().await {
        out::line(format_args!(
            "fetch failed, using the commits at hand: {e:#}"
        ));
    }
    let trees = discover(&cfg);

    if opts.dry_run {
        return dry_run(&cfg, &repo, &trees).await;
    }

    let api = Api::new(&cfg.conn)?;
    let spool = Spool::open(&cfg.spool_dir)?;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let compiler = report::compiler_version(&cfg.compiler).await;
    if compiler.is_none() {
        out::line(format_args!(
            "cannot tell the compiler's version ({} --version failed)",
            std::env::var("CC").unwrap_or_else(|_| cfg.compiler.clone())
        ));
    }
    out::line(format_args!(
        "runner {} for project {} at {}: {} kernel tree(s), {} parallel job(s)",
        cfg.name,
        cfg.conn.project,
        cfg.conn.server,
        trees.len(),
        cfg.parallel
    ));
    let ctx = Arc::new(Ctx {
        make_jobs: (cpus / cfg.parallel).max(1),
        api,
        spool,
        repo,
        compiler,
        shutdown: shutdown.clone(),
        cfg,
    });

    ctx.spool.resend(&ctx.api).await;
    // At start everything is pushed: the server may have lost what an earlier run sent.
    let mut state = None;
    push_history(&ctx.api, &ctx.repo, &ctx.cfg, &mut state).await;

    let result = lease_loop(&ctx, &opts, shutdown, state).await;
    if result.is_ok() {
        // Reports that could not be delivered get one more try before exit.
        let left = ctx.spool.resend(&ctx.api).await;
        if left > 0 {
            out::line(format_args!(
                "{left} report(s) stay in {} for the next run",
                ctx.cfg.spool_dir.join("outbox").display()
            ));
        }
    }
    result
}

async fn lease_loop(
    ctx: &Arc<Ctx>,
    opts: &Options,
    mut shutdown: watch::Receiver<u8>,
    mut state: Option<State>,
) -> Result<()> {
    let cfg = &ctx.cfg;
    let mut running: JoinSet<()> = JoinSet::new();
    let mut first = true;
    let mut failure = None;
    loop {
        if *shutdown.borrow() > 0 {
            break;
        }
        let free = cfg.parallel - running.len();
        let mut wait = None; // how long to wait for work when the server has none
        if free > 0 {
            // One pass under --once: the history was fetched and pushed at start.
            if !first && !opts.once {
                match ctx.repo.fetch().await {
                    Ok(()) => push_history(&ctx.api, &ctx.repo, cfg, &mut state).await,
                    Err(e) => out::line(format_args!("fetch failed (will retry): {e:#}")),
                }
                ctx.spool.resend(&ctx.api).await;
            }
            first = false;
            let trees = discover(cfg);
            match ctx.api.lease(&offer(cfg, &trees), free).await {
                Ok(answer) => {
                    let got = answer.jobs.len();
                    if got == 0 {
                        out::debug("no jobs");
                    }
                    for lease in answer.jobs {
                        running.spawn(job::run(
                            ctx.clone(),
                            lease,
                            trees.clone(),
                            answer.lease_seconds,
                        ));
                    }
                    if got < free {
                        if opts.once {
                            out::line("no more jobs: finishing (--once)");
                            break;
                        }
                        wait = Some(
                            opts.poll_interval
                                .unwrap_or(Duration::from_secs(answer.poll_after_seconds.max(1))),
                        );
                    }
                }
                Err(ApiError::Transient {
                    reason,
                    retry_after,
                }) => {
                    out::line(format_args!("lease failed (will retry): {reason}"));
                    if opts.once {
                        failure = Some(format!("lease failed: {reason}"));
                        break;
                    }
                    wait = Some(
                        retry_after
                            .or(opts.poll_interval)
                            .unwrap_or(Duration::from_secs(30)),
                    );
                }
                Err(e @ ApiError::Permanent { .. }) => {
                    out::line(format_args!("lease refused: {e}; stopping"));
                    failure = Some(format!("lease refused: {e}"));
                    break;
                }
            }
        }
        tokio::select! {
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Err(e) = done {
                    out::line(format_args!("a job failed: {e}"));
                }
            }
            _ = tokio::time::sleep(wait.unwrap_or_default()), if wait.is_some() => {}
            _ = shutdown.changed() => {}
        }
    }
    if !running.is_empty() {
        out::line(format_args!("waiting for {} running job(s)", running.len()));
    }
    while let Some(done) = running.join_next().await {
        if let Err(e) = done {
            out::line(format_args!("a job failed: {e}"));
        }
    }
    match failure {
        Some(f) => bail!(f),
        None => Ok(()),
    }
}

async fn dry_run(cfg: &Config, repo: &Repo, trees: &[KernelTree]) -> Result<()> {
    match offer(cfg, trees) {
        Offer::Kernels(_) => println!(
            "would announce {} kernel tree(s) for project {} to {}:",
            trees.len(),
            cfg.conn.project,
            cfg.conn.server
        ),
        Offer::Streams { streams, arch } => println!(
            "would ask {} for jobs of project {} on any kernel of stream(s) {}{}, provisioning \
             the trees it lacks; trees at hand:",
            cfg.conn.server,
            cfg.conn.project,
            streams.join(", "),
            arch.map(|a| format!(" ({a})")).unwrap_or_default()
        ),
    }
    for t in trees {
        println!("  {}  ({})", t.uname, t.dir.display());
    }
    let branch = repo.branch(cfg.branch.as_deref()).await?;
    let all = history::pending(repo, &branch, None).await?;
    let before = State::load(&cfg.spool_dir);
    let since = history::pending(repo, &branch, before.as_ref()).await?;
    let head = all.after.head.as_deref().unwrap_or("?");
    println!(
        "would push {} commit(s) of branch {branch} (head {}), {} of them new since the last push",
        all.commits.len(),
        &head[..head.len().min(12)],
        since.commits.len()
    );
    for c in since.commits.iter().take(20) {
        println!("  {} {}", &c.sha[..12], c.subject);
    }
    Ok(())
}
