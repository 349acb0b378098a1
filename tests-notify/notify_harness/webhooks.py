"""A webhook receiver: a small threaded HTTP server on 127.0.0.1 recording every POST.

``fail_with(503)`` makes it answer every POST with that status (an outage of the receiving end)
until ``succeed()``; refused deliveries are recorded apart from accepted ones.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .net import free_port

SIGNATURE_HEADER = "X-Trellis-Signature"


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value Trellis must send: ``sha256=<hex HMAC-SHA256(secret, raw body)>``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


@dataclass
class WebhookPost:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    status: int  # what the receiver answered
    at: float = field(default_factory=time.time)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"webhook body is not JSON: {self.body[:300]!r}") from e

    def signature_valid(self, secret: str | bytes) -> bool:
        got = self.header(SIGNATURE_HEADER)
        return got is not None and hmac.compare_digest(got, sign(secret, self.body))

    def summary(self) -> str:
        return f"POST {self.path} -> {self.status}: {self.body[:160]!r}"


class WebhookReceiver:
    def __init__(self, host: str = "127.0.0.1"):
        self.host = host
        self.port = free_port()
        self.posts: list[WebhookPost] = []  # accepted (answered 2xx)
        self.refused: list[WebhookPost] = []  # answered with the failure status
        self.fail_status: int | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_POST(self):
                body = self._read_body()
                status = receiver.fail_status or 200
                post = WebhookPost(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   body, status)
                with receiver._lock:
                    (receiver.refused if receiver.fail_status else receiver.posts).append(post)
                    receiver._changed.notify_all()
                reply = b'{"ok": true}' if status < 300 else b'{"error": "unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def do_GET(self):
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer((host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail_with(self, status: int = 503) -> None:
        self.fail_status = status

    def succeed(self) -> None:
        self.fail_status = None

    def received(self) -> list[WebhookPost]:
        with self._lock:
            return list(self.posts)

    def refused_posts(self) -> list[WebhookPost]:
        with self._lock:
            return list(self.refused)

    def wait_for(self, count: int, timeout: float, what: str = "") -> list[WebhookPost]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.posts) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    got = "\n  ".join(p.summary() for p in self.posts) or "(none)"
                    raise AssertionError(
                        f"expected {count} webhook POST(s) {what}within {timeout:.0f} s, got "
                        f"{len(self.posts)}:\n  {got}\n  refused: {len(self.refused)}")
                self._changed.wait(min(left, 0.2))
            return list(self.posts)

    def describe(self) -> str:
        with self._lock:
            lines = [f"webhook receiver {self.url} (failing with {self.fail_status})"
                     if self.fail_status else f"webhook receiver {self.url}"]
            lines += [f"  {p.summary()}" for p in self.posts]
            lines += [f"  refused {p.summary()}" for p in self.refused]
        return "\n".join(lines)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
