//! API and storage integration tests. Every test runs twice, on SQLite and on PostgreSQL, each
//! time against its own fresh database (a temp file, or a database created for the test).

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

async fn report_lifecycle(db: TestDb) {
    let h = Harness::new(db).await;
    let (status, body) = h
        .post_report(report("4.18.0-553.el8_10.x86_64", 1, "fail", "run-1"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    let url = body["url"].as_str().unwrap();
    assert_eq!(
        url,
        format!(
            "/p/wg/cell/el8/4.18.0-553.el8_10.x86_64/{}#report-{id}",
            sha(1)
        )
    );

    // The retry stores nothing new and answers with the same report.
    let (status, again) = h
        .post_report(report("4.18.0-553.el8_10.x86_64", 1, "fail", "run-1"))
        .await;
    assert_eq!((status, again["id"].as_i64()), (StatusCode::OK, Some(id)));
    assert_eq!(h.report_count().await, 1);

    // The same run_id from another runner is another report.
    let other = h.storage.add_runner("runner-2").await.unwrap().unwrap();
    let (status, _) = h
        .json(
            "POST",
            "/api/v1/reports",
            Some(&other),
            Some(report("4.18.0-553.el8_10.x86_64", 1, "pass", "run-1")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let cell = h.cell("el8/4.18.0-553.el8_10.x86_64", 1).await;
    let reports = cell["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 2);
    let first = reports.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(first["log"], "build log of run-1\n");
    assert_eq!(first["stages"][0]["duration_ms"], 3500);
    assert_eq!(first["metadata"]["compiler"], "gcc 8.5.0");
    assert_eq!(first["runner"], "runner-1");
    assert_eq!(
        cell["summary"]["counts"],
        json!({"pass": 1, "fail": 1, "error": 0, "skip": 0})
    );
}

async fn authentication(db: TestDb) {
    let h = Harness::new(db).await;
    let body = report("4.18.0-553.el8_10.x86_64", 1, "pass", "r");
    let (status, err) = h
        .json("POST", "/api/v1/reports", None, Some(body.clone()))
        .await;
    expect_error(status, &err, StatusCode::UNAUTHORIZED, "unauthorized");
    let forged = format!("trellis_{}_{}", &h.token[8..20], "0".repeat(48));
    let (status, _) = h
        .json("POST", "/api/v1/reports", Some(&forged), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .json(
            "POST",
            "/api/v1/reports",
            Some("garbage"),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    assert!(h
        .storage
        .set_runner_enabled("runner-1", false)
        .await
        .unwrap());
    let (status, err) = h.post_report(body.clone()).await;
    expect_error(status, &err, StatusCode::FORBIDDEN, "runner_disabled");
    assert_eq!(h.report_count().await, 0);

    assert!(h
        .storage
        .set_runner_enabled("runner-1", true)
        .await
        .unwrap());
    assert_eq!(h.post_report(body).await.0, StatusCode::CREATED);
    let runners = h.storage.list_runners().await.unwrap();
    assert!(runners[0].last_seen_at.is_some());
}

async fn bad_input_is_rejected_and_stores_nothing(db: TestDb) {
    let h = Harness::with_config(db, |c| c.max_body_bytes = 4096).await;
    assert_eq!(
        h.post_report(report("4.18.0-553.el8_10.x86_64", 1, "pass", "keep"))
            .await
            .0,
        StatusCode::CREATED
    );

    let (status, text) = h
        .request(
            "POST",
            "/api/v1/reports",
            Some(&h.token),
            Some("{\"project\": ".into()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["error"],
        "malformed_json"
    );

    let mut bad = report("4.18.0-553.el8_10", 1, "passed", "r2");
    bad["commit"]["sha"] = json!("abc1234");
    let (status, err) = h.post_report(bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut fields: Vec<&str> = err["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["commit.sha", "kernel.arch", "stages[0].status", "status"]
    );

    let mut huge = report("4.18.0-553.el8_10.x86_64", 1, "pass", "big");
    huge["log"] = json!("x".repeat(10_000));
    let (status, err) = h.post_report(huge).await;
    expect_error(
        status,
        &err,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    let (status, err) = h
        .json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(json!({"commits": [{"sha": "zz"}]})),
        )
        .await;
    assert_eq!(
        (status, err["fields"][0]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("commits[0].sha"))
    );
    let (status, _) = h
        .json(
            "POST",
            "/api/v1/projects/Bad%20Name/commits",
            Some(&h.token),
            Some(json!({"commits": [{"sha": sha(1)}]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    assert_eq!(h.report_count().await, 1);
    let cell = h.cell("el8/4.18.0-553.el8_10.x86_64", 1).await;
    assert_eq!(cell["reports"][0]["run_id"], "keep");
}

async fn long_logs_keep_head_and_tail(db: TestDb) {
    let h = Harness::with_config(db, |c| c.max_log_bytes = 1000).await;
    let mut body = report("4.18.0-553.el8_10.x86_64", 1, "fail", "long");
    let log: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    body["log"] = json!(log);
    assert_eq!(h.post_report(body).await.0, StatusCode::CREATED);
    let cell = h.cell("el8/4.18.0-553.el8_10.x86_64", 1).await;
    let stored = &cell["reports"][0];
    let text = stored["log"].as_str().unwrap();
    assert!(text.starts_with("line 0\n") && text.ends_with("line 1999\n"));
    assert!(text.contains("cut from the middle"));
    assert_eq!(
        stored["log_original_bytes"].as_i64().unwrap(),
        log.len() as i64
    );
    assert!(stored["log_cut_bytes"].as_i64().unwrap() > 15_000);
}

async fn grid_orders_kernels_by_rpm_and_commits_by_git(db: TestDb) {
    let h = Harness::with_config(db, |c| c.grid_commits = 3).await;
    push_linear_history(&h, 5).await;
    let kernels = [
        "4.18.0-553.el8_10.x86_64",
        "4.18.0-553.5.1.el8_10.x86_64",
        "4.18.0-80.el8.x86_64",
        "3.10.0-1160.119.1.el7.x86_64",
        "3.10.0-1160.el7.x86_64+debug",
    ];
    for (i, k) in kernels.iter().enumerate() {
        let status = if i == 1 { "fail" } else { "pass" };
        assert_eq!(
            h.post_report(report(k, 4, status, &format!("r{i}")))
                .await
                .0,
            StatusCode::CREATED
        );
    }
    let grid = h.grid("").await;
    let shas = column_shas(&grid);
    assert_eq!(shas, [sha(5), sha(4), sha(3)]);
    assert_eq!(grid["has_older"], true);
    let layout: Vec<(String, Vec<String>)> = grid["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let rows = g["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["uname"].as_str().unwrap().to_string())
                .collect();
            (g["label"].as_str().unwrap().to_string(), rows)
        })
        .collect();
    assert_eq!(
        layout,
        [
            (
                "Enterprise Linux 8".to_string(),
                vec![
                    "4.18.0-553.5.1.el8_10.x86_64".to_string(),
                    "4.18.0-553.el8_10.x86_64".to_string(),
                    "4.18.0-80.el8.x86_64".to_string()
                ]
            ),
            (
                "Enterprise Linux 7".to_string(),
                vec![
                    "3.10.0-1160.119.1.el7.x86_64".to_string(),
                    "3.10.0-1160.el7.x86_64+debug".to_string()
                ]
            ),
        ]
    );
    let newest_el8 = &grid["groups"][0]["rows"][0];
    assert_eq!(newest_el8["cells"][1]["state"], "fail");
    assert_eq!(newest_el8["cells"][0], Value::Null);
    assert_eq!(newest_el8["has_failure"], true);

    let older = h.grid("?page=1").await;
    let shas = column_shas(&older);
    assert_eq!(
        (shas, older["has_older"].as_bool()),
        (vec![sha(2), sha(1)], Some(false))
    );
    // Streams stay listed on pages where they have no results.
    assert_eq!(older["groups"].as_array().unwrap().len(), 2);

    let filtered = h.grid("?failing=1&stream=el8").await;
    let visible: Vec<&str> = filtered["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rows"].as_array().unwrap())
        .filter(|r| r["visible"] == true)
        .map(|r| r["uname"].as_str().unwrap())
        .collect();
    assert_eq!(visible, ["4.18.0-553.5.1.el8_10.x86_64"]);

    let (status, err) = h
        .json("GET", "/api/v1/projects/wg/grid?page=-1", None, None)
        .await;
    expect_error(status, &err, StatusCode::BAD_REQUEST, "bad_request");
    let (status, _) = h
        .json("GET", "/api/v1/projects/nope/grid", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn git_order_survives_history_arriving_late(db: TestDb) {
    let h = Harness::new(db).await;
    // Reports name commits before any history is known...
    assert_eq!(
        h.post_report(report("4.18.0-553.el8_10.x86_64", 3, "pass", "a"))
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(
        h.post_report(report("4.18.0-553.el8_10.x86_64", 1, "pass", "b"))
            .await
            .0,
        StatusCode::CREATED
    );
    // ...then the history arrives, children first, and fixes the order.
    let commits = json!({"commits": [
        {"sha": sha(4), "parents": [sha(3)]},
        {"sha": sha(3), "parents": [sha(2)]},
        {"sha": sha(2), "parents": [sha(1)]},
        {"sha": sha(1), "parents": []},
    ]});
    let (status, body) = h
        .json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(commits.clone()),
        )
        .await;
    assert_eq!((status, body["new"].as_i64()), (StatusCode::OK, Some(2)));
    let (_, body) = h
        .json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(commits),
        )
        .await;
    assert_eq!(body["new"], 0);
    let grid = h.grid("").await;
    let shas = column_shas(&grid);
    assert_eq!(shas, [sha(4), sha(3), sha(2), sha(1)]);
    assert_eq!(grid["columns"][1]["subject"], "commit 3");
}

async fn cell_status_follows_the_latest_report(db: TestDb) {
    let h = Harness::new(db).await;
    let k = "5.14.0-427.13.1.el9_4.x86_64";
    let mut late_error = report(k, 1, "error", "late");
    late_error["finished_at"] = json!("2026-11-26T12:00:00Z");
    h.post_report(late_error).await;
    // An older report arriving afterwards does not replace the latest.
    h.post_report(report(k, 1, "pass", "early")).await;
    let cell = &h.grid("").await["groups"][0]["rows"][0]["cells"][0];
    assert_eq!(cell["state"], "error");
    assert_eq!(
        cell["summary"]["counts"],
        json!({"pass": 1, "fail": 0, "error": 1, "skip": 0})
    );
    h.post_report(report(k, 1, "fail", "third")).await;
    let cell = &h.grid("").await["groups"][0]["rows"][0]["cells"][0];
    assert_eq!(cell["state"], "flaky");
}

async fn concurrent_reports_all_count(db: TestDb) {
    let h = Harness::new(db).await;
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let router = h.router.clone();
            let token = h.token.clone();
            let kernel = if i % 2 == 0 {
                "4.18.0-553.el8_10.x86_64"
            } else {
                "4.18.0-553.5.1.el8_10.x86_64"
            };
            let body = report(kernel, 1 + i % 3, "pass", &format!("c{i}")).to_string();
            tokio::spawn(async move {
                let req = Request::post("/api/v1/reports")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::from(body))
                    .unwrap();
                router.oneshot(req).await.unwrap().status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::CREATED);
    }
    assert_eq!(h.report_count().await, 24);
    let grid = h.grid("").await;
    let total: i64 = grid["groups"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["cells"].as_array().unwrap())
        .filter(|c| !c.is_null())
        .map(|c| c["summary"]["counts"]["pass"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 24);
}

/// A runner retrying while its first attempt is still in flight: one report is stored, every
/// attempt gets its id, and the other reports of the same batch are unaffected.
async fn concurrent_retries_store_one_report(db: TestDb) {
    let h = Harness::new(db).await;
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let router = h.router.clone();
            let token = h.token.clone();
            let run_id = if i % 2 == 0 {
                "same-run".to_string()
            } else {
                format!("other-{i}")
            };
            let body = report("4.18.0-553.el8_10.x86_64", 1 + i % 4, "pass", &run_id).to_string();
            tokio::spawn(async move {
                let req = Request::post("/api/v1/reports")
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::from(body))
                    .unwrap();
                let res = router.oneshot(req).await.unwrap();
                let status = res.status();
                let bytes = res.into_body().collect().await.unwrap().to_bytes();
                let body: Value = serde_json::from_slice(&bytes).unwrap();
                (run_id, status, body["id"].as_i64().unwrap())
            })
        })
        .collect();
    let mut same = Vec::new();
    for t in tasks {
        let (run_id, status, id) = t.await.unwrap();
        if run_id == "same-run" {
            same.push((status, id));
        } else {
            assert_eq!(status, StatusCode::CREATED);
        }
    }
    assert_eq!(
        same.iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count(),
        1,
        "{same:?}"
    );
    assert!(same
        .iter()
        .all(|(s, id)| (*s == StatusCode::CREATED || *s == StatusCode::OK) && *id == same[0].1));
    assert_eq!(h.report_count().await, 17);
}

async fn pages_render_and_errors_are_typed(db: TestDb) {
    let h = Harness::new(db).await;
    let mut body = report("4.18.0-553.el8_10.x86_64", 1, "fail", "p");
    body["log"] = json!("<b>not bold</b>");
    h.post_report(body).await;
    let (status, home) = h.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("href=\"/p/wg\""), "{home}");
    let (status, grid) = h.get("/p/wg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        grid.contains("data-kernel=\"4.18.0-553.el8_10.x86_64\"") && grid.contains("leptos-island")
    );
    let (status, cell) = h
        .get(&format!(
            "/p/wg/cell/el8/4.18.0-553.el8_10.x86_64/{}",
            sha(1)
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cell.contains("&lt;b&gt;not bold&lt;/b&gt;") && !cell.contains("<b>not bold"));
    let (status, page) = h.get("/p/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("no project named"));
    let (status, page) = h
        .get(&format!("/p/wg/cell/el8/4.18.0-1.el8.x86_64/{}", sha(1)))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    // A path that is not UTF-8 is a client error, answered in the API's and the pages' own way.
    let (status, err) = h.json("GET", "/api/v1/projects/%FF/grid", None, None).await;
    expect_error(status, &err, StatusCode::BAD_REQUEST, "bad_request");
    let (status, page) = h.get("/p/%FF").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Error 400"), "{page}");
    let (status, err) = h.json("GET", "/api/v1/nothing", None, None).await;
    expect_error(status, &err, StatusCode::NOT_FOUND, "not_found");
    let (status, err) = h
        .json(
            "GET",
            "/api/v1/projects/wg/cells/el8/4.18.0-553.el8_10.x86_64/abc",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
}

/// Every path the OpenAPI document names answers (with its placeholders filled in).
async fn openapi_paths_exist(db: TestDb) {
    let h = Harness::new(db).await;
    h.post_report(report("4.18.0-553.el8_10.x86_64", 1, "pass", "o"))
        .await;
    let (status, doc) = h.json("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let uri = format!("/api/v1{path}")
            .replace("{project}", "wg")
            .replace("{stream}", "el8")
            .replace("{kernel}", "4.18.0-553.el8_10.x86_64")
            .replace("{sha}", &sha(1))
            .replace("{id}", "0000000000000000");
        for method in ops.as_object().unwrap().keys() {
            let (status, body) = h
                .request(
                    &method.to_uppercase(),
                    &uri,
                    Some(&h.token),
                    Some("{}".into()),
                )
                .await;
            // A 404 for a missing resource is fine; the router's own "no such endpoint" is not.
            assert!(
                !body.contains("no such API endpoint") && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}: {status} {body}"
            );
        }
    }
}

const LOG_ERROR_DIRECTIVE_A: &str =
    include_str!("../../domain/tests/fixtures/wg-master-3d3c92b-debian-6.1.0-56.log");
const LOG_ERROR_DIRECTIVE_B: &str =
    include_str!("../../domain/tests/fixtures/wg-v1.0.20220627-debian-6.1.0-56.log");
const LOG_HEADERS_END: &str =
    include_str!("../../domain/tests/fixtures/wg-v0.0.20200121-debian-6.1.0-56.log");

/// Posts one result for (kernel, distro, commit) with the given log.
async fn post_result(
    h: &Harness,
    kernel: &str,
    distro: &str,
    commit: u32,
    status: &str,
    log: &str,
    n: &mut u32,
) {
    *n += 1;
    let mut body = report(kernel, commit, status, &format!("s{n}"));
    body["kernel"]["distro"] = json!(distro);
    body["log"] = json!(log);
    body["finished_at"] = json!(format!("2026-11-{:02}T10:00:00Z", 1 + commit));
    body["started_at"] = body["finished_at"].clone();
    let (status, answer) = h.post_report(body).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
}

/// A kernel update that breaks RHEL 9 from one kernel on (fixed by commit 7), a commit that
/// breaks RHEL 7 (5..8, fixed by 9), a flaky cell and a runner error.
async fn breakages_attributions_and_bisect_hints(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 10).await;
    let mut n = 0;
    let rhel9 = [
        "5.14.0-427.el9_4.x86_64",
        "5.14.0-427.13.1.el9_4.x86_64",
        "5.14.0-503.el9_5.x86_64",
        "5.14.0-503.11.1.el9_5.x86_64",
    ];
    for (i, k) in rhel9.iter().enumerate() {
        for c in 1..=10 {
            let broken = i >= 2 && c < 7;
            let (status, log) = if broken {
                ("fail", LOG_HEADERS_END)
            } else {
                ("pass", "ok\n")
            };
            post_result(&h, k, "rhel-9", c, status, log, &mut n).await;
        }
    }
    let rhel7 = [
        "3.10.0-1160.el7.x86_64",
        "3.10.0-1160.6.1.el7.x86_64",
        "3.10.0-1160.119.1.el7.x86_64",
    ];
    for (i, k) in rhel7.iter().enumerate() {
        for c in (1..=10).filter(|c| *c != 4) {
            let log = if i == 1 {
                LOG_ERROR_DIRECTIVE_B
            } else {
                LOG_ERROR_DIRECTIVE_A
            };
            let status = if (5..=8).contains(&c) { "fail" } else { "pass" };
            post_result(&h, k, "rhel-7", c, status, log, &mut n).await;
        }
    }
    // Flaky: the same cell failed once and passed once; and a runner error.
    post_result(&h, rhel7[0], "rhel-7", 2, "fail", LOG_HEADERS_END, &mut n).await;
    post_result(
        &h,
        rhel7[1],
        "rhel-7",
        10,
        "error",
        "runner: no space left on device\n",
        &mut n,
    )
    .await;

    let body = h.current_breakages("").await;
    let list = body["breakages"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{body:#}");

    let kernel_caused = list.iter().find(|b| b["stream"] == "rhel-9").unwrap();
    assert_eq!(kernel_caused["attribution"], "kernel");
    assert_eq!(kernel_caused["first_bad_kernel"], rhel9[2]);
    assert_eq!(kernel_caused["kernels"], json!([rhel9[2], rhel9[3]]));
    assert_eq!(kernel_caused["commits"].as_array().unwrap().len(), 6);
    assert_eq!(kernel_caused["open"], false);
    assert_eq!(kernel_caused["fixed_by_commit"], sha(7));
    assert_eq!(kernel_caused["commit_bisect"], Value::Null);
    assert_eq!(kernel_caused["kernel_bisect"]["last_good"], rhel9[1]);
    assert_eq!(kernel_caused["kernel_bisect"]["untested"], json!([]));
    // First failure reported for commit 1 (Nov 2), first pass of the fix for commit 7 (Nov 8).
    assert_eq!(kernel_caused["time_to_fix_ms"], 6 * 24 * 3600 * 1000);
    assert!(kernel_caused["signature"]
        .as_str()
        .unwrap()
        .contains("headers_end"));
    assert!(kernel_caused["excerpt"]
        .as_str()
        .unwrap()
        .contains("queueing.h:90:41"));

    let module_caused = list.iter().find(|b| b["stream"] == "rhel-7").unwrap();
    assert_eq!(module_caused["attribution"], "module");
    assert_eq!(module_caused["first_bad_commit"], sha(5));
    assert_eq!(module_caused["kernels"].as_array().unwrap().len(), 3);
    assert_eq!(
        module_caused["commits"],
        json!([sha(5), sha(6), sha(7), sha(8)])
    );
    assert_eq!(module_caused["fixed_by_commit"], sha(9));
    let hint = &module_caused["commit_bisect"];
    assert_eq!(
        (hint["last_good"].as_str(), hint["first_bad"].as_str()),
        (Some(sha(3).as_str()), Some(sha(5).as_str()))
    );
    assert_eq!(hint["untested"], json!([sha(4)]));
    assert_eq!(hint["next"], sha(4));
    assert_eq!(
        hint["command"],
        format!("git bisect start {} {}", sha(5), sha(3))
    );
    // Two revisions of the module's #error at different lines and build folders: one signature.
    let signature = module_caused["signature"].as_str().unwrap();
    assert!(
        signature.starts_with("compat.h: error: #error"),
        "{signature}"
    );

    let (_, only_kernel) = h
        .json(
            "GET",
            "/api/v1/projects/wg/breakages?attribution=kernel&state=fixed",
            None,
            None,
        )
        .await;
    assert_eq!(only_kernel["breakages"].as_array().unwrap().len(), 1);
    let (status, err) = h
        .json(
            "GET",
            "/api/v1/projects/wg/breakages?attribution=cosmic",
            None,
            None,
        )
        .await;
    expect_error(status, &err, StatusCode::BAD_REQUEST, "bad_request");

    // The commit that adapted the module fixed RHEL 9 compared with its parent.
    let (status, commit) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/commits/{}", sha(7)),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{commit}");
    let rhel9_change = commit["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stream"] == "rhel-9")
        .unwrap();
    assert_eq!(rhel9_change["fixed"], json!([rhel9[2], rhel9[3]]));
    assert_eq!(commit["closed"][0]["id"], kernel_caused["id"]);

    let (status, kernel) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/kernels/rhel-9/{}", rhel9[2]),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{kernel}");
    assert_eq!(kernel["cells"].as_array().unwrap().len(), 10);
    assert_eq!(kernel["breakages"][0]["id"], kernel_caused["id"]);

    let id = trellis_domain::signature::signature_id(signature);
    let (status, cells) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/signatures/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cells}");
    assert_eq!(cells["kernels"], 3);
    assert_eq!(cells["cells"].as_array().unwrap().len(), 12);
    assert_eq!(cells["since"], json!([rhel7[0]]));

    // The grid marks where each breakage starts and shows the signature in the cell.
    let grid = h.grid("?stream=rhel-7").await;
    let rhel7_rows = grid["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stream"] == "rhel-7")
        .unwrap()["rows"]
        .clone();
    let starts: Vec<(String, String)> = rhel7_rows
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let uname = r["uname"].as_str().unwrap().to_string();
            grid["columns"]
                .as_array()
                .unwrap()
                .iter()
                .zip(r["cells"].as_array().unwrap())
                .filter(|(_, cell)| cell["breakage_start"] == true)
                .map(move |(c, _)| (uname.clone(), c["sha"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(starts, [(rhel7[0].to_string(), sha(5))]);
    let flaky = &rhel7_rows[2]["cells"][8];
    assert_eq!(flaky["state"], "flaky");

    for page in [
        "/p/wg/breakages",
        &format!("/p/wg/commit/{}", sha(7)),
        &format!("/p/wg/kernel/rhel-9/{}", rhel9[2]),
        &format!("/p/wg/signature/{id}"),
    ] {
        let (status, html) = h.get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}: {html}");
    }
}

/// The grid and the breakages are cached and refreshed from what changed: every view must still
/// show every result, new kernels, new commits and fixes.
async fn views_stay_current_as_results_arrive(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    let mut n = 0;
    let el8 = ["4.18.0-553.el8_10.x86_64", "4.18.0-553.5.1.el8_10.x86_64"];
    for c in 1..=3 {
        post_result(&h, el8[0], "el8", c, "pass", "ok", &mut n).await;
    }
    assert_eq!(
        h.grid("").await["groups"][0]["rows"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(h.breakages().await, json!([]));

    // A new kernel, passing on commit 2 and failing on 3: a new row and a breakage.
    post_result(&h, el8[1], "el8", 2, "pass", "ok", &mut n).await;
    post_result(&h, el8[1], "el8", 3, "fail", LOG_HEADERS_END, &mut n).await;
    let grid = h.grid("").await;
    let rows = grid["groups"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["uname"], el8[1]);
    assert_eq!(rows[0]["cells"][0]["state"], "fail");
    let found = h.breakages().await;
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["open"], true);

    // Another stream changes: the el8 breakage is kept.
    post_result(&h, "3.10.0-1160.el7.x86_64", "el7", 3, "pass", "ok", &mut n).await;
    assert_eq!(h.breakages().await.as_array().unwrap().len(), 1);
    assert_eq!(h.grid("").await["groups"].as_array().unwrap().len(), 2);

    // A new commit (a new column) fixes it.
    let mut fix = report(el8[1], 4, "pass", "fix");
    fix["commit"]["parents"] = json!([sha(3)]);
    fix["kernel"]["distro"] = json!("el8");
    assert_eq!(h.post_report(fix).await.0, StatusCode::CREATED);
    let grid = h.grid("").await;
    assert_eq!(column_shas(&grid)[0], sha(4));
    assert_eq!(grid["groups"][0]["rows"][0]["cells"][0]["state"], "pass");
    let found = h.breakages().await;
    assert_eq!(
        (
            found[0]["open"].as_bool(),
            found[0]["fixed_by_commit"].as_str()
        ),
        (Some(false), Some(sha(4).as_str()))
    );
}

/// Breakages are recomputed from the kernels whose cells changed: a new result on a known kernel
/// and commit, with no history change, still shows at once.
async fn breakages_follow_new_results_of_known_kernels(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    let mut n = 0;
    let (a, b) = ("4.18.0-553.el8_10.x86_64", "4.18.0-553.5.1.el8_10.x86_64");
    for c in 1..=2 {
        post_result(&h, a, "el8", c, "pass", "ok", &mut n).await;
        post_result(&h, b, "el8", c, "pass", "ok", &mut n).await;
    }
    assert_eq!(h.breakages().await, json!([]));
    post_result(&h, a, "el8", 3, "fail", LOG_HEADERS_END, &mut n).await;
    let found = h.breakages().await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found:#}");
    assert_eq!(found[0]["first_bad_commit"], sha(3));
    assert_eq!(found[0]["first_bad_kernel"], a);
    // The other kernel of the lane fails too: the same commit broke both, one breakage.
    post_result(&h, b, "el8", 3, "fail", LOG_HEADERS_END, &mut n).await;
    let found = h.breakages().await;
    assert_eq!(found.as_array().unwrap().len(), 1, "{found:#}");
    assert_eq!(
        found[0]["kernels"].as_array().unwrap().len(),
        2,
        "{found:#}"
    );
}

on_both_backends!(
    breakages_follow_new_results_of_known_kernels,
    report_lifecycle,
    authentication,
    bad_input_is_rejected_and_stores_nothing,
    long_logs_keep_head_and_tail,
    grid_orders_kernels_by_rpm_and_commits_by_git,
    git_order_survives_history_arriving_late,
    cell_status_follows_the_latest_report,
    concurrent_reports_all_count,
    concurrent_retries_store_one_report,
    pages_render_and_errors_are_typed,
    openapi_paths_exist,
    breakages_attributions_and_bisect_hints,
    views_stay_current_as_results_arrive,
);
