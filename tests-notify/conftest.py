"""Fixtures of the notification scenario tests (issue 8): a real SMTP server (aiosmtpd), a webhook
receiver, the real `trellis` binary on SQLite and PostgreSQL, runner tokens and the command line.

Run with tests-notify/run.sh TRELLIS_BIN VENV_PYTHON. TRELLIS_NOTIFY_BACKENDS=sqlite limits the
backends while developing.
"""

from __future__ import annotations

import signal

import pytest

from notify_harness import fixtures as fx
from notify_harness.api import TrellisApi


def pytest_configure(config):
    # `timeout` (run.sh) sends SIGTERM: turn it into an interrupt, so that fixtures still stop
    # their servers and drop their databases.
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for title, producer in list(fx.DIAGNOSTICS):
            report.sections.append((title, fx._section(title, producer).split("\n", 1)[1]))


def pytest_terminal_summary(terminalreporter):
    """Each distinct skip reason once (the scenario's tests all skip for one reason)."""
    reasons = {}
    for rep in terminalreporter.stats.get("skipped", []):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in reasons.items():
        terminalreporter.write_line(f"skipped {count}: {reason}")


@pytest.fixture(scope="session")
def trellis_binary() -> str:
    path, why = fx.binary_or_reason()
    if why:
        pytest.fail(why, pytrace=False)
    return path


@pytest.fixture(params=fx.backends())
def backend(request) -> str:
    return request.param


@pytest.fixture
def smtp_sink():
    with fx.smtp_sink() as sink:
        yield sink


@pytest.fixture
def webhook_receiver():
    with fx.webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def world(backend, trellis_binary):
    """A database on ``backend``, a server for it (call ``world.server.start()``), its command
    line, an SMTP sink and a webhook receiver."""
    with fx.world(backend) as w:
        yield w


@pytest.fixture
def running(world):
    """``world`` with its server started and a runner token: (world, TrellisApi)."""
    token = world.cli.runner_add("notify-runner")
    world.server.start()
    return world, TrellisApi(world.server.base, token)
