//! Kernel discovery against real repositories: small real RPMs built by `scripts/kernel-repo.sh`,
//! indexed by createrepo_c (gz, xz and zst primary metadata), served over HTTP with ETags. New
//! packages become grid rows without cells; broken sources record why and change nothing known.

mod common;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use trellis_server::discovery::{self, PollOutcome};
use trellis_server::storage::KernelSource;

const A: &str = "4.18.0-513.5.1.el8_9.x86_64";
const B: &str = "4.18.0-553.el8_10.x86_64";
const C: &str = "4.18.0-553.5.1.el8_10.x86_64";
/// What the project's first report was about (it has a cell, unlike discovered kernels).
const REPORTED: &str = "4.18.0-80.el8.x86_64";

/// Builds the packages (`NAME-VERSION-RELEASE.ARCH`) missing from `dir` and re-indexes it, with
/// the script the e2e tests share.
fn publish_packages(dir: &Path, compress: &str, packages: &[String]) {
    // Found when the test runs, so that checkouts sharing a target folder use their own.
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    let script = Path::new(&crate_dir).join("../scripts/kernel-repo.sh");
    let status = std::process::Command::new("bash")
        .arg(script)
        .arg(dir)
        .args(["--compress", compress])
        .args(packages)
        .status()
        .unwrap();
    assert!(status.success(), "kernel-repo.sh failed");
}

/// Publishes the kernel-devel packages of kernels `unames`.
fn publish(dir: &Path, compress: &str, unames: &[&str]) {
    let packages: Vec<String> = unames.iter().map(|u| format!("kernel-devel-{u}")).collect();
    publish_packages(dir, compress, &packages);
}

/// Serves a directory as a mirror does, with a strong ETag on every file, and remembers what was
/// asked and answered.
#[derive(Clone)]
struct Mirror {
    root: PathBuf,
    url: String,
    log: Arc<Mutex<Vec<(String, u16)>>>,
}

impl Mirror {
    async fn start(root: &Path) -> Mirror {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mirror = Mirror {
            root: root.to_path_buf(),
            url: format!("http://{}", listener.local_addr().unwrap()),
            log: Arc::default(),
        };
        let app = axum::Router::new()
            .fallback(serve_file)
            .with_state(mirror.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        mirror
    }

    /// The requests since the last call, as `path status`.
    fn requests(&self) -> Vec<String> {
        let mut log = self.log.lock().unwrap();
        log.drain(..).map(|(p, s)| format!("{p} {s}")).collect()
    }
}

async fn serve_file(State(m): State<Mirror>, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path().to_string();
    let file = m.root.join(path.trim_start_matches('/'));
    let answer = match std::fs::read(&file) {
        _ if path.contains("..") => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
        Ok(bytes) => {
            let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..16]);
            let matches = headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes());
            if matches {
                (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response()
            } else {
                ([(header::ETAG, etag)], bytes).into_response()
            }
        }
    };
    let short = path.rsplit('/').next().unwrap_or_default();
    let short = short
        .split_once("-primary")
        .map_or(short.to_string(), |(_, ext)| format!("primary{ext}"));
    m.log
        .lock()
        .unwrap()
        .push((short, answer.status().as_u16()));
    answer
}

