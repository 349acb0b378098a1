//! Rendered pages, kept per URL with the version of the data they show.
//!
//! The grid and breakages pages are the busiest and the dearest to build (megabytes of HTML,
//! then gzip). Readers of an unchanged page get the stored bytes, already compressed; readers
//! that arrive while a page is being built wait for that one build instead of starting their
//! own, so fifty readers cost one rendering, not fifty, and writers keep their share of the CPU.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use flate2::write::GzEncoder;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
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

/// One rendered page; its gzip form is made on first demand.
pub struct Page {
    html: Bytes,
    gzip: OnceLock<Bytes>,
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
            let gzip = self.gzip.get_or_init(|| gzip(&self.html));
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

#[derive(Default)]
pub struct PageCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl PageCache {
    /// Distinct URLs kept; past that the cache starts over (filters make URLs many).
    const MAX_PAGES: usize = 512;

    /// The page at `url` as of `version`. One request at a time builds a newer page with
    /// `render`; while it does, the others get the page before it, at most one build old,
    /// rather than queueing behind it (under a steady stream of reports every reader would
    /// otherwise wait for builds). A request that finds no build running builds, so a reader
    /// who just posted a report sees it.
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
        let page = Arc::new(Page {
            html: render().await?.into(),
            gzip: OnceLock::new(),
        });
        *slot.latest.lock().expect("page slot lock") = Some((version, read_at, page.clone()));
        Ok(page)
    }

    fn slot(&self, url: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().expect("page cache lock");
        if slots.len() >= Self::MAX_PAGES && !slots.contains_key(url) {
            slots.clear();
        }
        slots.entry(url.to_string()).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn version(revision: i64) -> Version {
        Version {
            revision,
            breakages_as_of: revision,
            minute: 0,
        }
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
        // Newer data builds the page again; older requests are served the newer page, and a
        // reader arriving while a build runs gets the page before it at once.
        let page = cache
            .get_or_render("/p/x", version(4), || async { Ok::<_, ()>("4".into()) })
            .await
            .unwrap();
        assert_eq!(&page.html[..], b"4");
        let page = cache
            .get_or_render("/p/x", version(2), || async { Ok::<_, ()>("2".into()) })
            .await
            .unwrap();
        assert_eq!(&page.html[..], b"4");
        let slow = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_render("/p/x", version(5), || async {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        Ok::<_, ()>("5".to_string())
                    })
                    .await
                    .unwrap()
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        let meanwhile = cache
            .get_or_render("/p/x", version(5), || async { Ok::<_, ()>("never".into()) })
            .await
            .unwrap();
        assert_eq!(&meanwhile.html[..], b"4");
        assert_eq!(&slow.await.unwrap().html[..], b"5");
    }

    #[test]
    fn gzip_is_served_only_to_clients_that_accept_it() {
        let page = Page {
            html: Bytes::from_static(b"<html>grid</html>"),
            gzip: OnceLock::new(),
        };
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
            &mut flate2::read::GzDecoder::new(&page.gzip.get().unwrap()[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, "<html>grid</html>");
    }
}
