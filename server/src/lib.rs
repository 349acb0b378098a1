//! The Trellis server: JSON API, pages, storage and the `trellis` command line.
//!
//! - [`storage`]: the only module that speaks SQL (SQLite or PostgreSQL).
//! - [`accept`]: accepting what runners send: validating reports and commit history (the rules
//!   live in the domain crate), clipping and compressing logs, before storage writes them.
//! - [`http`]: routes, extractors and thin handlers, and the API's types from which its OpenAPI
//!   document is derived; [`error`] maps every failure to one HTTP answer.
//! - [`notify`]: telling people: the announcer of breakage events and the sender of mails and
//!   webhooks from the outbox.
//! - [`discovery`]: finding new kernels in distribution repositories (dnf/yum repodata).
//! - [`demo`]: the labelled demo project that `make run` seeds.

pub mod accept;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod http;
pub mod notify;
pub mod storage;

use config::Config;
use http::AppState;
use storage::Storage;

/// Opens the database, seeds the demo if asked and it is not there yet, and builds the router.
pub async fn app(config: Config) -> anyhow::Result<(axum::Router, Storage)> {
    let storage = Storage::connect(&config.database_url).await?;
    if config.demo && !storage.has_demo().await? {
        demo::seed(&storage, config.max_log_bytes).await?;
    }
    let state = AppState::new(storage.clone(), config);
    Ok((http::router(state), storage))
}

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests.
pub async fn serve(mut config: Config) -> anyhow::Result<()> {
    http::edge::raise_open_file_limit();
    let limits = http::edge::Limits::new(&config);
    let keep_days = config.keep_passing_logs_days;
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    // Links in mails and feeds name the port actually bound (the configured one may be 0).
    config.addr = listener.local_addr()?;
    let notify = config.clone();
    let discovery_every = std::time::Duration::from_secs(config.discovery_interval_secs);
    let (router, storage) = app(config).await?;
    // Here and not in `app`, so test harnesses never prune, mail, post webhooks or poll.
    let retention = tokio::spawn(storage.clone().run_log_retention(keep_days));
    notify::start(storage.clone(), &notify)?;
    let discovery =
        (!discovery_every.is_zero()).then(|| discovery::spawn(storage.clone(), discovery_every));
    tracing::info!(
        "Trellis listening on http://{} (at most {} connections)",
        listener.local_addr()?,
        limits.max_connections
    );
    let stopping = storage.clone();
    let shutdown = async move {
        shutdown_signal().await;
        // Live streams never end by themselves: ending them lets their connections close.
        stopping.stop_watching();
    };
    http::edge::serve(listener, router, limits, shutdown).await;
    retention.abort();
    if let Some(discovery) = discovery {
        discovery.abort();
    }
    storage.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
