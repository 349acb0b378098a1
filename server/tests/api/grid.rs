//! The grid: kernels in RPM order, commits in git order (also when history arrives late), and
//! each cell following its latest report.

use crate::common::*;
use crate::on_both_backends;
use axum::http::StatusCode;
use serde_json::{json, Value};

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
    let grid = h.grid("?all=1").await;
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

    let older = h.grid("?page=1&all=1").await;
    let shas = column_shas(&older);
    assert_eq!(
        (shas, older["has_older"].as_bool()),
        (vec![sha(2), sha(1)], Some(false))
    );
    // Streams stay listed on pages where they have no results.
    assert_eq!(older["groups"].as_array().unwrap().len(), 2);

    // By default only tested commits are columns; the untested ones around them are counted.
    let tested = h.grid("").await;
    assert_eq!(column_shas(&tested), [sha(4)]);
    assert_eq!(
        (
            &tested["untested_before"],
            &tested["untested_after"],
            &tested["has_older"]
        ),
        (&json!(1), &json!([3]), &json!(false))
    );
    let (_, page) = h.get("/p/wg").await;
    assert!(page.contains(">1 untested commit<"), "{page}");
    assert!(page.contains(">3 untested commits<"), "{page}");
    assert!(page.contains("tested commits 1–1 (newest first)"), "{page}");
    let (_, page) = h.get("/p/wg?all=1").await;
    assert!(!page.contains("untested commit<") && page.contains(">commits 1–3 (newest first)"));

    // A filter cuts what is sent: only the kept rows, with the counts they were kept from.
    let filtered = h.grid("?failing=1&stream=el8").await;
    let kept: Vec<(&str, i64, Vec<&str>)> = filtered["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let rows = g["rows"].as_array().unwrap();
            let unames = rows.iter().map(|r| r["uname"].as_str().unwrap()).collect();
            (
                g["stream"].as_str().unwrap(),
                g["kernels"].as_i64().unwrap(),
                unames,
            )
        })
        .collect();
    assert_eq!(kept, [("el8", 3, vec!["4.18.0-553.5.1.el8_10.x86_64"])]);
    assert_eq!(filtered["kernels"], 5);
    assert_eq!(filtered["streams"].as_array().unwrap().len(), 2);
    let (_, page) = h.get("/p/wg?failing=1&stream=el8").await;
    assert_eq!(page.matches("<tr data-kernel=").count(), 1, "{page}");
    assert!(page.contains(" 1 of 3 kernels"), "{page}");
    assert!(page.contains("1 of 5 kernels shown"), "{page}");

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
    let grid = h.grid("?all=1").await;
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

on_both_backends!(
    grid_orders_kernels_by_rpm_and_commits_by_git,
    git_order_survives_history_arriving_late,
    cell_status_follows_the_latest_report,
);
