//! The OpenAPI document states the limits the server enforces: what it forbids gets a 4xx with a
//! JSON body naming the problem, what it allows is taken. These tests pin the inputs on which the
//! two once disagreed, reading each limit from the served document so that they cannot drift
//! apart again; `make test-contract` (schemathesis, tests-contract/) explores the rest. Every test
//! runs on SQLite and on PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::{json, Value};

const UNAME: &str = "4.18.0-553.el8_10.x86_64";

/// A harness whose project `wg` exists, and the OpenAPI document it serves.
async fn setup(db: TestDb) -> (Harness, Value) {
    let h = Harness::new(db).await;
    let (status, body) = h.post_report(report(UNAME, 1, "pass", "seed")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, doc) = h.json("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    (h, doc)
}

fn query_schema<'d>(doc: &'d Value, path: &str, name: &str) -> &'d Value {
    doc["paths"][path]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("GET {path} documents no parameter {name}"))
}

fn enum_values(schema: &Value) -> Vec<&str> {
    schema["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum in {schema}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn report_field<'d>(doc: &'d Value, field: &str) -> &'d Value {
    let schemas = &doc["components"]["schemas"];
    let schema = match field.split_once('.') {
        Some((object, key)) => &schemas["Report"]["properties"][object]["properties"][key],
        None => &schemas["Report"]["properties"][field],
    };
    assert!(schema.is_object(), "Report documents no field {field}");
    schema
}

fn limit(schema: &Value, key: &str) -> usize {
    schema[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {schema}")) as usize
}

async fn get(h: &Harness, uri: &str) -> (StatusCode, Value) {
    h.json("GET", uri, None, None).await
}

/// A 400 whose message starts with the parameter and the value sent.
fn expect_bad_query(status: StatusCode, body: &Value, param: &str, value: &str) {
    expect_error(status, body, StatusCode::BAD_REQUEST, "bad_request");
    let want = format!("{param}={value:?}: ");
    assert!(
        body["message"].as_str().unwrap().starts_with(&want),
        "{want} in {body}"
    );
}

/// A 422 that names exactly these fields.
fn expect_fields(status: StatusCode, body: &Value, fields: &[&str]) {
    expect_error(
        status,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_fields",
    );
    let named: Vec<&str> = body["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(named, fields, "{body}");
}

async fn grid_query_parameters_are_what_the_document_says(db: TestDb) {
    let (h, doc) = setup(db).await;
    let grid = "/projects/{project}/grid";
    let failing = enum_values(query_schema(&doc, grid, "failing"));
    for value in &failing {
        let (status, body) = get(&h, &format!("/api/v1/projects/wg/grid?failing={value}")).await;
        assert_eq!(status, StatusCode::OK, "failing={value}: {body}");
    }
    for junk in ["banana", "TRUE", "2"] {
        assert!(!failing.contains(&junk));
        let (status, body) = get(&h, &format!("/api/v1/projects/wg/grid?failing={junk}")).await;
        expect_bad_query(status, &body, "failing", junk);
    }

    let page = query_schema(&doc, grid, "page");
    assert_eq!(page["minimum"], 0);
    let max = page["maximum"].as_u64().unwrap();
    let (status, body) = get(&h, &format!("/api/v1/projects/wg/grid?page={max}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["grid"]["columns"], json!([]));
    for bad in [format!("{}", max + 1), "-1".to_string(), "x".to_string()] {
        let (status, body) = get(&h, &format!("/api/v1/projects/wg/grid?page={bad}")).await;
        expect_bad_query(status, &body, "page", &bad);
    }
    // A bad parameter is named even where the project does not exist.
    let (status, body) = get(&h, "/api/v1/projects/nope/grid?failing=banana").await;
    expect_bad_query(status, &body, "failing", "banana");
}

async fn breakage_filters_are_what_the_document_says(db: TestDb) {
    let (h, doc) = setup(db).await;
    let breakages = "/projects/{project}/breakages";
    for param in ["attribution", "state"] {
        let values = enum_values(query_schema(&doc, breakages, param));
        // Empty means "any": the breakages page's own form sends it.
        assert!(values.contains(&""), "{param}: {values:?}");
        for value in values {
            let uri = format!("/api/v1/projects/wg/breakages?{param}={value}");
            let (status, body) = get(&h, &uri).await;
            assert_eq!(status, StatusCode::OK, "{param}={value}: {body}");
        }
    }
    for (param, junk) in [
        ("attribution", "cosmic"),
        ("state", "closed"),
        ("state", "OPEN"),
    ] {
        let uri = format!("/api/v1/projects/wg/breakages?{param}={junk}");
        let (status, body) = get(&h, &uri).await;
        expect_bad_query(status, &body, param, junk);
    }
    let (status, body) = get(&h, "/api/v1/projects/wg/breakages?state=%20").await;
    expect_bad_query(status, &body, "state", " ");
}

async fn shas_in_paths_are_full(db: TestDb) {
    let (h, doc) = setup(db).await;
    let params = doc["paths"]["/projects/{project}/commits/{sha}"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let sha_schema = &params.iter().find(|p| p["name"] == "sha").unwrap()["schema"];
    assert_eq!(sha_schema["pattern"], "^[0-9a-fA-F]{40}$");
    for uri in [
        "/api/v1/projects/wg/commits/0".to_string(),
        format!("/api/v1/projects/wg/cells/el8/{UNAME}/0"),
    ] {
        let (status, body) = get(&h, &uri).await;
        expect_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("\"0\" is not a full 40-hex commit sha"),
            "{body}"
        );
    }
    let (status, body) = get(&h, &format!("/api/v1/projects/wg/commits/{}", sha(1))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn commit_pushes_hold_what_the_document_says(db: TestDb) {
    let (h, doc) = setup(db).await;
    let push = |commits: Value| {
        h.json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(json!({ "commits": commits })),
        )
    };
    let commits = &doc["paths"]["/projects/{project}/commits"]["post"]["requestBody"]["content"]
        ["application/json"]["schema"]["properties"]["commits"];
    assert_eq!(limit(commits, "minItems"), 1);
    let max = limit(commits, "maxItems");

    let (status, body) = push(json!([])).await;
    expect_fields(status, &body, &["commits"]);
    let too_many: Vec<Value> = (1..=max as u32 + 1)
        .map(|i| json!({ "sha": sha(i) }))
        .collect();
    let (status, body) = push(json!(too_many)).await;
    expect_fields(status, &body, &["commits"]);

    // null stands for an absent optional field, as the document says.
    let parents = &doc["components"]["schemas"]["Commit"]["properties"]["parents"];
    assert_eq!(parents["type"], json!(["array", "null"]));
    let (status, body) = push(json!([{ "sha": sha(2), "parents": null }])).await;
    assert_eq!(
        (status, &body["new"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );
}

async fn report_fields_hold_what_the_document_says(db: TestDb) {
    let (h, doc) = setup(db).await;
    let run_id = report_field(&doc, "run_id");
    assert_eq!(limit(run_id, "minLength"), 1);
    let max_run_id = limit(run_id, "maxLength");
    let version = report_field(&doc, "kernel.version");
    assert_eq!(limit(version, "minLength"), 1);
    let max_version = limit(version, "maxLength");
    assert!(run_id["pattern"].is_string() && version["pattern"].is_string());

    for blank in ["", "   "] {
        let (status, body) = h.post_report(report(UNAME, 1, "pass", blank)).await;
        expect_fields(status, &body, &["run_id"]);
        let mut empty_kernel = report(UNAME, 1, "pass", "k");
        empty_kernel["kernel"]["version"] = json!(blank);
        let (status, body) = h.post_report(empty_kernel).await;
        expect_fields(status, &body, &["kernel.version"]);
    }

    let (status, body) = h
        .post_report(report(UNAME, 1, "pass", &"r".repeat(max_run_id)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h
        .post_report(report(UNAME, 1, "pass", &"r".repeat(max_run_id + 1)))
        .await;
    expect_fields(status, &body, &["run_id"]);

    // The longest version the document allows, and one character more.
    let uname = |len: usize| {
        let fixed = "4.18.0-.el8.x86_64".len();
        format!("4.18.0-{}.el8.x86_64", "1".repeat(len - fixed))
    };
    let (status, body) = h
        .post_report(report(&uname(max_version), 1, "pass", "longest"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = h
        .post_report(report(&uname(max_version + 1), 1, "pass", "too-long"))
        .await;
    expect_fields(status, &body, &["kernel.version"]);
}

on_both_backends!(
    grid_query_parameters_are_what_the_document_says,
    breakage_filters_are_what_the_document_says,
    shas_in_paths_are_full,
    commit_pushes_hold_what_the_document_says,
    report_fields_hold_what_the_document_says,
);
