//! HTTP: the JSON API under `/api/v1` (its OpenAPI document derived from its routes and
//! [`schema`]), the pages, static files and `/metrics`; [`edge`] serves them to clients.

mod admin;
mod api;
mod badge;
pub mod edge;
mod extract;
mod feeds;
mod jobs;
mod live;
mod load;
mod metrics;
mod middleware;
mod page_cache;
mod pages;
pub mod schema;
mod subscribe;

use crate::config::Config;
use crate::storage::Storage;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use std::sync::Arc;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

#[derive(Clone)]
pub struct AppState {
    pub storage: Storage,
    pub config: Arc<Config>,
    pub pages: Arc<page_cache::PageCache>,
    pub subscribe_limit: Arc<subscribe::RateLimit>,
}

impl AppState {
    pub fn new(storage: Storage, config: Config) -> AppState {
        AppState {
            storage,
            subscribe_limit: Arc::new(subscribe::RateLimit::per_hour(config.subscribe_per_hour)),
            config: Arc::new(config),
            pages: Arc::default(),
        }
    }
}

/// The API's routes with their OpenAPI description: one list, so the two cannot disagree.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(schema::ApiDoc::openapi())
        .routes(routes!(api::post_report))
        .routes(routes!(api::projects))
        .routes(routes!(api::post_commits))
        .routes(routes!(jobs::lease))
        .routes(routes!(jobs::heartbeat))
        .routes(routes!(jobs::release))
        .routes(routes!(admin::add_project))
        .routes(routes!(admin::edit_project))
        .routes(routes!(admin::add_source, admin::sources))
        .routes(routes!(admin::remove_source))
        .routes(routes!(api::grid))
        .routes(routes!(api::cell))
        .routes(routes!(api::breakages))
        .routes(routes!(api::events))
        .routes(routes!(api::coverage))
        .routes(routes!(api::kernel))
        .routes(routes!(api::commit))
        .routes(routes!(api::signature))
        .routes(routes!(api::openapi))
        .routes(routes!(api::health))
}

pub fn router(state: AppState) -> Router {
    let api = Router::from(api_routes())
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn(middleware::json_errors));

    let pkg = ServeDir::new(state.config.site_root.join("pkg"));
    let public = ServeDir::new(state.config.site_root.clone()).fallback(get(pages::not_found));
    metrics::install();
    let router = Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics::scrape))
        .route("/", get(pages::home))
        .route("/p/{project}", get(pages::grid))
        .route("/p/{project}/breakages", get(pages::breakages))
        .route("/p/{project}/coverage", get(pages::coverage))
        .route("/p/{project}/feed.atom", get(feeds::project_atom))
        .route("/p/{project}/feed.rss", get(feeds::project_rss))
        .route("/feed.atom", get(feeds::all_atom))
        .route("/feed.rss", get(feeds::all_rss))
        .route("/p/{project}/subscribe", post(subscribe::subscribe))
        .route(
            "/subscriptions/{token}/confirm",
            get(subscribe::confirm_page).post(subscribe::confirm),
        )
        .route(
            "/subscriptions/{token}/unsubscribe",
            get(subscribe::unsubscribe_page).post(subscribe::unsubscribe),
        )
        .route("/p/{project}/live", get(live::live))
        .route("/p/{project}/badge.svg", get(badge::badge))
        .route("/p/{project}/kernel/{stream}/{kernel}", get(pages::kernel))
        .route("/p/{project}/commit/{sha}", get(pages::commit))
        .route("/p/{project}/commits", get(pages::commit_search))
        .route("/p/{project}/signature/{id}", get(pages::signature))
        .route(
            "/p/{project}/cell/{stream}/{kernel}/{sha}",
            get(pages::cell),
        )
        .route(
            "/p/{project}/cell/{stream}/{kernel}/{sha}/reports/{id}/log.txt",
            get(pages::report_log),
        )
        .nest_service(
            "/pkg",
            tower::ServiceBuilder::new()
                .layer(SetResponseHeaderLayer::overriding(
                    axum::http::header::CACHE_CONTROL,
                    axum::http::HeaderValue::from_static("public, max-age=300"),
                ))
                .service(pkg),
        )
        .fallback_service(public)
        // Bodies are read by the handlers against `max_body_bytes`, answering 413 as JSON.
        .layer(DefaultBodyLimit::disable())
        .layer(CompressionLayer::new())
        .layer(axum::middleware::from_fn(server_timing))
        .with_state(state);
    middleware::wrap(router)
}

/// Adds `Server-Timing: app;dur=<ms>` so clients (and `make bench`) see the time spent here.
async fn server_timing(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let start = std::time::Instant::now();
    let mut res = next.run(req).await;
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        res.headers_mut().insert("server-timing", v);
    }
    res
}
