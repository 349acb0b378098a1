//! Runs a shell command as a job step: in its own process group, stdout and stderr merged into
//! a bounded log, and on timeout or abort the whole group is stopped (SIGTERM, then SIGKILL).

use crate::boundedlog::BoundedLog;
use crate::config::show_duration;
use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// How long a stopped group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Exited(i32),
    /// Killed by a signal that the runner did not send.
    Signaled(i32),
    TimedOut,
    /// Stopped because the runner was told to abort.
    Aborted,
}

/// Why the runner is stopping a job's process group.
#[derive(Clone, Copy)]
enum Stop {
    /// The shell exited but processes it started still hold the output.
    Leftovers,
    TimedOut,
    Aborted,
}

/// The abort signal: the job stops once the value reaches `abort_at`.
pub struct Abort {
    pub rx: watch::Receiver<u8>,
    pub at: u8,
}

impl Abort {
    fn requested(&self) -> bool {
        *self.rx.borrow() >= self.at
    }
}

/// Runs `sh -c command` in `cwd` and waits for it and every process it started.
pub async fn run_shell(
    command: &str,
    cwd: &Path,
    timeout: Duration,
    grace: Duration,
    log: &mut BoundedLog,
    abort: &mut Abort,
) -> std::io::Result<Ending> {
    // Orphaned grandchildren are re-parented to the runner, so it can reap them once they are
    // killed: under an init that does not reap (a container), they would otherwise linger as
    // zombies.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    if abort.requested() {
        log.note("aborted by the runner before it started");
        return Ok(Ending::Aborted);
    }
    let (tx, mut rx) = tokio::net::unix::pipe::pipe()?;
    let out = tx.into_blocking_fd()?;
    let err = out.try_clone()?;
    let mut child = {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .process_group(0);
        cmd.spawn()?
        // The command, holding the parent's copies of the pipe's write end, is dropped here,
        // so the pipe ends when the last process of the job closes it.
    };
    // The leader's pid names the group; killpg(0) would hit the runner's own group.
    let pid = child
        .id()
        .ok_or_else(|| std::io::Error::other("the shell exited before it was watched"))?;
    let pgid = Pid::from_raw(pid as i32);

    let deadline = Instant::now() + timeout;
    let mut stopping: Option<(Stop, Instant)> = None; // why, and when SIGKILL is due
    let mut killed_at: Option<Instant> = None;
    let mut status = None;
    let mut eof = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if eof && status.is_some() {
            break;
        }
        // A process that left the group (setsid) can keep the pipe open: stop reading soon
        // after the SIGKILL rather than wait for it.
        if killed_at.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) && status.is_some() {
            break;
        }
        let wake = match (stopping, killed_at) {
            (_, Some(t)) if t.elapsed() < Duration::from_secs(2) => t + Duration::from_secs(2),
            // Killed: only the leader's exit is awaited now.
            (_, Some(_)) => Instant::now() + Duration::from_secs(3600),
            (Some((_, kill_at)), None) => kill_at,
            (None, None) => deadline,
        };
        tokio::select! {
            read = rx.read(&mut buf), if !eof => match read {
                Ok(0) | Err(_) => eof = true,
                Ok(n) => log.push(&buf[..n]),
            },
            s = child.wait(), if status.is_none() => {
                status = Some(s?);
                // The leader is gone; leftovers that still hold the output are stopped too.
                if !eof && stopping.is_none() {
                    stopping = Some((Stop::Leftovers, Instant::now() + grace));
                    let _ = killpg(pgid, Signal::SIGTERM);
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {
                match stopping {
                    None => {
                        stopping = Some((Stop::TimedOut, Instant::now() + grace));
                        let _ = killpg(pgid, Signal::SIGTERM);
                    }
                    Some(_) if killed_at.is_none() => {
                        killed_at = Some(Instant::now());
                        let _ = killpg(pgid, Signal::SIGKILL);
                    }
                    Some(_) => {}
                }
            }
            changed = abort.rx.changed(), if stopping.is_none() => {
                if changed.is_err() || abort.requested() {
                    stopping = Some((Stop::Aborted, Instant::now() + grace));
                    let _ = killpg(pgid, Signal::SIGTERM);
                }
            }
        }
    }
    // Nothing of the job may outlive it, even what closed its output.
    let _ = killpg(pgid, Signal::SIGKILL);
    reap_group(pgid).await;

    let status = match status {
        Some(s) => s,
        None => child.wait().await?,
    };
    let ending = match stopping {
        Some((Stop::TimedOut, _)) => Ending::TimedOut,
        Some((Stop::Aborted, _)) => Ending::Aborted,
        _ => {
            use std::os::unix::process::ExitStatusExt;
            match (status.code(), status.signal()) {
                (Some(code), _) => Ending::Exited(code),
                (None, Some(sig)) => Ending::Signaled(sig),
                (None, None) => Ending::Signaled(0),
            }
        }
    };
    match ending {
        Ending::TimedOut => log.note(&format!(
            "timed out after {}: stopped the whole process group (SIGTERM, then SIGKILL after {})",
            show_duration(timeout),
            show_duration(grace)
        )),
        Ending::Aborted => log.note("aborted by the runner: stopped the whole process group"),
        Ending::Signaled(sig) => log.note(&format!("killed by signal {sig}")),
        Ending::Exited(code) => log.note(&format!("exit status {code}")),
    }
    Ok(ending)
}

