//! Reports as runners send them: the receipt, authentication, refused input, long logs, and many
//! runners at once.

use crate::common::*;
use crate::on_both_backends;
use axum::body::Body;
use axum::http::{Request, StatusCode};
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
    let other = add_runner(&h.storage, "runner-2").await;
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

on_both_backends!(
    report_lifecycle,
    authentication,
    bad_input_is_rejected_and_stores_nothing,
    long_logs_keep_head_and_tail,
    concurrent_reports_all_count,
    concurrent_retries_store_one_report,
);
