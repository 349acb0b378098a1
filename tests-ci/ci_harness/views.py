"""Reading the server's public API (grid, cells, coverage) and checking that its views agree with
each other: what the coverage JSON and page claim must be what the grid shows."""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, TypeVar

from . import net

T = TypeVar("T")


@dataclass
class Grid:
    """The grid as sets: commit shas newest first, and per kernel the state of each cell."""

    shas: list[str]
    streams: dict[str, str]                       # uname -> stream
    states: dict[str, dict[str, str | None]]      # uname -> sha -> state (None: no result)
    counts: dict[tuple[str, str], int] = field(default_factory=dict)  # reports per cell

    @classmethod
    def from_json(cls, body: dict) -> "Grid":
        g = body["grid"]
        shas = [c["sha"] for c in g["columns"]]
        streams, states, counts = {}, {}, {}
        for group in g["groups"]:
            for row in group["rows"]:
                uname = row["uname"]
                streams[uname] = group["stream"]
                states[uname] = {}
                for sha, cell in zip(shas, row["cells"]):
                    states[uname][sha] = cell["state"] if cell else None
                    if cell:
                        counts[(uname, sha)] = sum(cell["summary"]["counts"].values())
        assert not g["has_older"], "the grid has older pages: raise --grid-commits"
        return cls(shas, streams, states, counts)

    @property
    def kernels(self) -> list[str]:
        return sorted(self.states)

    def missing(self) -> list[tuple[str, str]]:
        """Cells without any result: (uname, sha)."""
        return [(u, s) for u, row in sorted(self.states.items()) for s, st in row.items() if st is None]

    def tested(self) -> set[tuple[str, str]]:
        return {(u, s) for u, row in self.states.items() for s, st in row.items() if st is not None}

    def tested_at(self, sha: str) -> set[str]:
        return {u for u, row in self.states.items() if row.get(sha) is not None}

    def never_tested(self) -> set[str]:
        return {u for u, row in self.states.items() if all(st is None for st in row.values())}

    def state(self, uname: str, sha: str) -> str | None:
        return self.states.get(uname, {}).get(sha)


class Api:
    """The project's public read API."""

    def __init__(self, base: str, project: str):
        self.base = base.rstrip("/")
        self.project = project

    def get_json(self, path: str) -> dict:
        r = net.get(self.base + path)
        assert r.status == 200, f"GET {path} answered {r.status}: {r.body[:500]!r}"
        return r.json()

    def grid(self) -> Grid:
        return Grid.from_json(self.get_json(f"/api/v1/projects/{self.project}/grid?all=1"))

    def coverage(self) -> dict:
        return self.get_json(f"/api/v1/projects/{self.project}/coverage")

    def cell(self, stream: str, uname: str, sha: str) -> dict:
        q = urllib.parse.quote
        return self.get_json(f"/api/v1/projects/{self.project}/cells/{q(stream)}/{q(uname)}/{sha}")

    def coverage_page(self) -> net.Response:
        return net.get(f"{self.base}/p/{self.project}/coverage")

    def reports(self, grid: Grid) -> list[dict]:
        """Every stored report, cell by cell, each with its cell's uname and sha."""
        out = []
        for uname, sha in sorted(grid.tested()):
            for r in self.cell(grid.streams[uname], uname, sha)["reports"]:
                out.append({**r, "uname": uname, "sha": sha})
        return out


def wait_until(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.2,
               describe: Callable[[], str] | None = None) -> T:
    """Polls ``probe`` until it answers something truthy; fails naming ``what`` after ``timeout``.
    A probe that raises AssertionError (a server restarting, say) is retried until the end."""
    deadline = time.monotonic() + timeout
    last_error: str | None = None
    while True:
        try:
            got = probe()
            if got:
                return got
        except (AssertionError, OSError) as e:
            last_error = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            detail = describe() if describe else ""
            raise AssertionError(f"{what}: not within {timeout:.0f} s"
                                 + (f"\nlast error: {last_error}" if last_error else "")
                                 + (f"\n{detail}" if detail else ""))
        time.sleep(every)


