//! Atom 1.0 and RSS 2.0 feeds of breakage events, and of the CI's own health events: one entry
//! per event (never one per report),
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
use trellis_domain::health::HealthEvent;
use trellis_domain::notice;
use trellis_domain::notice::Links;

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
    // The CI's own health, unless the feed follows a kernel: no health problem names one.
    let health = match filter.kernel {
        Some(_) => vec![],
        None => state
            .storage
            .health_events(project.as_ref(), ENTRIES as i64)
            .await?
            .into_iter()
            .filter(|h| h.problem.passes(&filter.breakages))
            .collect(),
    };
    let base = state.config.public_url();
    let mut entries: Vec<Entry<'_>> = events
        .iter()
        .map(|e| Entry::Breakage(e, links(&base, e)))
        .chain(
            health
                .iter()
                .map(|h| Entry::Health(h, format!("{base}{}", paths::coverage(&h.project)))),
        )
        .collect();
    // Newest first: both kinds take their ids from one sequence.
    entries.sort_by_key(|e| std::cmp::Reverse(e.id()));
    entries.truncate(ENTRIES);
    let events = entries;
    let name = project.as_ref().map(|p| p.name.as_str());
    let self_url = format!("{base}{}", paths::feed(name, format, &filter.to_pairs()));
    let page_url = format!(
        "{base}{}",
        name.map_or_else(|| "/".to_string(), paths::breakages)
    );
    let title = feed_title(name, &filter);
    let body = match format {
        FeedFormat::Atom => atom(&self_url, &page_url, &title, &events),
        FeedFormat::Rss => rss(&self_url, &page_url, &title, &events),
    };
    let etag = format!(
        "\"{}\"",
        &hex::encode(Sha256::digest(body.as_bytes()))[..32]
    );
    let modified = events.iter().map(Entry::updated_at).max();
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

/// One feed entry: a breakage event, or a health event of the CI itself.
enum Entry<'e> {
    Breakage(&'e BreakageEvent, Links),
    /// With the URL of its project's coverage page.
    Health(&'e HealthEvent, String),
}

impl Entry<'_> {
    fn id(&self) -> i64 {
        match self {
            Entry::Breakage(e, _) => e.id,
            Entry::Health(h, _) => h.id,
        }
    }

    fn uuid(&self) -> &str {
        match self {
            Entry::Breakage(e, _) => &e.uuid,
            Entry::Health(h, _) => &h.uuid,
        }
    }

    fn at(&self) -> i64 {
        match self {
            Entry::Breakage(e, _) => e.at,
            Entry::Health(h, _) => h.at,
        }
    }

    fn updated_at(&self) -> i64 {
        match self {
            Entry::Breakage(e, _) => e.updated_at,
            Entry::Health(h, _) => h.at,
        }
    }

    fn title(&self) -> String {
        match self {
            Entry::Breakage(e, _) => notice::title(e),
            Entry::Health(h, _) => h.title(),
        }
    }

    fn page(&self) -> &str {
        match self {
            Entry::Breakage(_, l) => &l.breakage,
            Entry::Health(_, coverage) => coverage,
        }
    }

    fn html(&self) -> String {
        match self {
            Entry::Breakage(e, l) => notice::html_body(e, l),
            Entry::Health(h, coverage) => h.html_body(coverage),
        }
    }
}

fn atom(self_url: &str, page_url: &str, title: &str, events: &[Entry<'_>]) -> String {
    use atom_syndication::{Content, Entry as AtomEntry, Feed, Generator, Person, Text};
    let entries = events
        .iter()
        .map(|e| {
            let mut links = vec![atom_link(e.page(), "alternate", Some("text/html"), None)];
            if let Entry::Breakage(_, l) = e {
                links.push(atom_link(
                    &l.cell,
                    "related",
                    Some("text/html"),
                    Some("first bad cell"),
                ));
                links.push(atom_link(
                    &l.commit,
                    "related",
                    Some("text/html"),
                    Some("first bad commit"),
                ));
            }
            AtomEntry {
                title: Text::plain(e.title()),
                id: format!("urn:uuid:{}", e.uuid()),
                updated: fixed(e.updated_at()),
                published: Some(fixed(e.at())),
                links,
                content: Some(Content {
                    value: Some(e.html()),
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
                .map(Entry::updated_at)
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

fn rss(self_url: &str, page_url: &str, title: &str, events: &[Entry<'_>]) -> String {
    use rss::{Channel, Guid, Item};
    let items = events
        .iter()
        .map(|e| Item {
            title: Some(e.title()),
            link: Some(e.page().to_string()),
            description: Some(e.html()),
            guid: Some(Guid {
                value: format!("urn:uuid:{}", e.uuid()),
                permalink: false,
            }),
            pub_date: Some(fixed(e.at()).to_rfc2822()),
            ..Default::default()
        })
        .collect();
    let channel = Channel {
        title: title.to_string(),
        link: page_url.to_string(),
        description: format!("{title}: opened and fixed, one item per event. Feed: {self_url}"),
        last_build_date: events
            .iter()
            .map(Entry::updated_at)
            .max()
            .map(|m| fixed(m).to_rfc2822()),
        generator: Some("Trellis".to_string()),
        items,
        ..Default::default()
    };
    channel.to_string()
}
