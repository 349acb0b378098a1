//! Drives the real binary (`run --once`) against a small in-test HTTP server that speaks the
//! runner API, with a real git repository and real builds.

mod common;

use common::{serve, Fake};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const UNAME: &str = "4.18.0-513.5.1.el8_9.x86_64";

fn sh(dir: &Path, script: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.org")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.org")
        .output()
        .unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A module repo of three commits whose `file` holds 1, 2, 3; answers the shas, oldest first.
fn module(dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    sh(dir, "git init --quiet -b main .");
    for i in 1..=3 {
        sh(
            dir,
            &format!("echo {i} > file && git add file && git commit --quiet -m 'commit {i}'"),
        );
    }
    sh(dir, "git rev-list --reverse HEAD")
        .lines()
        .map(str::to_string)
        .collect()
}

fn job(lease_id: i64, uname: &str, sha: &str) -> Value {
    json!({
        "lease_id": lease_id,
        "kernel": {"stream": "el8", "uname": uname, "version_release": null, "arch": "x86_64",
                   "package_url": null},
        "commit": {"sha": sha, "subject": "s"},
        "reason": "untested_head",
        "expires_at": "2026-11-30T10:00:00Z"
    })
}

/// Writes the config and runs `trellis-runner run --once`; answers (exit code, stderr).
async fn run_once(
    tmp: &Path,
    server: &str,
    timeout: &str,
    provision: Option<&str>,
) -> (i32, String) {
    let kernels = tmp.join("kernels");
    std::fs::create_dir_all(kernels.join(UNAME)).unwrap();
    let config = tmp.join("runner.toml");
    // commit 1 builds, 2 fails, 3 hangs (with a background grandchild) until the timeout.
    let toml = format!(
        r#"
server = "{server}"
token = "trellis_test"
project = "demo"
name = "it-runner"
[module]
git = "{git}"
[build]
command = "n=$(cat file); echo building $n for {{uname}} {{version}} in {{kernel_dir}}; if [ $n = 3 ]; then sleep 60 & sleep 60; fi; [ $n != 2 ]"
timeout = "{timeout}"
[kernels]
trees = ["{kernels}/*"]
{provision}
[spool]
dir = "{spool}"
"#,
        git = tmp.join("origin").display(),
        kernels = kernels.display(),
        spool = tmp.join("spool").display(),
        provision = provision
            .map(|p| format!("provision = {p:?}"))
            .unwrap_or_default(),
    );
    std::fs::write(&config, toml).unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis-runner"))
        .args(["run", "--once", "--poll-interval", "1", "--config"])
        .arg(&config)
        .env_remove("TRELLIS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the runner did not finish")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn run_once_builds_every_leased_job_and_reports_it() {
    let tmp = tempfile::tempdir().unwrap();
    let shas = module(&tmp.path().join("origin"));
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 201,
        jobs: [
            job(1, UNAME, &shas[0]),
            job(2, UNAME, &shas[1]),
            job(3, UNAME, &shas[2]),
            job(4, "5.14.0-427.el9.x86_64", &shas[0]),
        ]
        .into(),
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;
    let (code, stderr) = run_once(tmp.path(), &url, "1s", None).await;
    assert_eq!(code, 0, "{stderr}");

    let fake = fake.lock().unwrap();
    // History first, with parents.
    let (_, path, push) = &fake.seen[0];
    assert_eq!(path, "/api/v1/projects/demo/commits");
    let commits = push["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 3);
    let middle = commits.iter().find(|c| c["sha"] == shas[1]).unwrap();
    assert_eq!(middle["parents"], json!([shas[0]]));
    assert_eq!(middle["subject"], "commit 2");

    let lease = fake
        .seen
        .iter()
        .find(|(_, p, _)| p == "/api/v1/jobs/lease")
        .unwrap();
    assert_eq!(
        lease.2,
        json!({"project": "demo", "kernels": [{"version": UNAME}], "max_jobs": 1})
    );

    let reports = fake.reports();
    assert_eq!(reports.len(), 4, "{stderr}");
    let by_lease = |id: &str| {
        reports
            .iter()
            .find(|r| {
                r["run_id"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("it-runner-{id}-"))
            })
            .unwrap_or_else(|| panic!("no report for lease {id}"))
    };
    let pass = by_lease("1");
    assert_eq!(pass["status"], "pass");
    assert_eq!(pass["commit"]["sha"], shas[0]);
    assert_eq!(pass["kernel"], json!({"version": UNAME, "distro": "el8"}));
    assert_eq!(pass["project"], "demo");
    let stages: Vec<(&str, &str)> = pass["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    assert_eq!(stages, [("checkout", "pass"), ("build", "pass")]);
    let log = pass["log"].as_str().unwrap();
    assert!(
        log.contains(&format!("building 1 for {UNAME} 4.18.0-513.5.1.el8_9 in ")),
        "{log}"
    );
    assert_eq!(pass["metadata"]["runner"], "it-runner");
    assert_eq!(pass["metadata"]["kernel-devel"], UNAME);
    assert!(pass["metadata"]["host"].is_string() && pass["metadata"]["runner-version"].is_string());
    assert!(chrono::DateTime::parse_from_rfc3339(pass["started_at"].as_str().unwrap()).is_ok());

    assert_eq!(by_lease("2")["status"], "fail");
    let timed_out = by_lease("3");
    assert_eq!(timed_out["status"], "error");
    assert!(
        timed_out["log"]
            .as_str()
            .unwrap()
            .contains("[trellis-runner] timed out after 1s"),
        "{}",
        timed_out["log"]
    );
    let missing = by_lease("4");
    assert_eq!(missing["status"], "error");
    assert!(missing["log"]
        .as_str()
        .unwrap()
        .contains("no kernel tree for 5.14.0-427.el9.x86_64"));

    for line in [
        "leased 4.18.0-513.5.1.el8_9.x86_64 @ ",
        "built in ",
        "posted report 1 (201)",
    ] {
        assert!(stderr.contains(line), "{line:?} not in:\n{stderr}");
    }
    // Worktrees are gone, and nothing is left to send.
    let spool = tmp.path().join("spool");
    let list = sh(&spool.join("repo"), "git worktree list --porcelain");
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
    assert_eq!(std::fs::read_dir(spool.join("outbox")).unwrap().count(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn undelivered_reports_wait_in_the_spool_and_go_out_once_with_their_run_id() {
    let tmp = tempfile::tempdir().unwrap();
    let shas = module(&tmp.path().join("origin"));
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 503,
        jobs: [job(7, UNAME, &shas[0])].into(),
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;
    let (code, stderr) = run_once(tmp.path(), &url, "1s", None).await;
    assert_eq!(code, 0, "{stderr}");
    let outbox = tmp.path().join("spool/outbox");
    let spooled: Vec<_> = std::fs::read_dir(&outbox).unwrap().flatten().collect();
    assert_eq!(spooled.len(), 1, "{stderr}");
    let kept: Value = serde_json::from_slice(&std::fs::read(spooled[0].path()).unwrap()).unwrap();
    assert!(stderr.contains("spooled, will be re-sent"), "{stderr}");

    // The server is back: the next run sends the same report first, once.
    {
        let mut f = fake.lock().unwrap();
        f.report_status = 201;
        f.seen.clear();
    }
    let (code, stderr) = run_once(tmp.path(), &url, "1s", None).await;
    assert_eq!(code, 0, "{stderr}");
    let reports = fake.lock().unwrap().reports();
    assert_eq!(reports, vec![kept.clone()]);
    assert!(kept["run_id"].as_str().unwrap().starts_with("it-runner-7-"));
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 0);
    assert!(
        stderr.contains("re-sent spooled report 1 (201)"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kernel_the_host_lacks_is_provisioned_or_reported_as_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let shas = module(&tmp.path().join("origin"));
    let lacking = "5.14.0-427.el9.x86_64";
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 201,
        jobs: [
            job(5, lacking, &shas[0]),
            job(6, "6.1.0-1.el9.x86_64", &shas[0]),
        ]
        .into(),
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;
    // Unpacks like a kernel-devel package for one kernel; fails for any other.
    let provision = format!(
        "echo fetching {{uname}} {{version}}; [ {{uname}} = {lacking} ] && \
         mkdir -p {{dest}}/usr/src/kernels/{{uname}} && touch {{dest}}/usr/src/kernels/{{uname}}/Makefile"
    );
    let (code, stderr) = run_once(tmp.path(), &url, "1s", Some(&provision)).await;
    assert_eq!(code, 0, "{stderr}");

    let fake = fake.lock().unwrap();
    let reports = fake.reports();
    assert_eq!(reports.len(), 2, "{stderr}");
    let stages = |r: &Value| -> Vec<(String, String)> {
        r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].to_string(), s["status"].to_string()))
            .collect()
    };
    let built = &reports[0];
    assert_eq!(built["status"], "pass", "{}", built["log"]);
    assert_eq!(
        stages(built),
        [
            ("\"provision\"".to_string(), "\"pass\"".to_string()),
            ("\"checkout\"".to_string(), "\"pass\"".to_string()),
            ("\"build\"".to_string(), "\"pass\"".to_string()),
        ]
    );
    let log = built["log"].as_str().unwrap();
    assert!(
        log.contains("fetching 5.14.0-427.el9.x86_64 5.14.0-427.el9"),
        "{log}"
    );
    let tree = tmp
        .path()
        .join("spool/kernels")
        .join(lacking)
        .join("usr/src/kernels")
        .join(lacking);
    assert!(log.contains(&format!("in {}", tree.display())), "{log}");

    let failed = &reports[1];
    assert_eq!(failed["status"], "error");
    assert_eq!(
        stages(failed),
        [("\"provision\"".to_string(), "\"error\"".to_string())]
    );
    assert!(failed["log"]
        .as_str()
        .unwrap()
        .contains("provisioning 6.1.0-1.el9.x86_64 failed: exit status 1"));

    // The provisioned tree is announced from then on; the failed one left nothing behind.
    let announced: Vec<&Value> = fake
        .seen
        .iter()
        .filter(|(_, p, _)| p == "/api/v1/jobs/lease")
        .map(|(_, _, b)| &b["kernels"])
        .collect();
    assert_eq!(announced[0], &json!([{"version": UNAME}]));
    assert_eq!(
        announced.last().unwrap(),
        &&json!([{"version": UNAME}, {"version": lacking}])
    );
    let cache: Vec<String> = std::fs::read_dir(tmp.path().join("spool/kernels"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(cache, [lacking]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_lease_is_told_and_the_job_still_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let shas = module(&tmp.path().join("origin"));
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 201,
        lose_leases: true,
        jobs: [job(9, UNAME, &shas[2])].into(),
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;
    // Commit 3 hangs until the 3 s timeout; leases of 1 s are beaten every second.
    let (code, stderr) = run_once(tmp.path(), &url, "3s", None).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("lease 9 was lost (the server gave it up); finishing the job anyway"),
        "{stderr}"
    );
    let fake = fake.lock().unwrap();
    let beats = fake
        .seen
        .iter()
        .filter(|(_, p, _)| p == "/api/v1/jobs/9/heartbeat")
        .count();
    // The first 409 ends the heartbeats.
    assert_eq!(beats, 1);
    let reports = fake.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0]["status"], "error");
    assert!(reports[0]["log"]
        .as_str()
        .unwrap()
        .contains("timed out after 3s"));
}
