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

on_both_backends!(pages_render_and_errors_are_typed, openapi_paths_exist,);
