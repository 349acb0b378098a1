//! Rendered pages, kept per URL with the version of the data they show.
//!
//! The grid and breakages pages are the busiest and the dearest to build (megabytes of HTML,
//! then gzip). Readers of an unchanged page get the stored bytes, already compressed; readers
//! that arrive while a page is being built get the page before it instead of building their
//! own, so fifty readers cost one rendering, not fifty, and writers keep their share of the CPU.
//! Pages are keyed by what they show (see [`key`]), and the cache is bounded by bytes.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::Mutex as AsyncMutex;

/// What a page shows: the project revision, the revision its breakages reflect, and the
/// minute (pages say how long ago things happened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub revision: i64,
    pub breakages_as_of: i64,
    pub minute: i64,
}

impl Version {
    /// Whether a page built at `self` is at least as new as `wanted` in every respect.
    fn covers(&self, wanted: &Version) -> bool {
        self.revision >= wanted.revision
            && self.breakages_as_of >= wanted.breakages_as_of
            && self.minute >= wanted.minute
    }
}

/// One rendered page and its gzip form.
pub struct Page {
    html: Bytes,
    gzip: Bytes,
}

impl Page {
    /// Compresses off the async workers: a multi-megabyte page takes milliseconds.
    async fn new(html: String) -> Page {
        let html = Bytes::from(html);
        let for_gzip = html.clone();
        let gzip = tokio::task::spawn_blocking(move || gzip(&for_gzip))
            .await
            .expect("gzip in memory does not fail");
        Page { html, gzip }
    }

    fn bytes(&self) -> usize {
        self.html.len() + self.gzip.len()
    }
}

impl Page {
    /// The page, gzip-compressed when the client accepts it.
    pub fn respond(&self, request: &HeaderMap) -> Response {
        let accepts_gzip = request
            .get_all(header::ACCEPT_ENCODING)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(accepts_coding_gzip);
        let html = HeaderValue::from_static("text/html; charset=utf-8");
        if accepts_gzip {
            let gzip = &self.gzip;
            let gz = HeaderValue::from_static("gzip");
            let vary = HeaderValue::from_static("accept-encoding");
            (
                [
                    (header::CONTENT_TYPE, html),
                    (header::CONTENT_ENCODING, gz),
                    (header::VARY, vary),
                ],
                gzip.clone(),
            )
                .into_response()
        } else {
            ([(header::CONTENT_TYPE, html)], self.html.clone()).into_response()
        }
    }
}

/// `gzip` or `gzip;q=0.5` yes, `gzip;q=0` no.
fn accepts_coding_gzip(coding: &str) -> bool {
    let mut parts = coding.split(';').map(str::trim);
    parts.next() == Some("gzip")
        && parts
            .filter_map(|p| p.strip_prefix("q="))
            .all(|q| q.parse::<f32>().is_ok_and(|q| q > 0.0))
}

fn gzip(html: &[u8]) -> Bytes {
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(html).expect("writing to memory");
    encoder.finish().expect("writing to memory").into()
}

/// A stored page: the version asked for, when its data began to be read, and the page.
type Stored = (Version, Instant, Arc<Page>);

/// One URL: its newest page, and a token held by the one request building a newer one.
#[derive(Default)]
struct Slot {
    latest: Mutex<Option<Stored>>,
    building: AsyncMutex<()>,
}

impl Slot {
    /// The stored page if it answers a request that arrived at `arrived` for `version`: its
    /// data is at least that new, or was read after the request arrived.
    fn fresh(&self, version: &Version, arrived: Instant) -> Option<Arc<Page>> {
        let latest = self.latest.lock().expect("page slot lock");
        latest
            .as_ref()
            .filter(|(built, read_at, _)| built.covers(version) || *read_at >= arrived)
            .map(|(_, _, page)| page.clone())
    }

    fn any(&self) -> Option<Arc<Page>> {
        let latest = self.latest.lock().expect("page slot lock");
        latest.as_ref().map(|(_, _, page)| page.clone())
    }
}

/// The cache key of a page: its path and the query parameters it reads, in a fixed order.
/// Unknown parameters are left out, so `?x=1`, `?x=2`... cannot each cost a rendering.
pub fn key(path: &str, pairs: &[(String, String)], reads: &[&str]) -> String {
    let mut kept: Vec<&(String, String)> = pairs
        .iter()
        .filter(|(k, _)| reads.contains(&k.as_str()))
        .collect();
    // Stable: repeated parameters keep their order (the last `page` wins).
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    let mut key = path.to_string();
    for (k, v) in kept {
        key.push('\0');
        key.push_str(k);
        key.push('=');
        key.push_str(v);
    }
    key
}

#[derive(Default)]
pub struct PageCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Bytes of the pages stored (a page replaced or dropped is still counted until the
    /// cache starts over: the count only errs on the side of starting over early).
    bytes: AtomicUsize,
}

