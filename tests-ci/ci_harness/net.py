"""Free ports and plain HTTP with bounded time (urllib only: the test needs no extra package)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (free unless someone takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"not JSON ({self.status}): {self.body[:500]!r}") from e

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def get(url: str, timeout: float = 10) -> Response:
    """One GET; any HTTP status comes back as a Response, connection errors raise OSError."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url), timeout=timeout) as r:
            return Response(r.status, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.read())
