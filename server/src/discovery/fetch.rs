//! HTTP for discovery: conditional GETs of repomd.xml and bounded downloads, with failures told
//! in one line.

use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{Client, StatusCode, Url};
use std::time::Duration;

/// How long connecting, and then each read, may take before a request is given up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The client discovery polls with: no compression negotiated (metadata is compressed already
/// and its checksum is of the bytes as stored), bounded waits.
pub fn client() -> reqwest::Result<Client> {
    Client::builder()
        .user_agent(concat!("trellis/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(REQUEST_TIMEOUT)
        .read_timeout(REQUEST_TIMEOUT)
        .build()
}

/// What a conditional GET of repomd.xml answered.
pub(super) enum Repomd {
    NotModified,
    Fetched {
        bytes: Vec<u8>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

/// GETs repomd.xml, unless it is unchanged since the validators given.
pub(super) async fn repomd(
    client: &Client,
    url: Url,
    etag: Option<&str>,
    last_modified: Option<&str>,
    limit: u64,
) -> Result<Repomd, String> {
    let mut request = client.get(url);
    if let Some(etag) = etag {
        request = request.header(IF_NONE_MATCH, etag);
    }
    if let Some(since) = last_modified {
        request = request.header(IF_MODIFIED_SINCE, since);
    }
    let response = request.send().await.map_err(|e| describe(&e))?;
    if response.status() == StatusCode::NOT_MODIFIED {
        return Ok(Repomd::NotModified);
    }
    let header = |name| {
        response
            .headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
    let bytes = body(response, limit).await?;
    Ok(Repomd::Fetched {
        bytes,
        etag,
        last_modified,
    })
}

/// GETs a file whole, refusing one larger than `limit` bytes.
pub(super) async fn download(client: &Client, url: Url, limit: u64) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().await.map_err(|e| describe(&e))?;
    body(response, limit).await
}

async fn body(mut response: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    let status = response.status();
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    let too_big = || format!("larger than {} MiB", limit >> 20);
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if (bytes.len() + chunk.len()) as u64 > limit {
            return Err(too_big());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A request failure in one line, without the URL (the caller names the file).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", REQUEST_TIMEOUT.as_secs());
    }
    let mut innermost: &dyn std::error::Error = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    if e.is_connect() {
        format!("cannot connect: {innermost}")
    } else if e.is_body() || e.is_decode() {
        format!("reading the answer: {innermost}")
    } else {
        innermost.to_string()
    }
}
