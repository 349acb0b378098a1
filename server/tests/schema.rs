//! The served OpenAPI document describes what the handlers really answer: every operation is
//! called in process on a seeded harness, for its successes and the errors it documents, and
//! each answer's status must be documented for that operation, its body must validate against
//! the documented schema, and the headers the document names must be there. Runs on SQLite and
//! on PostgreSQL.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tower::ServiceExt;

const UNAME: &str = "4.18.0-553.el8_10.x86_64";
const BODY_LIMIT: usize = 4096;

/// One request, the status it must get, and what it sends.
struct Case {
    method: &'static str,
    uri: String,
    token: Option<String>,
    body: Option<String>,
    want: StatusCode,
}

fn get(uri: impl Into<String>, want: StatusCode) -> Case {
    Case {
        method: "GET",
        uri: uri.into(),
        token: None,
        body: None,
        want,
    }
}

fn post(uri: &str, token: Option<&str>, body: impl Into<String>, want: StatusCode) -> Case {
    Case {
        method: "POST",
        uri: uri.to_string(),
        token: token.map(str::to_string),
        body: Some(body.into()),
        want,
    }
}

fn call(
    method: &'static str,
    uri: impl Into<String>,
    token: Option<&str>,
    body: Option<&str>,
    want: StatusCode,
) -> Case {
    Case {
        method,
        uri: uri.into(),
        token: token.map(str::to_string),
        body: body.map(str::to_string),
        want,
    }
}

/// Resolves a local `$ref` (`#/components/...`) against the document.
fn resolve<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value["$ref"].as_str() {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling {pointer}")),
        None => value,
    }
}

/// The documented path template and operation that `uri` calls with `method`.
fn operation<'d>(doc: &'d Value, method: &str, uri: &str) -> (&'d str, &'d Value) {
    let path = uri.trim_start_matches("/api/v1");
    let path = path.split('?').next().unwrap();
    let segments: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(template, ops)| {
            let parts: Vec<&str> = template.split('/').collect();
            ops.get(method.to_lowercase()).is_some()
                && parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(t, s)| t.starts_with('{') || t == s)
        })
        .map(|(template, ops)| (template.as_str(), &ops[method.to_lowercase()]))
        .unwrap_or_else(|| panic!("{method} {uri} is not documented"))
}

/// Checks one answer against the documented response for its status.
fn check(
    doc: &Value,
    case: &Case,
    status: StatusCode,
    headers: &axum::http::HeaderMap,
    body: &str,
) {
    let what = format!("{} {} -> {status}: {body}", case.method, case.uri);
    assert_eq!(status, case.want, "{what}");
    let (_, op) = operation(doc, case.method, &case.uri);
    let documented = op["responses"]
        .get(status.as_str())
        .unwrap_or_else(|| panic!("status not documented: {what}"));
    let response = resolve(doc, documented);
    for name in response["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(n, _)| n)
    {
        assert!(
            headers.contains_key(name.as_str()),
            "no {name} header: {what}"
        );
    }
    if status == StatusCode::NO_CONTENT {
        assert!(
            body.is_empty() && response.get("content").is_none(),
            "{what}"
        );
        return;
    }
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        panic!("no JSON schema documented: {what}");
    };
    let content_type = headers.get("content-type").unwrap().to_str().unwrap();
    assert!(content_type.starts_with("application/json"), "{what}");
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {what}"));
    // The schema's references point into the document: validate with its components at hand.
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}\ndoes not match {schema}: {errors:#?}"
    );
}

