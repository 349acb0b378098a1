//! Seen before: a breakage on el9 fixed by a module commit, then the same error on an el8
//! kernel (printed in colour, with a path relative to the module): the el8 breakage names the
//! el9 fix, in the breakages JSON, on the breakages page and in the feed. On SQLite and
//! PostgreSQL.

mod common;

use axum::http::StatusCode;
use common::*;
use serde_json::json;

const EL9: &str = "5.14.0-162.6.1.el9_1.x86_64";
const EL8: &str = "4.18.0-477.10.1.el8_8.x86_64";

async fn post(h: &Harness, kernel: &str, commit: u32, log: Option<&str>) {
    let status = if log.is_some() { "fail" } else { "pass" };
    let mut body = report(kernel, commit, status, &format!("{kernel}-{commit}"));
    if let Some(log) = log {
        body["log"] = json!(log);
    }
    let (code, answer) = h.post_report(body).await;
    assert_eq!(code, StatusCode::CREATED, "{answer}");
}

async fn the_el9_fix_is_suggested_for_the_same_error_on_el8(db: TestDb) {
    let h = Harness::new(db).await;
    push_linear_history(&h, 5).await;
    let el9_log = "  CC [M]  /builds/el9-runner/src/main.o\n\
        /builds/el9-runner/src/main.c:120:3: error: too many arguments to function 'netif_napi_add'\n\
        /builds/el9-runner/src/device.c:40:9: error: implicit declaration of function 'netif_napi_del'\n\
        make[2]: *** [scripts/Makefile.build:250: /builds/el9-runner/src/main.o] Error 1\n";
    for (commit, log) in [
        (1, None),
        (2, Some(el9_log)),
        (3, Some(el9_log)),
        (4, None),
        (5, None),
    ] {
        post(&h, EL9, commit, log).await;
    }
    // The same error a year later on el8, from another runner's build: coloured, relative.
    let el8_log = "+ make -C src KERNELDIR=/usr/src/kernels/4.18.0-477.10.1.el8_8.x86_64\n\
        \u{1b}[01m\u{1b}[Ksrc/main.c:121:3:\u{1b}[m\u{1b}[K \u{1b}[01;31m\u{1b}[Kerror: \
        \u{1b}[m\u{1b}[Ktoo many arguments to function '\u{1b}[01m\u{1b}[Knetif_napi_add\
        \u{1b}[m\u{1b}[K'\n";
    for (commit, log) in [
        (1, None),
        (2, None),
        (3, None),
        (4, None),
        (5, Some(el8_log)),
    ] {
        post(&h, EL8, commit, log).await;
    }

    let breakages = h.breakages().await;
    let breakages = breakages.as_array().unwrap();
    let el8 = breakages
        .iter()
        .find(|b| b["stream"] == "el8")
        .unwrap_or_else(|| panic!("{breakages:#?}"));
    assert_eq!(el8["open"], true);
    assert_eq!(
        el8["signature"],
        "main.c: error: too many arguments to function 'netif_napi_add'"
    );
    let seen = el8["seen_before"].as_array().unwrap();
    assert_eq!(seen.len(), 1, "{el8:#}");
    assert_eq!(seen[0]["stream"], "el9");
    assert_eq!(seen[0]["fixed_by_commit"], sha(4));
    assert_eq!(seen[0]["fix_subject"], "commit 4");
    assert_eq!(seen[0]["first_bad_kernel"], EL9);
    assert_eq!(seen[0]["same_signature"], true);
    let el9 = breakages.iter().find(|b| b["stream"] == "el9").unwrap();
    assert_eq!(el9["open"], false);
    assert_eq!(el9["seen_before"], json!([]));

    let (status, page) = h.get("/p/wg/breakages").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Seen before: the fix that worked last time"),
        "{page}"
    );
    assert!(page.contains(&format!("/p/wg/commit/{}", sha(4))));

    // The el9 logs printed a second error: the signature page lists it beside the first.
    let id = trellis_domain::signature::signature_id(
        "main.c: error: too many arguments to function 'netif_napi_add'",
    );
    let (status, cells) = h
        .json(
            "GET",
            &format!("/api/v1/projects/wg/signatures/{id}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cells}");
    assert_eq!(
        cells["seen_together"],
        json!([{"signature": "device.c: error: implicit declaration of function 'netif_napi_del'", "reports": 2}])
    );
    let (_, page) = h.get(&format!("/p/wg/signature/{id}")).await;
    assert!(page.contains("Also seen together with"), "{page}");

    // The opened event of el8 (announced with its precedent) says it in the feed.
    let (_, feed) = h.get("/p/wg/feed.atom?stream=el8").await;
    assert!(feed.contains("seen before on Enterprise Linux 9"), "{feed}");
}

on_both_backends!(the_el9_fix_is_suggested_for_the_same_error_on_el8);
