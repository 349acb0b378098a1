"""Building blocks the fixtures share: a world of peers around one Trellis server, and the
diagnostics a failing test prints (server log tail, mails and webhooks seen)."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Callable, Iterator

from .server import (Cli, Database, PostgresDatabase, SqliteDatabase, TrellisServer, postgres_available,
                     temp_dir, trellis_bin)
from .smtp import SmtpSink
from .webhooks import WebhookReceiver

# (title, producer) pairs shown under a failing test; fixtures register and remove theirs.
DIAGNOSTICS: list[tuple[str, Callable[[], str]]] = []


@contextlib.contextmanager
def diagnostic(title: str, producer: Callable[[], str]) -> Iterator[None]:
    """Registers ``producer`` while the block runs; an exception leaving the block carries its
    text as a note (a fixture that fails is gone before pytest reports the failure)."""
    entry = (title, producer)
    DIAGNOSTICS.append(entry)
    try:
        yield
    except BaseException as e:
        e.add_note(_section(title, producer))
        raise
    finally:
        DIAGNOSTICS.remove(entry)


def _section(title: str, producer: Callable[[], str]) -> str:
    try:
        text = producer()
    except Exception as e:  # a diagnostic must never hide the failure itself
        text = f"(could not collect: {e!r})"
    return f"--- {title} ---\n{text}"



def backends() -> list[str]:
    """Both, unless TRELLIS_NOTIFY_BACKENDS names a subset (comma-separated)."""
    wanted = os.environ.get("TRELLIS_NOTIFY_BACKENDS", "sqlite,postgres")
    return [b.strip() for b in wanted.split(",") if b.strip()]


def binary_or_reason() -> tuple[str, str | None]:
    path = trellis_bin()
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return path, (f"no trellis binary at {path}: build it (cargo build -p trellis-server) "
                      f"or set TRELLIS_BIN")
    return path, None


@contextlib.contextmanager
def database(backend: str, folder: Path) -> Iterator[Database]:
    if backend == "sqlite":
        yield SqliteDatabase(folder)
        return
    if backend == "postgres":
        why = postgres_available()
        if why:
            raise AssertionError(why)
        db = PostgresDatabase()
        try:
            yield db
        finally:
            db.drop()
        return
    raise ValueError(f"unknown backend {backend!r}")


@contextlib.contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().up()
    try:
        with diagnostic("SMTP sink", sink.describe):
            yield sink
    finally:
        sink.close()


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    try:
        with diagnostic("webhook receiver", receiver.describe):
            yield receiver
    finally:
        receiver.close()


class World:
    """One backend's database, a Trellis server on it (not started yet), its command line, and the
    peers it talks to."""

    def __init__(self, backend: str, binary: str, db: Database, workdir: Path,
                 smtp: SmtpSink | None, webhooks: WebhookReceiver | None,
                 extra_env: dict[str, str] | None = None):
        self.backend = backend
        self.db = db
        self.workdir = workdir
        self.smtp = smtp
        self.webhooks = webhooks
        self.cli = Cli(binary, db.url, workdir)
        self.server = TrellisServer(binary, db, workdir, smtp.port if smtp else None, extra_env)


@contextlib.contextmanager
def world(backend: str, with_peers: bool = True, extra_env: dict[str, str] | None = None
          ) -> Iterator[World]:
    binary, why = binary_or_reason()
    if why:
        raise AssertionError(why)
    folder = temp_dir(f"trellis-notify-{backend}-")
    try:
        with contextlib.ExitStack() as stack:
            db = stack.enter_context(database(backend, folder))
            smtp = stack.enter_context(smtp_sink()) if with_peers else None
            hooks = stack.enter_context(webhook_receiver()) if with_peers else None
            w = World(backend, binary, db, folder, smtp, hooks, extra_env)
            stack.callback(w.server.stop)  # runs before the database is dropped
            stack.enter_context(diagnostic(f"trellis server log ({backend}, last 60 lines)",
                                           w.server.tail))
            yield w
    finally:
        shutil.rmtree(folder, ignore_errors=True)
