//! What every integration test shares: a database per test on each backend, a harness that
//! drives the router in process, and report builders.
#![allow(dead_code)] // Each test binary uses its own part of this.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::ServiceExt;
use trellis_server::config::Config;
use trellis_server::storage::Storage;

const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        TestDb {
            url,
            pg_name: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let admin_url = std::env::var("TRELLIS_TEST_PG").unwrap_or_else(|_| PG_ADMIN.to_string());
        let name = format!(
            "trellis_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        sqlx::any::install_default_drivers();
        let admin = sqlx::AnyPool::connect(&admin_url)
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 (make test starts it)");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name}"
        )))
        .execute(&admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let base = admin_url.rsplit_once('/').unwrap().0;
        TestDb {
            url: format!("{base}/{name}"),
            pg_name: Some(name),
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        let admin_url = std::env::var("TRELLIS_TEST_PG").unwrap_or_else(|_| PG_ADMIN.to_string());
        // Dropping needs async I/O; do it on a private runtime so it also runs after a panic.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(admin) = sqlx::AnyPool::connect(&admin_url).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&admin)
                    .await;
                }
            })
        })
        .join()
        .ok();
    }
}

/// The administration API's token in every harness.
pub const ADMIN_TOKEN: &str = "admin-token-of-the-tests";

/// Projects `wg` and `other`, as an administrator adds them, and a runner scoped to both.
pub async fn add_projects_and_runner(storage: &Storage, runner: &str) -> String {
    for project in ["wg", "other"] {
        let settings = trellis_domain::project::ProjectEdit::default();
        storage
            .add_project(project, &settings, false)
            .await
            .unwrap();
    }
    add_runner(storage, runner).await
}

/// A runner allowed to post to `wg` and `other`; its token.
pub async fn add_runner(storage: &Storage, name: &str) -> String {
    let grants = ["wg", "other"].map(|p| trellis_domain::scope::Grant::parse(p).unwrap());
    match storage.add_runner(name, &grants).await.unwrap() {
        trellis_server::storage::AddedRunner::Added(token) => token,
        refused => panic!("runner {name}: {refused:?}"),
    }
}

pub struct Harness {
    pub router: Router,
    pub storage: Storage,
    pub token: String,
    pub db: TestDb,
}

impl Harness {
    pub async fn new(db: TestDb) -> Harness {
        Harness::with_config(db, |_| {}).await
    }

    pub async fn with_config(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Harness {
        let mut config = Config::for_database(&db.url);
        config.admin_token = Some(ADMIN_TOKEN.to_string());
        tweak(&mut config);
        let (router, storage) = trellis_server::app(config).await.unwrap();
        let token = add_projects_and_runner(&storage, "runner-1").await;
        Harness {
            router,
            storage,
            token,
            db,
        }
    }

    pub async fn request(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<String>,
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req
            .header("content-type", "application/json")
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap())
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, String) {
        self.request("GET", uri, None, None).await
    }

    pub async fn json(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, text) = self
            .request(method, uri, token, body.map(|b| b.to_string()))
            .await;
        let value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
        (status, value)
    }

    pub async fn post_report(&self, body: Value) -> (StatusCode, Value) {
        self.json("POST", "/api/v1/reports", Some(&self.token), Some(body))
            .await
    }

    pub async fn grid(&self, query: &str) -> Value {
        let (status, body) = self
            .json(
                "GET",
                &format!("/api/v1/projects/wg/grid{query}"),
                None,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["grid"].clone()
    }

    /// The cell API's answer for `stream/uname` and commit `n`.
    pub async fn cell(&self, kernel: &str, commit: u32) -> Value {
        let uri = format!("/api/v1/projects/wg/cells/{kernel}/{}", sha(commit));
        let (status, body) = self.json("GET", &uri, None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// The breakages once the background recomputation has caught up with every report sent.
    pub async fn breakages(&self) -> Value {
        self.current_breakages("").await["breakages"].clone()
    }

    /// The breakages API's answer to `query`, once it is current.
    pub async fn current_breakages(&self, query: &str) -> Value {
        let uri = format!("/api/v1/projects/wg/breakages{query}");
        for _ in 0..200 {
            let (status, body) = self.json("GET", &uri, None, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["current"] == json!(true) {
                return body;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("breakages did not catch up within 10 s");
    }

    pub async fn report_count(&self) -> i64 {
        let (_, body) = self.json("GET", "/api/v1/projects", None, None).await;
        body["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["reports"].as_i64().unwrap())
            .sum()
    }
}

/// Checks an error answer: its status and its machine-readable code.
pub fn expect_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(
        (status, body["error"].as_str()),
        (want, Some(code)),
        "{body}"
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

pub fn column_shas(grid: &Value) -> Vec<String> {
    grid["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sha"].as_str().unwrap().to_string())
        .collect()
}

pub fn sha(n: u32) -> String {
    format!("{n:040x}")
}

pub fn report(kernel: &str, commit: u32, status: &str, run_id: &str) -> Value {
    json!({
        "project": "wg",
        "kernel": {"version": kernel},
        "commit": {"sha": sha(commit), "subject": format!("commit {commit}")},
        "status": status,
        "stages": [{"name": "build", "status": status, "duration_s": 3.5}],
        "started_at": "2026-11-26T10:00:00Z",
        "finished_at": "2026-11-26T10:05:00Z",
        "log": format!("build log of {run_id}\n"),
        "run_id": run_id,
        "metadata": {"compiler": "gcc 8.5.0"}
    })
}

/// Pushes a linear history 1 <- 2 <- ... <- n, newest first (the reverse of git order).
pub async fn push_linear_history(h: &Harness, n: u32) {
    let commits: Vec<Value> = (1..=n)
        .rev()
        .map(|i| json!({"sha": sha(i), "parents": if i == 1 { vec![] } else { vec![sha(i - 1)] }, "subject": format!("commit {i}")}))
        .collect();
    let (status, body) = h
        .json(
            "POST",
            "/api/v1/projects/wg/commits",
            Some(&h.token),
            Some(json!({"commits": commits})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["new"], n);
}

#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::TestDb::sqlite().await).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name($crate::common::TestDb::postgres().await).await })*
        }
    };
}
