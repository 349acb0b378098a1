//! The HTTP edge, mostly over real TCP: idle, slow and surplus clients cannot lock others out;
//! every API error is typed JSON with its request id; every answer carries the security headers;
//! `/metrics` counts requests by route template; shutdown finishes the requests in flight.

mod common;

use axum::http::StatusCode;
use base64::Engine;
use common::{report, Harness, TestDb};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use trellis_server::config::Config;
use trellis_server::http::edge;

/// A server on a port of its own, serving through the real edge.
struct Server {
    addr: SocketAddr,
    token: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    _db: TestDb,
}

impl Server {
    async fn start(tweak: impl FnOnce(&mut Config)) -> Server {
        let db = TestDb::sqlite().await;
        let mut config = Config::for_database(&db.url);
        tweak(&mut config);
        let limits = edge::Limits::new(&config);
        let (router, storage) = trellis_server::app(config).await.unwrap();
        let token = common::add_projects_and_runner(&storage, "runner-1").await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(edge::serve(listener, router, limits, shutdown));
        Server {
            addr,
            token,
            stop: Some(stop),
            task,
            _db: db,
        }
    }

    /// One request on a connection of its own.
    async fn request(&self, head: &str) -> Answer {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        read_answer(&mut stream).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
        ))
        .await
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }
}

/// Reads what has arrived, failing the test rather than hanging it when nothing does.
async fn read_some(stream: &mut TcpStream, buf: &mut [u8]) -> usize {
    tokio::time::timeout(Duration::from_secs(10), stream.read(buf))
        .await
        .expect("no answer within 10 s")
        .unwrap()
}

/// Reads one answer (sized by `content-length`) and leaves the connection open.
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = read_some(stream, &mut chunk).await;
        assert!(n > 0, "connection closed before a whole answer");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut answer = Answer {
        status: head[9..12].parse().unwrap(),
        head,
        body: String::new(),
    };
    let length: usize = answer
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while buf.len() < head_end + length {
        let n = read_some(stream, &mut chunk).await;
        assert!(n > 0, "connection closed inside the body");
        buf.extend_from_slice(&chunk[..n]);
    }
    answer.body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    answer
}

/// Whether the server closes `stream` before `deadline`.
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let wait = deadline.saturating_duration_since(Instant::now());
    matches!(
        tokio::time::timeout(wait, stream.read(&mut [0u8; 64])).await,
        Ok(Ok(0) | Err(_))
    )
}

/// Raises this process's open-file limit: the socket tests hold both ends of each socket, and
/// may run at the same time.
fn open_file_room() {
    let needed = 6000;
    edge::raise_open_file_limit();
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        soft >= needed,
        "this test needs {needed} open files; the hard limit allows {soft}"
    );
}

