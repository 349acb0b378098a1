//! `make bench`: measures a real `trellis` server (release build, its own process and database).
//!
//! 1. Generates ~200 real RHEL kernel versions x 300 commits (`--commits N` for more: 5000 gives
//!    1M reports), logs of 4-20 KB with kbuild errors.
//! 2. Ingests reports for the newest 50 commits over HTTP with concurrent clients, then times the
//!    grid page (200 kernels x 50 commits) from the `Server-Timing` header.
//! 3. Ingests the older commits' reports (6x the history by default) and times the grid again: the grid
//!    reads per-cell summaries, so its time must not grow with history.
//! 4. Times how soon breakages are current again after one new report.
//! 5. Mixed load: 50 readers (grid and breakages pages) with 10 writers, for `--mixed-secs`.
//! 6. Pushes a 10,000-commit history to another project while a runner keeps posting reports,
//!    and reports how long the push took and the longest a report waited behind it.
//! 7. Reports ingest throughput and latency, grid times and the server's resident memory.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KERNELS: &str = include_str!("../../server/demo/kernels.txt");
const N_KERNELS: usize = 200;
const GRID_COMMITS: usize = 50;
const CLIENTS: usize = 32;
const GRID_SAMPLES: usize = 100;
const MIXED_READERS: usize = 50;
const MIXED_WRITERS: usize = 10;
const LONG_HISTORY: usize = 10_000;

struct Args {
    /// Commits of history with a report on every kernel (300 by default; 5000 gives 1M reports).
    commits: usize,
    site_root: String,
    database_url: Option<String>,
    bin: String,
    /// Seconds of the mixed read/write phase.
    mixed_secs: u64,
}

fn args() -> Args {
    let mut site_root = "target/site".to_string();
    let mut database_url = None;
    let mut bin = "target/release/trellis".to_string();
    let mut commits = 300;
    let mut mixed_secs = 20;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--site-root" => site_root = it.next().expect("--site-root DIR"),
            "--database-url" => database_url = it.next(),
            "--bin" => bin = it.next().expect("--bin PATH"),
            "--commits" => {
                commits = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > GRID_COMMITS)
                    .expect("--commits N (> 50)")
            }
            "--mixed-secs" => {
                mixed_secs = it
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--mixed-secs N")
            }
            other => panic!(
                "unknown argument {other}; use --site-root DIR, --database-url URL, --bin PATH, --commits N, --mixed-secs N"
            ),
        }
    }
    Args {
        commits,
        site_root,
        database_url,
        bin,
        mixed_secs,
    }
}

fn sha(i: usize) -> String {
    format!("{:040x}", 0xbe0c_0000_0000u64 + i as u64)
}

/// A kbuild-style failure log of 4-20 KB, different per (kernel, commit).
fn log_for(kernel: &str, commit: usize, seed: usize) -> String {
    let size = 4096 + (seed * 7919) % (16 * 1024);
    let mut log = format!("make -C /lib/modules/{kernel}/build M=/builds/run-{seed}/src modules\n");
    let mut i = 0;
    while log.len() < size {
        log.push_str(&format!("  CC [M]  /builds/run-{seed}/src/file{i}.o\n"));
        if i % 40 == 7 {
            log.push_str(&format!(
                "/builds/run-{seed}/src/queueing.h:{}:41: error: 'struct sk_buff' has no member named 'headers_end'\n",
                80 + commit % 9
            ));
        }
        i += 1;
    }
    log.push_str("make[1]: *** [scripts/Makefile.build:250: main.o] Error 1\n");
    log
}

fn kernels() -> Vec<String> {
    KERNELS
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_whitespace().next())
        .rev()
        .take(N_KERNELS)
        .map(|vr| format!("{vr}.x86_64"))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The grid's project, the one an announced breakage lives in, the one a runner posts to during a
