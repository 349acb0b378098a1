//! CI health events: a silent runner and a failing kernel source are raised once, into the
//! project's feed and its subscribers' outbox, and cleared once when they go, threaded to what
//! they answer. On SQLite and PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;
use trellis_domain::coverage::HealthProblem;
use trellis_domain::health::HealthKind;
use trellis_server::storage::{Follows, Target};

async fn check(h: &Harness) -> usize {
    let project = h.storage.project("wg").await.unwrap().unwrap();
    let thresholds = trellis_server::config::Config::for_database(&h.db.url);
    let mut thresholds = thresholds.health_thresholds();
    thresholds.runner_stale_ms = 1000;
    let coverage = h
        .storage
        .coverage(&project, None, thresholds)
        .await
        .unwrap()
        .unwrap();
    h.storage
        .record_health(&project, &coverage.problems)
        .await
        .unwrap()
}

async fn a_silent_runner_and_a_failing_source_are_told_once(db: TestDb) {
    let h = Harness::new(db).await;
    let follows = Follows {
        project: Some("wg".into()),
        stream: None,
        attribution: None,
    };
    let target = Target::Email("maintainer@example.test".into());
    h.storage
        .add_subscription(&follows, &target)
        .await
        .unwrap()
        .unwrap();
    // A source nobody answers on: its poll fails and says why.
    let source = h
        .storage
        .add_kernel_source(
            "wg",
            "http://127.0.0.1:9/el8/",
            "kernel-devel",
            "el8",
            "x86_64",
        )
        .await
        .unwrap()
        .unwrap();
    let client = trellis_server::discovery::client().unwrap();
    let outcome = trellis_server::discovery::poll(&h.storage, &client, &source).await;
    assert!(
        matches!(outcome, trellis_server::discovery::PollOutcome::Failed(_)),
        "{outcome:?}"
    );

    // runner-1 never called: once its silence passes a second, both problems are raised.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(check(&h).await, 2);
    assert_eq!(check(&h).await, 0, "a problem that lasts is told once");
    let raised = h.storage.claim_due(10).await.unwrap();
    let problems: Vec<&HealthProblem> = raised
        .iter()
        .map(|d| &d.health.as_ref().unwrap().problem)
        .collect();
    assert!(
        matches!(problems[0], HealthProblem::RunnerStale { runner, .. } if runner == "runner-1")
    );
    assert!(matches!(problems[1], HealthProblem::SourceFailing { stream, .. } if stream == "el8"));
    for d in &raised {
        h.storage.mark_sent(d.id).await.unwrap();
    }
    let (status, feed) = h.get("/p/wg/feed.atom").await;
    assert_eq!(status, StatusCode::OK);
    assert!(feed.contains("runner runner-1 has never called"), "{feed}");
    assert!(feed.contains("fails: "), "{feed}");
    // A feed of one stream keeps its source's trouble, not the runner's.
    let (_, el9) = h.get("/p/wg/feed.atom?stream=el9").await;
    assert!(!el9.contains("CI health"), "{el9}");

    // The runner calls (a lease): its problem clears, and the mail answers the first one.
    let (status, body) = h
        .json(
            "POST",
            "/api/v1/jobs/lease",
            Some(&h.token),
            Some(json!({"project": "wg", "streams": ["el8"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(check(&h).await, 1);
    let cleared = h.storage.claim_due(10).await.unwrap();
    assert_eq!(cleared.len(), 1);
    let event = cleared[0].health.as_ref().unwrap();
    assert_eq!(event.kind, HealthKind::Cleared);
    assert_eq!(
        cleared[0].opened_uuid.as_deref(),
        Some(raised[0].health.as_ref().unwrap().uuid.as_str())
    );
    let (_, feed) = h.get("/p/wg/feed.rss").await;
    assert!(feed.contains("resolved after"), "{feed}");
}

on_both_backends!(a_silent_runner_and_a_failing_source_are_told_once);
