//! Pages render, errors are typed, and every path the OpenAPI document names answers.

use crate::common::*;
use crate::on_both_backends;
use axum::http::StatusCode;
use serde_json::json;

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

/// The start tag that holds `needle` (an attribute), to check its other attributes whatever
/// their order.
fn tag<'a>(html: &'a str, needle: &str) -> &'a str {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} in {html}"));
    let start = html[..at].rfind('<').unwrap();
    let end = at + html[at..].find('>').unwrap();
    &html[start..=end]
}

/// Posts one result with a log; answers the report id.
async fn post(h: &Harness, kernel: &str, commit: u32, status: &str, log: &str) -> i64 {
    let mut body = report(
        kernel,
        commit,
        status,
        &format!("{kernel}-{commit}-{status}"),
    );
    body["log"] = json!(log);
    let (code, answer) = h.post_report(body).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
    answer["id"].as_i64().unwrap()
}

const FAILING_LOG: &str =
    "make -C /lib/modules/build M=/src modules\n  CC [M]  /src/queueing.o\n/src/queueing.h:85:41: error: 'struct sk_buff' has no member named 'headers_end'\nmake[1]: *** [Makefile:10: /src/queueing.o] Error 1\n";

/// A module commit that broke EL8 (with an untested commit before it) and a kernel update that
/// broke EL9: the home page says what is broken now, and the cell page is a workbench.
async fn the_home_page_says_what_is_broken_now_and_cells_link_their_surroundings(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 4).await;
    let (older, el8) = ("4.18.0-513.el8_9.x86_64", "4.18.0-553.el8_10.x86_64");
    post(&h, older, 1, "pass", "ok\n").await;
    post(&h, older, 3, "error", "runner: no space left on device\n").await;
    post(&h, el8, 1, "pass", "ok\n").await;
    let failing = post(&h, el8, 3, "fail", FAILING_LOG).await;
    post(&h, el8, 4, "fail", FAILING_LOG).await;
    post(&h, "5.14.0-427.el9_4.x86_64", 4, "pass", "ok\n").await;
    post(&h, "5.14.0-503.el9_5.x86_64", 4, "fail", FAILING_LOG).await;
    let breakages = h.breakages().await;
    assert_eq!(breakages.as_array().unwrap().len(), 2, "{breakages:#}");
    let id_of = |stream: &str| {
        breakages
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["stream"] == stream)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };

    let (status, home) = h.get("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("Broken now: 2 open breakages"), "{home}");
    assert!(
        home.contains("kernel update <a href=\"/p/wg/kernel/el9/5.14.0-503.el9_5.x86_64\">"),
        "{home}"
    );
    assert!(
        home.contains(&format!(
            "module commit <a href=\"/p/wg/commit/{}\">",
            sha(3)
        )),
        "{home}"
    );
    assert!(home.contains("<q class=\"subject\">commit 3</q>"), "{home}");
    assert!(home.contains("bisect: 1 untested commit, test"), "{home}");
    assert!(home.contains("adapt the module to this kernel"), "{home}");
    assert!(
        home.contains(&format!("href=\"/p/wg/breakages#{}\"", id_of("el9"))),
        "{home}"
    );
    assert!(
        home.contains("<time datetime=\"2026-11-26T10:05:00Z\" title=\"2026-11-26 10:05 UTC\">"),
        "{home}"
    );
    // The health line links to the newest tested commit; no site-wide demo banner.
    let health = tag(&home, &format!("href=\"/p/wg/commit/{}\"", sha(4)));
    assert!(health.contains("class=\"health failing\""), "{health}");
    assert!(!home.contains("demo-banner"), "{home}");

    let cell = format!("/p/wg/cell/el8/{el8}/{}", sha(3));
    let (status, page) = h.get(&cell).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!("href=\"/p/wg/kernel/el8/{el8}\"")),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/p/wg/commit/{}\"", sha(3))),
        "{page}"
    );
    assert!(
        page.contains(&format!("href=\"/p/wg/breakages#{}\"", id_of("el8"))),
        "{page}"
    );
    assert!(page.contains("href=\"/p/wg/signature/"), "{page}");
    // Neighbours: the parent commit is untested, the previous kernel had a runner error.
    let parent = tag(&page, &format!("href=\"/p/wg/cell/el8/{el8}/{}\"", sha(2)));
    assert!(parent.contains("class=\"untested\""), "{parent}");
    assert!(page.contains(&format!("parent commit <code>{}</code>", &sha(2)[..7])));
    let previous = tag(
        &page,
        &format!("href=\"/p/wg/cell/el8/{older}/{}\"", sha(3)),
    );
    assert!(previous.contains("class=\"s-error\""), "{previous}");
    assert!(page.contains(&format!("previous kernel <code>{older}</code>")));
    // The log: numbered lines, the error line marked, a link to it and the raw log.
    let line = tag(&page, &format!("id=\"r{failing}-L3\""));
    assert!(line.contains("class=\"line error-line\""), "{line}");
    let other = tag(&page, &format!("id=\"r{failing}-L2\""));
    assert!(other.contains("class=\"line\""), "{other}");
    let jump = tag(&page, &format!("href=\"#r{failing}-L3\" class=\"jump\""));
    assert!(page.contains(&format!("{jump}jump to first error</a>")));
    let raw = format!("{cell}/reports/{failing}/log.txt");
    assert!(page.contains(&format!("href=\"{raw}\" download")), "{page}");
    let (status, text) = h.get(&raw).await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, FAILING_LOG));
    let (status, _) = h
        .get(&format!("{cell}/reports/{}/log.txt", failing + 100))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A runner error is shown expanded and explained.
    let (_, page) = h.get(&format!("/p/wg/cell/el8/{older}/{}", sha(3))).await;
    assert!(
        page.contains("<details open")
            && page.contains("(infrastructure), not that the module failed"),
        "{page}"
    );
}

