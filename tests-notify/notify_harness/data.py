"""Deterministic test data: commits with 40-hex shas, real RHEL kernels, reports and build logs."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

KERNELS_FILE = Path(__file__).resolve().parents[1] / "kernels.txt"
EPOCH = datetime(2026, 11, 2, 9, 0, 0, tzinfo=timezone.utc)


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha(n: int, salt: str = "") -> str:
    """Commit n's sha: the same on every run."""
    return hashlib.sha1(f"trellis-notify commit {salt}{n}".encode()).hexdigest()


def history(count: int, start: int = 1, salt: str = "") -> list[dict]:
    """Commits start..start+count-1 of a linear history (each the parent of the next), in the
    shape POST /api/v1/projects/{project}/commits takes."""
    out = []
    for n in range(start, start + count):
        out.append({
            "sha": sha(n, salt),
            "parents": [sha(n - 1, salt)] if n > 1 else [],
            "subject": f"compat: change number {n}",
            "author": "Test Author <author@example.test>",
            "committed_at": rfc3339(EPOCH + timedelta(hours=n)),
        })
    return out


@dataclass(frozen=True)
class Kernel:
    stream: str
    version: str  # version-release, e.g. 4.18.0-553.el8_10
    arch: str = "x86_64"

    @property
    def uname(self) -> str:
        return f"{self.version}.{self.arch}"


def kernels(stream: str) -> list[Kernel]:
    """The listed kernels of a stream, oldest first (RPM order)."""
    out = []
    for line in KERNELS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            s, version = line.split()
            if s == stream:
                out.append(Kernel(s, version))
    assert out, f"no {stream} kernels in {KERNELS_FILE}"
    return out


def kernel(version: str) -> Kernel:
    """The listed kernel whose version-release (or uname) is ``version``."""
    found = [k for s in ("el8", "el9") for k in kernels(s) if version in (k.version, k.uname)]
    assert len(found) == 1, f"{version}: {found}"
    return found[0]


# --- build logs ---------------------------------------------------------------------------------
PASS_LOG = ("  CC [M]  /build/wireguard/src/main.o\n  LD [M]  /build/wireguard/src/wireguard.o\n"
            "  MODPOST /build/wireguard/src/Module.symvers\n  LD [M]  /build/wireguard/src/wireguard.ko\n")

# What the el8 kernel update breaks (as RHEL 8.10 did: netif_napi_add lost its weight argument).
KERNEL_ERROR = "too many arguments to function 'netif_napi_add'"
KERNEL_FAIL_LOG = (
    "  CC [M]  /build/{build}/src/device.o\n"
    "/build/{build}/src/device.c:381:9: error: too many arguments to function 'netif_napi_add'\n"
    "  381 |         netif_napi_add(dev, &peer->napi, wg_packet_rx_poll, NAPI_POLL_WEIGHT);\n"
    "      |         ^~~~~~~~~~~~~~\n"
    "make[2]: *** [scripts/Makefile.build:315: /build/{build}/src/device.o] Error 1\n"
)

# What a module commit breaks on el9.
MODULE_ERROR = "'struct sk_buff' has no member named 'headers_end'"
MODULE_FAIL_LOG = (
    "  CC [M]  /build/{build}/src/queueing.o\n"
    "/build/{build}/src/queueing.h:85:41: error: 'struct sk_buff' has no member named 'headers_end'\n"
    "   85 |         memset(&skb->headers_start, 0, offsetof(struct sk_buff, headers_end) -\n"
    "make[2]: *** [scripts/Makefile.build:315: /build/{build}/src/queueing.o] Error 1\n"
)


def report(project: str, k: Kernel, commit_sha: str, status: str, log: str | None = None,
           run_id: str | None = None, finished: datetime | None = None) -> dict:
    """A report as README "Posting results" describes it."""
    finished = finished or datetime.now(timezone.utc)
    if log is None:
        log = PASS_LOG if status == "pass" else KERNEL_FAIL_LOG
    return {
        "project": project,
        "kernel": {"version": k.uname},
        "commit": {"sha": commit_sha},
        "status": status,
        "stages": [{"name": "build", "status": status, "duration_s": 41.2}],
        "started_at": rfc3339(finished - timedelta(minutes=1)),
        "finished_at": rfc3339(finished),
        "log": log.format(build=uuid.uuid4().hex[:8]),
        "run_id": run_id or f"notify-{uuid.uuid4()}",
        "metadata": {"compiler": "gcc 8.5.0" if k.stream == "el8" else "gcc 11.4.1",
                     "kernel-devel": f"kernel-devel-{k.uname}"},
    }
