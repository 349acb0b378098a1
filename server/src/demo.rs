//! The demo project `make run` seeds into an empty database, so a newcomer sees a grid at once.
//!
//! Its commits (the real wireguard-linux-compat history) and kernels (real RHEL/CentOS builds)
//! are real; every result is simulated, and the project is flagged `demo` so every page says so.
//! Reports go through [`accept::submit_report`], the path real runner reports take.

use crate::accept;
use crate::storage::{Storage, StorageError};
use serde_json::{json, Value};
use trellis_domain::Kernel;

pub const PROJECT: &str = "demo-wireguard-linux-compat";
const RUNNER: &str = "demo-simulator";
const COMMITS: &str = include_str!("../demo/commits.jsonl");
const KERNELS: &str = include_str!("../demo/kernels.txt");
const LOG_EL9: &str = include_str!("../demo/wg-v0.0.20200121-debian-6.1.0-56.log");
const LOG_EL7: &str = include_str!("../demo/wg-v1.0.20220627-debian-6.1.0-56.log");

/// How many of the newest commits and kernels per stream get simulated results.
const TESTED_COMMITS: usize = 24;
const KERNELS_PER_STREAM: usize = 36;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo data is broken: {0}")]
    Data(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("demo report rejected: {0}")]
    Rejected(String),
}

fn history() -> Result<Vec<Value>, DemoError> {
    COMMITS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Value = serde_json::from_str(l).map_err(|e| DemoError::Data(e.to_string()))?;
            Ok(json!({
                "sha": c["sha"], "parents": c["parents"], "subject": c["subject"],
                "author": c["author"], "committed_at": c["committer_date"],
            }))
        })
        .collect()
}

/// The newest shipped kernels of each EL stream, newest first, each with its rank in its
/// stream (0 = newest).
fn kernels() -> Vec<(Kernel, usize)> {
    let mut by_stream: std::collections::BTreeMap<String, Vec<Kernel>> = Default::default();
    for line in KERNELS.lines().filter(|l| !l.starts_with('#')) {
        let Some(vr) = line.split_whitespace().next() else {
            continue;
        };
        if let Ok(k) = Kernel::parse(vr, Some("x86_64"), None) {
            by_stream.entry(k.stream.clone()).or_default().push(k);
        }
    }
    let mut out = Vec::new();
    for (_, mut ks) in by_stream {
        ks.sort_by(|a, b| b.rpm_cmp(a));
        ks.truncate(KERNELS_PER_STREAM);
        out.extend(ks.into_iter().enumerate().map(|(rank, k)| (k, rank)));
    }
    // Every other of the newest EL9 builds for aarch64 too, so the arch filter has something to do.
    let arm: Vec<(Kernel, usize)> = out
        .iter()
        .filter(|(k, rank)| k.stream == "el9" && *rank < 12 && rank % 2 == 0)
        .map(|(k, rank)| {
            (
                Kernel {
                    arch: "aarch64".into(),
                    ..k.clone()
                },
                *rank,
            )
        })
        .collect();
    out.extend(arm);
    out
}

/// The simulated outcome of one (kernel, commit): a list of (status, log) reports, or none.
/// `kernel_rank` is 0 for the newest kernel of its stream; `commit_rank` 0 for the newest commit.
fn outcome(k: &Kernel, kernel_rank: usize, commit_rank: usize) -> Vec<(&'static str, String)> {
    let pass = || {
        format!("make -C /lib/modules/{}/build M=$PWD/src modules\n  CC [M]  src/main.o\n  LD [M]  src/wireguard.ko\nmake test: all tests passed\n[demo data: simulated result]\n", k.uname())
    };
    // The newest commit is still being tested: only every other kernel has reported.
    if commit_rank == 0 && kernel_rank % 2 == 1 {
        return vec![];
    }
    // The newest kernel of each stream arrived recently: the oldest commits were never run on it.
    if kernel_rank == 0 && commit_rank > 20 {
        return vec![];
    }
    // A commit broke RHEL 7 builds and a later one fixed them (module-caused breakage).
    if k.stream == "el7" && (12..=15).contains(&commit_rank) {
        return vec![("fail", LOG_EL7.to_string())];
    }
    // A kernel update broke EL9 from one build on; commit rank 6 adapted the module.
    if k.stream == "el9" && kernel_rank < 7 && commit_rank > 6 {
        return vec![("fail", LOG_EL9.to_string())];
    }
    // The newest EL8 update broke the module and nothing fixes it yet (an open breakage); one
    // cell of it passed once too (flaky).
    if k.stream == "el8" && kernel_rank == 0 {
        return match commit_rank {
            2 => vec![("pass", pass()), ("fail", LOG_EL9.to_string())],
            _ => vec![("fail", LOG_EL9.to_string())],
        };
    }
    if k.stream == "el8" && kernel_rank == 2 && commit_rank == 4 {
        return vec![(
            "error",
            format!("runner: could not install kernel-devel-{}: mirror timed out after 3 attempts\n[demo data: simulated result]\n", k.version_release()),
        )];
    }
    vec![("pass", pass())]
}

