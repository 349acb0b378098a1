//! The module's repository: a bare clone in the spool dir, fetched before each lease, read for
//! the commit history, and checked out into throwaway worktrees for builds.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Long enough for a first clone of a big history over a slow link; a hung remote must not
/// stall the runner forever.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const LOCAL_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// One commit as `git log` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    pub sha: String,
    pub parents: Vec<String>,
    pub author: String,
    pub committed_at: String,
    pub subject: String,
}

/// Runs git and answers its stdout; a failure carries git's stderr.
async fn git(dir: Option<&Path>, args: &[&str], limit: Duration) -> Result<String> {
    let mut cmd = tokio::process::Command::new("git");
    // A detached automatic gc would outlive the command and, the runner being a subreaper
    // (see exec), end as a zombie of the runner's.
    cmd.args([
        "-c",
        "gc.autoDetach=false",
        "-c",
        "maintenance.autoDetach=false",
    ]);
    if let Some(d) = dir {
        cmd.arg("-C").arg(d);
    }
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let what = format!("git {}", args.join(" "));
    crate::out::debug(&what);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("{what}: no answer within {}s", limit.as_secs()))?
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[derive(Clone)]
pub struct Repo {
    pub dir: PathBuf,
    /// Worktree changes one at a time: git's `worktree add` and `prune` race on its records
    /// when parallel jobs run them together.
    worktrees: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Repo {
    /// The bare clone at `dir`, cloned from `url` when it is not there yet; its origin is set
    /// to `url` so a changed configuration takes effect.
    pub async fn open_or_clone(dir: &Path, url: &str) -> Result<Repo> {
        if !dir.join("HEAD").exists() {
            // Cloned beside and renamed, so an interrupted clone is never taken for a repo.
            let tmp = dir.with_extension("cloning");
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp)
                    .with_context(|| format!("cannot remove {}", tmp.display()))?;
            }
            let tmp_s = tmp.to_string_lossy().into_owned();
            git(
                None,
                &["clone", "--bare", "--quiet", "--", url, &tmp_s],
                NETWORK_TIMEOUT,
            )
            .await?;
            std::fs::rename(&tmp, dir)
                .with_context(|| format!("cannot move the clone to {}", dir.display()))?;
        }
        let repo = Repo {
            dir: dir.to_path_buf(),
            worktrees: Default::default(),
        };
        repo.run(&["remote", "set-url", "origin", url]).await?;
        Ok(repo)
    }

    async fn run(&self, args: &[&str]) -> Result<String> {
        git(Some(&self.dir), args, LOCAL_TIMEOUT).await
    }

    /// Brings branches and tags up to date with the remote.
    pub async fn fetch(&self) -> Result<()> {
        git(
            Some(&self.dir),
            &[
                "fetch",
                "--quiet",
                "--prune",
                "--tags",
                "--update-head-ok",
                "origin",
                "+refs/heads/*:refs/heads/*",
            ],
            NETWORK_TIMEOUT,
        )
        .await
        .map(drop)
    }

    /// The configured branch, or the remote's default branch as it was when cloned.
    pub async fn branch(&self, configured: Option<&str>) -> Result<String> {
        match configured {
            Some(b) => Ok(b.to_string()),
            None => Ok(self
                .run(&["symbolic-ref", "--short", "HEAD"])
                .await
                .context("cannot tell the remote's default branch: set module.branch")?
                .trim()
                .to_string()),
        }
    }

    /// The commit sha `rev` names.
    pub async fn resolve(&self, rev: &str) -> Result<String> {
        let spec = format!("{rev}^{{commit}}");
        Ok(self
            .run(&["rev-parse", "--verify", "--quiet", &spec])
            .await
            .with_context(|| format!("{rev} is not a commit in {}", self.dir.display()))?
            .trim()
            .to_string())
    }

    /// Commits reachable from `tip` but not from `exclude`, newest first.
    pub async fn commits(&self, tip: &str, exclude: Option<&str>) -> Result<Vec<CommitInfo>> {
        let range = match exclude {
            Some(old) => format!("{old}..{tip}"),
            None => tip.to_string(),
        };
        self.log(&[&range]).await
    }

    /// The one commit `sha`.
    pub async fn commit(&self, sha: &str) -> Result<CommitInfo> {
        self.log(&["-1", sha])
            .await?
            .pop()
            .with_context(|| format!("no commit {sha}"))
    }

    async fn log(&self, revs: &[&str]) -> Result<Vec<CommitInfo>> {
        let mut args = vec!["log", "--format=%H%x00%P%x00%an%x00%cI%x00%s"];
        args.extend_from_slice(revs);
        args.push("--");
        let text = self.run(&args).await?;
        text.lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let f: Vec<&str> = line.split('\0').collect();
                let [sha, parents, author, at, subject] = f[..] else {
                    bail!("unexpected git log line {line:?}");
                };
                Ok(CommitInfo {
                    sha: sha.to_string(),
                    parents: parents.split_whitespace().map(str::to_string).collect(),
                    author: author.to_string(),
                    committed_at: at.to_string(),
                    subject: subject.to_string(),
                })
            })
            .collect()
    }

    /// Every tag reachable from `tip` and the commit it points at (annotated tags peeled).
    pub async fn tags(&self, tip: &str) -> Result<BTreeMap<String, String>> {
        let merged = format!("--merged={tip}");
        let text = self
            .run(&[
                "for-each-ref",
                "--format=%(refname:strip=2)%00%(objectname)%00%(*objectname)%00%(objecttype)%00%(*objecttype)",
                &merged,
                "refs/tags",
            ])
            .await?;
        let mut tags = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split('\0').collect();
            if let [name, obj, peeled, kind, peeled_kind] = f[..] {
                if kind == "commit" {
                    tags.insert(name.to_string(), obj.to_string());
                } else if peeled_kind == "commit" {
                    tags.insert(name.to_string(), peeled.to_string());
                }
            }
        }
        Ok(tags)
    }

    /// Makes sure `sha` is here, fetching it by name when no branch holds it (a server may
    /// lease a commit that another runner pushed).
    pub async fn ensure_commit(&self, sha: &str) -> Result<()> {
        if self.resolve(sha).await.is_ok() {
            return Ok(());
        }
        git(
            Some(&self.dir),
            &["fetch", "--quiet", "origin", sha],
            NETWORK_TIMEOUT,
        )
        .await
        .with_context(|| format!("commit {sha} is not in the module's repository"))?;
        self.resolve(sha).await.map(drop)
    }

    /// Checks `sha` out, detached, into the new directory `path`.
    pub async fn add_worktree(&self, path: &Path, sha: &str) -> Result<()> {
        self.ensure_commit(sha).await?;
        let p = path.to_string_lossy();
        let _one_at_a_time = self.worktrees.lock().await;
        self.run(&["worktree", "add", "--detach", "--force", &p, sha])
            .await
            .map(drop)
    }

    /// Removes a worktree made by `add_worktree`, and git's record of any that vanished.
    pub async fn remove_worktree(&self, path: &Path) -> Result<()> {
        let p = path.to_string_lossy();
        let _one_at_a_time = self.worktrees.lock().await;
        let removed = self.run(&["worktree", "remove", "--force", &p]).await;
        if path.exists() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        self.run(&["worktree", "prune"]).await?;
        removed.map(drop)
    }

    /// Forgets worktrees whose directories are gone.
    pub async fn prune_worktrees(&self) -> Result<()> {
        let _one_at_a_time = self.worktrees.lock().await;
        self.run(&["worktree", "prune"]).await.map(drop)
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A repository with three commits, each writing its number to `file`, and tags on the
    /// first (annotated) and the last (lightweight). Answers the shas, oldest first.
    pub fn three_commits(dir: &Path) -> Vec<String> {
        let sh = |script: &str| {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(script)
                .current_dir(dir)
                .env("GIT_AUTHOR_NAME", "Ada")
                .env("GIT_AUTHOR_EMAIL", "ada@example.org")
                .env("GIT_COMMITTER_NAME", "Ada")
                .env("GIT_COMMITTER_EMAIL", "ada@example.org")
                .output()
                .unwrap();
            assert!(out.status.success(), "{script}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        sh("git init --quiet -b main .");
        for i in 1..=3 {
            sh(&format!(
                "echo {i} > file && git add file && git commit --quiet -m 'commit number {i}'"
            ));
        }
        sh("git tag -a v1 -m v1 HEAD~2 && git tag v3 HEAD");
        sh("git rev-list --reverse HEAD")
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn history_checkout_and_cleanup() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        let shas = three_commits(&origin);

        let repo = Repo::open_or_clone(&tmp.path().join("repo"), origin.to_str().unwrap())
            .await
            .unwrap();
        repo.fetch().await.unwrap();
        let branch = repo.branch(None).await.unwrap();
        assert_eq!(branch, "main");

        let commits = repo.commits(&branch, None).await.unwrap();
        assert_eq!(commits.len(), 3);
        let by_sha = |s: &str| commits.iter().find(|c| c.sha == s).unwrap();
        assert!(by_sha(&shas[0]).parents.is_empty());
        assert_eq!(by_sha(&shas[1]).parents, vec![shas[0].clone()]);
        assert_eq!(by_sha(&shas[2]).parents, vec![shas[1].clone()]);
        assert_eq!(by_sha(&shas[1]).subject, "commit number 2");
        assert_eq!(by_sha(&shas[1]).author, "Ada");
        assert!(chrono::DateTime::parse_from_rfc3339(&by_sha(&shas[1]).committed_at).is_ok());

        let newer = repo.commits(&branch, Some(&shas[1])).await.unwrap();
        assert_eq!(newer.len(), 1);
        assert_eq!(newer[0].sha, shas[2]);

        let tags = repo.tags("main").await.unwrap();
        assert_eq!(tags.get("v1"), Some(&shas[0]));
        assert_eq!(tags.get("v3"), Some(&shas[2]));

        let wt = tmp.path().join("work").join("src");
        repo.add_worktree(&wt, &shas[1]).await.unwrap();
        assert_eq!(std::fs::read_to_string(wt.join("file")).unwrap(), "2\n");
        repo.remove_worktree(&wt).await.unwrap();
        assert!(!wt.exists());
        let list = repo
            .run(&["worktree", "list", "--porcelain"])
            .await
            .unwrap();
        assert!(!list.contains("work/src"), "{list}");

        assert!(repo.add_worktree(&wt, &"0".repeat(40)).await.is_err());
    }
}