async fn every_documented_answer_matches_the_handler(db: TestDb) {
    let h = Harness::with_config(db, |c| c.max_body_bytes = BODY_LIMIT).await;
    push_linear_history(&h, 3).await;
    let mut failing = report(UNAME, 2, "fail", "broken");
    failing["log"] = json!("src/queueing.h:85:41: error: struct sk_buff has no member named x\n");
    for body in [report(UNAME, 1, "pass", "good"), failing] {
        let (status, body) = h.post_report(body).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(h.breakages().await.as_array().unwrap().len(), 1);
    let signature = h.cell(&format!("el8/{UNAME}"), 2).await["summary"]["signature"].clone();
    let signature = trellis_domain::signature::signature_id(signature.as_str().unwrap());
    let disabled = common::add_runner(&h.storage, "disabled").await;
    assert!(h
        .storage
        .set_runner_enabled("disabled", false)
        .await
        .unwrap());
    let (token, disabled) = (Some(h.token.as_str()), Some(disabled.as_str()));

    let (_, doc) = h.json("GET", "/api/v1/openapi.json", None, None).await;
    let new_report = report(UNAME, 3, "pass", "new").to_string();
    let too_large = "x".repeat(BODY_LIMIT + 1);
    let commits = json!({ "commits": [{ "sha": sha(4), "parents": [sha(3)] }] }).to_string();
    let push = "/api/v1/projects/wg/commits";
    let cell = format!("/api/v1/projects/wg/cells/el8/{UNAME}");
    // Two jobs: the head commit on UNAME (the report below completes it) and on a new kernel.
    let ask = json!({"project": "wg", "max_jobs": 2,
        "kernels": [{"version": UNAME}, {"version": "4.18.0-513.el8.x86_64"}]})
    .to_string();
    let (status, leased) = h
        .json(
            "POST",
            "/api/v1/jobs/lease",
            token,
            Some(serde_json::from_str(&ask).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{leased}");
    assert_eq!(leased["jobs"][1]["reason"], "new_kernel", "{leased}");
    let job = format!("/api/v1/jobs/{}", leased["jobs"][1]["lease_id"]);
    let heartbeat = format!("{job}/heartbeat");
    let admin = Some(ADMIN_TOKEN);
    let source = json!({"url": "http://127.0.0.1:9/el8/", "stream": "el8"}).to_string();
    let sources = "/api/v1/admin/projects/wg/kernel-sources";
    let kernel = format!("/api/v1/projects/wg/kernels/el8/{UNAME}");
    let cases = [
        post("/api/v1/reports", token, &new_report, StatusCode::CREATED),
        post("/api/v1/reports", token, &new_report, StatusCode::OK),
        post("/api/v1/reports", token, "{", StatusCode::BAD_REQUEST),
        post(
            "/api/v1/reports",
            None,
            &new_report,
            StatusCode::UNAUTHORIZED,
        ),
        post(
            "/api/v1/reports",
            disabled,
            &new_report,
            StatusCode::FORBIDDEN,
        ),
        post(
            "/api/v1/reports",
            token,
            &too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        post(
            "/api/v1/reports",
            token,
            "{}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        post(push, token, &commits, StatusCode::OK),
        post(push, token, "[", StatusCode::BAD_REQUEST),
        post(push, None, &commits, StatusCode::UNAUTHORIZED),
        post(push, disabled, &commits, StatusCode::FORBIDDEN),
        post(push, token, &too_large, StatusCode::PAYLOAD_TOO_LARGE),
        post(
            push,
            token,
            r#"{"commits": []}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        get("/api/v1/projects", StatusCode::OK),
        get("/api/v1/projects/wg/grid?failing=1", StatusCode::OK),
        get("/api/v1/projects/wg/grid?page=x", StatusCode::BAD_REQUEST),
        get("/api/v1/projects/nope/grid", StatusCode::NOT_FOUND),
        get(format!("{cell}/{}", sha(2)), StatusCode::OK),
        get(format!("{cell}/0"), StatusCode::BAD_REQUEST),
        get(format!("{cell}/{}", sha(9)), StatusCode::NOT_FOUND),
        get("/api/v1/projects/wg/breakages", StatusCode::OK),
        get(
            "/api/v1/projects/wg/breakages?state=x",
            StatusCode::BAD_REQUEST,
        ),
        get("/api/v1/projects/nope/breakages", StatusCode::NOT_FOUND),
        get("/api/v1/projects/wg/events?after=0", StatusCode::OK),
        get(
            "/api/v1/projects/wg/events?limit=0",
            StatusCode::BAD_REQUEST,
        ),
        get("/api/v1/projects/nope/events", StatusCode::NOT_FOUND),
        get(&kernel, StatusCode::OK),
        get(format!("{kernel}.nope"), StatusCode::NOT_FOUND),
        get(
            format!("/api/v1/projects/wg/commits/{}", sha(2)),
            StatusCode::OK,
        ),
        get("/api/v1/projects/wg/commits/0", StatusCode::BAD_REQUEST),
        get(
            format!("/api/v1/projects/wg/commits/{}", sha(9)),
            StatusCode::NOT_FOUND,
        ),
        get(
            format!("/api/v1/projects/wg/signatures/{signature}"),
            StatusCode::OK,
        ),
        get(
            "/api/v1/projects/wg/signatures/0000000000000000",
            StatusCode::NOT_FOUND,
        ),
        get("/api/v1/openapi.json", StatusCode::OK),
        get("/api/v1/health", StatusCode::OK),
        get("/api/v1/projects/wg/coverage", StatusCode::OK),
        get(
            format!("/api/v1/projects/wg/coverage?since={}", sha(1)),
            StatusCode::OK,
        ),
        get(
            "/api/v1/projects/wg/coverage?since=x",
            StatusCode::BAD_REQUEST,
        ),
        get(
            format!("/api/v1/projects/wg/coverage?since={}", sha(9)),
            StatusCode::NOT_FOUND,
        ),
        get("/api/v1/projects/nope/coverage", StatusCode::NOT_FOUND),
        post("/api/v1/jobs/lease", token, &ask, StatusCode::OK),
        post("/api/v1/jobs/lease", token, "{", StatusCode::BAD_REQUEST),
        post("/api/v1/jobs/lease", None, &ask, StatusCode::UNAUTHORIZED),
        post("/api/v1/jobs/lease", disabled, &ask, StatusCode::FORBIDDEN),
        post(
            "/api/v1/jobs/lease",
            token,
            r#"{"project": "elsewhere"}"#,
            StatusCode::FORBIDDEN,
        ),
        post(
            "/api/v1/jobs/lease",
            token,
            "{}",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        post(
            "/api/v1/jobs/lease",
            token,
            &too_large,
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        call("POST", &heartbeat, token, None, StatusCode::OK),
        call(
            "POST",
            "/api/v1/jobs/x/heartbeat",
            token,
            None,
            StatusCode::BAD_REQUEST,
        ),
        call(
            "POST",
            "/api/v1/jobs/999999/heartbeat",
            token,
            None,
            StatusCode::CONFLICT,
        ),
        call("POST", &heartbeat, None, None, StatusCode::UNAUTHORIZED),
        call("POST", &heartbeat, disabled, None, StatusCode::FORBIDDEN),
        call("DELETE", &job, token, None, StatusCode::NO_CONTENT),
        call("DELETE", &job, token, None, StatusCode::NOT_FOUND),
        call(
            "DELETE",
            "/api/v1/jobs/x",
            token,
            None,
            StatusCode::BAD_REQUEST,
        ),
        call("DELETE", &job, None, None, StatusCode::UNAUTHORIZED),
        call("DELETE", &job, disabled, None, StatusCode::FORBIDDEN),
        post(
            "/api/v1/admin/projects",
            admin,
            r#"{"name": "added"}"#,
            StatusCode::CREATED,
        ),
        post(
            "/api/v1/admin/projects",
            admin,
            r#"{"name": "added"}"#,
            StatusCode::CONFLICT,
        ),
        post(
            "/api/v1/admin/projects",
            admin,
            "{",
            StatusCode::BAD_REQUEST,
        ),
        post(
            "/api/v1/admin/projects",
            token,
            r#"{"name": "x"}"#,
            StatusCode::UNAUTHORIZED,
        ),
        post(
            "/api/v1/admin/projects",
            admin,
            r#"{"name": "X"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        call(
            "PATCH",
            "/api/v1/admin/projects/added",
            admin,
            Some(r#"{"description": "a module"}"#),
            StatusCode::OK,
        ),
        call(
            "PATCH",
            "/api/v1/admin/projects/nope",
            admin,
            Some("{}"),
            StatusCode::NOT_FOUND,
        ),
        call(
            "PATCH",
            "/api/v1/admin/projects/added",
            admin,
            Some("["),
            StatusCode::BAD_REQUEST,
        ),
        call(
            "PATCH",
            "/api/v1/admin/projects/added",
            None,
            Some("{}"),
            StatusCode::UNAUTHORIZED,
        ),
        call(
            "PATCH",
            "/api/v1/admin/projects/added",
            admin,
            Some(r#"{"git_url": "ftp://x"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        post(sources, admin, &source, StatusCode::CREATED),
        post(sources, admin, "{", StatusCode::BAD_REQUEST),
        post(sources, token, &source, StatusCode::UNAUTHORIZED),
        post(
            "/api/v1/admin/projects/nope/kernel-sources",
            admin,
            &source,
            StatusCode::NOT_FOUND,
        ),
        post(
            sources,
            admin,
            r#"{"url": "x"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        call("GET", sources, admin, None, StatusCode::OK),
        call("GET", sources, None, None, StatusCode::UNAUTHORIZED),
        call(
            "GET",
            "/api/v1/admin/projects/nope/kernel-sources",
            admin,
            None,
            StatusCode::NOT_FOUND,
        ),
        call(
            "DELETE",
            "/api/v1/admin/kernel-sources/1",
            admin,
            None,
            StatusCode::NO_CONTENT,
        ),
        call(
            "DELETE",
            "/api/v1/admin/kernel-sources/1",
            admin,
            None,
            StatusCode::NOT_FOUND,
        ),
        call(
            "DELETE",
            "/api/v1/admin/kernel-sources/x",
            admin,
            None,
            StatusCode::BAD_REQUEST,
        ),
        call(
            "DELETE",
            "/api/v1/admin/kernel-sources/1",
            None,
            None,
            StatusCode::UNAUTHORIZED,
        ),
    ];

    let mut answered = BTreeSet::new();
    for case in &cases {
        let mut req = Request::builder().method(case.method).uri(&case.uri);
        if let Some(token) = &case.token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let body = case
            .body
            .clone()
            .map(Body::from)
            .unwrap_or_else(Body::empty);
        let req = req
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let res = h.router.clone().oneshot(req).await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        check(
            &doc,
            case,
            status,
            &headers,
            &String::from_utf8_lossy(&bytes),
        );
        if status.is_success() {
            answered.insert(operation(&doc, case.method, &case.uri).0);
        }
    }
    // Every documented operation was answered with success at least once.
    let documented: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(answered, documented);
}

on_both_backends!(every_documented_answer_matches_the_handler);
