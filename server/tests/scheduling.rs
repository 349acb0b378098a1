//! Who may post what, and work leases: scopes refuse posts outside them with a 403 naming the
//! scope; many runners leasing at once never get one cell twice; leases expire, extend, complete
//! and release; the most useful cells come first. On SQLite and PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;
use trellis_domain::scope::Grant;
use trellis_server::storage::AddedRunner;

const EL8: [&str; 4] = [
    "4.18.0-477.10.1.el8_8.x86_64",
    "4.18.0-513.5.1.el8_9.x86_64",
    "4.18.0-553.el8_10.x86_64",
    "4.18.0-553.5.1.el8_10.x86_64",
];

async fn lease(h: &Harness, token: &str, body: Value) -> (StatusCode, Value) {
    h.json("POST", "/api/v1/jobs/lease", Some(token), Some(body))
        .await
}

fn kernels(unames: &[&str]) -> Value {
    json!(unames
        .iter()
        .map(|u| json!({"version": u}))
        .collect::<Vec<_>>())
}

/// The cells of a lease answer, as (uname, sha).
fn cells(answer: &Value) -> Vec<(String, String)> {
    answer["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["kernel"]["uname"].as_str().unwrap().to_string(),
                j["commit"]["sha"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn scoped_runner(h: &Harness, name: &str, grants: &[&str]) -> String {
    let grants: Vec<Grant> = grants.iter().map(|g| Grant::parse(g).unwrap()).collect();
    match h.storage.add_runner(name, &grants).await.unwrap() {
        AddedRunner::Added(token) => token,
        refused => panic!("{refused:?}"),
    }
}

async fn a_runner_posts_only_inside_its_scope(db: TestDb) {
    let h = Harness::new(db).await;
    let el8_only = scoped_runner(&h, "el8-x86", &["wg:el8:x86_64"]).await;
    let post = |token: String, body: Value| {
        let h = &h;
        async move {
            h.json("POST", "/api/v1/reports", Some(&token), Some(body))
                .await
        }
    };
    let (status, body) = post(el8_only.clone(), report(EL8[0], 1, "pass", "in")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Another stream, another arch, another project: 403, naming what it may post.
    for (uname, project) in [
        ("5.14.0-427.el9_4.x86_64", "wg"),
        ("4.18.0-553.el8_10.aarch64", "wg"),
        (EL8[0], "other"),
    ] {
        let mut body = report(uname, 1, "pass", &format!("{uname}-{project}"));
        body["project"] = json!(project);
        let (status, answer) = post(el8_only.clone(), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["error"], "out_of_scope");
        assert_eq!(answer["scope"], json!(["wg:el8:x86_64"]));
        assert!(answer["message"].as_str().unwrap().contains(uname) || project == "other");
    }
    let (status, answer) = h
        .json(
            "POST",
            "/api/v1/projects/other/commits",
            Some(&el8_only),
            Some(json!({"commits": [{"sha": sha(1), "parents": []}]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["scope"], json!(["wg:el8:x86_64"]));

    // A runner may not create projects by reporting to them.
    let mut body = report(EL8[0], 1, "pass", "new-project");
    body["project"] = json!("fresh");
    let (status, _) = h.post_report(body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, projects) = h.json("GET", "/api/v1/projects", None, None).await;
    let names: Vec<&str> = projects["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["project"]["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"fresh"), "{names:?}");
    // A grant can only name a project that exists.
    let refused = h
        .storage
        .add_runner("nowhere", &[Grant::parse("fresh").unwrap()])
        .await
        .unwrap();
    assert_eq!(refused, AddedRunner::NoSuchProject("fresh".into()));
}

/// Sixteen runners lease at once, over and over, until nothing is left: every cell of the
/// grid is leased exactly once, by one runner.
async fn many_runners_never_lease_one_cell_twice(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 6).await;
    let mut tokens = Vec::new();
    for i in 0..16 {
        tokens.push(add_runner(&h.storage, &format!("parallel-{i}")).await);
    }
    let mut leased: Vec<(String, String)> = Vec::new();
    loop {
        let rounds = tokens.iter().map(|t| {
            let body = json!({"project": "wg", "kernels": kernels(&EL8), "max_jobs": 2});
            lease(&h, t, body)
        });
        let answers = futures_util::future::join_all(rounds).await;
        let mut got = 0;
        let mut busy = false;
        for (status, answer) in answers {
            // Sixteen transactions racing on PostgreSQL may meet a deadlock the storage could
            // not retry away: that is a 503 asking to come back, which runners do.
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(answer["error"], "unavailable", "{answer}");
                busy = true;
                continue;
            }
            assert_eq!(status, StatusCode::OK, "{answer}");
            let cells = cells(&answer);
            got += cells.len();
            leased.extend(cells);
        }
        if got == 0 && !busy {
            break;
        }
    }
    let distinct: HashSet<_> = leased.iter().collect();
    assert_eq!(distinct.len(), leased.len(), "a cell was leased twice");
    assert_eq!(leased.len(), EL8.len() * 6, "every cell, once");
}

/// A lease expires and is offered again; a heartbeat keeps it; a report completes it; a
/// release gives it back at once.
async fn leases_expire_extend_complete_and_release(db: TestDb) {
    let h = Harness::with_config(db, |c| c.lease_secs = 1).await;
    push_linear_history(&h, 2).await;
    let other = add_runner(&h.storage, "runner-2").await;
    let ask = json!({"project": "wg", "kernels": kernels(&EL8[..1])});

    let (_, first) = lease(&h, &h.token, ask.clone()).await;
    assert_eq!(first["jobs"][0]["reason"], "new_kernel");
    assert_eq!(first["lease_seconds"], 1);
    let cell = cells(&first)[0].clone();
    assert_eq!(cell.1, sha(2), "the head commit first");
    let id = first["jobs"][0]["lease_id"].as_i64().unwrap();

    // Kept alive past its first expiry by heartbeats, it is not offered to runner-2.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        let (status, body) = h
            .json(
                "POST",
                &format!("/api/v1/jobs/{id}/heartbeat"),
                Some(&h.token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, theirs) = lease(&h, &other, ask.clone()).await;
        assert!(!cells(&theirs).contains(&cell), "{theirs}");
        // What runner-2 got instead (the older commit) goes back.
        for job in theirs["jobs"].as_array().unwrap() {
            let uri = format!("/api/v1/jobs/{}", job["lease_id"]);
            let (status, _) = h.request("DELETE", &uri, Some(&other), None).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
    }
    // Not a heartbeat of someone else's lease.
    let (status, _) = h
        .json(
            "POST",
            &format!("/api/v1/jobs/{id}/heartbeat"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Left to expire, the cell is offered again.
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let (_, again) = lease(&h, &other, ask.clone()).await;
    assert_eq!(cells(&again)[0], cell, "{again}");
    let again_id = again["jobs"][0]["lease_id"].as_i64().unwrap();
    let (status, _) = h
        .json(
            "POST",
            &format!("/api/v1/jobs/{id}/heartbeat"),
            Some(&h.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "the first lease is lost");

    // runner-2's report completes the lease: its heartbeat is then refused.
    let (status, _) = h
        .json(
            "POST",
            "/api/v1/reports",
            Some(&other),
            Some(report(EL8[0], 2, "pass", "done")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = h
        .json(
            "POST",
            &format!("/api/v1/jobs/{again_id}/heartbeat"),
            Some(&other),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The older commit is what is left; released, it is offered again at once.
    let (_, last) = lease(&h, &h.token, ask.clone()).await;
    assert_eq!(last["jobs"][0]["reason"], "backfill");
    assert_eq!(cells(&last)[0].1, sha(1));
    let uri = format!("/api/v1/jobs/{}", last["jobs"][0]["lease_id"]);
    let (status, _) = h.request("DELETE", &uri, Some(&h.token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, after) = lease(&h, &other, ask).await;
    assert_eq!(cells(&after), cells(&last));
}

/// A new module commit comes before new kernels; a fresh failure is confirmed by another
/// runner; a runner naming streams and an arch gets only those.
async fn the_most_useful_cells_come_first(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 2).await;
    for (i, uname) in EL8[..2].iter().enumerate() {
        let (status, _) = h
            .post_report(report(uname, 1, "pass", &format!("old-{i}")))
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let (status, _) = h.post_report(report(EL8[1], 2, "fail", "fresh")).await;
    assert_eq!(status, StatusCode::CREATED);
    let other = add_runner(&h.storage, "runner-2").await;
    let ask = json!({"project": "wg", "kernels": kernels(&EL8[..3]), "max_jobs": 32});
    let (_, jobs) = lease(&h, &other, ask).await;
    let order: Vec<(String, String, String)> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["reason"].as_str().unwrap().to_string(),
                j["kernel"]["uname"].as_str().unwrap().to_string(),
                j["commit"]["sha"].as_str().unwrap()[..4].to_string(),
            )
        })
        .collect();
    let s = |n| sha(n)[..4].to_string();
    let want = [
        ("head_untested", EL8[0], s(2)),
        ("new_kernel", EL8[2], s(2)),
        ("confirm", EL8[1], s(2)),
        ("backfill", EL8[2], s(1)),
    ]
    .map(|(r, k, c)| (r.to_string(), k.to_string(), c));
    assert_eq!(order, want);

    // By stream and arch: nothing of el8 for an el9 runner.
    let (status, body) = lease(
        &h,
        &h.token,
        json!({"project": "wg", "streams": ["el9"], "arch": "x86_64"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["jobs"], json!([]));
    assert_eq!(body["poll_after_seconds"], 30);
}

on_both_backends!(
    a_runner_posts_only_inside_its_scope,
    many_runners_never_lease_one_cell_twice,
    leases_expire_extend_complete_and_release,
    the_most_useful_cells_come_first,
);