/// Reaps the group's processes that were re-parented to the runner, waiting briefly for the
/// killed ones to die.
async fn reap_group(pgid: Pid) {
    let until = Instant::now() + Duration::from_secs(3);
    loop {
        match waitpid(Pid::from_raw(-pgid.as_raw()), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::signal::kill;

    fn no_abort() -> (watch::Sender<u8>, Abort) {
        let (tx, rx) = watch::channel(0);
        (tx, Abort { rx, at: 2 })
    }

    #[tokio::test]
    async fn exit_status_and_merged_output() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, mut abort) = no_abort();
        let mut log = BoundedLog::new(1 << 20);
        let end = run_shell(
            "pwd; echo out; echo err >&2; exit 3",
            dir.path(),
            Duration::from_secs(10),
            KILL_GRACE,
            &mut log,
            &mut abort,
        )
        .await
        .unwrap();
        assert_eq!(end, Ending::Exited(3));
        let text = log.finish();
        let cwd = dir.path().canonicalize().unwrap();
        assert!(text.starts_with(&format!("{}\n", cwd.display())), "{text}");
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
        assert!(text.ends_with("[trellis-runner] exit status 3\n"), "{text}");
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let (_tx, mut abort) = no_abort();
        let mut log = BoundedLog::new(1 << 20);
        let started = Instant::now();
        let end = run_shell(
            &format!("sleep 100 & echo $! > {}; sleep 100", pidfile.display()),
            dir.path(),
            Duration::from_secs(1),
            Duration::from_secs(2),
            &mut log,
            &mut abort,
        )
        .await
        .unwrap();
        assert_eq!(end, Ending::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH));
        let text = log.finish();
        assert!(
            text.contains("[trellis-runner] timed out after 1s"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn processes_left_behind_by_a_finished_shell_are_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("left.pid");
        let (_tx, mut abort) = no_abort();
        let mut log = BoundedLog::new(1 << 20);
        let started = Instant::now();
        let end = run_shell(
            &format!("sleep 100 & echo $! > {}; echo done", pidfile.display()),
            dir.path(),
            Duration::from_secs(60),
            KILL_GRACE,
            &mut log,
            &mut abort,
        )
        .await
        .unwrap();
        assert_eq!(end, Ending::Exited(0));
        assert!(started.elapsed() < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH));
        assert!(log.finish().contains("done\n"));
    }

    #[tokio::test]
    async fn a_term_ignoring_group_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let (_tx, mut abort) = no_abort();
        let mut log = BoundedLog::new(1 << 20);
        let started = Instant::now();
        let end = run_shell(
            "trap '' TERM; sh -c \"trap '' TERM; sleep 100\" & sleep 100",
            dir.path(),
            Duration::from_millis(300),
            Duration::from_millis(500),
            &mut log,
            &mut abort,
        )
        .await
        .unwrap();
        assert_eq!(end, Ending::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(8));
    }

    #[tokio::test]
    async fn abort_stops_the_job() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, mut abort) = no_abort();
        let mut log = BoundedLog::new(1 << 20);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(1).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(2).unwrap();
            tx
        });
        let end = run_shell(
            "sleep 100",
            dir.path(),
            Duration::from_secs(60),
            KILL_GRACE,
            &mut log,
            &mut abort,
        )
        .await
        .unwrap();
        assert_eq!(end, Ending::Aborted);
        drop(stopper.await.unwrap());
    }
}