impl PageCache {
    /// Bytes kept at most (HTML and gzip); past that the cache starts over.
    const MAX_BYTES: usize = 64 * 1024 * 1024;

    /// The page at `url` as of `version`. One request at a time builds a newer page with
    /// `render`; while it does, the others get the page before it rather than queueing
    /// behind it (under a steady stream of reports every reader would otherwise wait for
    /// builds). A request that finds no build running builds one; a request that arrives
    /// while an older build runs gets the page before that build.
    pub async fn get_or_render<E, F, Fut>(
        &self,
        url: &str,
        version: Version,
        render: F,
    ) -> Result<Arc<Page>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<String, E>>,
    {
        let arrived = Instant::now();
        let slot = self.slot(url);
        if let Some(page) = slot.fresh(&version, arrived) {
            return Ok(page);
        }
        let _building = match slot.building.try_lock() {
            Ok(token) => token,
            Err(_) => match slot.any() {
                Some(page) => return Ok(page),
                None => slot.building.lock().await,
            },
        };
        if let Some(page) = slot.fresh(&version, arrived) {
            return Ok(page);
        }
        let read_at = Instant::now();
        let page = Arc::new(Page::new(render().await?).await);
        self.bytes.fetch_add(page.bytes(), Ordering::Relaxed);
        *slot.latest.lock().expect("page slot lock") = Some((version, read_at, page.clone()));
        Ok(page)
    }

    fn slot(&self, url: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("page cache lock");
        if self.bytes.load(Ordering::Relaxed) > Self::MAX_BYTES {
            slots.clear();
            self.bytes.store(0, Ordering::Relaxed);
        }
        slots.entry(url.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::Notify;

    fn version(revision: i64) -> Version {
        Version {
            revision,
            breakages_as_of: revision,
            minute: 0,
        }
    }

    async fn page(cache: &PageCache, revision: i64, html: &str) -> Arc<Page> {
        let html = html.to_string();
        cache
            .get_or_render("/p/x", version(revision), || async { Ok::<_, ()>(html) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn concurrent_readers_share_one_rendering() {
        let cache = Arc::new(PageCache::default());
        let renders = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        for _ in 0..20 {
            let (cache, renders) = (cache.clone(), renders.clone());
            readers.push(tokio::spawn(async move {
                cache
                    .get_or_render("/p/x", version(3), || async {
                        renders.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        Ok::<_, ()>("<p>3</p>".to_string())
                    })
                    .await
                    .unwrap()
            }));
        }
        for r in readers {
            assert_eq!(&r.await.unwrap().html[..], b"<p>3</p>");
        }
        assert_eq!(renders.load(Ordering::SeqCst), 1);
        // Newer data builds the page again; older requests are served the newer page.
        assert_eq!(&page(&cache, 4, "4").await.html[..], b"4");
        assert_eq!(&page(&cache, 2, "2").await.html[..], b"4");
    }

    #[tokio::test]
    async fn a_reader_arriving_during_a_build_gets_the_page_before_it() {
        let cache = Arc::new(PageCache::default());
        page(&cache, 4, "4").await;
        let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let build = {
            let (cache, started, release) = (cache.clone(), started.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_or_render("/p/x", version(5), || async move {
                        started.notify_one();
                        release.notified().await;
                        Ok::<_, ()>("5".to_string())
                    })
                    .await
                    .unwrap()
            })
        };
        started.notified().await;
        assert_eq!(&page(&cache, 5, "never").await.html[..], b"4");
        release.notify_one();
        assert_eq!(&build.await.unwrap().html[..], b"5");
    }

    #[test]
    fn keys_keep_only_what_the_page_reads() {
        let pairs = |q: &[(&str, &str)]| -> Vec<(String, String)> {
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let reads = ["stream", "page"];
        let a = key("/p/x", &pairs(&[("page", "2"), ("junk", "1")]), &reads);
        let b = key("/p/x", &pairs(&[("junk", "2"), ("page", "2")]), &reads);
        assert_eq!(a, b);
        let c = key("/p/x", &pairs(&[("page", "1"), ("page", "2")]), &reads);
        let d = key("/p/x", &pairs(&[("page", "2"), ("page", "1")]), &reads);
        assert_ne!(c, d, "the last page parameter decides, so order is kept");
        assert_ne!(key("/p/x", &[], &reads), key("/p/y", &[], &reads));
    }

    #[tokio::test]
    async fn gzip_is_served_only_to_clients_that_accept_it() {
        let page = Page::new("<html>grid</html>".to_string()).await;
        let mut headers = HeaderMap::new();
        assert!(page
            .respond(&headers)
            .headers()
            .get(header::CONTENT_ENCODING)
            .is_none());
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        let res = page.respond(&headers);
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        assert!(!accepts_coding_gzip("gzip;q=0") && accepts_coding_gzip("gzip"));
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&page.gzip[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, "<html>grid</html>");
    }
}
