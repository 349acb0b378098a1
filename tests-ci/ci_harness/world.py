"""One backend's whole CI: a Trellis server with short intervals, a dnf repository registered as
its kernel source, the module's repository, and two runner hosts with overlapping kernel trees."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from .fleet import DnfRepo, ModuleRepo, MODULE_C, MODULE_MAKEFILE, NEW_TIMER, OLD_TIMER, Runner, make_tree
from .trellis import Cli, Database, TrellisServer, binary
from .views import Api

PROJECT = "trellis-ci"
# Short on purpose: discovery polls every 2 s, a lease lapses 5 s after its last heartbeat, a
# runner silent for 8 s is stale.
DISCOVERY_SECS = 2
LEASE_SECS = 5
STALE_SECS = 8
BUILD_SECS = 1

OLD_1 = "4.18.0-477.10.1.el8_8.x86_64"
OLD_2 = "4.18.0-513.5.1.el8_9.x86_64"
NEW_1 = "4.18.0-553.el8_10.x86_64"
LATER = "4.18.0-553.5.1.el8_10.x86_64"  # published in the middle of the test
# Runner 1 is the host with the older kernels, runner 2 the one with the newer; both have OLD_2.
TREES = {"r1": [OLD_1, OLD_2], "r2": [OLD_2, NEW_1]}


class CiWorld:
    def __init__(self, backend: str):
        self.backend = backend
        self.folder = Path(tempfile.mkdtemp(prefix=f"trellis-ci-{backend}-"))
        self.exits = contextlib.ExitStack()
        self.timings: dict[str, float] = {}
        trellis, why = binary("trellis")
        assert why is None, why
        runner_bin, why = binary("trellis-runner")
        assert why is None, why
        self.runner_bin = runner_bin

        self.db = Database(backend, self.folder)
        self.exits.callback(self.db.drop)
        self.cli = Cli(trellis, self.db.url, self.folder)
        self.server = TrellisServer(trellis, self.db, self.folder, {
            "TRELLIS_DISCOVERY_INTERVAL_SECS": str(DISCOVERY_SECS),
            "TRELLIS_LEASE_SECS": str(LEASE_SECS),
            "TRELLIS_RUNNER_STALE_SECS": str(STALE_SECS),
        })
        self.exits.callback(self.server.stop)  # after the runners (LIFO), before the database
        self.api = Api(self.server.base, PROJECT)
        self.repo = DnfRepo(self.folder / "vault")
        self.exits.callback(self.repo.close)
        self.module = ModuleRepo(self.folder / "upstream" / "trellis-ci")
        self.runners: dict[str, Runner] = {}

    # --- setting up, as an administrator and a module developer would -----------------------------
    def set_up(self) -> None:
        self.repo.publish(OLD_1, OLD_2, NEW_1)
        self.module.commit("Add the trellis_ci module", {
            "Makefile": MODULE_MAKEFILE, "trellis_ci.c": MODULE_C % OLD_TIMER})
        self.module.commit("Shut the timer down with timer_shutdown_sync()", {
            "trellis_ci.c": MODULE_C % NEW_TIMER})
        self.module.commit("Document the module", {"README": "trellis_ci: a test module\n"})

        self.cli.run("project", "add", PROJECT, "--description", "the CI loop test's module")
        self.cli.run("source", "add", PROJECT, "--url", self.repo.url, "--stream", "el8",
                     "--arch", "x86_64", "--package", "kernel-devel")
        for name, unames in TREES.items():
            token = self.cli.runner_add(name, PROJECT)
            runner = Runner(self.runner_bin, name, token, self.server.base, PROJECT,
                            self.module.path, self.folder / name)
            for uname in unames:
                make_tree(runner.trees, uname, BUILD_SECS)
            self.runners[name] = runner
            self.exits.callback(runner.stop)
        self.server.start()
        for runner in self.runners.values():
            runner.start()

    def live_runners(self) -> set[str]:
        return {n for n, r in self.runners.items() if r.running}

    def close(self) -> None:
        try:
            self.exits.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def save_logs(self, folder: Path) -> None:
        """Copies the server's and runners' logs out of the test's folder, which is removed."""
        folder.mkdir(parents=True, exist_ok=True)
        if self.server.log_path.exists():
            shutil.copy(self.server.log_path, folder / "server.log")
        for name, r in self.runners.items():
            if r.log_path.exists():
                shutil.copy(r.log_path, folder / f"runner-{name}.log")

    def diagnostics(self) -> str:
        parts = [f"--- trellis server log ({self.backend}, last 80 lines) ---\n{self.server.tail()}"]
        for name, r in self.runners.items():
            parts.append(f"--- runner {name} log (last 60 lines; outbox {r.outbox()}) ---\n{r.tail()}")
        return "\n".join(parts)
