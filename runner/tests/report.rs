//! Drives `trellis-runner report` (one result from a log file, as a CI job would post it)
//! against a small in-test HTTP server.

mod common;

use common::{serve, Fake};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::{Arc, Mutex};

const SHA: &str = "3d3c92b4711b42169137b2ddf42ed4382e2babdf";

/// Runs `report` with the connection from the environment only; answers (exit code, stderr).
async fn report(server: &str, dir: &Path, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_trellis-runner"))
        .arg("report")
        .args(["--kernel", "4.18.0-553.el8_10.x86_64", "--commit", SHA])
        .args(args)
        .current_dir(dir)
        .env("TRELLIS_SERVER", server)
        .env("TRELLIS_TOKEN", "trellis_test")
        .env("TRELLIS_PROJECT", "demo")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[tokio::test]
async fn posts_one_result_from_a_log_file_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = String::from("first error here\n");
    log.push_str(&"noise\n".repeat(1000));
    log.push_str("last line\n");
    std::fs::write(tmp.path().join("build.log"), &log).unwrap();
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 201,
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;

    let (code, stderr) = report(
        &url,
        tmp.path(),
        &[
            "--status-from-exit",
            "2",
            "--log",
            "build.log",
            "--max-log-bytes",
            "2048",
            "--started-at",
            "2026-11-30T06:00:00Z",
            "--finished-at",
            "2026-11-30T07:01:30+01:00",
            "--run-id",
            "gha-42-1",
            "--metadata",
            "ci=github",
        ],
    )
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("posted report 1 (201)"), "{stderr}");
    let reports = fake.lock().unwrap().reports();
    assert_eq!(reports.len(), 1);
    let mut r = reports[0].clone();
    let text = r["log"].take();
    let text = text.as_str().unwrap();
    assert!(text.starts_with("first error here\n") && text.ends_with("last line\n"));
    assert!(text.contains(&format!("[... {} bytes cut ...]", log.len() - 2048)));
    assert_eq!(r["status"], "fail");
    assert_eq!(
        r["stages"],
        json!([{"name": "build", "status": "fail", "duration_s": 90.0}])
    );
    assert_eq!(r["run_id"], "gha-42-1");
    assert_eq!(r["project"], "demo");
    assert_eq!(r["kernel"], json!({"version": "4.18.0-553.el8_10.x86_64"}));
    assert_eq!(r["commit"], json!({"sha": SHA}));
    assert_eq!(r["finished_at"], "2026-11-30T06:01:30Z");
    assert_eq!(r["metadata"]["ci"], "github");
}

#[tokio::test]
async fn an_unreachable_server_fails_without_a_spool_and_is_spooled_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("build.log"), "ok\n").unwrap();
    let down = closed_port();
    let args = ["--status", "pass", "--log", "build.log", "--attempts", "1"];

    let (code, stderr) = report(&down, tmp.path(), &args).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("report not delivered"), "{stderr}");

    let spooled = [&args[..], &["--spool", "spool", "--run-id", "ci-1"]].concat();
    let (code, stderr) = report(&down, tmp.path(), &spooled).await;
    assert_eq!(code, 0, "{stderr}");
    let kept: Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("spool/outbox/ci-1.json")).unwrap())
            .unwrap();

    // The next report through the same spool sends the waiting one first, unchanged.
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 201,
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;
    let next = [&args[..], &["--spool", "spool", "--run-id", "ci-2"]].concat();
    let (code, stderr) = report(&url, tmp.path(), &next).await;
    assert_eq!(code, 0, "{stderr}");
    let reports = fake.lock().unwrap().reports();
    let ids: Vec<&str> = reports
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ci-1", "ci-2"]);
    assert_eq!(reports[0], kept);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("spool/outbox"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn a_refused_report_exits_nonzero_with_the_servers_message() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("build.log"), "ok\n").unwrap();
    let fake = Arc::new(Mutex::new(Fake {
        report_status: 422,
        ..Fake::default()
    }));
    let url = serve(fake.clone()).await;
    let (code, stderr) = report(
        &url,
        tmp.path(),
        &["--status", "skip", "--log", "build.log"],
    )
    .await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refused the report (422)"), "{stderr}");
    assert_eq!(fake.lock().unwrap().reports().len(), 1);
}
