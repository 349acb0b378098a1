"""Fixtures of the CI loop test: one whole CI (server, dnf repository, module repository, two
runners) per backend, shared by the scenario's steps, which run in order and stop at the first
failure (a later step depends on the earlier ones' state).

Run with tests-ci/run.sh BIN_DIR VENV_PYTHON. TRELLIS_CI_BACKENDS=sqlite limits the backends;
TRELLIS_CI_LOG_DIR=DIR keeps each backend's server and runner logs there (a failing step prints
their tails either way).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Iterator

import pytest

from ci_harness.summary import FACTS, NOTES, TIMINGS
from ci_harness.world import CiWorld

# Backend -> its world while its steps run, for the diagnostics of a failing step.
WORLDS: dict[str, CiWorld] = {}
# Backend -> the first step that failed on it: the later steps are skipped.
_FAILED: dict[str, str] = {}


def backends() -> list[str]:
    wanted = os.environ.get("TRELLIS_CI_BACKENDS", "sqlite,postgres")
    return [b.strip() for b in wanted.split(",") if b.strip()]


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "scenario: steps of one scenario, run in order per backend")

    # `timeout` (run.sh) sends SIGTERM: turn it into an interrupt, so that fixtures still stop
    # their processes and drop their databases.
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _backend(item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("ci") if callspec else None


def pytest_runtest_setup(item) -> None:
    backend = _backend(item)
    if item.get_closest_marker("scenario") and backend in _FAILED:
        pytest.skip(f"an earlier step failed on {backend}: {_FAILED[backend]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    backend = _backend(item)
    if report.failed and backend:
        _FAILED.setdefault(backend, item.originalname)
        world = WORLDS.get(backend)
        if world is not None:
            report.sections.append((f"CI state ({backend})", world.diagnostics()))


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "CI loop timings")
        for (backend, step), secs in TIMINGS.items():
            terminalreporter.write_line(f"{backend:8} {step:44} {secs:6.1f} s")
    if FACTS:
        terminalreporter.write_sep("-", "CI loop facts")
        for backend, fact in FACTS:
            terminalreporter.write_line(f"{backend:8} {fact}")
    for note in dict.fromkeys(NOTES):
        terminalreporter.write_line(f"note: {note}")


@pytest.fixture(scope="class", params=backends())
def ci(request) -> Iterator[CiWorld]:
    """The whole CI on one backend, set up and running; stopped and removed after the class."""
    world = CiWorld(request.param)
    WORLDS[request.param] = world
    try:
        world.set_up()
        yield world
    except BaseException as e:
        e.add_note(world.diagnostics())
        raise
    finally:
        WORLDS.pop(request.param, None)
        keep = os.environ.get("TRELLIS_CI_LOG_DIR")
        if keep:
            world.save_logs(Path(keep) / request.param)
        world.close()