/// long push, and the pushed one.
const PROJECTS: [&str; 4] = ["bench", "bench-events", "bench-side", "bench-history"];
/// Runners asking for work at once in the lease phase.
const LEASERS: usize = 8;

fn start_server(args: &Args, db: &str) -> (Server, String) {
    // As an administrator does: the projects first, then a runner scoped to them.
    for project in PROJECTS {
        let added = Command::new(&args.bin)
            .args(["project", "add", project])
            .env("DATABASE_URL", db)
            .stderr(Stdio::null())
            .status()
            .expect("run trellis project add");
        assert!(added.success(), "trellis project add {project} failed");
    }
    let scopes = PROJECTS.iter().flat_map(|p| ["--scope", p]);
    let token = Command::new(&args.bin)
        .args(["runner", "add", "bench"])
        .args(scopes)
        .env("DATABASE_URL", db)
        .stderr(Stdio::null())
        .output()
        .expect("run trellis runner add");
    assert!(token.status.success(), "trellis runner add failed");
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(&args.bin)
        .args([
            "serve",
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--site-root",
            &args.site_root,
        ])
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start trellis serve");
    (
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
        },
        token,
    )
}

async fn ingest(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    jobs: Vec<(String, usize)>,
) -> (f64, Vec<f64>) {
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (client, base, token, jobs, next) = (
            client.clone(),
            base.to_string(),
            token.to_string(),
            jobs.clone(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((kernel, commit)) = jobs.get(i) else { break };
                let fail = (i * 31) % 10 == 0;
                let body = serde_json::json!({
                    "project": "bench",
                    "kernel": {"version": kernel},
                    "commit": {"sha": sha(*commit)},
                    "status": if fail { "fail" } else { "pass" },
                    "stages": [{"name": "build", "status": if fail { "fail" } else { "pass" }, "duration_s": 42.0}],
                    "started_at": "2026-11-26T10:00:00Z",
                    "finished_at": "2026-11-26T10:03:00Z",
                    "log": log_for(kernel, *commit, i),
                    "run_id": format!("bench-{commit}-{kernel}"),
                    "metadata": {"compiler": "gcc 8.5.0", "runner-image": "bench"},
                });
                let t = Instant::now();
                let res = client
                    .post(format!("{base}/api/v1/reports"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .expect("post report");
                assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap_or_default());
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = start.elapsed().as_secs_f64();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (all.len() as f64 / secs, all)
}

/// One page load: (time spent in the server, body size).
async fn timed_get(client: &reqwest::Client, url: &str) -> (f64, usize) {
    timed(client.get(url)).await
}

/// A page load as a browser makes it, asking for gzip: (time spent in the server, bytes sent).
async fn browser_get(client: &reqwest::Client, url: &str) -> (f64, usize) {
    timed(client.get(url).header("accept-encoding", "gzip")).await
}

async fn timed(request: reqwest::RequestBuilder) -> (f64, usize) {
    let res = request.send().await.expect("get page");
    assert!(res.status().is_success());
    let timing = res
        .headers()
        .get("server-timing")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("app;dur="))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("server-timing header");
    (timing, res.bytes().await.unwrap().len())
}

async fn grid_times(client: &reqwest::Client, base: &str) -> (Vec<f64>, usize) {
    let mut times = Vec::new();
    let mut bytes = 0;
    for _ in 0..GRID_SAMPLES {
        let (t, size) = timed_get(client, &format!("{base}/p/bench")).await;
        times.push(t);
        bytes = size;
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times, bytes)
}

fn line(label: String, value: f64, unit: &str) {
    println!("{label:<60} {value:>8.1} {unit}");
}

/// Grid times right after a report changed the project: the cached page must be refreshed.
async fn cold_grid_times(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kernels: &[String],
    newest_commit: usize,
) -> Vec<f64> {
    let mut times = Vec::new();
    for i in 0..20 {
        let body = serde_json::json!({
            "project": "bench", "kernel": {"version": kernels[i % kernels.len()]},
            "commit": {"sha": sha(newest_commit)}, "status": "pass",
            "started_at": "2026-11-26T11:00:00Z", "finished_at": "2026-11-26T11:01:00Z",
            "run_id": format!("cold-{i}"),
        });
        let res = client
            .post(format!("{base}/api/v1/reports"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201);
        times.push(timed_get(client, &format!("{base}/p/bench")).await.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    times
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// Posts one small report; its latency in ms.
async fn post_one(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    body: serde_json::Value,
) -> f64 {
    let t = Instant::now();
    let res = client
        .post(format!("{base}/api/v1/reports"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("post report");
    assert!(
        res.status().is_success(),
        "{}",
        res.text().await.unwrap_or_default()
    );
    t.elapsed().as_secs_f64() * 1000.0
}

fn small_report(project: &str, kernel: &str, commit: usize, run_id: String) -> serde_json::Value {
    serde_json::json!({
        "project": project, "kernel": {"version": kernel},
        "commit": {"sha": sha(commit)}, "status": if run_id.len().is_multiple_of(7) { "fail" } else { "pass" },
        "started_at": "2026-11-26T12:00:00Z", "finished_at": "2026-11-26T12:01:00Z",
        "log": "src/queueing.h:85:41: error: struct sk_buff has no member named headers_end\n",
        "run_id": run_id,
    })
}

/// Milliseconds until the breakages API says it reflects one new report, posted once earlier
/// recomputations have settled (so only the new report's work is timed).
async fn breakages_catch_up(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kernel: &str,
    commit: usize,
) -> f64 {
    breakages_current(client, base).await;
    let report = small_report("bench", kernel, commit, "catch-up".into());
    post_one(client, base, token, report).await;
    let t = Instant::now();
    breakages_current(client, base).await;
    t.elapsed().as_secs_f64() * 1000.0
}

/// Milliseconds from the answer to a report that breaks the build (a pass, then a fail on the
/// next commit) to its `opened` event in the events API: how promptly Trellis tells people,
/// while the big project's results are in the same database.
async fn announce_latency(client: &reqwest::Client, base: &str, token: &str, kernel: &str) -> f64 {
    let project = "bench-events";
    push_history(
        client,
        base,
        token,
        project,
        linear_history(1, 2, "announce"),
    )
    .await;
    let report = |commit: usize, status: &str| {
        serde_json::json!({
            "project": project, "kernel": {"version": kernel}, "commit": {"sha": sha(commit)},
            "status": status, "started_at": "2026-11-26T12:00:00Z",
            "finished_at": "2026-11-26T12:01:00Z",
            "log": "src/compat/compat.h:7:2: error: #error \"unsupported\"\n",
            "run_id": format!("announce-{commit}"),
        })
    };
    post_one(client, base, token, report(1, "pass")).await;
    post_one(client, base, token, report(2, "fail")).await;
    let t = Instant::now();
    let events = format!("{base}/api/v1/projects/{project}/events");
    poll_until(
        client,
        &events,
        "the breakage was never announced",
        |body| body["events"].as_array().is_some_and(|e| !e.is_empty()),
    )
    .await;
    t.elapsed().as_secs_f64() * 1000.0
}

/// Waits until the breakages API reflects every report stored.
async fn breakages_current(client: &reqwest::Client, base: &str) {
    let breakages = format!("{base}/api/v1/projects/bench/breakages");
    poll_until(client, &breakages, "breakages never caught up", |body| {
        body["current"] == serde_json::json!(true)
    })
    .await;
}

/// Reads `url` every 5 ms until its JSON satisfies `done`; panics with `never` after 2 minutes.
async fn poll_until(
    client: &reqwest::Client,
    url: &str,
    never: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) {
    let t = Instant::now();
    loop {
        let body: serde_json::Value = client.get(url).send().await.unwrap().json().await.unwrap();
        if done(&body) {
            return;
        }
        assert!(t.elapsed() < Duration::from_secs(120), "{never}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Times at the server of the grid and breakages pages read by 50 browsers (asking for gzip)
/// while 10 runners post reports, and the writers' latencies.
async fn mixed_load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kernels: &[String],
    commits: usize,
    secs: u64,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let until = Instant::now() + Duration::from_secs(secs);
    let mut readers = Vec::new();
    for r in 0..MIXED_READERS {
        let (client, base) = (client.clone(), base.to_string());
        readers.push(tokio::spawn(async move {
            let (mut grid, mut breakages) = (Vec::new(), Vec::new());
            let mut i = r;
            while Instant::now() < until {
                if i % 2 == 0 {
                    grid.push(browser_get(&client, &format!("{base}/p/bench")).await.0);
                } else {
                    breakages.push(
                        browser_get(&client, &format!("{base}/p/bench/breakages"))
                            .await
                            .0,
                    );
                }
                i += 1;
            }
            (grid, breakages)
        }));
    }
    let mut writers = Vec::new();
    for w in 0..MIXED_WRITERS {
        let (client, base, token, kernels) = (
            client.clone(),
            base.to_string(),
            token.to_string(),
            kernels.to_vec(),
        );
        writers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < until {
                let kernel = &kernels[(w * 17 + i) % kernels.len()];
                let commit = commits - 1 - (i % GRID_COMMITS);
                let body = small_report("bench", kernel, commit, format!("mixed-{w}-{i}"));
                latencies.push(post_one(&client, &base, &token, body).await);
                i += 1;
            }
            latencies
        }));
    }
    let (mut grid, mut breakages, mut writes) = (Vec::new(), Vec::new(), Vec::new());
    for r in readers {
        let (g, b) = r.await.unwrap();
        grid.extend(g);
        breakages.extend(b);
    }
    for w in writers {
        writes.extend(w.await.unwrap());
    }
    (sorted(grid), sorted(breakages), sorted(writes))
}

/// Pushes a long history to its own project while one runner keeps posting to another: the
/// push's time, and the longest a report waited meanwhile.
async fn long_push(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kernel: &str,
) -> (f64, f64, usize) {
    let commits = linear_history(1_000_000, LONG_HISTORY, "long history");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = {
        let (client, base, token, kernel, done) = (
            client.clone(),
            base.to_string(),
            token.to_string(),
            kernel.to_string(),
            done.clone(),
        );
        tokio::spawn(async move {
            let mut waits = Vec::new();
            let mut i = 0;
            while !done.load(Ordering::Relaxed) {
                let body = small_report("bench-side", &kernel, i, format!("side-{i}"));
                waits.push(post_one(&client, &base, &token, body).await);
                i += 1;
            }
            waits
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let push_ms = push_history(client, base, token, "bench-history", commits).await;
    done.store(true, Ordering::Relaxed);
    let waits = runner.await.unwrap();
    let n = waits.len();
    (push_ms, waits.into_iter().fold(0.0, f64::max), n)
}

/// A new head commit makes every kernel worth a job: `LEASERS` runners lease them one at a time
/// until none is left. Returns the lease calls' latencies; asserts no cell was leased twice.
async fn lease_latency(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    kernels: &[String],
    head: usize,
) -> Vec<f64> {
    let commit =
        serde_json::json!({"sha": sha(head), "parents": [sha(head - 1)], "subject": "new head"});
    push_history(client, base, token, "bench", vec![commit]).await;
    let ask = serde_json::json!({
        "project": "bench",
        "kernels": kernels.iter().map(|k| serde_json::json!({"version": k})).collect::<Vec<_>>(),
    });
    let leasers = (0..LEASERS).map(|_| {
        let (client, url, token, ask) = (
            client.clone(),
            format!("{base}/api/v1/jobs/lease"),
            token.to_string(),
            ask.clone(),
        );
        tokio::spawn(async move {
            let (mut times, mut cells) = (Vec::new(), Vec::new());
            loop {
                let start = Instant::now();
                let answer: serde_json::Value = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&ask)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                times.push(start.elapsed().as_secs_f64() * 1000.0);
                let jobs = answer["jobs"].as_array().unwrap();
                if jobs.is_empty() {
                    return (times, cells);
                }
                for job in jobs {
                    let cell = format!("{}@{}", job["kernel"]["uname"], job["commit"]["sha"]);
                    cells.push(cell);
                }
            }
        })
    });
    let mut times = Vec::new();
    let mut cells = Vec::new();
    for leaser in leasers {
        let (t, c) = leaser.await.unwrap();
        times.extend(t);
        cells.extend(c);
    }
    let leased = cells.len();
    cells.sort();
    cells.dedup();
    assert_eq!(cells.len(), leased, "a cell was leased twice");
    assert!(
        leased >= kernels.len(),
        "every kernel at the new head is leased"
    );
    sorted(times)
}

/// A linear history of `n` commits, oldest first.
fn linear_history(first: usize, n: usize, subject: &str) -> Vec<serde_json::Value> {
    (first..first + n)
        .map(|i| {
            let parents = if i == first { vec![] } else { vec![sha(i - 1)] };
            serde_json::json!({"sha": sha(i), "parents": parents, "subject": format!("{subject} {i}")})
        })
        .collect()
}

/// Pushes a history in one request; the milliseconds it took.
async fn push_history(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    project: &str,
    commits: Vec<serde_json::Value>,
) -> f64 {
    let t = Instant::now();
    let res = client
        .post(format!("{base}/api/v1/projects/{project}/commits"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "commits": commits }))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "{}",
        res.text().await.unwrap_or_default()
    );
    t.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = std::env::temp_dir().join(format!("trellis-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db?mode=rwc", dir.display()));
    let (server, token) = start_server(&args, &db);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{}/api/v1/health", server.base))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kernels = kernels();
    let commits = linear_history(0, args.commits, "bench commit");
    let history_ms = push_history(&client, &server.base, &token, "bench", commits).await;

    // Phase 1: the newest 50 commits on every kernel.
    let newest: Vec<(String, usize)> = (args.commits - GRID_COMMITS..args.commits)
        .flat_map(|c| kernels.iter().map(move |k| (k.clone(), c)))
        .collect();
    let n1 = newest.len();
    let (rate1, lat1) = ingest(&client, &server.base, &token, newest).await;
    let (grid1, bytes) = grid_times(&client, &server.base).await;
    let (rss1, _) = rss_kib(server.child.id());
    let (_, gzip_bytes) = browser_get(&client, &format!("{}/p/bench", server.base)).await;

    // Phase 2: six times the history behind them.
    let older: Vec<(String, usize)> = (0..args.commits - GRID_COMMITS)
        .flat_map(|c| kernels.iter().map(move |k| (k.clone(), c)))
        .collect();
    let n2 = older.len();
    let (rate2, lat2) = ingest(&client, &server.base, &token, older).await;
    let (grid2, _) = grid_times(&client, &server.base).await;
    let cold = cold_grid_times(&client, &server.base, &token, &kernels, args.commits - 1).await;
    // Breakages are recomputed from every cell after a change (the grid does not wait for it).
    let (breakage_ms, breakage_bytes) = timed_get(
        &client,
        &format!("{}/api/v1/projects/bench/breakages", server.base),
    )
    .await;
    let (home_ms, _) = timed_get(&client, &format!("{}/", server.base)).await;
    let catch_up =
        breakages_catch_up(&client, &server.base, &token, &kernels[3], args.commits - 2).await;
    let announced = announce_latency(&client, &server.base, &token, &kernels[0]).await;
    let leases = lease_latency(&client, &server.base, &token, &kernels, args.commits).await;
    let (rss, hwm) = rss_kib(server.child.id());
    let (mixed_grid, mixed_breakages, mixed_writes) = mixed_load(
        &client,
        &server.base,
        &token,
        &kernels,
        args.commits,
        args.mixed_secs,
    )
    .await;
    let (push_ms, side_wait, side_n) = long_push(&client, &server.base, &token, &kernels[0]).await;

    let backend = if db.starts_with("sqlite") {
        "SQLite"
    } else {
        "PostgreSQL"
    };
    let grid = format!("grid {}x{GRID_COMMITS}", kernels.len());
    println!();
    println!("Trellis benchmark ({backend}, release build, {CLIENTS} concurrent clients)");
    println!("{:<60} {:>12}", "measure", "value");
    println!("{}", "-".repeat(73));
    line(
        format!("push history ({} commits, one request)", args.commits),
        history_ms,
        "ms",
    );
    for (phase, n, rate, lat) in [(1, n1, rate1, &lat1), (2, n2, rate2, &lat2)] {
        line(
            format!("ingest phase {phase}: {n} reports, logs 4-20 KB"),
            rate,
            "rep/s",
        );
        line(
            format!("ingest phase {phase} latency p50"),
            percentile(lat, 0.5),
            "ms",
        );
        line(
            format!("ingest phase {phase} latency p99"),
            percentile(lat, 0.99),
            "ms",
        );
    }
    for (reports, times) in [(n1, &grid1), (n1 + n2, &grid2)] {
        line(
            format!("{grid} p50 at server, {reports} reports"),
            percentile(times, 0.5),
            "ms",
        );
        line(
            format!("{grid} p95 at server, {reports} reports"),
            percentile(times, 0.95),
            "ms",
        );
    }
    line(
        format!("{grid} p50 right after a new report"),
        percentile(&cold, 0.5),
        "ms",
    );
    line(
        format!("{grid} p95 right after a new report"),
        percentile(&cold, 0.95),
        "ms",
    );
    line(
        format!(
            "breakages API after a change ({} KB of JSON)",
            breakage_bytes / 1024
        ),
        breakage_ms,
        "ms",
    );
    line("home page (projects with health)".into(), home_ms, "ms");
    line(
        "breakages current again after one new report".into(),
        catch_up,
        "ms",
    );
    line(
        "breakage announced (opened event) after its report".into(),
        announced,
        "ms",
    );
    line(
        format!(
            "lease a job ({LEASERS} runners, {} calls) p50",
            leases.len()
        ),
        percentile(&leases, 0.5),
        "ms",
    );
    line("lease a job p95".into(), percentile(&leases, 0.95), "ms");
    let mixed = format!("mixed {MIXED_READERS} readers + {MIXED_WRITERS} writers");
    for (what, times) in [
        ("grid page", &mixed_grid),
        ("breakages page", &mixed_breakages),
        ("report writes", &mixed_writes),
    ] {
        line(
            format!("{mixed}: {what} p50 ({} samples)", times.len()),
            percentile(times, 0.5),
            "ms",
        );
        line(
            format!("{mixed}: {what} p99"),
            percentile(times, 0.99),
            "ms",
        );
    }
    line(
        format!("push {LONG_HISTORY} commits while a runner posts"),
        push_ms,
        "ms",
    );
    line(
        format!("longest report wait during that push ({side_n} reports)"),
        side_wait,
        "ms",
    );
    line(
        format!("server RSS after {n1} reports"),
        rss1 as f64 / 1024.0,
        "MB",
    );
    line(
        "grid page size, uncompressed".into(),
        bytes as f64 / 1024.0,
        "KB",
    );
    line(
        "grid page size, gzip".into(),
        gzip_bytes as f64 / 1024.0,
        "KB",
    );
    line(
        format!("server RSS after {} reports", n1 + n2),
        rss as f64 / 1024.0,
        "MB",
    );
    line(
        "server RSS peak until then".into(),
        hwm as f64 / 1024.0,
        "MB",
    );
    println!();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
