"""Ports and plain HTTP, with bounded time everywhere."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1 (free unless someone takes it meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"not JSON ({self.status}): {self.body[:500]!r}") from e

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def request(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 30) -> Response:
    """One HTTP request; any status (4xx/5xx included) comes back as a Response."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Response(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Response(e.code, e.headers, e.read())


def get(url: str, headers: dict | None = None, timeout: float = 30) -> Response:
    return request("GET", url, headers=headers, timeout=timeout)


def post_json(url: str, payload, headers: dict | None = None, timeout: float = 30) -> Response:
    h = {"Content-Type": "application/json", **(headers or {})}
    return request("POST", url, json.dumps(payload).encode(), h, timeout)
