//! Nothing a client sends can stop Trellis: hostile histories, NUL bytes, a stuck writer, a
//! locked database. Every test runs on SQLite and on PostgreSQL, each under a time limit so a
//! wedged server fails the test instead of hanging it.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// Runs a scenario that must finish: a hang is a failure.
async fn bounded<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within 60 s"))
}

fn with_parents(mut body: Value, parents: &[String]) -> Value {
    body["commit"]["parents"] = json!(parents);
    body
}

async fn push(h: &Harness, commits: Value) -> (StatusCode, Value) {
    h.json(
        "POST",
        "/api/v1/projects/wg/commits",
        Some(&h.token),
        Some(json!({ "commits": commits })),
    )
    .await
}

fn expect_invalid(status: StatusCode, reply: &Value) {
    expect_error(
        status,
        reply,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_fields",
    );
}

fn fields(body: &Value) -> Vec<String> {
    body["fields"]
        .as_array()
        .map(|f| {
            f.iter()
                .map(|f| f["field"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The project's commits in git order, newest first, as stored.
async fn git_order(h: &Harness) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&h.db.url).await.unwrap();
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.sha FROM commits c JOIN projects p ON p.id = c.project_id
         WHERE p.name = 'wg' ORDER BY c.generation DESC, c.id DESC",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter().map(|(s,)| s).collect()
}

async fn commit_count(h: &Harness) -> usize {
    git_order(h).await.len()
}

/// Ingestion still works: a fresh report to another project is stored and health says so.
async fn still_serving(h: &Harness, run_id: &str) {
    let mut body = report("4.18.0-553.el8_10.x86_64", 7, "pass", run_id);
    body["project"] = json!("other");
    let (status, reply) = h.post_report(body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    let (status, health) = h.json("GET", "/api/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK, "{health}");
}

async fn a_commit_naming_itself_is_refused(db: TestDb) {
    let h = Harness::new(db).await;
    bounded("self-parent report", async {
        let body = with_parents(
            report("4.18.0-553.el8_10.x86_64", 1, "pass", "self"),
            &[sha(1)],
        );
        let (status, reply) = h.post_report(body.clone()).await;
        expect_invalid(status, &reply);
        assert_eq!(fields(&reply), ["commit.parents[0]"]);
        // The runner's retry gets the same answer, and nothing was stored.
        let (status, _) = h.post_report(body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, reply) = push(&h, json!([{"sha": sha(2), "parents": [sha(2)]}])).await;
        expect_invalid(status, &reply);
        assert_eq!(fields(&reply), ["commits[0].parents[0]"]);
        assert_eq!(h.report_count().await, 0);
        still_serving(&h, "after-self").await;
    })
    .await;
}

async fn cycles_across_requests_are_refused(db: TestDb) {
    let h = Harness::new(db).await;
    bounded("cyclic history", async {
        // Two commits that are each other's parent, in one push.
        let (status, reply) = push(
            &h,
            json!([{"sha": sha(1), "parents": [sha(2)]}, {"sha": sha(2), "parents": [sha(1)]}]),
        )
        .await;
        expect_invalid(status, &reply);
        assert_eq!(fields(&reply), ["commits"]);
        assert!(reply["fields"][0]["message"]
            .as_str()
            .unwrap()
            .contains("own ancestor"));

        // 3 <- 4 is stored; a later push says 3's parent is 5 and 5's parent is 4: a loop
        // through stored history. Nothing of it is stored.
        let (status, _) = push(&h, json!([{"sha": sha(4), "parents": [sha(3)]}])).await;
        assert_eq!(status, StatusCode::OK);
        let before = commit_count(&h).await;
        let (status, reply) = push(
            &h,
            json!([{"sha": sha(3), "parents": [sha(5)]}, {"sha": sha(5), "parents": [sha(4)]}]),
        )
        .await;
        expect_invalid(status, &reply);
        assert_eq!(commit_count(&h).await, before);

        // A report whose parents close the loop: 3 names its own child 4.
        let body = with_parents(
            report("4.18.0-553.el8_10.x86_64", 3, "pass", "loop"),
            &[sha(4)],
        );
        let (status, reply) = h.post_report(body).await;
        expect_invalid(status, &reply);
        assert_eq!(fields(&reply), ["commit.parents"]);
        still_serving(&h, "after-cycle").await;

        // The honest history is still accepted and ordered.
        let (status, reply) = push(&h, json!([{"sha": sha(3), "parents": []}])).await;
        assert_eq!(status, StatusCode::OK, "{reply}");
        let (status, _) = h
            .post_report(report("4.18.0-553.el8_10.x86_64", 4, "pass", "r4"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(git_order(&h).await, [sha(4), sha(3)]);
    })
    .await;
}

async fn a_long_history_is_stored_in_order(db: TestDb) {
    let h = Harness::new(db).await;
    bounded("10,000-commit push", async {
        let n = 10_000u32;
        // Newest first and the oldest half missing from the first push: the second push must
        // lift everything the first one placed.
        let commits = |range: std::ops::RangeInclusive<u32>| -> Value {
            range
                .rev()
                .map(|i| json!({"sha": sha(i), "parents": if i == 1 { vec![] } else { vec![sha(i - 1)] }}))
                .collect()
        };
        let (status, reply) = push(&h, commits(n / 2 + 1..=n)).await;
        assert_eq!((status, reply["new"].as_u64()), (StatusCode::OK, Some(5000)));
        let (status, reply) = push(&h, commits(1..=n / 2)).await;
        assert_eq!((status, reply["new"].as_u64()), (StatusCode::OK, Some(5000)));
        // Pushing it all again adds nothing.
        let (status, reply) = push(&h, commits(1..=n)).await;
        assert_eq!((status, reply["new"].as_u64()), (StatusCode::OK, Some(0)));
        let (status, _) = h
            .post_report(report("4.18.0-553.el8_10.x86_64", n / 2, "pass", "mid"))
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let want: Vec<String> = (1..=n).rev().map(sha).collect();
        assert_eq!(git_order(&h).await, want);
        assert_eq!(column_shas(&h.grid("?all=1").await)[0], sha(n));
        // By default the one tested commit is the only column, the newer ones one marker.
        let tested = h.grid("").await;
        assert_eq!(column_shas(&tested), [sha(n / 2)]);
        assert_eq!(tested["untested_before"], n / 2);
    })
    .await;
}

async fn nul_bytes_get_one_answer(db: TestDb) {
    let h = Harness::new(db).await;
    bounded("NUL bytes", async {
        let kernel = "4.18.0-553.el8_10.x86_64";
        for field in ["subject", "author"] {
            let mut body = report(kernel, 1, "pass", &format!("nul-{field}"));
            body["commit"][field] = json!("a\u{0}b");
            let (status, reply) = h.post_report(body).await;
            expect_invalid(status, &reply);
            assert_eq!(fields(&reply), [format!("commit.{field}")]);
        }
        let mut body = report(kernel, 1, "pass", "nul-meta");
        body["metadata"]["compiler"] = json!("gcc\u{0}");
        let (status, reply) = h.post_report(body).await;
        assert_eq!(fields(&reply), ["metadata.compiler"], "{status} {reply}");
        let (status, reply) = push(&h, json!([{"sha": sha(1), "subject": "x\u{0}"}])).await;
        expect_invalid(status, &reply);
        assert_eq!(fields(&reply), ["commits[0].subject"]);
        assert_eq!(h.report_count().await, 0);

        // A log keeps its content, NUL made visible, and so does its error line.
        let mut body = report(kernel, 1, "fail", "nul-log");
        body["log"] = json!("noise \u{0}\u{0}\nsrc/a.c:1:2: error: bad \u{0} thing\n");
        let (status, reply) = h.post_report(body).await;
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        let cell = h.cell(&format!("el8/{kernel}"), 1).await;
        let text = cell.to_string();
        assert!(text.contains("noise \u{2400}\u{2400}"), "{text}");
        assert!(text.contains("error: bad \u{2400} thing"), "{text}");
    })
    .await;
}

async fn health_notices_a_stalled_writer(db: TestDb) {
    let h = Harness::with_config(db, |c| c.writer_stall_secs = 1).await;
    let (status, _) = h.json("GET", "/api/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let stuck = h.storage.watchdog.writing();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, body) = h.json("GET", "/api/v1/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["writer"].as_str().unwrap().starts_with("stalled"),
        "{body}"
    );
    assert_eq!(body["database"], "ok");
    drop(stuck);
    let (status, _) = h.json("GET", "/api/v1/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A database locked by someone else for longer than Trellis waits: the runner gets a 503 with
/// `Retry-After` in bounded time, and its retry is stored once the lock is gone.
/// Locks the database from another connection, as another process could, until rolled back.
async fn lock_database(h: &Harness) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    let mut other = <sqlx::AnyConnection as sqlx::Connection>::connect(&h.db.url)
        .await
        .unwrap();
    let lock = if h.db.url.starts_with("sqlite") {
        "BEGIN EXCLUSIVE"
    } else {
        "BEGIN; LOCK TABLE reports IN ACCESS EXCLUSIVE MODE"
    };
    sqlx::raw_sql(lock).execute(&mut other).await.unwrap();
    other
}

/// Posts a report: the status, the JSON body and the `Retry-After` header.
async fn post_with_headers(
    h: &Harness,
    body: &Value,
) -> (StatusCode, Value, Option<axum::http::HeaderValue>) {
    let req = axum::http::Request::post("/api/v1/reports")
        .header("authorization", format!("Bearer {}", h.token))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let res = tower::ServiceExt::oneshot(h.router.clone(), req)
        .await
        .unwrap();
    let retry = res.headers().get("retry-after").cloned();
    let status = res.status();
    let bytes = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        status,
        serde_json::from_slice::<Value>(&bytes).unwrap(),
        retry,
    )
}

async fn a_locked_database_answers_503_then_recovers(db: TestDb) {
    let h = Harness::new(db).await;
    let mut other = lock_database(&h).await;
    let body = report("4.18.0-553.el8_10.x86_64", 1, "pass", "locked");
    let started = std::time::Instant::now();
    let (status, reply, retry_after) = post_with_headers(&h, &body).await;
    let waited = started.elapsed();
    expect_error(
        status,
        &reply,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
    assert!(retry_after.is_some(), "503 without Retry-After");
    assert!(
        waited < Duration::from_secs(10),
        "answered after {waited:?}"
    );
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    let (status, reply) = h.post_report(body).await;
    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(h.report_count().await, 1);
}

/// A database that cannot be reached makes health say so, and requests answer 503.
async fn health_tells_when_the_database_is_gone(db: TestDb) {
    let h = Harness::new(db).await;
    h.storage.close().await;
    let (status, body) = h.json("GET", "/api/v1/health", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_ne!(body["database"], "ok");
    let (status, body) = h
        .post_report(report("4.18.0-553.el8_10.x86_64", 1, "pass", "gone"))
        .await;
    expect_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    );
}

/// More reports than the writer's queue holds while the database is stuck: the excess is
/// answered 503 at once (not queued without bound), and once runners retry every report is
/// stored exactly once. SQLite only: PostgreSQL's table lock also blocks the retry check that
/// comes before the queue, so its queue never fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_and_nothing_is_lost() {
    let h = std::sync::Arc::new(Harness::new(TestDb::sqlite().await).await);
    let mut other = lock_database(&h).await;
    let n: u32 = 700;
    let posts: Vec<_> = (0..n)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let body = report(
                    "4.18.0-553.el8_10.x86_64",
                    1 + i % 5,
                    "pass",
                    &format!("q{i}"),
                );
                let started = std::time::Instant::now();
                let (status, reply, retry) = post_with_headers(&h, &body).await;
                (body, status, reply, retry, started.elapsed())
            })
        })
        .collect();
    let mut refused = Vec::new();
    let mut at_once = 0;
    for post in posts {
        let (body, status, reply, retry, waited) = post.await.unwrap();
        expect_error(
            status,
            &reply,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        );
        assert!(retry.is_some(), "503 without Retry-After");
        // The writer waits 4 s on the lock per batch; a refusal by the full queue does not.
        if waited < Duration::from_secs(2) {
            at_once += 1;
        }
        refused.push(body);
    }
    assert!(at_once > 0, "no report was refused by the full queue");
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    for body in &refused {
        let (status, reply) = h.post_report(body.clone()).await;
        assert!(matches!(status.as_u16(), 200 | 201), "{status} {reply}");
    }
    assert_eq!(h.report_count().await, i64::from(n));
}

async fn storage_work_shows_in_metrics(db: TestDb) {
    let h = Harness::new(db).await;
    let (status, _) = h
        .post_report(report("4.18.0-553.el8_10.x86_64", 1, "fail", "metrics"))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    h.breakages().await;
    let (status, text) = h.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for series in [
        "trellis_ingest_batch_size_count",
        "trellis_ingest_commit_seconds_count",
        "trellis_ingest_queue_depth",
        "trellis_breakage_recompute_seconds_count",
    ] {
        let line = text.lines().find(|l| l.starts_with(series));
        assert!(line.is_some(), "{series} missing from /metrics:\n{text}");
    }
}

on_both_backends!(
    a_locked_database_answers_503_then_recovers,
    health_tells_when_the_database_is_gone,
    storage_work_shows_in_metrics,
    a_commit_naming_itself_is_refused,
    cycles_across_requests_are_refused,
    a_long_history_is_stored_in_order,
    nul_bytes_get_one_answer,
    health_notices_a_stalled_writer,
);