def stable_views(api: Api, tries: int = 10) -> tuple[Grid, dict]:
    """A grid and a coverage read with no report arriving in between (grid, coverage, grid again,
    until both grids show the same tested cells): runners keep posting while we compare."""
    for _ in range(tries):
        before = api.grid()
        coverage = api.coverage()
        after = api.grid()
        if before.tested() == after.tested() and before.kernels == after.kernels:
            return after, coverage
        time.sleep(0.2)
    raise AssertionError(f"the grid kept changing over {tries} reads")


def coverage_problems(grid: Grid, cov: dict, head: str, live_runners: set[str],
                      all_runners: set[str], published: int, stale_secs: int) -> list[str]:
    """Every way the coverage JSON disagrees with the grid and with what the test knows."""
    problems: list[str] = []
    if (cov.get("head") or {}).get("sha") != head:
        problems.append(f"head is {(cov.get('head') or {}).get('sha')}, the module's head is {head}")
    by_stream: dict[str, list[str]] = {}
    for uname, stream in grid.streams.items():
        by_stream.setdefault(stream, []).append(uname)
    streams = {s["stream"]: s for s in cov["streams"]}
    if set(streams) != set(by_stream):
        problems.append(f"streams {sorted(streams)} but the grid has {sorted(by_stream)}")
    tested_at_head = grid.tested_at(head)
    for stream, unames in by_stream.items():
        s = streams.get(stream)
        if s is None:
            continue
        tested = len([u for u in unames if u in tested_at_head])
        want = (len(unames), tested, tested * 100 // len(unames))
        got = (s["kernels"], s["tested_at_head"], s["percent_at_head"])
        if got != want:
            problems.append(f"stream {stream}: (kernels, tested_at_head, percent_at_head) is {got}, "
                            f"the grid says {want}")
    never = {k["uname"] for k in cov["never_tested"]}
    if never != grid.never_tested():
        problems.append(f"never_tested {sorted(never)}, the grid's untested rows "
                        f"{sorted(grid.never_tested())}")
    runners = {r["name"]: r for r in cov["runners"]}
    if set(runners) != all_runners:
        problems.append(f"runners {sorted(runners)}, expected {sorted(all_runners)}")
    now = cov["now"]
    for name in live_runners:
        r = runners.get(name)
        if r is None:
            continue
        if r["last_contact_at"] is None or now - r["last_contact_at"] > stale_secs * 1000:
            problems.append(f"runner {name} is running but its last contact is "
                            f"{r['last_contact_at']} (now {now})")
        if r["stale"]:
            problems.append(f"runner {name} is running but marked stale")
    stale_problems = {p["runner"] for p in cov["problems"] if p["kind"] == "runner_stale"}
    if stale_problems & live_runners:
        problems.append(f"running runners {sorted(stale_problems & live_runners)} listed as stale "
                        f"problems")
    if len(cov["sources"]) != 1:
        problems.append(f"{len(cov['sources'])} sources, expected 1")
    else:
        src = cov["sources"][0]
        if src["packages"] != published or src["error"] is not None or src["succeeded_at"] is None:
            problems.append(f"source shows packages={src['packages']} error={src['error']!r} "
                            f"succeeded_at={src['succeeded_at']}; {published} packages are published")
    return problems


def page_problems(api: Api, cov: dict) -> list[str] | None:
    """What the coverage page gets wrong; None when there is no such page (404) yet."""
    r = api.coverage_page()
    if r.status == 404:
        return None
    if r.status != 200:
        return [f"/p/{api.project}/coverage answered {r.status}"]
    return [f"the coverage page does not show {s['stream']}'s {s['percent_at_head']}%"
            for s in cov["streams"] if f"{s['percent_at_head']}%" not in r.text]
