//! The live grid's event stream: a posted report reaches every open stream as the grid draws its
//! cell, a reconnection replays what it missed, and writes by another process are seen too.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tower::ServiceExt;
use trellis_server::config::Config;
use trellis_server::http::edge;

const KERNEL: &str = "4.18.0-553.el8_10.x86_64";

/// One server-sent event.
#[derive(Debug)]
struct Event {
    kind: String,
    id: Option<i64>,
    retry: Option<u64>,
    data: String,
}

impl Event {
    fn cells(&self) -> Vec<Value> {
        assert_eq!(self.kind, "cells", "{self:?}");
        serde_json::from_str::<Value>(&self.data)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

/// An open event stream, read as the events arrive.
struct Stream {
    body: Body,
    pending: String,
}

impl Stream {
    async fn open(router: &Router, uri: &str, last_event_id: Option<&str>) -> Stream {
        let mut req = Request::get(uri);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = router
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        assert_eq!(res.headers()["x-accel-buffering"], "no");
        Stream {
            body: res.into_body(),
            pending: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some((block, rest)) = self.pending.split_once("\n\n") {
                let (block, rest) = (block.to_string(), rest.to_string());
                self.pending = rest;
                if let Some(event) = parse(&block) {
                    return Some(event);
                }
                continue;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(data) = frame.unwrap().into_data() {
                self.pending.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// The next event that carries cells, skipping revisions that changed none.
    async fn next_cells(&mut self) -> (Event, Vec<Value>) {
        loop {
            let event = self
                .next(Duration::from_secs(10))
                .await
                .expect("an event within 10 s");
            let cells = event.cells();
            if !cells.is_empty() {
                return (event, cells);
            }
        }
    }
}

fn parse(block: &str) -> Option<Event> {
    let mut event = Event {
        kind: "message".to_string(),
        id: None,
        retry: None,
        data: String::new(),
    };
    let mut any = false;
    for line in block.lines().filter(|l| !l.starts_with(':')) {
        let (field, value) = line.split_once(": ").unwrap_or((line, ""));
        any = true;
        match field {
            "event" => event.kind = value.to_string(),
            "id" => event.id = Some(value.parse().unwrap()),
            "retry" => event.retry = Some(value.parse().unwrap()),
            "data" => event.data.push_str(value),
            other => panic!("unexpected field {other:?}"),
        }
    }
    any.then_some(event)
}

async fn post(h: &Harness, commit: u32, status: &str, run_id: &str) {
    let (code, body) = h.post_report(report(KERNEL, commit, status, run_id)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
}

/// A stream opens at the current revision; a report reaches it as the grid page draws the cell.
async fn a_posted_report_reaches_open_streams_as_the_grid_draws_it(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    post(&h, 1, "pass", "r1").await;
    let mut a = Stream::open(&h.router, "/p/wg/live", None).await;
    let mut b = Stream::open(&h.router, "/p/wg/live", None).await;
    let opening = a.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!((opening.cells(), opening.retry), (vec![], Some(2000)));
    let start = opening.id.unwrap();
    b.next(Duration::from_secs(5)).await.unwrap();

    // A runner error: it never starts a breakage, whose mark would depend on the background
    // recomputation's timing.
    post(&h, 2, "error", "r2").await;
    for stream in [&mut a, &mut b] {
        let (event, cells) = stream.next_cells().await;
        assert!(event.id.unwrap() > start, "{event:?}");
        assert_eq!(cells.len(), 1, "{cells:?}");
        let cell = &cells[0];
        assert_eq!(
            (cell["stream"].as_str(), cell["kernel"].as_str()),
            (Some("el8"), Some(KERNEL))
        );
        assert_eq!(cell["sha"], sha(2));
        let face = &cell["face"];
        assert_eq!(
            (face["symbol"].as_str(), face["class"].as_str()),
            (Some("!"), Some("s-error"))
        );
        assert!(
            face["title"]
                .as_str()
                .unwrap()
                .contains("error (1 report: 1 error)"),
            "{face}"
        );
        assert_eq!(face["href"], format!("/p/wg/cell/el8/{KERNEL}/{}", sha(2)));

        // The page draws the same cell the same way.
        let (_, page) = h.get("/p/wg").await;
        let td = format!(
            r#"<td class="s-error"><a href="{}" title="{}">!</a></td>"#,
            face["href"].as_str().unwrap(),
            face["title"].as_str().unwrap()
        );
        assert!(page.contains(&td), "{td} not in the page");
        assert!(page.contains(&format!(r#"data-sha="{}""#, sha(2))));
    }
}

/// `Last-Event-ID` (a browser reconnecting) and `?since=` (a new stream) replay what was missed;
/// an id ahead of the database asks the page to reload; a bad one is refused.
async fn a_reconnection_replays_what_it_missed(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 3).await;
    post(&h, 1, "pass", "r1").await;
    let mut first = Stream::open(&h.router, "/p/wg/live", None).await;
    let seen = first
        .next(Duration::from_secs(5))
        .await
        .unwrap()
        .id
        .unwrap();
    drop(first);

    post(&h, 2, "fail", "r2").await;
    post(&h, 3, "pass", "r3").await;
    let since = format!("/p/wg/live?since={seen}");
    for (uri, last) in [
        ("/p/wg/live", Some(seen.to_string())),
        (since.as_str(), None),
    ] {
        let mut again = Stream::open(&h.router, uri, last.as_deref()).await;
        let (event, cells) = again.next_cells().await;
        let mut got: Vec<(String, String)> = cells
            .iter()
            .map(|c| {
                (
                    c["sha"].as_str().unwrap().to_string(),
                    c["face"]["symbol"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, [(sha(2), "✗".to_string()), (sha(3), "✓".to_string())]);
        assert!(event.id.unwrap() > seen);
        assert_eq!(event.retry, Some(2000));
    }

    let mut ahead = Stream::open(&h.router, "/p/wg/live", Some(&(seen + 100).to_string())).await;
    let reload = ahead.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(reload.kind, "reload");
    assert!(
        ahead.next(Duration::from_secs(2)).await.is_none(),
        "the stream ends"
    );

    let (status, body) = h.json("GET", "/p/wg/live?since=x", None, None).await;
    expect_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let (status, body) = h.json("GET", "/p/nope/live", None, None).await;
    expect_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// The stream follows the database, not this process: a report taken by another Trellis on the
/// same database reaches it.
async fn writes_by_another_process_reach_the_stream(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 2).await;
    post(&h, 1, "pass", "r1").await;
    let (other, other_storage) = trellis_server::app(Config::for_database(&h.db.url))
        .await
        .unwrap();
    let mut stream = Stream::open(&h.router, "/p/wg/live", None).await;
    stream.next(Duration::from_secs(5)).await.unwrap();

    let req = Request::post("/api/v1/reports")
        .header("authorization", format!("Bearer {}", h.token))
        .header("content-type", "application/json")
        .body(Body::from(report(KERNEL, 2, "error", "r2").to_string()))
        .unwrap();
    assert_eq!(
        other.oneshot(req).await.unwrap().status(),
        StatusCode::CREATED
    );
    let (_, cells) = stream.next_cells().await;
    assert_eq!(cells[0]["sha"], sha(2));
    assert_eq!(cells[0]["face"]["symbol"], "!");
    other_storage.close().await;
}

/// A server shutting down stops watching: open streams end, so their connections can close,
/// and a stream opened after that ends after its first event.
async fn streams_end_when_watching_stops(db: TestDb) {
    let h = Harness::new(db).await;
    post(&h, 1, "pass", "r1").await;
    let mut open = Stream::open(&h.router, "/p/wg/live", None).await;
    open.next(Duration::from_secs(5)).await.unwrap();
    h.storage.stop_watching();
    assert!(
        open.next(Duration::from_secs(3)).await.is_none(),
        "the stream ends"
    );
    let mut late = Stream::open(&h.router, "/p/wg/live", None).await;
    assert_eq!(
        late.next(Duration::from_secs(5)).await.unwrap().cells(),
        Vec::<Value>::new()
    );
    assert!(
        late.next(Duration::from_secs(3)).await.is_none(),
        "the stream ends"
    );
}

/// A server asked to stop while streams are open: it stops watching (as `trellis serve` does on
/// SIGTERM), the streams end, and the graceful shutdown finishes at once instead of waiting out
/// the idle timeout for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_is_not_held_by_open_streams() {
    let db = TestDb::sqlite().await;
    let config = Config::for_database(&db.url);
    let limits = edge::Limits::new(&config);
    assert!(limits.idle_timeout >= Duration::from_secs(10));
    let h = Harness::new(db).await;
    post(&h, 1, "pass", "r1").await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let storage = h.storage.clone();
    let shutdown = async move {
        let _ = stopped.await;
        storage.stop_watching();
    };
    let server = tokio::spawn(edge::serve(listener, h.router.clone(), limits, shutdown));

    let mut client = TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /p/wg/live HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: cells") {
        let mut chunk = [0; 4096];
        let n = client.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the stream opens");
        seen.extend_from_slice(&chunk[..n]);
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the shutdown finishes within seconds")
        .unwrap();
    // The response was ended properly: its last chunk, then the connection closed.
    client.read_to_end(&mut seen).await.unwrap();
    assert!(String::from_utf8_lossy(&seen).ends_with("0\r\n\r\n"));
}

on_both_backends!(
    streams_end_when_watching_stops,
    a_posted_report_reaches_open_streams_as_the_grid_draws_it,
    a_reconnection_replays_what_it_missed,
    writes_by_another_process_reach_the_stream,
);
