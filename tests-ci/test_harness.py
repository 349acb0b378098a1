"""The harness's own checks catch what they are meant to catch, before they vouch for Trellis: the
kernel trees pass or fail by their rule under real make, and the coverage comparison flags every
kind of disagreement with the grid."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from ci_harness.fleet import MARKER, expected_state, make_tree
from ci_harness.views import Grid, coverage_problems

OLD = "4.18.0-477.10.1.el8_8.x86_64"
NEW = "4.18.0-553.el8_10.x86_64"
HEAD, PARENT = "b" * 40, "a" * 40


def _module(folder: Path, uses_new_api: bool) -> Path:
    folder.mkdir()
    (folder / "Makefile").write_text("obj-m += trellis_ci.o\n")
    (folder / "trellis_ci.c").write_text(f"/* {MARKER} */\n" if uses_new_api else "/* old API */\n")
    return folder


@pytest.mark.parametrize("uname", [OLD, NEW])
@pytest.mark.parametrize("uses_new_api", [False, True])
def test_tree_makefile_follows_the_rule(tmp_path: Path, uname: str, uses_new_api: bool) -> None:
    """The fake trees are what decides pass and fail in the scenario: check them with real make."""
    tree = make_tree(tmp_path / "kernels", uname, build_secs=0)
    src = _module(tmp_path / "src", uses_new_api)
    r = subprocess.run(["make", "-C", str(tree), f"M={src}"], capture_output=True, text=True, timeout=30)
    assert ("pass" if r.returncode == 0 else "fail") == expected_state(uname, uses_new_api), r.stdout
    assert expected_state(uname, uses_new_api) == ("fail" if uses_new_api and uname == OLD else "pass")


def _grid() -> Grid:
    """Two kernels, two commits; the old kernel never tested, the new one tested at head only."""
    body = {"grid": {
        "columns": [{"sha": HEAD}, {"sha": PARENT}], "has_older": False,
        "groups": [{"stream": "el8", "rows": [
            {"uname": NEW, "cells": [{"state": "pass", "summary": {"counts": {"pass": 1, "fail": 0}}},
                                     None]},
            {"uname": OLD, "cells": [None, None]},
        ]}],
    }}
    return Grid.from_json(body)


def _coverage() -> dict:
    """What the coverage JSON must say about _grid() with runner r1 live and one package."""
    return {
        "head": {"sha": HEAD},
        "streams": [{"stream": "el8", "kernels": 2, "tested_at_head": 1, "percent_at_head": 50}],
        "never_tested": [{"stream": "el8", "uname": OLD}],
        "runners": [{"name": "r1", "last_contact_at": 9_000, "stale": False}],
        "problems": [],
        "sources": [{"packages": 2, "error": None, "succeeded_at": 1}],
        "now": 10_000,
    }


def _problems(cov: dict) -> list[str]:
    return coverage_problems(_grid(), cov, HEAD, {"r1"}, {"r1"}, published=2, stale_secs=8)


def test_grid_reads_as_sets() -> None:
    g = _grid()
    assert sorted(g.missing()) == sorted([(NEW, PARENT), (OLD, HEAD), (OLD, PARENT)])
    assert g.tested_at(HEAD) == {NEW} and g.never_tested() == {OLD}
    assert g.counts == {(NEW, HEAD): 1}


def test_a_truthful_coverage_passes() -> None:
    assert _problems(_coverage()) == []


@pytest.mark.parametrize("lie, needle", [
    (lambda c: c["streams"][0].update(percent_at_head=100), "percent_at_head"),
    (lambda c: c["streams"][0].update(tested_at_head=2), "tested_at_head"),
    (lambda c: c.update(never_tested=[]), "never_tested"),
    (lambda c: c.update(head={"sha": PARENT}), "head"),
    (lambda c: c["runners"][0].update(last_contact_at=None), "last contact"),
    (lambda c: c["runners"][0].update(stale=True), "stale"),
    (lambda c: c.update(problems=[{"kind": "runner_stale", "runner": "r1"}]), "stale problems"),
    (lambda c: c["sources"][0].update(packages=1), "packages=1"),
    (lambda c: c["sources"][0].update(error="404"), "error"),
    (lambda c: c.update(runners=[]), "runners"),
])
def test_every_lie_is_caught(lie, needle: str) -> None:
    cov = copy.deepcopy(_coverage())
    lie(cov)
    problems = _problems(cov)
    assert any(needle in p for p in problems), problems
