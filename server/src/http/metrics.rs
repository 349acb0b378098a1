//! Prometheus metrics: requests and their latency per route template, open connections, and the
//! descriptions of the storage metrics recorded elsewhere, served as text at `/metrics`.

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];
/// Histogram samples are folded into their buckets at least this often, scraped or not.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process's recorder once: tests build many routers in one process, and metrics
/// recorded before the first scrape must not be lost.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("trellis_ingest_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        if let Err(e) = metrics::set_global_recorder(recorder) {
            tracing::warn!("/metrics stays empty: another metrics recorder is installed ({e})");
        }
        describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        if let Err(e) = spawned {
            tracing::warn!("histograms are folded only when scraped: {e}");
        }
        handle
    })
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by route template (`fallback`: static files and unknown paths), \
         method and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response head, by route template and method."
    );
    describe_gauge!("http_connections_open", "Client connections open now.");
    describe_counter!(
        "http_connections_closed_total",
        "Connections the server closed: head_timeout (a request head too slow), idle (no \
         request for too long), crowded (not moving while the connection cap was reached)."
    );
    describe_gauge!(
        "trellis_ingest_queue_depth",
        "Reports waiting in the ingest queue."
    );
    describe_histogram!(
        "trellis_ingest_batch_size",
        "Reports committed per ingest batch."
    );
    describe_histogram!(
        "trellis_ingest_commit_seconds",
        Unit::Seconds,
        "Time to commit one ingest batch."
    );
    describe_counter!("trellis_database_errors_total", "Database errors, by kind.");
    describe_counter!(
        "trellis_notifications_sent_total",
        "Mails and webhooks delivered, by channel."
    );
    describe_counter!(
        "trellis_notifications_failed_total",
        "Failed mail and webhook attempts, by channel (each is retried or given up)."
    );
    describe_gauge!(
        "trellis_outbox_waiting",
        "Mails and webhooks not yet delivered (settling, due or retrying)."
    );
    describe_gauge!(
        "trellis_outbox_retrying",
        "Undelivered mails and webhooks that failed at least once."
    );
    describe_gauge!(
        "trellis_outbox_given_up",
        "Mails and webhooks refused for good by their receiver."
    );
    describe_histogram!(
        "trellis_breakage_recompute_seconds",
        Unit::Seconds,
        "Time of one pass recomputing a project's breakages (the lanes that changed)."
    );
}

/// `GET /metrics`: the Prometheus text exposition.
pub async fn scrape() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        install().render(),
    )
}

/// Counts and times each request under its route template, never its raw path (which would make
/// one series per URL a client can invent).
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("fallback".to_string(), |p| p.as_str().to_string());
    let method = method_label(req.method());
    let start = Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    histogram!("http_request_duration_seconds", "route" => route.clone(), "method" => method)
        .record(start.elapsed().as_secs_f64());
    counter!("http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// Methods a client invents share one label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