pub async fn seed(storage: &Storage, max_log_bytes: usize) -> Result<(), DemoError> {
    tracing::info!("seeding the demo project {PROJECT:?} (simulated results)");
    storage
        .describe_project(
            PROJECT,
            "Demo: the real wireguard-linux-compat history and real RHEL/CentOS kernel versions, with simulated results.",
            true,
        )
        .await?;
    let history = history()?;
    storage
        .push_commits(
            PROJECT,
            &trellis_domain::report::commits_from_json(&json!({ "commits": history }))
                .map_err(|e| DemoError::Data(format!("{e:?}")))?,
        )
        .await?;
    if storage.add_runner(RUNNER).await?.is_none() {
        return Err(DemoError::Data(format!("runner {RUNNER} already exists")));
    }
    let runner = storage
        .list_runners()
        .await?
        .into_iter()
        .find(|r| r.name == RUNNER)
        .ok_or_else(|| DemoError::Data("demo runner vanished".into()))?;

    let kernels = kernels();
    let newest: Vec<&Value> = history.iter().rev().take(TESTED_COMMITS).collect();
    let now = chrono::Utc::now();
    let mut stored = 0;
    for (commit_rank, commit) in newest.iter().enumerate() {
        for (i, (k, rank)) in kernels.iter().enumerate() {
            for (n, (status, log)) in outcome(k, *rank, commit_rank).into_iter().enumerate() {
                let finished = now - chrono::Duration::minutes((commit_rank * 90 + i) as i64)
                    + chrono::Duration::seconds(n as i64);
                let body = json!({
                    "project": PROJECT,
                    "kernel": { "version": k.uname() },
                    "commit": { "sha": commit["sha"] },
                    "status": status,
                    "stages": [
                        { "name": "build", "status": if status == "fail" { "fail" } else { status }, "duration_s": 40 + (i % 17) },
                        { "name": "test", "status": if status == "pass" { "pass" } else { "skip" }, "duration_s": if status == "pass" { 95 } else { 0 } }
                    ],
                    "started_at": (finished - chrono::Duration::minutes(3)).to_rfc3339(),
                    "finished_at": finished.to_rfc3339(),
                    "log": log,
                    "run_id": format!("demo-{}-{}-{n}", &commit["sha"].as_str().unwrap_or_default()[..12], k.uname()),
                    "metadata": { "compiler": "gcc (simulated)", "runner-image": "demo", "kernel-devel": format!("kernel-devel-{}", k.version_release()) },
                });
                accept::submit_report(storage, &runner, &body, max_log_bytes)
                    .await
                    .map_err(|e| DemoError::Rejected(e.to_string()))?;
                stored += 1;
            }
        }
    }
    tracing::info!(
        "demo project seeded: {} kernels, {stored} simulated reports",
        kernels.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn demo_data_parses_and_covers_every_stream() {
        assert_eq!(history().unwrap().len(), 1297);
        let ks: Vec<Kernel> = kernels().into_iter().map(|(k, _)| k).collect();
        for stream in ["el7", "el8", "el9"] {
            let n = ks
                .iter()
                .filter(|k| k.stream == stream && k.arch == "x86_64")
                .count();
            assert_eq!(n, KERNELS_PER_STREAM, "{stream}");
        }
        // Newest first within a stream.
        let el9: Vec<&Kernel> = ks
            .iter()
            .filter(|k| k.stream == "el9" && k.arch == "x86_64")
            .collect();
        assert!(el9
            .windows(2)
            .all(|w| w[0].rpm_cmp(w[1]) == Ordering::Greater));
    }
}