/// The raw log is a plain-text download.
async fn the_raw_log_downloads_as_text(db: TestDb) {
    let h = Harness::new(db).await;
    let id = post(&h, "4.18.0-553.el8_10.x86_64", 1, "fail", FAILING_LOG).await;
    let uri = format!(
        "/p/wg/cell/el8/4.18.0-553.el8_10.x86_64/{}/reports/{id}/log.txt",
        sha(1)
    );
    let res = tower::ServiceExt::oneshot(
        h.router.clone(),
        axum::http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let header = |name: &str| res.headers()[name].to_str().unwrap().to_string();
    assert_eq!(header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        header("content-disposition"),
        format!("attachment; filename=\"trellis-report-{id}.log\"")
    );
}

/// With nothing open, the summary says so with the age of the newest result.
async fn nothing_broken_says_so(db: TestDb) {
    let h = Harness::new(db).await;
    post(&h, "4.18.0-553.el8_10.x86_64", 1, "pass", "ok\n").await;
    h.breakages().await;
    let (_, home) = h.get("/").await;
    assert!(
        home.contains("Nothing is broken; newest result <time datetime=\"2026-"),
        "{home}"
    );
    let health = tag(&home, &format!("href=\"/p/wg/commit/{}\"", sha(1)));
    assert!(health.contains("class=\"health\""), "{health}");
}

/// A project that says where its commits are browsed gets an upstream link on each commit
/// page (and in the commit's JSON); one that does not gets none.
async fn commit_pages_link_upstream_when_the_project_says_where(db: TestDb) {
    let h = Harness::new(db).await;
    h.post_report(report("4.18.0-553.el8_10.x86_64", 1, "pass", "u"))
        .await;
    let commit = format!("/p/wg/commit/{}", sha(1));
    let (_, page) = h.get(&commit).await;
    assert!(!page.contains("upstream</a>"), "no link before one is set");
    // An administrator names the module's cgit: commit links follow its form.
    let edit = json!({"git_url": "https://git.example.org/wg"});
    let admin = Some(ADMIN_TOKEN);
    let uri = "/api/v1/admin/projects/wg";
    let (status, body) = h.json("PATCH", uri, admin, Some(edit.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = h
        .json(
            "PATCH",
            "/api/v1/admin/projects/nope",
            admin,
            Some(edit.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = h.json("PATCH", uri, Some(&h.token), Some(edit)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a runner token is no admin token: {body}"
    );
    let (status, page) = h.get(&commit).await;
    assert_eq!(status, StatusCode::OK);
    let link = format!("href=\"https://git.example.org/wg/commit/?id={}\"", sha(1));
    assert!(page.contains(&link), "{page}");
    let (_, body) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/commits/{}", sha(1)),
            None,
            None,
        )
        .await;
    assert_eq!(
        body["upstream"],
        json!(format!("https://git.example.org/wg/commit/?id={}", sha(1)))
    );
}

on_both_backends!(
    pages_render_and_errors_are_typed,
    openapi_paths_exist,
    the_home_page_says_what_is_broken_now_and_cells_link_their_surroundings,
    the_raw_log_downloads_as_text,
    nothing_broken_says_so,
    commit_pages_link_upstream_when_the_project_says_where,
);
