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

/// Release tags come with pushed history or with a report's commit, are only added, and show in
/// the grid's columns (JSON and page) and on the commit page, also when the grid was cached.
async fn release_tags_name_columns(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    let k = "4.18.0-553.el8_10.x86_64";
    h.post_report(report(k, 2, "pass", "r2")).await;
    let mut tagged = report(k, 3, "fail", "r3");
    tagged["commit"]["tags"] = json!(["v1.0.20220627"]);
    assert_eq!(h.post_report(tagged).await.0, StatusCode::CREATED);
    let tags = |grid: &Value| -> Vec<Value> {
        grid["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["tags"].clone())
            .collect()
    };
    assert_eq!(
        tags(&h.grid("").await),
        [json!(["v1.0.20220627"]), json!([])]
    );

    // A tag added to a commit already shown refreshes the cached grid; naming it twice, or
    // again in a later push, adds nothing.
    let push = json!({"commits": [{"sha": sha(2), "tags": ["v1.0.20220601", "v1.0.20220601"]}]});
    for _ in 0..2 {
        let (status, body) = h
            .json(
                "POST",
                "/api/v1/projects/wg/commits",
                Some(&h.token),
                Some(push.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        tags(&h.grid("").await),
        [json!(["v1.0.20220627"]), json!(["v1.0.20220601"])]
    );

    let (status, page) = h.get("/p/wg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(r#"<strong class="tag">v1.0.20220627</strong>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<strong class="tag">v1.0.20220601</strong>"#),
        "{page}"
    );
    let (status, page) = h.get(&format!("/p/wg/commit/{}", sha(3))).await;
    assert_eq!(status, StatusCode::OK);
    // Its own tag, and its parent's in its position in history.
    assert!(
        page.contains(r#"<code class="tag">v1.0.20220627</code>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<code class="tag">v1.0.20220601</code>"#),
        "{page}"
    );

    let bad = json!({"commits": [{"sha": sha(1), "tags": ["", "ok"]}]});
    let (status, body) = h
        .json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(bad),
        )
        .await;
    expect_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_fields",
    );
    assert_eq!(body["fields"][0]["field"], "commits[0].tags[0]", "{body}");
}

/// The search keeps rows by kernel name or by the error text of their cells on the page, and the
/// page carries that text for the browser to narrow by.
async fn search_finds_error_text(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 2).await;
    let broken = "4.18.0-553.el8_10.x86_64";
    let mut fail = report(broken, 2, "fail", "r1");
    fail["log"] =
        json!("src/queueing.h:85:41: error: struct sk_buff has no member named headers_end\n");
    h.post_report(fail).await;
    h.post_report(report("4.18.0-477.10.1.el8_8.x86_64", 2, "pass", "r2"))
        .await;
    let rows = |grid: Value| -> Vec<String> {
        grid["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rows"].as_array().unwrap().clone())
            .map(|r| r["uname"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(rows(h.grid("?q=Headers_End").await), [broken]);
    assert_eq!(
        rows(h.grid("?q=477.10").await),
        ["4.18.0-477.10.1.el8_8.x86_64"]
    );
    assert!(rows(h.grid("?q=no+such+error").await).is_empty());

    let (status, page) = h.get("/p/wg?q=headers_end").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains(&format!(r#"data-kernel="{broken}""#)),
        "{page}"
    );
    assert!(!page.contains("4.18.0-477.10.1"), "{page}");
    assert!(
        page.contains("data-errors=\"") && page.contains("headers_end"),
        "{page}"
    );
}

/// Commits are found by the start of their sha, their subject or their tag, on their own page.
async fn commit_search_finds_sha_subject_and_tag(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    let tag = json!({"commits": [{"sha": sha(2), "tags": ["v1.0.20220627"]}]});
    let (status, _) = h
        .json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(tag),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let found = |page: &str| -> Vec<u32> {
        (1..=3)
            .filter(|n| page.contains(&format!("/p/wg/commit/{}", sha(*n))))
            .collect()
    };
    for (q, want) in [
        ("V1.0.2022", vec![2]),
        ("Commit+3", vec![3]),
        ("commit", vec![1, 2, 3]),
        (&sha(1)[30..], vec![]),
        (&sha(1)[..], vec![1]),
        ("0000", vec![1, 2, 3]),
        ("commit%25", vec![]),
        ("", vec![]),
    ] {
        let (status, page) = h.get(&format!("/p/wg/commits?q={q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}");
        assert_eq!(found(&page), want, "{q}: {page}");
    }
    let (_, page) = h.get("/p/wg/commits?q=v1.0").await;
    assert!(
        page.contains(r#"<code class="tag">v1.0.20220627</code>"#),
        "{page}"
    );
    assert!(page.contains("1 commit matching"), "{page}");
    let (_, page) = h.get("/p/wg/commits?q=nothing").await;
    assert!(page.contains("No commit matches"), "{page}");
    let (status, _) = h.get("/p/nope/commits?q=x").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, grid) = h.get("/p/wg").await;
    assert!(grid.contains(r#"href="/p/wg/commits""#), "{grid}");
}

on_both_backends!(
    commit_search_finds_sha_subject_and_tag,
    search_finds_error_text,
    release_tags_name_columns,
    grid_orders_kernels_by_rpm_and_commits_by_git,
    git_order_survives_history_arriving_late,
    cell_status_follows_the_latest_report,
);
