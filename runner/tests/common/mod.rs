//! A small HTTP server speaking the runner API, for tests that drive the real binary.

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct Fake {
    pub jobs: VecDeque<Value>,
    /// Status answered to report posts; 503 comes with Retry-After.
    pub report_status: u16,
    /// Heartbeats answer 409 (the lease is lost) when set.
    pub lose_leases: bool,
    /// Every request: method, path, JSON body (Null when none).
    pub seen: Vec<(String, String, Value)>,
}

impl Fake {
    fn answer(&mut self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        self.seen
            .push((method.to_string(), path.to_string(), body.clone()));
        match (method, path) {
            ("POST", "/api/v1/projects/demo/commits") => {
                let n = body["commits"].as_array().map_or(0, Vec::len);
                (200, json!({"project": "demo", "received": n, "new": n}))
            }
            ("POST", "/api/v1/jobs/lease") => {
                let max = body["max_jobs"].as_u64().unwrap_or(1) as usize;
                let n = max.min(self.jobs.len());
                let jobs: Vec<Value> = self.jobs.drain(..n).collect();
                (
                    200,
                    json!({"jobs": jobs, "lease_seconds": 1, "poll_after_seconds": 1}),
                )
            }
            ("POST", p) if p.ends_with("/heartbeat") && self.lose_leases => (
                409,
                json!({"error": "conflict", "message": "lease expired"}),
            ),
            ("POST", p) if p.ends_with("/heartbeat") => (200, json!({"lease_id": 1})),
            ("POST", "/api/v1/reports") if self.report_status >= 400 => (
                self.report_status,
                json!({"error": "refused", "message": "the fake refuses reports now"}),
            ),
            ("POST", "/api/v1/reports") => (self.report_status, json!({"id": 1, "url": "/c"})),
            _ => (404, json!({"error": "not_found", "message": path})),
        }
    }

    pub fn reports(&self) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|(m, p, _)| m == "POST" && p == "/api/v1/reports")
            .map(|(_, _, b)| b.clone())
            .collect()
    }
}

/// Serves the fake on a free port; one request per connection.
pub async fn serve(fake: Arc<Mutex<Fake>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let fake = fake.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let (head, body) = loop {
                    let mut chunk = [0u8; 8192];
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let l = l.to_ascii_lowercase();
                            l.strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break (head, buf[end + 4..end + 4 + len].to_vec());
                    }
                };
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or("").to_string();
                let path = words.next().unwrap_or("").to_string();
                assert!(
                    head.to_ascii_lowercase()
                        .contains("authorization: bearer trellis_test"),
                    "{head}"
                );
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (status, answer) = fake.lock().unwrap().answer(&method, &path, &body);
                let answer = answer.to_string();
                let extra = if status == 503 {
                    "retry-after: 1\r\n"
                } else {
                    ""
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n{extra}\
                     content-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    url
}
