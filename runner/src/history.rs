//! Pushing the module's history to the server: everything reachable from the branch at start,
//! then only what is new (commits, and tags added to older commits), remembered in a state file
//! in the spool dir.

use crate::api::{Api, CommitOut, MAX_COMMITS_PER_PUSH};
use crate::git::Repo;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// What was pushed last.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub branch: String,
    pub head: Option<String>,
    /// Tag name to commit, for the tags pushed.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl State {
    pub fn path(spool: &Path) -> PathBuf {
        spool.join("state.json")
    }

    pub fn load(spool: &Path) -> Option<State> {
        let text = std::fs::read(State::path(spool)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Written beside and renamed, so a crash leaves the old state or the new one.
    pub fn save(&self, spool: &Path) -> Result<()> {
        let path = State::path(spool);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
    }
}

/// Commits to push and the state once they are pushed.
pub struct Pending {
    pub commits: Vec<CommitOut>,
    pub after: State,
}

/// What to push to bring the server from `before` (None: nothing known, push everything) to
/// the branch's current head.
pub async fn pending(repo: &Repo, branch: &str, before: Option<&State>) -> Result<Pending> {
    let head = repo
        .resolve(&format!("refs/heads/{branch}"))
        .await
        .with_context(|| format!("branch {branch} not found in the module's repository"))?;
    let all_tags = repo.tags(&head).await?;

    // The old head is usable only on the same branch and while it still exists.
    let mut old = None;
    if let Some(s) = before.filter(|s| s.branch == branch) {
        if let Some(h) = &s.head {
            if repo.resolve(h).await.is_ok() {
                old = Some(h.clone());
            }
        }
    }
    let mut infos = repo.commits(&head, old.as_deref()).await?;

    // Tags not pushed yet name commits to push again.
    let mut listed: HashSet<String> = infos.iter().map(|c| c.sha.clone()).collect();
    for (name, sha) in &all_tags {
        let known = old.is_some() && before.and_then(|s| s.tags.get(name)) == Some(sha);
        if !known && !listed.contains(sha) {
            infos.push(repo.commit(sha).await?);
            listed.insert(sha.clone());
        }
    }

    let mut by_commit: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, sha) in &all_tags {
        by_commit
            .entry(sha.as_str())
            .or_default()
            .push(name.clone());
    }
    let commits = infos
        .iter()
        .map(|c| {
            let tags = by_commit.get(c.sha.as_str()).cloned().unwrap_or_default();
            CommitOut::new(c, &tags)
        })
        .collect();
    Ok(Pending {
        commits,
        after: State {
            branch: branch.to_string(),
            head: Some(head),
            tags: all_tags.clone(),
        },
    })
}

/// Pushes in chunks the server takes; answers how many the server had not seen.
pub async fn push(api: &Api, commits: &[CommitOut]) -> Result<usize> {
    let mut new = 0;
    for chunk in commits.chunks(MAX_COMMITS_PER_PUSH) {
        let pushed = api
            .push_commits(chunk)
            .await
            .context("pushing commits failed")?;
        crate::out::debug(format_args!(
            "pushed {} commits, {} new",
            pushed.received, pushed.new
        ));
        new += pushed.new;
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_everything_then_only_what_is_new() {
        let tmp = tempfile::tempdir().unwrap();
        let origin = tmp.path().join("origin");
        std::fs::create_dir(&origin).unwrap();
        let shas = crate::git::tests::three_commits(&origin);
        let repo = Repo::open_or_clone(&tmp.path().join("repo"), origin.to_str().unwrap())
            .await
            .unwrap();

        let first = pending(&repo, "main", None).await.unwrap();
        assert_eq!(first.commits.len(), 3);
        let root = first.commits.iter().find(|c| c.sha == shas[0]).unwrap();
        assert_eq!(root.tags, ["v1"]);
        assert_eq!(first.after.head.as_deref(), Some(shas[2].as_str()));

        first.after.save(tmp.path()).unwrap();
        let state = State::load(tmp.path()).unwrap();
        let again = pending(&repo, "main", Some(&state)).await.unwrap();
        assert!(again.commits.is_empty());

        // A new commit, and a new tag on an old one.
        let sh = |s: &str| {
            let ok = std::process::Command::new("sh")
                .args(["-c", s])
                .current_dir(&origin)
                .env("GIT_AUTHOR_NAME", "A")
                .env("GIT_AUTHOR_EMAIL", "a@x")
                .env("GIT_COMMITTER_NAME", "A")
                .env("GIT_COMMITTER_EMAIL", "a@x")
                .status()
                .unwrap()
                .success();
            assert!(ok, "{s}");
        };
        sh("echo 4 > file && git commit --quiet -am four && git tag v2 HEAD~2");
        repo.fetch().await.unwrap();
        let next = pending(&repo, "main", Some(&state)).await.unwrap();
        let mut got: Vec<(&str, Vec<String>)> = next
            .commits
            .iter()
            .map(|c| (c.subject.as_str(), c.tags.clone()))
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("commit number 2", vec!["v2".to_string()]),
                ("four", vec![])
            ]
        );
        assert_eq!(next.commits[0].parents, [shas[2].clone()]);
    }
}
