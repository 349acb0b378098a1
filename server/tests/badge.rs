//! Status badges: what they say per project and per stream, that they are well-formed SVG, and
//! their caching (`Cache-Control`, `ETag`, 304).

mod common;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use common::*;
use http_body_util::BodyExt;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Value};
use tower::ServiceExt;

const KERNEL: &str = "4.18.0-553.el8_10.x86_64";

async fn get(
    h: &Harness,
    uri: &str,
    if_none_match: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::get(uri);
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    let res = h
        .router
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

/// The badge at `uri`, checked to be well-formed SVG: its `<title>` and its visible texts.
async fn badge(h: &Harness, uri: &str) -> (String, Vec<String>) {
    let (status, headers, svg) = get(h, uri, None).await;
    assert_eq!(status, StatusCode::OK, "{svg}");
    assert_eq!(headers["content-type"], "image/svg+xml");
    assert_eq!(headers["cache-control"], "public, max-age=60");
    parse_svg(&svg)
}

/// Parses `svg` as XML, failing on anything not well-formed: tags that do not match or are left
/// open, bad attributes, undefined entities, more than one root.
fn parse_svg(svg: &str) -> (String, Vec<String>) {
    let mut reader = Reader::from_str(svg);
    let (mut open, mut roots) = (Vec::new(), 0);
    let (mut title, mut texts) = (String::new(), Vec::new());
    loop {
        let event = reader.read_event().unwrap_or_else(|e| panic!("{e}: {svg}"));
        match event {
            Event::Start(e) | Event::Empty(e) if open.is_empty() && roots > 0 => {
                panic!("a second root <{:?}>: {svg}", e.name())
            }
            Event::Start(e) => {
                e.attributes().for_each(|a| drop(a.unwrap()));
                roots += usize::from(open.is_empty());
                open.push(String::from_utf8(e.name().as_ref().to_vec()).unwrap());
                if open.last().unwrap() == "text" {
                    texts.push(String::new());
                }
            }
            Event::Empty(e) => e.attributes().for_each(|a| drop(a.unwrap())),
            Event::End(_) => {
                open.pop();
            }
            Event::Text(t) => text_in(&open, &mut title, &mut texts, &t.decode().unwrap()),
            Event::GeneralRef(r) => {
                let c = match &*r.decode().unwrap() {
                    "amp" => '&',
                    "lt" => '<',
                    "gt" => '>',
                    "quot" => '"',
                    "apos" => '\'',
                    other => r
                        .resolve_char_ref()
                        .unwrap()
                        .unwrap_or_else(|| panic!("&{other};")),
                };
                text_in(&open, &mut title, &mut texts, &c.to_string());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(open.is_empty() && roots == 1, "unclosed {open:?}: {svg}");
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
    (title, texts)
}

fn text_in(open: &[String], title: &mut String, texts: &mut [String], text: &str) {
    match open.last().map(String::as_str) {
        Some("title") => title.push_str(text),
        Some("text") => texts.last_mut().unwrap().push_str(text),
        _ => {}
    }
}

/// The label and message a badge shows (each is drawn twice: shadow, then text).
fn says(texts: &[String]) -> (String, String) {
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert_eq!((&texts[0], &texts[2]), (&texts[1], &texts[3]));
    (texts[0].clone(), texts[2].clone())
}

async fn post(h: &Harness, kernel: &str, commit: u32, status: &str, n: u32) {
    let mut body = report(kernel, commit, status, &format!("r{n}"));
    body["finished_at"] = json!(format!("2026-11-{:02}T10:00:00Z", 1 + commit));
    body["started_at"] = body["finished_at"].clone();
    let (code, answer) = h.post_report(body).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
}

async fn badges_per_project_and_stream(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    let (title, texts) = badge(&h, "/p/wg/badge.svg").await;
    assert_eq!(
        (title.as_str(), says(&texts)),
        ("wg: no results", ("wg".into(), "no results".into()))
    );

    post(&h, KERNEL, 1, "pass", 1).await;
    post(&h, "5.14.0-427.el9_4.x86_64", 1, "pass", 2).await;
    h.breakages().await;
    let (title, _) = badge(&h, "/p/wg/badge.svg").await;
    assert_eq!(title, "wg: passing");
    let (title, _) = badge(&h, "/p/wg/badge.svg?stream=el8").await;
    assert_eq!(title, "el8: passing");

    // A commit breaks el8; el9 still passes.
    post(&h, KERNEL, 2, "fail", 3).await;
    post(&h, "5.14.0-427.el9_4.x86_64", 2, "pass", 4).await;
    let breakages: Value = h.breakages().await;
    assert_eq!(breakages.as_array().unwrap().len(), 1, "{breakages}");
    let (title, texts) = badge(&h, "/p/wg/badge.svg?stream=el8").await;
    assert_eq!(
        (title.as_str(), says(&texts)),
        ("el8: 1 broken", ("el8".into(), "1 broken".into()))
    );
    assert_eq!(badge(&h, "/p/wg/badge.svg").await.0, "wg: 1 broken");
    assert_eq!(
        badge(&h, "/p/wg/badge.svg?stream=el9").await.0,
        "el9: passing"
    );
    // A stream nothing was reported for; the last `stream` wins, an empty one means the project.
    assert_eq!(
        badge(&h, "/p/wg/badge.svg?stream=el7").await.0,
        "el7: no results"
    );
    assert_eq!(
        badge(&h, "/p/wg/badge.svg?stream=el7&stream=el9").await.0,
        "el9: passing"
    );
    assert_eq!(badge(&h, "/p/wg/badge.svg?stream=").await.0, "wg: 1 broken");

    // Whatever the URL carries is escaped.
    let (title, texts) = badge(&h, "/p/wg/badge.svg?stream=%3Cb%3E%26%22%27%01").await;
    assert_eq!(title, "<b>&\"'\u{FFFD}: no results");
    assert_eq!(says(&texts).0, "<b>&\"'\u{FFFD}");

    let (status, body) = h.json("GET", "/p/nope/badge.svg", None, None).await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn badges_are_revalidated_by_etag(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 2).await;
    post(&h, KERNEL, 1, "pass", 1).await;
    h.breakages().await;
    let (status, headers, _) = get(&h, "/p/wg/badge.svg", None).await;
    assert_eq!(status, StatusCode::OK);
    let etag = headers["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with("W/\""), "{etag}");

    let (status, headers, body) = get(&h, "/p/wg/badge.svg", Some(&etag)).await;
    assert_eq!((status, body.as_str()), (StatusCode::NOT_MODIFIED, ""));
    assert_eq!(headers["etag"], etag.as_str());
    assert_eq!(headers["cache-control"], "public, max-age=60");
    let (status, ..) = get(&h, "/p/wg/badge.svg", Some("\"other\", *")).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    let (status, ..) = get(&h, "/p/wg/badge.svg", Some("\"other\"")).await;
    assert_eq!(status, StatusCode::OK);

    // Another answer, another tag.
    post(&h, KERNEL, 2, "fail", 2).await;
    h.breakages().await;
    let (status, headers, _) = get(&h, "/p/wg/badge.svg", Some(&etag)).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
}

on_both_backends!(
    badges_per_project_and_stream,
    badges_are_revalidated_by_etag
);