fn health_head() -> &'static str {
    "GET /api/v1/health HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_slow_clients_do_not_lock_others_out() {
    const IDLE: usize = 2000;
    open_file_room();
    let server = Server::start(|c| {
        c.header_timeout_secs = 2;
        c.idle_timeout_secs = 4;
    })
    .await;

    let mut idle = Vec::with_capacity(IDLE);
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let opened = Instant::now();
    // A slowloris client: one byte of a request head every second, never finishing it.
    let addr = server.addr;
    let slowloris = tokio::spawn(async move {
        let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
        let start = Instant::now();
        let trickle = async {
            for byte in b"GET /api/v1/health HTTP/1.1\r\nx-slow: ".iter().cycle() {
                if write.write_all(&[*byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let mut buf = [0u8; 64];
        tokio::select! {
            _ = read.read(&mut buf) => {}
            () = trickle => {}
        }
        start.elapsed()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut times = Vec::new();
    for _ in 0..20 {
        let start = Instant::now();
        let answer = server.request(health_head()).await;
        times.push(start.elapsed());
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    times.sort();
    println!(
        "health checks beside {IDLE} idle sockets and a slowloris: median {:?}, slowest {:?}",
        times[times.len() / 2],
        times[times.len() - 1]
    );
    assert!(times[times.len() - 1] < Duration::from_secs(1), "{times:?}");

    // Silent connections get the header timeout (2 s) from their start.
    let deadline = opened + Duration::from_secs(5);
    let mut closed = 0;
    for stream in &mut idle {
        closed += usize::from(closed_by(stream, deadline).await);
    }
    println!(
        "{closed} of {IDLE} idle sockets closed by the server after {:?}",
        opened.elapsed()
    );
    assert_eq!(closed, IDLE);
    let slow = slowloris.await.unwrap();
    println!("slowloris connection closed after {slow:?}");
    assert!(
        slow >= Duration::from_millis(1500) && slow < Duration::from_secs(4),
        "{slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_may_idle_longer_than_a_head_may_take() {
    let server = Server::start(|c| {
        c.header_timeout_secs = 1;
        c.idle_timeout_secs = 3;
    })
    .await;
    let keep_alive = "GET /api/v1/health HTTP/1.1\r\nhost: t\r\n\r\n";
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(keep_alive.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);

    // Longer than the header timeout, shorter than the idle one: the connection is still served.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    stream.write_all(keep_alive.as_bytes()).await.unwrap();
    assert_eq!(read_answer(&mut stream).await.status, 200);
    let answered = Instant::now();

    assert!(closed_by(&mut stream, answered + Duration::from_secs(5)).await);
    let idle = answered.elapsed();
    println!("kept-alive connection closed after {idle:?} idle");
    assert!(
        idle >= Duration::from_millis(2500) && idle < Duration::from_millis(4500),
        "{idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_cap_idle_connections_make_room() {
    const CAP: usize = 50;
    const IDLE: usize = 300;
    open_file_room();
    let server = Server::start(|c| {
        c.max_connections = CAP;
        // Long timeouts: only making room at the cap can let the health check in.
        c.header_timeout_secs = 60;
        c.idle_timeout_secs = 60;
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..IDLE {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let start = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), server.request(health_head()))
        .await
        .expect("a health check behind the capped connections timed out");
    println!(
        "health check behind {IDLE} idle sockets at a cap of {CAP}: {:?}",
        start.elapsed()
    );
    assert_eq!(answer.status, 200);
    assert!(start.elapsed() < Duration::from_secs(5));

    let metrics = server.get("/metrics").await.body;
    let crowded = metric(
        &metrics,
        "http_connections_closed_total{reason=\"crowded\"}",
    );
    assert!(crowded >= (IDLE - CAP) as f64, "{crowded}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_requests_in_flight() {
    let mut server = Server::start(|_| {}).await;
    let mut kept_alive = TcpStream::connect(server.addr).await.unwrap();
    kept_alive
        .write_all(b"GET /api/v1/health HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_answer(&mut kept_alive).await.status, 200);

    let body = report("3.10.0-1160.el7.x86_64", 1, "pass", "run-1").to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    let mut in_flight = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{first}",
        server.token,
        body.len()
    );
    in_flight.write_all(head.as_bytes()).await.unwrap();
    // A head still arriving has nothing to finish.
    let mut mid_head = TcpStream::connect(server.addr).await.unwrap();
    mid_head.write_all(b"GET /api/v1/hea").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.stop.take().unwrap().send(()).unwrap();
    assert!(
        closed_by(&mut kept_alive, Instant::now() + Duration::from_secs(2)).await,
        "an idle connection stays open after shutdown"
    );
    assert!(
        closed_by(&mut mid_head, Instant::now() + Duration::from_secs(2)).await,
        "a connection sending its head stays open after shutdown"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    in_flight.write_all(rest.as_bytes()).await.unwrap();
    let answer = read_answer(&mut in_flight).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.header("connection"), Some("close"));
    tokio::time::timeout(Duration::from_secs(5), server.task)
        .await
        .expect("serve did not return after shutdown")
        .unwrap();
    assert!(TcpStream::connect(server.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_is_cut_after_the_body_timeout() {
    let server = Server::start(|c| c.body_timeout_secs = 1).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /api/v1/reports HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"project\":",
        server.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(5), read_answer(&mut stream))
        .await
        .expect("a stalled body held the request");
    println!(
        "stalled body answered {} after {:?}: {}",
        answer.status,
        start.elapsed(),
        answer.body
    );
    assert_eq!(answer.status, 408, "{}", answer.body);
    assert_eq!(answer.json()["error"], "request_timeout");
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_read_in_any_letter_case() {
    let server = Server::start(|_| {}).await;
    let body = report("3.10.0-1160.el7.x86_64", 1, "pass", "run-1").to_string();
    let post = |scheme: &str| {
        format!(
            "POST /api/v1/reports HTTP/1.1\r\nhost: t\r\nauthorization: {scheme} {}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            server.token,
            body.len()
        )
    };
    let first = server.request(&post("bearer")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let retry = server.request(&post("BEARER")).await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    assert_eq!(retry.json()["id"], first.json()["id"]);
    let other_scheme = server.request(&post("Basic")).await;
    expect_json_error(&other_scheme, 401, "unauthorized");
    assert_eq!(other_scheme.header("www-authenticate"), Some("Bearer"));
}

/// Checks a typed JSON error whose `request_id` is the one in the `x-request-id` header.
fn expect_json_error(answer: &Answer, status: u16, code: &str) {
    let body = answer.json();
    assert_eq!(
        (answer.status, body["error"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    let id = answer
        .header("x-request-id")
        .expect("an x-request-id header");
    assert_eq!(body["request_id"].as_str(), Some(id), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_are_typed_json_with_their_request_id() {
    let server = Server::start(|_| {}).await;
    let wrong_method = server
        .request("DELETE /api/v1/projects HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .await;
    expect_json_error(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET,HEAD"));

    let long_uri = format!("/api/v1/projects?q={}", "a".repeat(9 * 1024));
    expect_json_error(&server.get(&long_uri).await, 414, "uri_too_long");

    let big_headers = format!(
        "GET /api/v1/projects HTTP/1.1\r\nhost: t\r\nx-big: {}\r\nconnection: close\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    expect_json_error(
        &server.request(&big_headers).await,
        431,
        "headers_too_large",
    );
    let many_headers: String = (0..150).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let many = format!(
        "GET /api/v1/projects HTTP/1.1\r\nhost: t\r\n{many_headers}connection: close\r\n\r\n"
    );
    expect_json_error(&server.request(&many).await, 431, "headers_too_large");

    expect_json_error(&server.get("/api/v1/nope").await, 404, "not_found");

    // Pages answer the same limits with the HTML error page.
    let page = server.get(&format!("/?q={}", "a".repeat(9 * 1024))).await;
    assert_eq!(page.status, 414);
    assert!(page.body.contains("Error 414"), "{}", page.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_failure_answers_with_its_request_id() {
    let h = Harness::new(TestDb::sqlite().await).await;
    h.storage.close().await;
    let (status, body) = h.json("GET", "/api/v1/projects", None, None).await;
    assert!(status.is_server_error(), "{status} {body}");
    assert!(
        body["request_id"].as_str().is_some_and(|id| id.len() >= 32),
        "{body}"
    );
    let (status, page) = h.get("/").await;
    assert!(status.is_server_error(), "{status} {page}");
    assert!(page.contains("(request id "), "{page}");
}

fn assert_security_headers(answer: &Answer, what: &str) {
    let csp = answer
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(
        csp.contains("script-src 'self' 'wasm-unsafe-eval' 'sha256-")
            && csp.contains("frame-ancestors 'none'")
            && !csp.contains("unsafe-inline"),
        "{what}: {csp}"
    );
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        answer.header("referrer-policy"),
        Some("same-origin"),
        "{what}"
    );
    assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let site = tempfile::tempdir().unwrap();
    std::fs::write(site.path().join("favicon.svg"), "<svg/>").unwrap();
    let site_root = site.path().to_path_buf();
    let server = Server::start(move |c| c.site_root = site_root).await;
    for (path, status) in [
        ("/", 200),
        ("/api/v1/projects", 200),
        ("/api/v1/projects/nope/grid", 404),
        ("/p/nope", 404),
        ("/favicon.svg", 200),
        ("/metrics", 200),
    ] {
        let answer = server.get(path).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        assert_security_headers(&answer, path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_allows_exactly_the_island_loader() {
    let server = Server::start(|_| {}).await;
    let post = format!(
        "POST /api/v1/reports HTTP/1.1\r\nhost: t\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        server.token,
        report("3.10.0-1160.el7.x86_64", 1, "fail", "run-1")
            .to_string()
            .len(),
        report("3.10.0-1160.el7.x86_64", 1, "fail", "run-1")
    );
    assert_eq!(server.request(&post).await.status, 201);
    let page = server.get("/p/wg").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let scripts: Vec<&str> = page.body.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "one inline script, the island loader");
    let loader = scripts[0]
        .split_once('>')
        .and_then(|(_, rest)| rest.split_once("</script>"))
        .unwrap()
        .0;
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(loader));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    assert!(
        !page.body.contains(" style="),
        "inline styles need 'unsafe-inline'"
    );
}

/// The value of one series in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_by_route_template() {
    let h = Harness::new(TestDb::sqlite().await).await;
    for id in ["1", "2", "3"] {
        let (status, _) = h
            .get(&format!("/api/v1/projects/p{id}/signatures/{id}"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    metrics::gauge!("trellis_ingest_queue_depth").set(0.0);
    let (status, text) = h.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let series = "http_requests_total{route=\"/api/v1/projects/{project}/signatures/{id}\",method=\"GET\",status=\"404\"}";
    assert_eq!(metric(&text, series), 3.0, "{text}");
    assert!(
        text.contains("http_request_duration_seconds_bucket{route=\"/api/v1/projects/{project}/signatures/{id}\",method=\"GET\",le=\"0.1\"}"),
        "{text}"
    );
    assert!(!text.contains("/projects/p1"), "raw paths are never labels");
    assert!(
        text.contains("# HELP trellis_ingest_queue_depth Reports waiting in the ingest queue."),
        "{text}"
    );
}
