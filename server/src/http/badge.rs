//! Status badges for READMEs: `GET /p/{project}/badge.svg`, or `?stream=el8` for one stream.
//! Cached for a minute by browsers and image proxies, and revalidated by `ETag`.

use super::extract::ApiPath;
use super::{load, AppState};
use crate::error::ApiError;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use trellis_domain::badge::Badge;

const CACHE_CONTROL: &str = "public, max-age=60";

pub async fn badge(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let stream = pairs
        .iter()
        .rev()
        .find(|(k, v)| k == "stream" && !v.trim().is_empty())
        .map(|(_, v)| v.trim());
    let project = load::project_named(&state, &name).await?;
    let status = state.storage.badge_status(&project, stream).await?;
    let svg = Badge::new(stream.unwrap_or(&project.name), status).svg();
    Ok(respond(svg, &headers))
}

/// The SVG, or 304 when the client's copy is current. The tag is weak: the bytes sent may be
/// gzip-compressed.
fn respond(svg: String, request: &HeaderMap) -> Response {
    let digest = Sha256::digest(svg.as_bytes());
    let etag = format!("W/\"{}\"", hex::encode(&digest[..12]));
    let cache = [
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is ASCII"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
    ];
    if has_current_copy(request, &etag) {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    let svg_type = [(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml"),
    )];
    (cache, svg_type, svg).into_response()
}

/// Whether `If-None-Match` names `etag` (compared weakly, as RFC 9110 asks) or is `*`.
fn has_current_copy(request: &HeaderMap, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_is_compared_weakly_in_any_list() {
        let etag = r#"W/"abc""#;
        let asks = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(value).unwrap());
            has_current_copy(&headers, etag)
        };
        for current in [r#"W/"abc""#, r#""abc""#, r#""x", W/"abc""#, "*"] {
            assert!(asks(current), "{current}");
        }
        for stale in [r#""abd""#, r#"W/"ab""#, ""] {
            assert!(!asks(stale), "{stale}");
        }
        assert!(!has_current_copy(&HeaderMap::new(), etag));
    }
}
