//! Breakages, their attribution and bisect hints, and views that stay current as results arrive.

use crate::common::*;
use crate::on_both_backends;
use axum::http::StatusCode;
use serde_json::{json, Value};

const LOG_ERROR_DIRECTIVE_A: &str =
    include_str!("../../../domain/tests/fixtures/wg-master-3d3c92b-debian-6.1.0-56.log");
const LOG_ERROR_DIRECTIVE_B: &str =
    include_str!("../../../domain/tests/fixtures/wg-v1.0.20220627-debian-6.1.0-56.log");
const LOG_HEADERS_END: &str =
    include_str!("../../../domain/tests/fixtures/wg-v0.0.20200121-debian-6.1.0-56.log");

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

/// One breakage card of the breakages page, by its id.
fn card<'a>(page: &'a str, id: &str) -> &'a str {
    let start = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no card {id} in {page}"));
    let end = start + page[start..].find("</section>").unwrap();
    &page[start..end]
}

/// The cards name the culprit once, on the axis that explains it, and the next step: the
/// `git bisect` line with its copy button, or the neighbour cells to test for an unknown cause.
async fn breakage_cards_name_the_culprit_once_and_the_next_step(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    let mut n = 0;
    let result = |kernel: &'static str, distro: &'static str, commit, status| {
        let log = if status == "fail" {
            LOG_HEADERS_END
        } else {
            "ok\n"
        };
        (kernel, distro, commit, status, log)
    };
    for (kernel, distro, commit, status, log) in [
        // EL7: a module commit between 1 (good) and 3 (bad), commit 2 untested.
        result("3.10.0-1160.el7.x86_64", "el7", 1, "pass"),
        result("3.10.0-1160.el7.x86_64", "el7", 3, "fail"),
        // EL9: a kernel update.
        result("5.14.0-427.el9_4.x86_64", "el9", 3, "pass"),
        result("5.14.0-503.el9_5.x86_64", "el9", 3, "fail"),
        // EL8: no passing neighbour on either axis, both neighbours untested.
        result("4.18.0-513.el8_9.x86_64", "el8", 1, "pass"),
        result("4.18.0-553.el8_10.x86_64", "el8", 2, "fail"),
    ] {
        post_result(&h, kernel, distro, commit, status, log, &mut n).await;
    }
    let found = h.breakages().await;
    let id = |stream: &str| {
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["stream"] == stream)
            .unwrap_or_else(|| panic!("no {stream} breakage in {found:#}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (status, page) = h.get("/p/wg/breakages").await;
    assert_eq!(status, StatusCode::OK);

    let module = card(&page, &id("el7"));
    assert!(module.contains("a module commit broke it"), "{module}");
    let culprit = format!("href=\"/p/wg/commit/{}\"", sha(3));
    assert_eq!(module.matches(&culprit).count(), 1, "{module}");
    assert!(
        module.contains("<q class=\"subject\">commit 3</q>"),
        "{module}"
    );
    assert!(module.contains(&format!(
        "<code>git bisect start {} {}</code>",
        sha(3),
        sha(1)
    )));
    // The copy button waits for JavaScript: hidden in the server's HTML.
    assert!(
        module.contains("<button") && module.contains("hidden"),
        "{module}"
    );
    assert!(
        page.contains("leptos-island"),
        "the card's button is an island"
    );

    let kernel = card(&page, &id("el9"));
    assert!(kernel.contains("a kernel update broke it"), "{kernel}");
    assert!(
        kernel.contains("kernel update <a href=\"/p/wg/kernel/el9/5.14.0-503.el9_5.x86_64\">"),
        "{kernel}"
    );
    assert!(
        !kernel.contains("/p/wg/commit/"),
        "no culprit commit: {kernel}"
    );

    let unknown = card(&page, &id("el8"));
    assert!(unknown.contains("cause unknown"), "{unknown}");
    for (uname, commit) in [
        ("4.18.0-513.el8_9.x86_64", 2),
        ("4.18.0-553.el8_10.x86_64", 1),
    ] {
        let cell = format!("href=\"/p/wg/cell/el8/{uname}/{}\"", sha(commit));
        assert!(unknown.contains(&cell), "{cell} in {unknown}");
    }
    assert!(unknown.contains("a pass there blames the kernel update"));
    assert!(unknown.contains("a pass there blames a module commit"));

    // Commit 3 is the first failing commit of both the EL7 and the EL9 breakage, but only the
    // module commit's breakage starts there: the kernel update's does not blame it.
    let (_, commit) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/commits/{}", sha(3)),
            None,
            None,
        )
        .await;
    let opened: Vec<&str> = commit["opened"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["stream"].as_str().unwrap())
        .collect();
    assert_eq!(opened, ["el7"], "{commit:#}");
}

on_both_backends!(
    breakage_cards_name_the_culprit_once_and_the_next_step,
    breakages_attributions_and_bisect_hints,
    views_stay_current_as_results_arrive,
    breakages_follow_new_results_of_known_kernels,
);
