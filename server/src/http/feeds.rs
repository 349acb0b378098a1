//! Atom 1.0 and RSS 2.0 feeds of breakage events: one entry per event (never one per report),
//! per project or across projects, filtered by the query. Entry ids are the events' UUIDs, so
//! they never change; conditional GETs are answered 304 from an `ETag` of the body.

use super::load;
use super::AppState;
use crate::error::ApiError;
use crate::notify::links;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, FixedOffset, Utc};
use sha2::{Digest, Sha256};
use trellis_app::paths::{self, FeedFormat};
use trellis_domain::events::{BreakageEvent, FeedFilter};
use trellis_domain::notice;

/// Entries a feed holds: the newest events that pass its filter.
const ENTRIES: usize = 50;
/// Events read to find them.
const SCANNED: i64 = 2000;

pub async fn project_atom(
    state: State<AppState>,
    Path(project): Path<String>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    feed(state, Some(project), FeedFormat::Atom, query, headers).await
}

pub async fn project_rss(
    state: State<AppState>,
    Path(project): Path<String>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    feed(state, Some(project), FeedFormat::Rss, query, headers).await
}

pub async fn all_atom(
    state: State<AppState>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    feed(state, None, FeedFormat::Atom, query, headers).await
}

pub async fn all_rss(
    state: State<AppState>,
    query: Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    feed(state, None, FeedFormat::Rss, query, headers).await
}

async fn feed(
    State(state): State<AppState>,
    project: Option<String>,
    format: FeedFormat,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (project, filter, events) =
        load::feed_events(&state, project.as_deref(), &pairs, SCANNED).await?;
    let events: Vec<BreakageEvent> = events
        .into_iter()
        .filter(|e| filter.keeps(e))
        .take(ENTRIES)
        .collect();
    let base = state.config.public_url();
    let name = project.as_ref().map(|p| p.name.as_str());
    let self_url = format!("{base}{}", paths::feed(name, format, &filter.to_pairs()));
    let page_url = format!(
        "{base}{}",
        name.map_or_else(|| "/".to_string(), paths::breakages)
    );
    let title = feed_title(name, &filter);
    let body = match format {
        FeedFormat::Atom => atom(&base, &self_url, &page_url, &title, &events),
        FeedFormat::Rss => rss(&base, &self_url, &page_url, &title, &events),
    };
    let etag = format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(body.as_bytes()))[..32]
    );
    let modified = events.iter().map(|e| e.updated_at).max();
    let content_type = match format {
        FeedFormat::Atom => "application/atom+xml; charset=utf-8",
        FeedFormat::Rss => "application/rss+xml; charset=utf-8",
    };
    let mut response = if not_modified(&headers, &etag, modified) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], body).into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Feeds run no script; the browser's own feed viewer needs its inline styles.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = modified
        .and_then(http_date)
        .and_then(|d| HeaderValue::from_str(&d).ok())
    {
        h.insert(header::LAST_MODIFIED, v);
    }
    Ok(response)
}

/// RFC 9110: `If-None-Match` decides when present; otherwise `If-Modified-Since`.
fn not_modified(headers: &HeaderMap, etag: &str, modified: Option<i64>) -> bool {
    if let Some(tags) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        return tags
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == etag || t == "*");
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DateTime::parse_from_rfc2822(v).ok());
    match (since, modified) {
        // HTTP dates have whole seconds.
        (Some(since), Some(ms)) => ms / 1000 <= since.timestamp(),
        _ => false,
    }
}

fn http_date(ms: i64) -> Option<String> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
}

/// The start of today (UTC): when an empty feed says it was updated, stable for a day so that
/// its `ETag` is too.
fn today() -> i64 {
    let now = Utc::now().timestamp_millis();
    now - now.rem_euclid(crate::storage::DAY_MS)
}

fn fixed(ms: i64) -> DateTime<FixedOffset> {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .fixed_offset()
}

fn feed_title(project: Option<&str>, filter: &FeedFilter) -> String {
    let mut title = format!(
        "Trellis: breakages of {}",
        project.unwrap_or("every project")
    );
    let pairs = filter.to_pairs();
    if !pairs.is_empty() {
        let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} {v}")).collect();
        title.push_str(&format!(" ({})", shown.join(", ")));
    }
    title
}

fn atom_link(
    href: &str,
    rel: &str,
    mime: Option<&str>,
    title: Option<&str>,
) -> atom_syndication::Link {
    atom_syndication::Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        title: title.map(str::to_string),
        ..Default::default()
    }
}

fn atom(
    base: &str,
    self_url: &str,
    page_url: &str,
    title: &str,
    events: &[BreakageEvent],
) -> String {
    use atom_syndication::{Content, Entry, Feed, Generator, Person, Text};
    let entries = events
        .iter()
        .map(|e| {
            let l = links(base, e);
            Entry {
                title: Text::plain(notice::title(e)),
                id: format!("urn:uuid:{}", e.uuid),
                updated: fixed(e.updated_at),
                published: Some(fixed(e.at)),
                links: vec![
                    atom_link(&l.breakage, "alternate", Some("text/html"), None),
                    atom_link(
                        &l.cell,
                        "related",
                        Some("text/html"),
                        Some("first bad cell"),
                    ),
                    atom_link(
                        &l.commit,
                        "related",
                        Some("text/html"),
                        Some("first bad commit"),
                    ),
                ],
                content: Some(Content {
                    value: Some(notice::html_body(e, &l)),
                    content_type: Some("html".to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }
        })
        .collect();
    let feed = Feed {
        title: Text::plain(title),
        id: self_url.to_string(),
        updated: fixed(
            events
                .iter()
                .map(|e| e.updated_at)
                .max()
                .unwrap_or_else(today),
        ),
        authors: vec![Person {
            name: "Trellis".to_string(),
            ..Default::default()
        }],
        generator: Some(Generator {
            value: "Trellis".to_string(),
            ..Default::default()
        }),
        links: vec![
            atom_link(self_url, "self", Some("application/atom+xml"), None),
            atom_link(page_url, "alternate", Some("text/html"), None),
        ],
        entries,
        ..Default::default()
    };
    feed.to_string()
}

fn rss(
    base: &str,
    self_url: &str,
    page_url: &str,
    title: &str,
    events: &[BreakageEvent],
) -> String {
    use rss::{Channel, Guid, Item};
    let items = events
        .iter()
        .map(|e| {
            let l = links(base, e);
            Item {
                title: Some(notice::title(e)),
                link: Some(l.breakage.clone()),
                description: Some(notice::html_body(e, &l)),
                guid: Some(Guid {
                    value: format!("urn:uuid:{}", e.uuid),
                    permalink: false,
                }),
                pub_date: Some(fixed(e.at).to_rfc2822()),
                ..Default::default()
            }
        })
        .collect();
    let channel = Channel {
        title: title.to_string(),
        link: page_url.to_string(),
        description: format!("{title}: opened and fixed, one item per event. Feed: {self_url}"),
        last_build_date: events
            .iter()
            .map(|e| e.updated_at)
            .max()
            .map(|m| fixed(m).to_rfc2822()),
        generator: Some("Trellis".to_string()),
        items,
        ..Default::default()
    };
    channel.to_string()
}
