//! Breakage events on both backends: one identity per breakage, each event written once even
//! when two processes compute the same breakages, the events API, the subscribe form's double
//! opt-in and rate limit, and the links of every mail.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::Value;
use trellis_server::storage::{Follows, Target};

const OLD: &str = "4.18.0-513.24.1.el8_9.x86_64";
const NEW: &[&str] = &[
    "4.18.0-553.el8_10.x86_64",
    "4.18.0-553.5.1.el8_10.x86_64",
    "4.18.0-553.8.1.el8_10.x86_64",
];
const FIXED: &str = "4.18.0-553.22.1.el8_10.x86_64";

async fn post_all(h: &Harness, reports: Vec<Value>) {
    for r in reports {
        let (status, body) = h.post_report(r).await;
        assert!(status.is_success(), "{body}");
    }
}

async fn events(h: &Harness, query: &str) -> Value {
    let (status, body) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/events{query}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn kinds(events: &Value) -> Vec<(String, String)> {
    events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["breakage"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A kernel update that breaks every newer kernel, seen by two processes at once: one
/// `opened` event, one breakage id; its fix is one `fixed` event.
async fn two_processes_announce_each_event_once(db: TestDb) {
    let a = Harness::new(db).await;
    // A second process on the same database: its own pools, caches and announcer state.
    let (router, storage) =
        trellis_server::app(trellis_server::config::Config::for_database(&a.db.url))
            .await
            .unwrap();
    let b = Harness {
        router,
        storage,
        token: a.token.clone(),
        db: TestDb::sqlite().await,
    };
    push_linear_history(&a, 3).await;
    let mut reports = vec![];
    for c in 1..=3 {
        reports.push(report(OLD, c, "pass", &format!("old-{c}")));
    }
    for (i, k) in NEW.iter().enumerate() {
        reports.push(report(k, 3, "fail", &format!("new-{i}")));
    }
    post_all(&a, reports).await;
    // Both compute and announce, concurrently and repeatedly.
    let (ba, bb) = tokio::join!(a.breakages(), b.breakages());
    assert_eq!(ba[0]["id"], bb[0]["id"], "one identity in both processes");
    for _ in 0..3 {
        tokio::join!(a.breakages(), b.breakages());
    }
    let id = ba[0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        kinds(&events(&a, "").await),
        vec![("opened".to_string(), id.clone())]
    );
    assert_eq!(ba[0]["kernels"].as_array().unwrap().len(), 3);

    post_all(&a, vec![report(FIXED, 3, "pass", "fixed")]).await;
    for _ in 0..3 {
        tokio::join!(a.breakages(), b.breakages());
    }
    let all = events(&b, "").await;
    assert_eq!(
        kinds(&all),
        vec![
            ("opened".to_string(), id.clone()),
            ("fixed".to_string(), id.clone())
        ]
    );
    let fixed = &all["events"][1];
    assert!(fixed["id"].as_i64() > all["events"][0]["id"].as_i64());
    assert_eq!(fixed["breakage"]["fixed_by_kernel"], FIXED);
    assert_ne!(all["events"][0]["uuid"], fixed["uuid"]);
}

/// Paging with `after` and `limit`, and bad paging answered 400 as JSON.
async fn the_events_api_pages_and_refuses_bad_paging(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 4).await;
    // Two module breakages on one kernel, the first fixed: three events.
    post_all(
        &h,
        ["pass", "fail", "pass", "fail"]
            .iter()
            .enumerate()
            .map(|(i, s)| report(OLD, i as u32 + 1, s, &format!("r{i}")))
            .collect(),
    )
    .await;
    h.breakages().await;
    let first = events(&h, "?limit=2").await;
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    let after = first["next_after"].as_i64().expect("a next page");
    let rest = events(&h, &format!("?after={after}&limit=2")).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next_after"], Value::Null);
    let all = kinds(&events(&h, "").await);
    assert_eq!(
        all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["opened", "fixed", "opened"]
    );
    assert_ne!(
        all[0].1, all[2].1,
        "failing again after a fix is a new breakage"
    );
    for bad in ["?after=-1", "?limit=0", "?limit=501", "?after=x"] {
        let (status, body) = h
            .json(
                "GET",
                &format!("/api/v1/projects/wg/events{bad}"),
                None,
                None,
            )
            .await;
        expect_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (status, body) = h
        .json("GET", "/api/v1/projects/nope/events", None, None)
        .await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

fn form_request(uri: &str, body: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap()
}

async fn send(h: &Harness, req: axum::http::Request<axum::body::Body>) -> (StatusCode, String) {
    use tower::ServiceExt;
    let res = h.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let retry = res.headers().get("retry-after").cloned();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let mut text = String::from_utf8_lossy(&body).to_string();
    if let Some(r) = retry {
        text.push_str(&format!("\nretry-after: {}", r.to_str().unwrap()));
    }
    (status, text)
}

/// The public form stores an unconfirmed subscription with its confirmation mail queued; the
/// confirmation and unsubscribe links show a page and act on POST; the form is rate-limited.
async fn the_subscribe_form_asks_for_confirmation_and_is_rate_limited(db: TestDb) {
    let h = Harness::with_config(db, |c| c.subscribe_per_hour = 3).await;
    push_linear_history(&h, 1).await;
    post_all(&h, vec![report(OLD, 1, "pass", "el8")]).await;
    let (status, page) = send(
        &h,
        form_request(
            "/p/wg/subscribe",
            "email=dev%40example.org&stream=el8&attribution=kernel",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Check your inbox"), "{page}");
    let subs = h.storage.subscriptions().await.unwrap();
    assert_eq!(subs.len(), 1);
    let s = &subs[0];
    assert!(!s.confirmed);
    assert_eq!(s.target, Target::Email("dev@example.org".to_string()));
    assert_eq!(
        s.follows,
        Follows {
            project: Some("wg".to_string()),
            stream: Some("el8".to_string()),
            attribution: Some(trellis_domain::breakage::Attribution::Kernel),
        }
    );
    assert_eq!(
        h.storage.outbox_counts().await.unwrap().waiting,
        1,
        "the confirmation mail"
    );

    // A second request for the same address and filter sends no second mail.
    let (status, _) = send(
        &h,
        form_request(
            "/p/wg/subscribe",
            "email=dev%40example.org&stream=el8&attribution=kernel",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.storage.outbox_counts().await.unwrap().waiting, 1);

    let confirm = format!("/subscriptions/{}/confirm", s.token);
    let (status, page) = h.get(&confirm).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert!(
        !h.storage
            .subscription(s.id)
            .await
            .unwrap()
            .unwrap()
            .confirmed,
        "GET changes nothing"
    );
    let (status, _) = send(&h, form_request(&confirm, "")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        h.storage
            .subscription(s.id)
            .await
            .unwrap()
            .unwrap()
            .confirmed
    );

    // RFC 8058 one-click: a POST with `List-Unsubscribe=One-Click`.
    let unsubscribe = format!("/subscriptions/{}/unsubscribe", s.token);
    let (status, page) = send(&h, form_request(&unsubscribe, "List-Unsubscribe=One-Click")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(h.storage.subscriptions().await.unwrap().is_empty());
    let (status, page) = send(&h, form_request(&unsubscribe, "List-Unsubscribe=One-Click")).await;
    assert_eq!(status, StatusCode::OK, "asking twice is no mistake");
    assert!(page.contains("Not subscribed"), "{page}");

    // Bad input is a 400 page; the fourth request within the hour is a 429 with Retry-After.
    let (status, page) = send(&h, form_request("/p/wg/subscribe", "email=not-an-address")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("not a mail address"), "{page}");
    let (status, page) = send(&h, form_request("/p/wg/subscribe", "email=x%40example.org")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{page}");
    assert!(page.contains("\nretry-after: "), "{page}");
    let (status, _) = send(
        &h,
        form_request("/p/nope/subscribe", "email=x%40example.org"),
    )
    .await;
    assert_ne!(status, StatusCode::OK);
}

/// The feeds of a project with a breakage: Atom and RSS content types, a stable ETag answered
/// 304, and an unknown filter value answered 400 (feedparser checks the XML in tests-notify).
async fn feeds_answer_conditional_requests(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 2).await;
    post_all(
        &h,
        vec![report(OLD, 1, "pass", "a"), report(OLD, 2, "fail", "b")],
    )
    .await;
    h.breakages().await;
    for (path, content_type) in [
        ("/p/wg/feed.atom", "application/atom+xml; charset=utf-8"),
        ("/p/wg/feed.rss", "application/rss+xml; charset=utf-8"),
        (
            "/feed.atom?stream=el8",
            "application/atom+xml; charset=utf-8",
        ),
    ] {
        use tower::ServiceExt;
        let get = |etag: Option<String>| {
            let mut req = axum::http::Request::builder().uri(path);
            if let Some(e) = etag {
                req = req.header("if-none-match", e);
            }
            req.body(axum::body::Body::empty()).unwrap()
        };
        let res = h.router.clone().oneshot(get(None)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        assert_eq!(res.headers()["content-type"], content_type);
        assert!(res.headers().contains_key("last-modified"));
        let etag = res.headers()["etag"].to_str().unwrap().to_string();
        let again = h.router.clone().oneshot(get(Some(etag))).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    for bad in ["state=maybe", "stream=el8&stream=el9"] {
        let (status, body) = h
            .json("GET", &format!("/p/wg/feed.atom?{bad}"), None, None)
            .await;
        expect_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }
    let (_, page) = h.get("/p/wg/breakages").await;
    assert!(
        page.contains(r#"<link rel="alternate" type="application/atom+xml""#),
        "the breakages page links its feed"
    );
    assert!(page.contains("Subscribe"));
}

on_both_backends!(
    two_processes_announce_each_event_once,
    the_events_api_pages_and_refuses_bad_paging,
    the_subscribe_form_asks_for_confirmation_and_is_rate_limited,
    feeds_answer_conditional_requests,
);
