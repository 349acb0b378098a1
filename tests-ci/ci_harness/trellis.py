"""The real `trellis` binary: its database, its command line and its server process.

As in tests-notify: every server gets its own port, its own database (a SQLite file in the test's
folder, or a fresh PostgreSQL database dropped afterwards) and its own folder; every wait is
bounded; every process started here is stopped, and killed when Python exits.
"""

from __future__ import annotations

import atexit
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import weakref
from pathlib import Path

from . import net

PG_ADMIN = os.environ.get("TRELLIS_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

_LIVE: "weakref.WeakSet[TrellisServer]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


def bin_dir() -> Path:
    """TRELLIS_BIN_DIR (run.sh sets it), else $CARGO_TARGET_DIR/debug."""
    explicit = os.environ.get("TRELLIS_BIN_DIR")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path(__file__).resolve().parents[2] / "target")
    return Path(target) / "debug"


def binary(name: str) -> tuple[str, str | None]:
    """(path, None) when the binary is there and executable, else (path, why not)."""
    path = bin_dir() / name
    if path.is_file() and os.access(path, os.X_OK):
        return str(path), None
    crate = {"trellis": "trellis-server", "trellis-runner": "trellis-runner"}.get(name, name)
    return str(path), f"no {name} binary at {path}: build it (cargo build -p {crate})"


def clean_env() -> dict[str, str]:
    """The caller's environment without any Trellis setting that could leak into a test."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("TRELLIS_") and k not in ("TRELLIS_BIN_DIR", "TRELLIS_TEST_PG"))
            and k not in ("DATABASE_URL", "RUST_LOG", "LEPTOS_SITE_ROOT")}


# --- databases ------------------------------------------------------------------------------------
def _psql(url: str, *sql: str, timeout: float = 30) -> str:
    args = ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url]
    for s in sql:
        args += ["-c", s]
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"psql failed ({r.returncode}): {' ; '.join(sql)}\n{r.stderr}")
    return r.stdout


def postgres_available() -> str | None:
    """None when the admin database answers, else why not."""
    if shutil.which("psql") is None:
        return "the psql command line client is not installed"
    try:
        _psql(PG_ADMIN, "SELECT 1", timeout=10)
        return None
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return f"PostgreSQL at {PG_ADMIN} does not answer (make pg starts it): {e}"


class Database:
    """One test's database; ``url`` is what DATABASE_URL gets."""

    def __init__(self, backend: str, folder: Path):
        self.backend = backend
        self.name: str | None = None
        if backend == "sqlite":
            self.url = f"sqlite://{folder}/trellis.db?mode=rwc"
        elif backend == "postgres":
            why = postgres_available()
            if why:
                raise AssertionError(why)
            self.name = f"trellis_ci_{secrets.token_hex(6)}"
            _psql(PG_ADMIN, f"CREATE DATABASE {self.name}")
            self.url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{self.name}"
        else:
            raise ValueError(f"unknown backend {backend!r}")

    def drop(self) -> None:
        if self.name:
            _psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


# --- the command line -----------------------------------------------------------------------------
class Cli:
    """`trellis <args>` on the test's database, as an administrator runs it; 60 s per command."""

    def __init__(self, binary_path: str, database_url: str, workdir: Path):
        self.binary = binary_path
        self.database_url = database_url
        self.workdir = workdir

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {**clean_env(), "DATABASE_URL": self.database_url, "NO_COLOR": "1", "RUST_LOG": "warn"}
        r = subprocess.run([self.binary, *args], capture_output=True, text=True, env=env,
                           cwd=self.workdir, timeout=timeout, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, (f"trellis {' '.join(args)} exited {r.returncode}\n"
                                   f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    def runner_add(self, name: str, project: str) -> str:
        """A runner scoped to ``project``; its token, printed once on stdout."""
        token = self.run("runner", "add", name, "--scope", project).stdout.strip()
        assert re.fullmatch(r"\S{16,}", token), f"runner add printed {token!r}, not a token"
        return token


# --- the server process ---------------------------------------------------------------------------
class TrellisServer:
    """`trellis serve` on a port chosen here, so that a restart comes back on the same address and
    database (the runners keep their configured URL)."""

    def __init__(self, binary_path: str, database: Database, workdir: Path, settings: dict[str, str]):
        self.binary = binary_path
        self.database = database
        self.workdir = workdir
        self.site_root = workdir / "site"
        self.site_root.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        self.settings = settings
        self.port = net.free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "TrellisServer":
        assert self.proc is None, "already running"
        self.starts += 1
        env = {**clean_env(), "NO_COLOR": "1", "RUST_LOG": "warn,trellis_server=info",
               "DATABASE_URL": self.database.url, "TRELLIS_PUBLIC_URL": self.base, **self.settings}
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: start #{self.starts} on {self.base} ===\n".encode())
            log.flush()
            # Same process group as the test: run.sh's `timeout` reaches it too.
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--addr", f"127.0.0.1:{self.port}",
                 "--site-root", str(self.site_root)],
                env=env, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        _LIVE.add(self)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until it logged its listening line (for this start) and /api/v1/health answers 200."""
        deadline = time.monotonic() + timeout
        marker = f"=== harness: start #{self.starts} "
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise AssertionError(f"trellis serve exited {code} before listening\n{self.tail()}")
            log = self.log_path.read_text(errors="replace")
            m = LISTENING.search(log[log.rfind(marker):])
            if m:
                assert m.group(1) == self.base, f"listening on {m.group(1)}, not {self.base}"
                try:
                    if net.get(self.base + "/api/v1/health", timeout=5).status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"trellis serve not healthy within {timeout:.0f} s\n{self.tail()}")

    def stop(self, grace: float = 10) -> None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._note(f"stopped (exit {proc.returncode})")

    def kill(self) -> None:
        """kill -9: no chance to finish a write, answer a request or flush anything."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        self._note("killed with SIGKILL")

    def _note(self, what: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: {what} ===\n".encode())

    def tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])
