"""Talking to a running Trellis as runners, scripts and feed readers do."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import feedparser

from . import net


class TrellisApi:
    def __init__(self, base: str, token: str | None = None):
        self.base = base.rstrip("/")
        self.token = token

    def url(self, path: str) -> str:
        return self.base + path

    def _auth(self) -> dict:
        assert self.token, "this call needs a runner token"
        return {"Authorization": f"Bearer {self.token}"}

    # --- writing, as a runner ------------------------------------------------------------------
    def _post(self, path: str, payload, ok=(200, 201), retries: int = 20) -> net.Response:
        """POST with the README's retry rule: 503 + Retry-After means try again (same body)."""
        for _ in range(retries):
            r = net.post_json(self.url(path), payload, self._auth())
            if r.status != 503:
                break
            time.sleep(min(float(r.header("Retry-After") or 1), 2))
        assert r.status in ok, f"POST {path} answered {r.status}: {r.body[:500]!r}"
        return r

    def post_report(self, report: dict) -> dict:
        """POST /api/v1/reports; returns the receipt ({"id", "url"})."""
        return self._post("/api/v1/reports", report).json()

    def post_reports(self, reports: list[dict], concurrency: int = 8) -> list[dict]:
        """Posts many reports at once (a burst, as many runners finishing together)."""
        if not reports:
            return []
        with ThreadPoolExecutor(max_workers=min(concurrency, len(reports))) as pool:
            return list(pool.map(self.post_report, reports))

    def push_commits(self, project: str, commits: list[dict]) -> dict:
        return self._post(f"/api/v1/projects/{project}/commits", {"commits": commits}).json()

    # --- reading -------------------------------------------------------------------------------
    def get_json(self, path: str, expect: int = 200):
        r = net.get(self.url(path))
        assert r.status == expect, f"GET {path} answered {r.status}: {r.body[:500]!r}"
        return r.json()

    def health(self) -> net.Response:
        return net.get(self.url("/api/v1/health"), timeout=10)

    def breakages(self, project: str, query: str = "", timeout: float = 30) -> list[dict]:
        """The breakages once the background recomputation has caught up (``current``)."""
        path = f"/api/v1/projects/{project}/breakages{query}"
        deadline = time.monotonic() + timeout
        while True:
            body = self.get_json(path)
            if body.get("current"):
                return body["breakages"]
            if time.monotonic() > deadline:
                raise AssertionError(f"breakages of {project} not current within {timeout:.0f} s: "
                                     f"as_of {body.get('as_of_revision')}, revision {body.get('revision')}")
            time.sleep(0.05)

    # --- events (issue 8) ----------------------------------------------------------------------
    def events_page(self, project: str, after: int = 0, query: str = "") -> dict:
        """One page: {"events": [...], "next_after": int | null}."""
        return self.get_json(f"/api/v1/projects/{project}/events?after={after}{query}")

    def events(self, project: str, after: int = 0, max_pages: int = 100) -> list[dict]:
        """Every event after ``after``, following ``next_after`` page by page."""
        out: list[dict] = []
        for _ in range(max_pages):
            page = self.events_page(project, after)
            out += page["events"]
            nxt = page.get("next_after")
            if nxt is None or not page["events"]:
                return out
            assert nxt > after, f"next_after {nxt} does not move past {after}"
            after = nxt
        raise AssertionError(f"events of {project}: more than {max_pages} pages")

    def wait_for_events(self, project: str, count: int, timeout: float = 30,
                        what: str = "") -> list[dict]:
        """Polls until at least ``count`` events exist (the events are written by the background
        recomputation, after the report that caused them was answered)."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events(project)
            if len(evs) >= count:
                return evs
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} event(s) {what}within {timeout:.0f} s, have {len(evs)}: "
                    + ", ".join(f"{e.get('id')}:{e.get('kind')}" for e in evs))
            time.sleep(0.1)


# --- feeds ----------------------------------------------------------------------------------------
@dataclass
class Feed:
    url: str
    response: net.Response
    parsed: feedparser.FeedParserDict

    @property
    def entries(self):
        return self.parsed.entries

    @property
    def content_type(self) -> str:
        return (self.response.header("Content-Type") or "").split(";")[0].strip().lower()

    def ids(self) -> list[str]:
        return [e.id for e in self.entries]


def fetch_feed(url: str, headers: dict | None = None) -> Feed:
    """GET a feed and parse its bytes with feedparser (given the response's headers, so that a
    charset that contradicts the document makes it bozo)."""
    r = net.get(url, headers=headers)
    assert r.status == 200, f"GET {url} answered {r.status}: {r.body[:300]!r}"
    parsed = feedparser.parse(r.body, response_headers={k.lower(): v for k, v in r.headers.items()})
    return Feed(url, r, parsed)


def assert_well_formed(feed: Feed) -> None:
    """feedparser found nothing wrong (bozo false)."""
    assert not feed.parsed.bozo, (
        f"{feed.url}: feedparser says bozo: {feed.parsed.get('bozo_exception')!r}\n"
        f"{feed.response.body[:2000].decode(errors='replace')}")


def conditional_statuses(url: str, first: net.Response) -> dict[str, int]:
    """Re-requests ``url`` with the validators of an earlier answer: what If-None-Match (its
    ETag) and If-Modified-Since (its Last-Modified) each get. Both should be 304."""
    etag = first.header("ETag")
    last_modified = first.header("Last-Modified")
    assert etag, f"{url}: no ETag"
    assert last_modified, f"{url}: no Last-Modified"
    parsedate_to_datetime(last_modified)  # an HTTP date, or this raises
    out = {}
    for name, headers in (("If-None-Match", {"If-None-Match": etag}),
                          ("If-Modified-Since", {"If-Modified-Since": last_modified})):
        r = net.get(url, headers=headers)
        assert not (r.status == 304 and r.body), f"{url}: a 304 with a body"
        out[name] = r.status
    return out