/// The project the sources belong to, made the way projects are made today: by a first report.
async fn create_project(h: &Harness) {
    let (status, body) = h.post_report(report(REPORTED, 1, "pass", "first")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

async fn add_source(h: &Harness, url: &str, package: &str) -> KernelSource {
    h.storage
        .add_kernel_source("wg", url, package, "el8", "x86_64")
        .await
        .unwrap()
        .unwrap()
}

async fn source(h: &Harness, id: i64) -> KernelSource {
    let all = h.storage.kernel_sources(Some("wg")).await.unwrap();
    all.into_iter().find(|s| s.id == id).unwrap()
}

/// Every kernel row with where it came from, to compare before and after a poll.
async fn kernels(h: &Harness) -> Vec<String> {
    let pool = sqlx::AnyPool::connect(&h.db.url).await.unwrap();
    let rows = sqlx::query(
        "SELECT version, release, variant, source_id, build_time, package_location,
         package_checksum, revision FROM kernels ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.iter()
        .map(|r| {
            format!(
                "{}-{}+{} source={:?} built={:?} at={:?} sum={:?} rev={}",
                r.get::<String, _>(0),
                r.get::<String, _>(1),
                r.get::<String, _>(2),
                r.get::<Option<i64>, _>(3),
                r.get::<Option<i64>, _>(4),
                r.get::<Option<String>, _>(5),
                r.get::<Option<String>, _>(6),
                r.get::<i64, _>(7),
            )
        })
        .collect()
}

/// The el8 rows of the grid (newest kernel first), each with whether any of its cells was tested.
async fn grid_rows(h: &Harness) -> Vec<(String, bool)> {
    let grid = h.grid("").await;
    let group = grid["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["stream"] == "el8")
        .unwrap_or_else(|| panic!("no el8 group: {grid}"))
        .clone();
    group["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let tested = r["cells"].as_array().unwrap().iter().any(|c| !c.is_null());
            (r["uname"].as_str().unwrap().to_string(), tested)
        })
        .collect()
}

async fn wait_for_kernel(h: &Harness, uname: &str) {
    let vr = format!("{}+", uname.strip_suffix(".x86_64").unwrap());
    for _ in 0..100 {
        if kernels(h).await.iter().any(|k| k.starts_with(&vr)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{uname} was not discovered within 10 s");
}

fn updated(new: &[&str], packages: usize) -> PollOutcome {
    PollOutcome::Updated {
        packages,
        new_kernels: new.iter().map(|s| s.to_string()).collect(),
    }
}

/// Rewrites the primary metadata of the repository in `dir` through `change` (on its
/// decompressed XML when `xml`, else on its compressed bytes), and names the result in
/// repomd.xml with its true checksum unless `checksum` says which to claim.
fn tamper(dir: &Path, xml: bool, change: impl FnOnce(Vec<u8>) -> Vec<u8>, checksum: Option<&str>) {
    let repomd_path = dir.join("repodata/repomd.xml");
    let repomd = std::fs::read_to_string(&repomd_path).unwrap();
    let primary = repomd.split("<data type=\"primary\">").nth(1).unwrap();
    let old = primary
        .split("<checksum type=\"sha256\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .to_string();
    let href = primary
        .split("<location href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert!(href.ends_with(".gz"), "{href}");
    let file = dir.join(href);
    let bytes = std::fs::read(&file).unwrap();
    let bytes = if xml {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut text)
            .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&change(text)).unwrap();
        gz.finish().unwrap()
    } else {
        change(bytes)
    };
    let real = hex::encode(Sha256::digest(&bytes));
    std::fs::write(&file, &bytes).unwrap();
    let claimed = checksum.unwrap_or(&real);
    let repomd = repomd.replace(
        &format!(">{old}</checksum>"),
        &format!(">{claimed}</checksum>"),
    );
    std::fs::write(&repomd_path, repomd).unwrap();
}

async fn discovery_lifecycle(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    let repo = root.path().join("el8/BaseOS/x86_64/os");
    publish(&repo, "gz", &[A, B]);
    let mirror = Mirror::start(root.path()).await;
    let h = Harness::new(db).await;
    create_project(&h).await;
    let client = discovery::client().unwrap();

    let url = format!("{}/el8/BaseOS/x86_64/os", mirror.url);
    assert!(h
        .storage
        .add_kernel_source("nope", &url, "kernel-devel", "el8", "x86_64")
        .await
        .unwrap()
        .is_none());
    let s = add_source(&h, &url, "kernel-devel").await;
    assert_eq!(s.url, format!("{url}/"));
    assert_eq!(
        add_source(&h, &format!("{url}/"), "kernel-devel").await.id,
        s.id
    );
    assert_eq!((s.checked_at, s.packages), (None, 0));

    // The first poll registers both packages, with where they are and when they were built.
    let outcome = discovery::poll(&h.storage, &client, &s).await;
    assert_eq!(outcome, updated(&[A, B], 2));
    let s = source(&h, s.id).await;
    assert_eq!((s.error.as_deref(), s.packages), (None, 2));
    assert!(s.succeeded_at.is_some() && s.succeeded_at == s.checked_at);
    assert!(s.etag.is_some());
    assert!(s.primary_checksum.as_ref().unwrap().starts_with("sha256:"));
    let pool = sqlx::AnyPool::connect(&h.db.url).await.unwrap();
    let row = sqlx::query(
        "SELECT source_id, build_time, package_location, package_checksum FROM kernels
         WHERE release = '553.el8_10'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    let rpm = repo.join(format!("Packages/kernel-devel-{B}.rpm"));
    assert_eq!(row.get::<Option<i64>, _>(0), Some(s.id));
    let built = row.get::<Option<i64>, _>(1).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        built % 1000 == 0 && (now - 3_600_000..=now).contains(&built),
        "{built}"
    );
    assert_eq!(
        row.get::<Option<String>, _>(2).unwrap(),
        format!("{url}/Packages/kernel-devel-{B}.rpm")
    );
    assert_eq!(
        row.get::<Option<String>, _>(3).unwrap(),
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(std::fs::read(&rpm).unwrap()))
        )
    );
    let untested = |u: &str| (u.to_string(), false);
    assert_eq!(
        grid_rows(&h).await,
        [untested(B), untested(A), (REPORTED.to_string(), true)]
    );
    assert_eq!(mirror.requests(), ["repomd.xml 200", "primary.xml.gz 200"]);

    // Nothing changed: repomd.xml answers 304 and the primary metadata is not fetched again.
    assert_eq!(
        discovery::poll(&h.storage, &client, &s).await,
        PollOutcome::Unchanged
    );
    assert_eq!(mirror.requests(), ["repomd.xml 304"]);
    let known = kernels(&h).await;

    // A new package is published: the next poll finds it, and it is a row waiting for tests.
    publish(&repo, "gz", &[C]);
    let s = source(&h, s.id).await;
    assert_eq!(
        discovery::poll(&h.storage, &client, &s).await,
        updated(&[C], 3)
    );
    assert_eq!(mirror.requests(), ["repomd.xml 200", "primary.xml.gz 200"]);
    assert_eq!(
        grid_rows(&h).await,
        [
            untested(C),
            untested(B),
            untested(A),
            (REPORTED.to_string(), true)
        ]
    );
    let after = kernels(&h).await;
    assert_eq!(
        after[..known.len()],
        known[..],
        "known kernels were rewritten"
    );
    let s = source(&h, s.id).await;
    assert_eq!(s.packages, 3);
    let good = s.clone();

    // Broken sources: each failure is recorded on its source and nothing known changes.
    let missing = add_source(
        &h,
        &format!("{}/el8/nothing/here", mirror.url),
        "kernel-devel",
    )
    .await;
    assert_eq!(
        discovery::poll(&h.storage, &client, &missing).await,
        PollOutcome::Failed("repodata/repomd.xml: HTTP 404".into())
    );
    let missing = source(&h, missing.id).await;
    assert_eq!(
        missing.error.as_deref(),
        Some("repodata/repomd.xml: HTTP 404")
    );
    assert!(missing.failing_since.is_some() && missing.succeeded_at.is_none());

    let zeros = "0".repeat(64);
    tamper(&repo, false, |b| b, Some(&zeros));
    let PollOutcome::Failed(error) = discovery::poll(&h.storage, &client, &good).await else {
        panic!("a wrong checksum was accepted");
    };
    assert!(
        error.starts_with(&format!(
            "primary checksum mismatch: expected sha256:{zeros}, got sha256:"
        )),
        "{error}"
    );
    let failing = source(&h, s.id).await;
    assert_eq!(failing.error.as_ref(), Some(&error));
    let since = failing.failing_since.unwrap();
    type Change = fn(Vec<u8>) -> Vec<u8>;
    let failures: [(bool, Change, &str); 2] = [
        (
            false,
            |b| b[..b.len() / 2].to_vec(),
            "primary.xml.gz: unexpected end of file",
        ),
        (
            true,
            |x| {
                String::from_utf8(x)
                    .unwrap()
                    .replacen("</name>", "</nam>", 1)
                    .into_bytes()
            },
            "primary.xml: XML error at byte ",
        ),
    ];
    for (xml, change, expected) in failures {
        publish(&repo, "gz", &[]);
        tamper(&repo, xml, change, None);
        let PollOutcome::Failed(error) = discovery::poll(&h.storage, &client, &good).await else {
            panic!("{expected}: a broken primary was accepted");
        };
        assert!(error.starts_with(expected), "{error}");
        let failing = source(&h, s.id).await;
        assert_eq!(failing.error.as_ref(), Some(&error));
        assert_eq!(failing.failing_since, Some(since));
        assert_eq!(
            (&failing.etag, &failing.primary_checksum, failing.packages),
            (&good.etag, &good.primary_checksum, 3)
        );
    }
    assert_eq!(kernels(&h).await, after);
    assert_eq!(grid_rows(&h).await.len(), 4);

    // Repaired, the source is well again and knows what it knew.
    publish(&repo, "gz", &[]);
    let outcome = discovery::poll(&h.storage, &client, &good).await;
    assert!(
        outcome == PollOutcome::Unchanged || outcome == updated(&[], 3),
        "{outcome:?}"
    );
    let healed = source(&h, s.id).await;
    assert_eq!((healed.error, healed.failing_since), (None, None));
    assert_eq!(kernels(&h).await, after);
}

async fn every_compression(db: TestDb) {
    let root = tempfile::tempdir().unwrap();
    for compress in ["gz", "xz", "zst"] {
        publish(&root.path().join(compress), compress, &[A, B]);
    }
    // Another arch's package of the same name is not an x86_64 source's.
    publish(
        &root.path().join("gz"),
        "gz",
        &["4.18.0-553.el8_10.aarch64"],
    );
    // An EL8 real-time kernel: its release says `.rt`, so its uname has no `+rt`.
    publish_packages(
        &root.path().join("rt"),
        "gz",
        &[
            "kernel-rt-devel-4.18.0-513.rt7.302.el8.x86_64".into(),
            format!("kernel-devel-{A}"),
        ],
    );
    let mirror = Mirror::start(root.path()).await;
    let h = Harness::new(db).await;
    create_project(&h).await;
    let mut ids = Vec::new();
    for dir in ["gz", "xz", "zst"] {
        ids.push(
            add_source(&h, &format!("{}/{dir}", mirror.url), "kernel-devel")
                .await
                .id,
        );
    }
    let rt = add_source(&h, &format!("{}/rt", mirror.url), "kernel-rt-devel").await;
    let client = discovery::client().unwrap();

    let outcomes = discovery::poll_all(&h.storage, &client).await;
    let got: Vec<(i64, PollOutcome)> = outcomes.into_iter().map(|(s, o)| (s.id, o)).collect();
    assert_eq!(
        got,
        [
            (ids[0], updated(&[A, B], 2)),
            (ids[1], updated(&[], 2)),
            (ids[2], updated(&[], 2)),
            (rt.id, updated(&["4.18.0-513.rt7.302.el8.x86_64"], 1)),
        ]
    );
    let mut primaries: Vec<String> = mirror
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("primary"))
        .collect();
    primaries.sort();
    assert_eq!(
        primaries,
        [
            "primary.xml.gz 200",
            "primary.xml.gz 200",
            "primary.xml.xz 200",
            "primary.xml.zst 200"
        ]
    );
    // The kernels are tied to the source that read them last.
    let sources: Value = kernels(&h)
        .await
        .iter()
        .map(|k| {
            k.split(" source=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        sources,
        serde_json::json!([
            "None",
            format!("Some({})", ids[2]),
            format!("Some({})", ids[2]),
            format!("Some({})", rt.id)
        ])
    );
    for outcome in discovery::poll_all(&h.storage, &client).await {
        assert_eq!(outcome.1, PollOutcome::Unchanged);
    }

    // Removing a source keeps its kernels.
    let before = kernels(&h).await.len();
    assert!(h.storage.remove_kernel_source(rt.id).await.unwrap());
    assert!(!h.storage.remove_kernel_source(rt.id).await.unwrap());
    assert_eq!(h.storage.kernel_sources(None).await.unwrap().len(), 3);
    let left = kernels(&h).await;
    assert_eq!(left.len(), before);
    assert!(left.last().unwrap().contains(" source=None "), "{left:?}");

    // The discovery loop polls at once, and again as soon as it is asked to.
    publish(&root.path().join("gz"), "gz", &[C]);
    let task = discovery::spawn(h.storage.clone(), Duration::from_secs(3600));
    wait_for_kernel(&h, C).await;
    let d = "4.18.0-553.8.1.el8_10.x86_64";
    publish(&root.path().join("gz"), "gz", &[d]);
    discovery::poll_soon();
    wait_for_kernel(&h, d).await;
    task.abort();
}

on_both_backends!(discovery_lifecycle, every_compression);
