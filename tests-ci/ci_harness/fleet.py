"""What surrounds a Trellis server in production, built for real on this host: a dnf repository
of kernel-devel packages (rpmbuild + createrepo_c via scripts/kernel-repo.sh) served over HTTP, the
module's git repository, kernel trees on each runner host, and `trellis-runner` processes."""

from __future__ import annotations

import functools
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .trellis import clean_env

REPO_ROOT = Path(__file__).resolve().parents[2]
KERNEL_REPO_SH = REPO_ROOT / "scripts" / "kernel-repo.sh"

# The module's new API appeared in this el8 release: older kernels fail to build a commit that
# uses it (carries the marker).
NEW_API_SINCE = 553
MARKER = "NEEDS_NEW_API"
# A module commit with this file takes that many seconds to build on every tree.
SLOW_BUILD = "SLOW_BUILD"


# --- the dnf repository ---------------------------------------------------------------------------
class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


class DnfRepo:
    """A vault-like repository: REPO_DIR/Packages/*.rpm and repodata/, served on 127.0.0.1.
    Packages are published with scripts/kernel-repo.sh, as the discovery tests do."""

    def __init__(self, root: Path):
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.published: list[str] = []
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="dnf-repo", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def publish(self, *unames: str) -> None:
        """Builds kernel-devel-<uname> RPMs and re-indexes the repository."""
        nvras = [f"kernel-devel-{u}" for u in unames]
        r = subprocess.run([str(KERNEL_REPO_SH), str(self.root), *nvras], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, f"kernel-repo.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        self.published.extend(unames)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# --- the module -----------------------------------------------------------------------------------
MODULE_MAKEFILE = "obj-m += trellis_ci.o\n"
MODULE_C = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/timer.h>

static int __init trellis_ci_init(void)
{
%s\treturn 0;
}

static void __exit trellis_ci_exit(void)
{
}

module_init(trellis_ci_init);
module_exit(trellis_ci_exit);
MODULE_LICENSE("GPL");
"""
OLD_TIMER = "\tpr_info(\"trellis_ci: loaded\\n\");\n"
NEW_TIMER = f"\t/* {MARKER}: timer_shutdown_sync() exists since el8 {NEW_API_SINCE} */\n" \
            "\ttimer_shutdown_sync(NULL);\n"


class ModuleRepo:
    """The module's upstream repository, which the runners clone and fetch."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.shas: list[str] = []  # oldest first

    def git(self, *args: str) -> str:
        env = {**clean_env(), "GIT_AUTHOR_NAME": "Module Dev", "GIT_AUTHOR_EMAIL": "dev@example.test",
               "GIT_COMMITTER_NAME": "Module Dev", "GIT_COMMITTER_EMAIL": "dev@example.test",
               "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.path)}
        r = subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, env=env,
                           timeout=30)
        assert r.returncode == 0, f"git {' '.join(args)} failed: {r.stderr}"
        return r.stdout.strip()

    def commit(self, subject: str, files: dict[str, str | None]) -> str:
        """Writes ``files`` (None: removes it) and commits them; returns the new head's sha."""
        for name, text in files.items():
            if text is None:
                (self.path / name).unlink()
            else:
                (self.path / name).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", subject)
        sha = self.git("rev-parse", "HEAD")
        self.shas.append(sha)
        return sha

    @property
    def head(self) -> str:
        return self.shas[-1]

    def uses_new_api(self, sha: str) -> bool:
        return MARKER in self.git("show", f"{sha}:trellis_ci.c")


# --- kernel trees ---------------------------------------------------------------------------------
def release_number(uname: str) -> int:
    """553 of 4.18.0-553.5.1.el8_10.x86_64: the el8 build number the API rule compares."""
    m = re.match(r"\d+\.\d+\.\d+-(\d+)", uname)
    assert m, f"{uname}: not an el kernel release"
    return int(m.group(1))


def has_new_api(uname: str) -> bool:
    return release_number(uname) >= NEW_API_SINCE


def expected_state(uname: str, module_uses_new_api: bool) -> str:
    """The rule the trees' Makefiles implement: the new API breaks the build on older kernels."""
    return "fail" if module_uses_new_api and not has_new_api(uname) else "pass"


TREE_MAKEFILE = """\
# Kernel tree {uname} for Trellis's CI loop test: like a real tree it builds the external module
# in M=, without kbuild. A build takes {build_secs} s, or the seconds in the module's {slow} file
# (so that runs are in flight when something is killed), then fails when the module uses the new
# API ({marker}) and this kernel lacks it.
KERNEL_RELEASE := $(shell cat include/config/kernel.release)
HAS_NEW_API := {has_new_api}
BUILD_SECONDS := $(or $(shell cat "$(M)/{slow}" 2>/dev/null),{build_secs})

.PHONY: modules
modules:
\t@echo "  CC [M]  $(M)/trellis_ci.o ($(KERNEL_RELEASE), $(BUILD_SECONDS) s)"
\t@sleep $(BUILD_SECONDS)
\t@test -f "$(M)/Makefile" || {{ echo "$(M): no Makefile (not a module?)"; exit 2; }}
\t@if [ "$(HAS_NEW_API)" = no ] && grep -rqs --exclude=.git {marker} "$(M)"; then \\
\t\techo "$(M)/trellis_ci.c:7:2: error: implicit declaration of function 'timer_shutdown_sync'"; \\
\t\texit 1; fi
\t@echo "  LD [M]  $(M)/trellis_ci.ko"
"""


def make_tree(parent: Path, uname: str, build_secs: float) -> Path:
    """A kernel tree named after its uname, with include/config/kernel.release as real trees have."""
    tree = parent / uname
    (tree / "include" / "config").mkdir(parents=True)
    (tree / "include" / "config" / "kernel.release").write_text(uname + "\n")
    (tree / "Makefile").write_text(TREE_MAKEFILE.format(
        uname=uname, build_secs=build_secs, marker=MARKER, slow=SLOW_BUILD,
        has_new_api="yes" if has_new_api(uname) else "no"))
    return tree


# --- runner processes -----------------------------------------------------------------------------
def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (read from /proc), children first."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(children.get(p, []))
    return out


LEASED = re.compile(r"leased (\S+) @ ([0-9a-f]{7,}) \((\w+)\)")
BUILT = re.compile(r"(\S+) @ ([0-9a-f]{7,}): built in \d+ s: (\w+)")
POSTED = re.compile(r"(?:posted report|re-sent spooled report) (\d+)? ?\((\d{3})\)")
RESENT = re.compile(r"re-sent spooled report (\d+)? ?\((\d{3})\)(?: from (\S+)\.json)?")
SPOOLED = re.compile(r"report (\S+) spooled, will be re-sent")
# A job that ends before its build: it still posts an `error` report.
ENDED_EARLY = re.compile(r"checkout of ([0-9a-f]{7,}) failed|no tree for (\S+): reporting error")
STOPPING = re.compile(r"stopping: no new leases")
ABORTED = re.compile(r"aborted (\S+) @ ([0-9a-f]{7,}): released lease (\d+)")


@dataclass
class Job:
    uname: str
    sha7: str
    reason: str


class Runner:
    """One `trellis-runner run` host: its configuration, kernel trees folder, spool and log."""

    def __init__(self, binary_path: str, name: str, token: str, server: str, project: str,
                 module_git: Path, home: Path, parallel: int = 2,
                 command: str = "make -C {kernel_dir} M={src}", tree_globs: list[str] | None = None):
        self.binary = binary_path
        self.name = name
        self.home = home
        self.trees = home / "kernels"
        self.spool = home / "spool"
        self.trees.mkdir(parents=True)
        globs = ", ".join(f'"{g}"' for g in (tree_globs or [f"{self.trees}/*"]))
        self.config = home / "runner.toml"
        self.log_path = home / "runner.log"
        self.config.write_text(f"""\
server = "{server}"
token = "{token}"
project = "{project}"
name = "{name}"

[module]
git = "{module_git}"

[build]
command = "{command}"
timeout = "60s"
parallel = {parallel}

[kernels]
trees = [{globs}]

[spool]
dir = "{self.spool}"
""")
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self, *args: str) -> "Runner":
        """`trellis-runner run`, polling every second when idle (not the server's 30 s), so new
        commits and kernels are picked up fast; ``args`` are added (``--once``)."""
        assert self.proc is None, "already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: start #{self.starts} ===\n".encode())
            log.flush()
            # Same process group as the test: run.sh's `timeout` reaches it too.
            self.proc = subprocess.Popen(
                [self.binary, "run", "--config", str(self.config), "--poll-interval", "1", *args],
                env={**clean_env(), "NO_COLOR": "1"}, cwd=self.home, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT)
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 15) -> None:
        """SIGTERM (finish running jobs), a second one (abort and release), then SIGKILL."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        for sig in (signal.SIGTERM, signal.SIGTERM):
            if proc.poll() is not None:
                break
            proc.send_signal(sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                continue
        if proc.poll() is None:
            self._kill(proc)
        self._note(f"stopped (exit {proc.returncode})")

    def terminate(self, times: int, timeout: float) -> int:
        """SIGTERM ``times`` times, as an operator presses Ctrl-C: again once the runner said it
        is stopping (two signals in a row could reach it as one). Its exit code once it has
        exited, within ``timeout`` s of the first signal."""
        assert self.proc is not None, "not running"
        proc = self.proc
        mark = 0
        for i in range(times):
            if i:
                self.wait_for_line(STOPPING, mark, timeout)
            mark = len(self.log_text())
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running {timeout:.0f} s after {times} SIGTERM(s)"
                                 f"\n{self.tail(20)}") from None
        self.proc = None
        self._note(f"exited {code} after {times} SIGTERM(s)")
        return code

    def kill(self) -> None:
        """kill -9 of the runner and of its builds (each in its own process group, which the
        runner would have killed itself): the host died mid-job."""
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        self._kill(proc)
        self._note("killed with SIGKILL")

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        below = descendants(proc.pid)
        proc.kill()
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(10)

    def _note(self, what: str) -> None:
        with open(self.log_path, "ab") as log:
            log.write(f"=== harness: {what} ===\n".encode())

    # --- what it said -----------------------------------------------------------------------------
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:]) or "(no runner log)"

    def leased(self) -> list[Job]:
        return [Job(*m.groups()) for m in LEASED.finditer(self.log_text())]

    def built(self) -> list[tuple[str, str, str]]:
        """(uname, sha7, status) of every job that ran to its end."""
        return [m.groups() for m in BUILT.finditer(self.log_text())]

    def ended(self) -> int:
        """How many jobs ran to their report: built, or ended early with an `error` report."""
        text = self.log_text()
        return len(BUILT.findall(text)) + len(ENDED_EARLY.findall(text))

    def posted_ids(self) -> list[int | None]:
        """The report ids the server answered, first sends and re-sends alike."""
        return [int(i) if i else None for i, _ in POSTED.findall(self.log_text())]

    def spooled_run_ids(self) -> list[str]:
        return SPOOLED.findall(self.log_text())

    def resent(self) -> list[tuple[str, str, str]]:
        return RESENT.findall(self.log_text())

    def outbox(self) -> list[str]:
        folder = self.spool / "outbox"
        return sorted(p.name for p in folder.glob("*.json")) if folder.is_dir() else []

    def rejected(self) -> list[str]:
        """Reports the server refused for good (moved to spool/rejected/): lost results."""
        folder = self.spool / "rejected"
        return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []

    def wait_for_line(self, pattern: re.Pattern, after: int, timeout: float) -> re.Match:
        """The first match of ``pattern`` at or after character ``after`` of the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = pattern.search(self.log_text(), after)
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no {pattern.pattern!r} within {timeout:.0f} s\n{self.tail()}")
