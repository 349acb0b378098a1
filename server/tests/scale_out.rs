//! Two Trellis processes on one PostgreSQL database, as a team runs them once one machine is not
//! enough: 64 runners spread over both lose and duplicate nothing, and both serve grids that
//! are current within a second.

mod common;

use common::*;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BIN: &str = env!("CARGO_BIN_EXE_trellis");

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(db: &str, port: u16) -> Process {
    let site = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
        .arg("--site-root")
        .arg(site.path())
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start trellis serve");
    Process(child)
}

/// One HTTP/1.1 exchange on a fresh connection: the status and the body.
async fn http(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer[9..12].parse().expect("status code");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && http(port, "GET", "/api/v1/health", "", "").await.0 == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "server on {port} did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every tested cell of the grid as `uname@sha=state`, sorted.
fn cells(grid: &Value) -> Vec<String> {
    let columns = grid["grid"]["columns"].as_array().unwrap();
    let mut out = Vec::new();
    for group in grid["grid"]["groups"].as_array().unwrap() {
        for row in group["rows"].as_array().unwrap() {
            for (column, cell) in columns.iter().zip(row["cells"].as_array().unwrap()) {
                if let Some(state) = cell["state"].as_str() {
                    out.push(format!("{}@{}={state}", row["uname"], column["sha"]));
                }
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_postgresql_database() {
    let db = TestDb::postgres().await;
    let added = Command::new(BIN)
        .args(["project", "add", "wg"])
        .env("DATABASE_URL", &db.url)
        .status()
        .unwrap();
    assert!(added.success());
    let token = Command::new(BIN)
        .args(["runner", "add", "scale-out", "--scope", "wg"])
        .env("DATABASE_URL", &db.url)
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let ports = [free_port(), free_port()];
    let _servers = [serve(&db.url, ports[0]), serve(&db.url, ports[1])];
    for port in ports {
        wait_healthy(port).await;
    }

    let kernels = [
        "4.18.0-553.el8_10.x86_64",
        "4.18.0-477.el8.x86_64",
        "5.14.0-427.el9.x86_64",
    ];
    let writers = 64;
    let per_writer = 10;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (token, port) = (token.clone(), ports[w % 2]);
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let mut body = report(
                    kernels[(w + i) % kernels.len()],
                    (i % 5) as u32 + 1,
                    "pass",
                    &format!("w{w}-{i}"),
                );
                body["commit"]["parents"] = json!(if i % 5 == 0 {
                    vec![]
                } else {
                    vec![sha((i % 5) as u32)]
                });
                let body = body.to_string();
                // A retry after a 503 is what a runner does; the run_id keeps it single.
                loop {
                    let (status, reply) =
                        http(port, "POST", "/api/v1/reports", &token, &body).await;
                    match status {
                        201 | 200 => break,
                        503 => tokio::time::sleep(Duration::from_millis(200)).await,
                        _ => panic!("{status}: {reply}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    let (reports, distinct): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM reports")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (reports, distinct),
        ((writers * per_writer) as i64, (writers * per_writer) as i64)
    );
    let commits: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM commits")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(commits.0, 5);
    pool.close().await;

    // One more report through the first process shows on the second's grid within a second.
    let late = "5.14.0-503.el9.x86_64";
    let (status, _) = http(
        ports[0],
        "POST",
        "/api/v1/reports",
        &token,
        &report(late, 5, "fail", "late").to_string(),
    )
    .await;
    assert_eq!(status, 201);
    let posted = Instant::now();
    let want = format!("\"{late}\"@\"{}\"=fail", sha(5));
    loop {
        let (status, body) = http(ports[1], "GET", "/api/v1/projects/wg/grid", "", "").await;
        assert_eq!(status, 200, "{body}");
        let grid: Value = serde_json::from_str(&body).unwrap();
        if cells(&grid).contains(&want) {
            let (_, other) = http(ports[0], "GET", "/api/v1/projects/wg/grid", "", "").await;
            assert_eq!(cells(&serde_json::from_str(&other).unwrap()), cells(&grid));
            break;
        }
        assert!(
            posted.elapsed() < Duration::from_secs(1),
            "the second process's grid is stale: {:?}",
            cells(&grid)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
