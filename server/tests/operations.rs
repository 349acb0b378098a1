//! Operating a long-lived Trellis: online backups while reports arrive, and retention of the
//! logs of old passing reports.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KERNEL: &str = "4.18.0-553.el8_10.x86_64";
const CELL: &str = "el8/4.18.0-553.el8_10.x86_64";
const DAY_MS: i64 = 24 * 3600 * 1000;
const PASS_NOTE: &str = "log removed by retention (passing report older than 30 days)\n";

struct Cli {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the built `trellis` binary against `database_url`.
async fn trellis(database_url: &str, args: &[&str]) -> Cli {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trellis"));
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Cli {
        code: out.status.code().expect("trellis exited by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A report of commit 1 on [`KERNEL`] that finished `age_ms` ago.
fn aged(status: &str, run_id: &str, age_ms: i64) -> Value {
    let finished = chrono::Utc::now() - chrono::Duration::milliseconds(age_ms);
    let mut body = report(KERNEL, 1, status, run_id);
    body["started_at"] = json!((finished - chrono::Duration::minutes(5)).to_rfc3339());
    body["finished_at"] = json!(finished.to_rfc3339());
    body
}

async fn post(h: &Harness, body: Value) -> i64 {
    let (status, reply) = h.post_report(body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    reply["id"].as_i64().unwrap()
}

/// A runner posting reports of commit 60 one after another until `stop`; their ids in order.
fn keep_posting(h: &Arc<Harness>, stop: &Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<i64>> {
    let (h, stop) = (h.clone(), stop.clone());
    tokio::spawn(async move {
        let mut ids = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let run = format!("during-{}", ids.len());
            ids.push(post(&h, report(KERNEL, 60, "pass", &run)).await);
        }
        ids
    })
}

/// The cell's reports by run id.
async fn reports_by_run(h: &Harness) -> std::collections::HashMap<String, Value> {
    h.cell(CELL, 1).await["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["run_id"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

async fn open_copy(path: &Path) -> SqliteConnection {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    SqliteConnection::connect_with(&options).await.unwrap()
}

async fn direct(h: &Harness) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&h.db.url).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_while_reports_arrive_is_consistent_and_complete() {
    let h = Arc::new(Harness::new(TestDb::sqlite().await).await);
    let mut committed = Vec::new();
    for i in 0..40 {
        committed.push(
            post(
                &h,
                report(KERNEL, i % 8 + 1, "fail", &format!("before-{i}")),
            )
            .await,
        );
    }

    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_posting(&h, &stop);
    while h.report_count().await < 45 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let answered_before = h.report_count().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("backup.db");
    let cli = trellis(&h.db.url, &["backup", path.to_str().unwrap()]).await;
    let answered_after = h.report_count().await;
    stop.store(true, Ordering::SeqCst);
    let during = writer.await.unwrap();
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert!(
        answered_after > answered_before,
        "reports were stored while the backup ran"
    );

    let mut copy = open_copy(&path).await;
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut copy)
        .await
        .unwrap();
    assert_eq!(verdict, "ok");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM reports ORDER BY id")
        .fetch_all(&mut copy)
        .await
        .unwrap();
    // Every report answered before the backup started, and the backup's own count matches.
    committed.extend(&during[..answered_before as usize - committed.len()]);
    for id in &committed {
        assert!(ids.contains(id), "report {id} is missing from the backup");
    }
    assert!(
        cli.stdout.contains(&format!(": {} reports,", ids.len())),
        "{}",
        cli.stdout
    );
    let cells: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM cells")
        .fetch_one(&mut copy)
        .await
        .unwrap();
    assert_eq!(cells, 9);
    assert_eq!(during.len() as i64, h.report_count().await - 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_never_overwrites_and_sends_postgres_to_pg_dump() {
    let h = Harness::new(TestDb::sqlite().await).await;
    let dir = tempfile::tempdir().unwrap();
    let taken = dir.path().join("taken.db");
    std::fs::write(&taken, "keep me").unwrap();
    let cli = trellis(&h.db.url, &["backup", taken.to_str().unwrap()]).await;
    assert_eq!(cli.code, 1, "{}", cli.stderr);
    assert!(cli.stderr.contains("already exists"), "{}", cli.stderr);
    assert_eq!(std::fs::read_to_string(&taken).unwrap(), "keep me");

    // Nothing listens there: the advice must not need the database.
    let fresh = dir.path().join("fresh.db");
    let cli = trellis(
        "postgres://postgres@127.0.0.1:1/none",
        &["backup", fresh.to_str().unwrap()],
    )
    .await;
    assert_eq!(cli.code, 2, "{}", cli.stderr);
    assert!(
        cli.stderr.contains("pg_dump") && cli.stderr.contains("pg_restore"),
        "{}",
        cli.stderr
    );
    assert!(!fresh.exists());
}

/// The storage call on each backend: a checked copy on SQLite, a pointer to pg_dump elsewhere.
async fn backup_through_storage(db: TestDb) {
    let h = Harness::new(db).await;
    post(&h, report(KERNEL, 1, "pass", "one")).await;
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("copy.db");
    let outcome = h.storage.backup(&path).await;
    if h.db.url.starts_with("sqlite:") {
        let stats = outcome.unwrap();
        assert_eq!(stats.reports, 1);
        assert_eq!(stats.bytes, std::fs::metadata(&path).unwrap().len());
    } else {
        let message = outcome.unwrap_err().to_string();
        assert!(message.contains("pg_dump"), "{message}");
        assert!(!path.exists());
    }
}

/// Old passing and skipped logs go; failing, error and recent logs, reports and cells stay.
async fn prune_removes_only_old_passing_logs(db: TestDb) {
    let h = Harness::new(db).await;
    for (status, run) in [
        ("pass", "old-pass"),
        ("skip", "old-skip"),
        ("fail", "old-fail"),
        ("error", "old-error"),
    ] {
        post(&h, aged(status, run, 40 * DAY_MS)).await;
    }
    post(&h, aged("pass", "new-pass", DAY_MS)).await;
    let before = reports_by_run(&h).await;
    let summary = h.cell(CELL, 1).await["summary"].clone();
    let grid = h.grid("").await;

    let stats = h.storage.prune_passing_logs(30 * DAY_MS).await.unwrap();
    assert_eq!(stats.logs_removed, 2);
    assert!(stats.bytes_removed > 0);

    let after = reports_by_run(&h).await;
    assert_eq!(after.len(), 5);
    assert_eq!(after["old-pass"]["log"], PASS_NOTE);
    assert_eq!(after["old-pass"]["log_original_bytes"], 0);
    assert_eq!(after["old-pass"]["status"], "pass");
    assert_eq!(
        after["old-skip"]["log"],
        "log removed by retention (skipped report older than 30 days)\n"
    );
    for run in ["old-fail", "old-error", "new-pass"] {
        assert_eq!(after[run], before[run], "{run} changed");
        assert_eq!(after[run]["log"], format!("build log of {run}\n"));
    }
    assert_eq!(h.cell(CELL, 1).await["summary"], summary);
    assert_eq!(h.grid("").await, grid);

    let (status, page) = h.get(&format!("/p/wg/cell/{CELL}/{}", sha(1))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("log removed by retention (passing report older than 30 days)"));

    // A second pass finds nothing left to do.
    let again = h.storage.prune_passing_logs(30 * DAY_MS).await.unwrap();
    assert_eq!((again.logs_removed, again.bytes_removed), (0, 0));
    assert_eq!(reports_by_run(&h).await, after);
}

/// A log that does not compress much, as real build logs.
fn noisy_log(seed: u64) -> String {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..400)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            format!("  CC [M]  /build/src/{:016x}.o\n", x)
        })
        .collect()
}

/// More logs than one batch holds; on SQLite the freed pages are there for reuse.
async fn prune_works_through_many_batches(db: TestDb) {
    let h = Arc::new(Harness::new(db).await);
    let total = 1050u64;
    let mut posting = tokio::task::JoinSet::new();
    for worker in 0..8u64 {
        let h = h.clone();
        posting.spawn(async move {
            for i in (worker..total).step_by(8) {
                let mut body = aged("pass", &format!("bulk-{i}"), 40 * DAY_MS);
                body["commit"]["sha"] = json!(sha(i as u32 % 50 + 1));
                body["log"] = json!(noisy_log(i));
                post(&h, body).await;
            }
        });
    }
    while let Some(done) = posting.join_next().await {
        done.unwrap();
    }
    post(&h, aged("fail", "kept", 40 * DAY_MS)).await;

    // Reports keep arriving, and are stored, while the batches run.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = keep_posting(&h, &stop);
    while h.report_count().await == total as i64 + 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = h.storage.prune_passing_logs(30 * DAY_MS).await.unwrap();
    stop.store(true, Ordering::SeqCst);
    let during = writer.await.unwrap().len() as i64;
    assert_eq!(stats.logs_removed, total);
    assert!(stats.bytes_removed > total as i64 * 4000, "{stats:?}");

    let pool = direct(&h).await;
    let row = sqlx::query(
        "SELECT CAST(SUM(CASE WHEN l.original_bytes > 0 THEN 1 ELSE 0 END) AS BIGINT),
                CAST(COUNT(*) AS BIGINT)
         FROM logs l JOIN reports r ON r.id = l.report_id WHERE r.run_id LIKE 'bulk-%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let (kept, rows): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((kept, rows), (0, total as i64));
    if h.db.url.starts_with("sqlite:") {
        let free: i64 = sqlx::query_scalar("PRAGMA freelist_count")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(free > 1000, "only {free} free pages after pruning");
    }
    pool.close().await;
    assert_eq!(h.report_count().await, total as i64 + 1 + during);
}

/// `trellis prune` against a database the server is using.
async fn prune_from_the_command_line(db: TestDb) {
    let h = Harness::new(db).await;
    post(&h, aged("pass", "old-pass", 40 * DAY_MS)).await;
    post(&h, aged("pass", "new-pass", DAY_MS)).await;

    let refused = trellis(&h.db.url, &["prune", "--keep-passing-logs-days", "0"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert_eq!(
        reports_by_run(&h).await["old-pass"]["log"],
        "build log of old-pass\n"
    );

    let cli = trellis(&h.db.url, &["prune", "--keep-passing-logs-days", "30"]).await;
    assert_eq!(cli.code, 0, "{}", cli.stderr);
    assert!(
        cli.stdout
            .starts_with("removed the log of 1 passing or skipped report finished before"),
        "{}",
        cli.stdout
    );
    let reports = reports_by_run(&h).await;
    assert_eq!(reports["old-pass"]["log"], PASS_NOTE);
    assert_eq!(reports["new-pass"]["log"], "build log of new-pass\n");
}

/// The task `serve` runs: a pass at once, and nothing at all when retention is off.
async fn retention_task_prunes_at_start(db: TestDb) {
    let h = Harness::new(db).await;
    post(&h, aged("pass", "old-pass", 40 * DAY_MS)).await;
    tokio::time::timeout(
        Duration::from_secs(5),
        h.storage.clone().run_log_retention(0),
    )
    .await
    .expect("retention 0 returns at once");
    assert_eq!(
        reports_by_run(&h).await["old-pass"]["log"],
        "build log of old-pass\n"
    );

    let task = tokio::spawn(h.storage.clone().run_log_retention(30));
    let mut log = Value::Null;
    for _ in 0..200 {
        log = reports_by_run(&h).await["old-pass"]["log"].clone();
        if log == PASS_NOTE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    task.abort();
    assert_eq!(log, PASS_NOTE);
}

on_both_backends!(
    backup_through_storage,
    prune_removes_only_old_passing_logs,
    prune_works_through_many_batches,
    prune_from_the_command_line,
    retention_task_prunes_at_start,
);
