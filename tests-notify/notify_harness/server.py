"""The real `trellis` binary: its databases, its command line and its server process.

Hygiene as in tests-contract/run.sh: every server gets its own port, its own database (a temporary
SQLite file, or a fresh PostgreSQL database that is dropped afterwards) and its own folder; every
wait is bounded; every process started here is stopped (SIGTERM, then SIGKILL after 10 s).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import weakref
import atexit
from pathlib import Path

from . import net

PG_ADMIN = os.environ.get("TRELLIS_TEST_PG", "postgres://postgres@127.0.0.1:5432/test")
MAIL_FROM = "trellis@example.test"
LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")

# Every server started here; whatever is still running when Python exits is killed.
_LIVE: "weakref.WeakSet[TrellisServer]" = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_LIVE):
        server.kill()


def trellis_bin() -> str:
    """`TRELLIS_BIN`, else `$CARGO_TARGET_DIR/debug/trellis` (CARGO_TARGET_DIR defaults to the
    repository's `target/`)."""
    explicit = os.environ.get("TRELLIS_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path(__file__).resolve().parents[2] / "target")
    return str(Path(target) / "debug" / "trellis")


def _clean_env() -> dict[str, str]:
    """The caller's environment without any Trellis setting that could leak into a test."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("TRELLIS_") and k not in ("TRELLIS_BIN", "TRELLIS_TEST_PG"))
            and k not in ("DATABASE_URL", "RUST_LOG", "LEPTOS_SITE_ROOT")}


# --- databases ------------------------------------------------------------------------------------
class Database:
    """One test's database. ``url`` is what DATABASE_URL gets."""

    backend: str
    url: str

    def drop(self) -> None:
        raise NotImplementedError


class SqliteDatabase(Database):
    backend = "sqlite"

    def __init__(self, folder: Path):
        self.folder = folder
        self.url = f"sqlite://{folder}/t.db?mode=rwc"

    def drop(self) -> None:
        pass  # the folder goes with the test's temporary directory


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


class PostgresDatabase(Database):
    backend = "postgres"

    def __init__(self):
        self.name = f"trellis_notify_{secrets.token_hex(6)}"
        _psql(PG_ADMIN, f"CREATE DATABASE {self.name}")
        self.url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{self.name}"

    def exists(self) -> bool:
        return _psql(PG_ADMIN, f"SELECT count(*) FROM pg_database WHERE datname = '{self.name}'"
                     ).strip() == "1"

    def drop(self) -> None:
        _psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


# --- the command line -----------------------------------------------------------------------------
class CommandFailed(AssertionError):
    pass


class Cli:
    """`trellis <args>` with the test's DATABASE_URL; bounded to 60 s per command."""

    def __init__(self, binary: str, database_url: str, workdir: Path):
        self.binary = binary
        self.database_url = database_url
        self.workdir = workdir

    def run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        env = {**_clean_env(), "DATABASE_URL": self.database_url, "NO_COLOR": "1",
               "RUST_LOG": "warn"}
        r = subprocess.run([self.binary, *args], capture_output=True, text=True, env=env,
                           cwd=self.workdir, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise CommandFailed(f"trellis {' '.join(args)} exited {r.returncode}\n"
                                f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r

    # The projects the tests post to, added as an administrator adds them.
    PROJECTS = ("wireguard-linux-compat", "other-module", "harness")

    def runner_add(self, name: str) -> str:
        """Adds the tests' projects (as an administrator would), then a runner scoped to them;
        returns its token (printed once on stdout)."""
        for project in self.PROJECTS:
            if project not in self.run("project", "list").stdout.split():
                self.run("project", "add", project)
        scopes = [arg for p in self.PROJECTS for arg in ("--scope", p)]
        token = self.run("runner", "add", name, *scopes).stdout.strip()
        assert re.fullmatch(r"\S{16,}", token), f"runner add printed {token!r}, not a token"
        return token

    # Subscriptions (issue 8). Each returns what the command printed on stdout, stripped; `add`
    # is expected to print the new subscription's id (see subscription_id()).
    def subscription_add_email(self, address: str, project: str | None = None,
                               stream: str | None = None, cause: str | None = None) -> str:
        return self.run("subscription", "add", "--email", address,
                        *_filter_args(project, stream, cause)).stdout.strip()

    def subscription_add_webhook(self, url: str, secret: str, project: str | None = None,
                                 stream: str | None = None, cause: str | None = None) -> str:
        return self.run("subscription", "add", "--webhook", url, "--secret", secret,
                        *_filter_args(project, stream, cause)).stdout.strip()

    def subscription_list(self) -> str:
        return self.run("subscription", "list").stdout

    def subscription_remove(self, sub_id: str) -> str:
        return self.run("subscription", "remove", sub_id).stdout.strip()

    def supports_subscriptions(self) -> str | None:
        """None when `trellis subscription --help` works, else why not."""
        r = self.run("subscription", "--help", check=False, timeout=20)
        if r.returncode == 0:
            return None
        first = (r.stderr.strip().splitlines() or ["(no output)"])[0]
        return f"`trellis subscription --help` exited {r.returncode}: {first}"


def _filter_args(project, stream, cause) -> list[str]:
    out = []
    for flag, value in (("--project", project), ("--stream", stream), ("--cause", cause)):
        if value is not None:
            out += [flag, value]
    return out


def subscription_id(printed: str) -> str:
    """The id in what `subscription add` printed: the whole output if it is one word, else the
    first number in it."""
    if re.fullmatch(r"\S+", printed):
        return printed
    m = re.search(r"\b(\d+)\b", printed)
    assert m, f"no subscription id in {printed!r}"
    return m.group(1)


# --- the server process ---------------------------------------------------------------------------
class TrellisServer:
    """`trellis serve` on 127.0.0.1:<port chosen here>, so that TRELLIS_PUBLIC_URL is known before
    start and a restart comes back on the same address and database."""

    def __init__(self, binary: str, database: Database, workdir: Path, smtp_port: int | None = None,
                 extra_env: dict[str, str] | None = None):
        self.binary = binary
        self.database = database
        self.workdir = workdir
        self.site_root = workdir / "site"
        self.site_root.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "server.log"
        self.smtp_port = smtp_port
        self.extra_env = dict(extra_env or {})
        self.port = net.free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {**_clean_env(),
               "NO_COLOR": "1",
               "RUST_LOG": "warn,trellis_server=info",
               "DATABASE_URL": self.database.url,
               "TRELLIS_PUBLIC_URL": self.base,
               "TRELLIS_MAIL_FROM": MAIL_FROM,
               "TRELLIS_SMTP_HOST": "127.0.0.1",
               "TRELLIS_SMTP_TLS": "none",
               # seconds, not the production 15 minutes: a burst settles into one mail
               "TRELLIS_MAIL_SETTLE_SECS": "2",
               # base of the outbox's exponential retry backoff
               "TRELLIS_OUTBOX_RETRY_SECS": "1"}
        if self.smtp_port is not None:
            env["TRELLIS_SMTP_PORT"] = str(self.smtp_port)
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60) -> "TrellisServer":
        assert self.proc is None, "already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: start #{self.starts} on {self.base} ===\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [self.binary, "serve", "--addr", f"127.0.0.1:{self.port}",
                 "--site-root", str(self.site_root)],
                env=self.env(), cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT)
        # Same process group as the test: run.sh's `timeout` reaches it too.
        _LIVE.add(self)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """Until it logged its listening line (for this start) and /api/v1/health answers 200."""
        deadline = time.monotonic() + timeout
        marker = f"=== harness: start #{self.starts} "
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise AssertionError(f"trellis serve exited {code} before listening\n{self.tail()}")
            log = self.log_path.read_text(errors="replace")
            mine = log[log.rfind(marker):]
            m = LISTENING.search(mine)
            if m:
                assert m.group(1) == self.base, f"listening on {m.group(1)}, not {self.base}"
                try:
                    if net.get(self.base + "/api/v1/health", timeout=5).status == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"trellis serve not healthy within {timeout:.0f} s\n{self.tail()}")

    def stop(self, grace: float = 10) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds. Returns the exit
        code (negative: killed by that signal)."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                self._note(f"did not stop within {grace:.0f} s of SIGTERM: SIGKILL")
                proc.kill()
                proc.wait(10)
        self._note(f"stopped (exit {proc.returncode})")
        return proc.returncode

    def kill(self) -> None:
        """kill -9: no chance to finish anything."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        self._note("killed with SIGKILL")

    def restart(self, hard: bool = False, timeout: float = 60) -> "TrellisServer":
        """Stops (SIGTERM, or SIGKILL when ``hard``) and starts again on the same port and
        database."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _note(self, what: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: {what} ===\n".encode())

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
