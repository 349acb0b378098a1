"""Trellis's CI loop end to end: the real server discovers kernels in a real dnf repository, two
real `trellis-runner` hosts fetch the module's real git repository, lease jobs, build every commit
against their kernel trees and post results; nobody schedules anything by hand.

The steps run in order on one CI per backend (each builds on the previous one's state):
1. the grid fills: every known kernel x every commit gets a result, pass or fail by the trees' rule;
2. a kernel-devel package published in the repository appears within a discovery poll and, once a
   runner has its tree, is built at the head commit;
3. a new module commit is built on every kernel;
4. the server killed with SIGKILL mid-run and restarted on its database loses no report and stores
   none twice (the runners spool what they could not post and re-send it with its run_id);
5. a runner killed with SIGKILL mid-job: its lease shows on the coverage JSON, lapses after the
   lease time, and the other runner builds the cell;
6. the silent runner turns stale and is a coverage problem;
7. SIGTERM stops a runner cleanly: once, its running jobs finish and report; twice, they are
   aborted and their leases given back at once (not left to lapse).
After every step the coverage JSON (and page, once it exists) must say what the grid says.
"""

from __future__ import annotations

import glob
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from ci_harness.fleet import (ABORTED, BUILT, LEASED, MODULE_C, SLOW_BUILD, MODULE_MAKEFILE, OLD_TIMER, ModuleRepo, Runner,
                              expected_state, make_tree)
from ci_harness.trellis import Cli, Database, TrellisServer, binary
from ci_harness.summary import FACTS, NOTES, TIMINGS
from ci_harness.views import Api, Grid, coverage_problems, page_problems, stable_views, wait_until
from ci_harness.world import (BUILD_SECS, DISCOVERY_SECS, LATER, LEASE_SECS, NEW_1, OLD_1, OLD_2,
                              PROJECT, STALE_SECS, CiWorld)

# Extra seconds every bounded wait allows on a busy 2-core machine.
SLACK = float(os.environ.get("TRELLIS_CI_SLACK", "8"))
POLL_SECS = 1  # the runners' --poll-interval
# Builds of the commits made in steps 4, 5 and 7 take longer, so that the kill or stop lands
# mid-build however busy the machine is.
KILL_BUILD_SECS = 2     # step 4: the server is killed while these run
LAPSE_BUILD_SECS = 3    # step 5: runner 1 is killed while this runs
ABORT_BUILD_SECS = 20   # step 7: aborted; an abort that does not happen shows as a 20 s wait


# --- helpers ---------------------------------------------------------------------------------------
def grid_full(ci: CiWorld, kernels: list[str]) -> Grid | None:
    """The grid, when it shows exactly ``kernels`` x the module's commits, every cell with a result."""
    g = ci.api.grid()
    if sorted(g.kernels) == sorted(kernels) and set(g.shas) == set(ci.module.shas) and not g.missing():
        return g
    return None


def describe_grid(ci: CiWorld) -> str:
    g = ci.api.grid()
    return (f"grid kernels {g.kernels}, commits {[s[:7] for s in g.shas]}, "
            f"module commits {[s[:7] for s in ci.module.shas]}, missing "
            f"{[(u, s[:7]) for u, s in g.missing()]}")


def wrong_states(ci: CiWorld, grid: Grid) -> list[str]:
    """Cells whose state is not what the trees' rule makes of the commit, each with the end of
    its reports' logs (an `error` is the runner's own trouble, told there)."""
    out = []
    for uname in grid.kernels:
        for sha in grid.shas:
            want = expected_state(uname, ci.module.uses_new_api(sha))
            got = grid.state(uname, sha)
            if got != want:
                out.append(f"{uname} @ {sha[:7]}: {got}, expected {want}")
                if got is not None:
                    for r in ci.api.cell(grid.streams[uname], uname, sha)["reports"]:
                        tail = "\n      ".join((r.get("log") or "").splitlines()[-6:])
                        out.append(f"  report {r['id']} by {r['runner']} ({r['status']}):\n      {tail}")
    return out


def check_truth(ci: CiWorld, step: str) -> dict:
    """Check 6 at the end of each step: the coverage JSON and page agree with the grid; the
    runners are listed with a recent last contact while they run; the source counts what is
    published. Returns the coverage read."""
    grid, cov = stable_views(ci.api)
    problems = coverage_problems(grid, cov, ci.module.head, ci.live_runners(), set(ci.runners),
                                 len(ci.repo.published), STALE_SECS)
    page = page_problems(ci.api, cov)
    percents = ", ".join(f"{s['stream']} {s['tested_at_head']}/{s['kernels']} = {s['percent_at_head']}%"
                         for s in cov["streams"])
    FACTS.append((ci.backend, f"{step}: coverage {percents}; never tested "
                              f"{[k['uname'] for k in cov['never_tested']]}; "
                              f"page {'absent (404)' if page is None else 'checked'}"))
    if page is None:
        NOTES.append(f"/p/{PROJECT}/coverage answered 404 (no coverage page yet): only the coverage "
                     f"JSON was checked")
    else:
        problems += page
    assert not problems, "coverage does not tell the truth:\n  " + "\n  ".join(problems)
    return cov


def leased_at(runner: Runner, sha: str, mark: int) -> list[str]:
    """The kernels ``runner`` leased at ``sha`` since character ``mark`` of its log."""
    return [m.group(1) for m in LEASED.finditer(runner.log_text(), mark) if sha.startswith(m.group(2))]


def leases_of(cov: dict, runner: str) -> list[dict]:
    return [lease for lease in cov["leases"] if lease["runner"] == runner]


def quiet(ci: CiWorld) -> bool:
    """No lease open, and every job a running runner leased has ended with a report."""
    if ci.api.coverage()["leases"]:
        return False
    return all(len(r.leased()) == r.ended() for r in ci.runners.values() if r.running)


# --- the scenario ------------------------------------------------------------------------------------
@pytest.mark.scenario
class TestCiLoop:
    def test_1_grid_fills_without_scheduling(self, ci: CiWorld) -> None:
        """Nobody schedules: discovery and the runners' announcements make the kernels, pushed
        history the commits, and the runners lease until every cell has a result."""
        t0 = time.monotonic()
        kernels = [OLD_1, OLD_2, NEW_1]
        grid = wait_until("every kernel x every commit has a result", lambda: grid_full(ci, kernels),
                          timeout=60, describe=lambda: describe_grid(ci))
        TIMINGS[(ci.backend, "1 grid fills (3 kernels x 3 commits)")] = time.monotonic() - t0
        assert grid.shas == list(reversed(ci.module.shas)), "the grid's columns are not in git order"
        wrong = wrong_states(ci, grid)
        assert not wrong, "\n".join(wrong)
        # Both hosts worked, each only on kernels it has.
        for name, runner in ci.runners.items():
            leased = {j.uname for j in runner.leased()}
            assert leased, f"runner {name} built nothing:\n{runner.tail()}"
            assert leased <= {p.name for p in runner.trees.iterdir()}, f"{name} leased {leased}"
        check_truth(ci, "step 1")

    def test_2_published_kernel_is_discovered_and_built(self, ci: CiWorld) -> None:
        """A new kernel-devel in the repository becomes a row within one discovery poll, untested;
        once a host has its tree, a runner builds it at the head commit (reason new_kernel)."""
        t0 = time.monotonic()
        ci.repo.publish(LATER)

        def appeared() -> Grid | None:
            g = ci.api.grid()
            return g if LATER in g.states else None

        grid = wait_until(f"{LATER} appears in the grid", appeared, timeout=DISCOVERY_SECS + SLACK)
        seen = time.monotonic() - t0
        TIMINGS[(ci.backend, "2 published package appears")] = seen
        assert all(s is None for s in grid.states[LATER].values()), "built before any host has it?"
        cov = check_truth(ci, "step 2 (discovered)")  # never_tested lists it; the source counts 4 packages
        assert LATER in {k["uname"] for k in cov["never_tested"]}

        runner = ci.runners["r2"]
        mark = len(runner.log_text())
        make_tree(runner.trees, LATER, BUILD_SECS)
        head = ci.module.head
        wait_until(f"{LATER} built at the head commit",
                   lambda: ci.api.grid().state(LATER, head) is not None,
                   timeout=POLL_SECS + BUILD_SECS + SLACK, describe=lambda: runner.tail(20))
        took = time.monotonic() - t0
        TIMINGS[(ci.backend, "2 published package built at head")] = took
        assert took <= DISCOVERY_SECS + POLL_SECS + BUILD_SECS + 2 * SLACK
        # Leased in one call with the backfill of its older cells (parallel = 2), as new_kernel.
        jobs = [m.groups() for m in LEASED.finditer(runner.log_text(), mark)]
        assert [j for j in jobs if j[0] == LATER and head.startswith(j[1]) and j[2] == "new_kernel"], \
            f"{LATER} was not leased at head as a new kernel:\n{runner.tail(20)}"

        grid = wait_until("the new kernel's row filled (backfill)",
                          lambda: grid_full(ci, [OLD_1, OLD_2, NEW_1, LATER]),
                          timeout=30, describe=lambda: describe_grid(ci))
        wrong = wrong_states(ci, grid)
        assert not wrong, "\n".join(wrong)
        check_truth(ci, "step 2")

    def test_3_new_commit_is_built_on_every_kernel(self, ci: CiWorld) -> None:
        """A commit pushed upstream is fetched by the runners and built on every kernel first
        (head_untested); the fallback makes the old kernels pass again."""
        marks = {n: len(r.log_text()) for n, r in ci.runners.items()}
        t0 = time.monotonic()
        sha = ci.module.commit("Fall back to pr_info() on kernels before el8 553",
                               {"trellis_ci.c": MODULE_C % OLD_TIMER})
        kernels = [OLD_1, OLD_2, NEW_1, LATER]
        grid = wait_until("the new commit built on every kernel",
                          lambda: (g := ci.api.grid()).shas[:1] == [sha] and
                          g.tested_at(sha) == set(kernels) and g,
                          timeout=4 * BUILD_SECS + POLL_SECS + SLACK, describe=lambda: describe_grid(ci))
        TIMINGS[(ci.backend, "3 new commit built on 4 kernels")] = time.monotonic() - t0
        assert {grid.state(k, sha) for k in kernels} == {"pass"}
        reasons = [m.group(3) for n, r in ci.runners.items()
                   for m in LEASED.finditer(r.log_text(), marks[n]) if sha.startswith(m.group(2))]
        assert reasons and set(reasons) == {"head_untested"}, reasons
        check_truth(ci, "step 3")

    def test_4_server_killed_mid_run_loses_and_duplicates_nothing(self, ci: CiWorld) -> None:
        """SIGKILL the server while builds run; restart it on the same database. Reports that
        could not be posted are spooled and re-sent with their run_id: the server then holds
        exactly the reports the runners say were delivered, each once."""
        marks = {n: len(r.log_text()) for n, r in ci.runners.items()}
        sha = ci.module.commit("Warn about everything", {"Makefile": MODULE_MAKEFILE + "ccflags-y += -Wall\n",
                                                          SLOW_BUILD: f"{KILL_BUILD_SECS}\n"})

        def leased_now() -> list[str]:
            return [n for n, r in ci.runners.items()
                    if any(sha.startswith(m.group(2)) for m in LEASED.finditer(r.log_text(), marks[n]))]

        wait_until("a runner leased a job of the new commit", leased_now, timeout=POLL_SECS + SLACK,
                   every=0.05)
        time.sleep(0.3)  # into the build (it takes KILL_BUILD_SECS)
        ci.server.kill()
        t_kill = time.monotonic()
        # Down longer than a build: the jobs in flight finish and cannot post.
        time.sleep(KILL_BUILD_SECS + 1.5)
        ci.server.start()
        TIMINGS[(ci.backend, "4 server down (SIGKILL to healthy)")] = time.monotonic() - t_kill

        kernels = [OLD_1, OLD_2, NEW_1, LATER]
        wait_until("the grid complete again, outboxes empty, no job running",
                   lambda: grid_full(ci, kernels) and not any(r.outbox() for r in ci.runners.values())
                   and quiet(ci),
                   timeout=LEASE_SECS + 4 * KILL_BUILD_SECS + SLACK, describe=lambda: describe_grid(ci))
        TIMINGS[(ci.backend, "4 grid complete after the restart")] = time.monotonic() - t_kill

        spooled = [rid for n, r in ci.runners.items() for rid in
                   re.findall(r"report (\S+) spooled, will be re-sent", r.log_text()[marks[n]:])]
        assert spooled, ("no report was spooled: the kill did not hit a run in flight\n"
                         + "\n".join(r.tail(30) for r in ci.runners.values()))

        rejected = {n: r.rejected() for n, r in ci.runners.items() if r.rejected()}
        assert not rejected, f"reports refused by the server: {rejected}"
        grid = ci.api.grid()
        wrong = wrong_states(ci, grid)
        assert not wrong, "\n".join(wrong)
        reports = ci.api.reports(grid)
        run_ids = Counter(r["run_id"] for r in reports)
        assert not [rid for rid, n in run_ids.items() if n > 1], f"run_ids stored twice: {run_ids}"
        assert len({r["id"] for r in reports}) == len(reports)
        assert sum(grid.counts.values()) == len(reports), "grid counts disagree with the cells' reports"
        for rid in spooled:
            assert run_ids[rid] == 1, f"spooled report {rid} stored {run_ids[rid]} times"
        # What the runners say they delivered (first sends and re-sends, 201 or 200) is what the
        # server holds; and every job they ran to its end is one report.
        claimed = [i for r in ci.runners.values() for i in r.posted_ids()]
        assert None not in claimed, "a post was answered without a report id"
        assert set(claimed) == {r["id"] for r in reports}, (
            f"runners delivered {sorted(set(claimed))}, the server holds {sorted(r['id'] for r in reports)}")
        for name, runner in ci.runners.items():
            stored = [r for r in reports if r["runner"] == name]
            assert runner.ended() == len(stored), (
                f"{name} ran {runner.ended()} jobs to their report, the server holds {len(stored)} "
                f"of its reports")
        assert quiet(ci), "a job started while counting"
        resent = [x for r in ci.runners.values() for x in r.resent()]
        FACTS.append((ci.backend, f"step 4: {len(spooled)} report(s) spooled while the server was down, "
                                  f"re-sent answers {Counter(st for _, st, _ in resent)}; {len(reports)} "
                                  f"reports stored, {len(run_ids)} distinct run_ids, "
                                  f"{len(claimed)} deliveries claimed by the runners"))
        check_truth(ci, "step 4")

    def test_5_killed_runner_lease_is_offered_again(self, ci: CiWorld) -> None:
        """SIGKILL runner 1 mid-build. Its lease stays on the coverage JSON until it lapses
        (LEASE_SECS after the last heartbeat); then runner 2, now given the same kernel trees, is
        offered the cell and builds it."""
        r1, r2 = ci.runners["r1"], ci.runners["r2"]
        mark = len(r1.log_text())
        sha = ci.module.commit("Bump the module version", {"README": "trellis_ci 1.1: a test module\n",
                                                            SLOW_BUILD: f"{LAPSE_BUILD_SECS}\n"})
        # Only r1 has OLD_1: it leases a job of the new commit within a poll.
        m = r1.wait_for_line(re.compile(LEASED.pattern.replace(r"([0-9a-f]{7,})", sha[:7])), mark,
                             timeout=POLL_SECS + SLACK)
        cov = ci.api.coverage()
        mine = leases_of(cov, "r1")
        assert any(lease["sha"] == sha and lease["uname"] == m.group(1) for lease in mine), (
            f"r1 leased {m.group(1)} @ {sha[:7]} but coverage leases are {cov['leases']}")
        r1.kill()
        t_kill = time.monotonic()
        cut = r1.log_text()
        assert not [b for b in BUILT.finditer(cut, mark) if sha.startswith(b.group(2))], \
            "r1 finished a build of the new commit before it was killed: not mid-job"

        # Still listed after the kill: nobody else may take the cell until the lease lapses.
        cov = ci.api.coverage()
        abandoned = leases_of(cov, "r1")
        assert abandoned, "r1's leases vanished at once when it was killed"
        # Just killed: not stale yet (step 6 sees it turn stale).
        assert not next(r for r in cov["runners"] if r["name"] == "r1")["stale"]
        assert "r1" not in {p.get("runner") for p in cov["problems"]}
        # The other host gets the kernels r1 had (it had OLD_2 already).
        for uname in (OLD_1,):
            make_tree(r2.trees, uname, BUILD_SECS)

        def all_done() -> bool:
            g = ci.api.grid()
            return all(g.state(lease["uname"], lease["sha"]) is not None for lease in abandoned)

        wait_until("r1's abandoned cells built by another runner", all_done,
                   timeout=LEASE_SECS + POLL_SECS + 2 * LAPSE_BUILD_SECS + SLACK,
                   describe=lambda: f"abandoned {abandoned}\n{r2.tail(20)}")
        TIMINGS[(ci.backend, "5 killed runner's cells rebuilt")] = time.monotonic() - t_kill
        grid = ci.api.grid()
        for lease in abandoned:
            [report] = ci.api.cell(grid.streams[lease["uname"]], lease["uname"], lease["sha"])["reports"]
            assert report["runner"] == "r2", report["runner"]
            assert report["received_at"] >= lease["expires_at"], (
                f"{lease['uname']} @ {lease['sha'][:7]} reported at {report['received_at']}, before "
                f"r1's lease lapsed at {lease['expires_at']}")
            FACTS.append((ci.backend, f"step 5: r1's lease {lease['id']} on {lease['uname']} @ "
                                      f"{lease['sha'][:7]} lapsed at {lease['expires_at']}; r2 reported "
                                      f"at {report['received_at']} (+{report['received_at'] - lease['expires_at']} ms)"))
        assert not leases_of(ci.api.coverage(), "r1"), "r1's leases still listed after their cells were built"
        wait_until("the grid complete again", lambda: grid_full(ci, [OLD_1, OLD_2, NEW_1, LATER]),
                   timeout=4 * LAPSE_BUILD_SECS + SLACK, describe=lambda: describe_grid(ci))
        check_truth(ci, "step 5")

    def test_6_silent_runner_is_stale(self, ci: CiWorld) -> None:
        """Runner 1 has been dead since step 5: past --runner-stale-secs it is stale and a coverage
        problem; runner 2, still polling, is neither."""
        t0 = time.monotonic()

        def stale() -> dict | None:
            cov = ci.api.coverage()
            runners = {r["name"]: r for r in cov["runners"]}
            listed = {p["runner"] for p in cov["problems"] if p["kind"] == "runner_stale"}
            return cov if runners["r1"]["stale"] and "r1" in listed else None

        cov = wait_until("r1 stale and listed in problems", stale, timeout=STALE_SECS + SLACK,
                         describe=lambda: str(ci.api.coverage()["runners"]))
        TIMINGS[(ci.backend, "6 dead runner turns stale")] = time.monotonic() - t0
        r1 = next(r for r in cov["runners"] if r["name"] == "r1")
        assert r1["last_contact_at"] is not None and cov["now"] - r1["last_contact_at"] >= STALE_SECS * 1000
        assert not next(r for r in cov["runners"] if r["name"] == "r2")["stale"]
        # The whole history once more: every cell by the rule, each run stored once.
        grid = ci.api.grid()
        wrong = wrong_states(ci, grid)
        assert not wrong, "\n".join(wrong)
        reports = ci.api.reports(grid)
        assert len({r["run_id"] for r in reports}) == len(reports)
        check_truth(ci, "step 6")


    def test_7_stopped_runner_finishes_or_releases(self, ci: CiWorld) -> None:
        """One SIGTERM: runner 2 leases nothing more, finishes the jobs it runs, posts them and
        exits 0. Restarted, then two SIGTERMs: it kills its builds and gives their leases back,
        so the coverage JSON shows no lease long before LEASE_SECS."""
        r2 = ci.runners["r2"]
        mark = len(r2.log_text())
        sha = ci.module.commit("Add a debug parameter", {"README": "trellis_ci 1.2: debug=1 logs more\n",
                                                          SLOW_BUILD: None})
        wait_until("r2 leased a job of the new commit", lambda: leased_at(r2, sha, mark),
                   timeout=POLL_SECS + SLACK, every=0.05)
        t0 = time.monotonic()
        code = r2.terminate(1, timeout=2 * BUILD_SECS + SLACK)
        TIMINGS[(ci.backend, "7 SIGTERM to exit (jobs finished)")] = time.monotonic() - t0
        assert code == 0, f"r2 exited {code} after one SIGTERM:\n{r2.tail(20)}"
        finished = leased_at(r2, sha, mark)
        built = {b.group(1) for b in BUILT.finditer(r2.log_text(), mark) if sha.startswith(b.group(2))}
        assert set(finished) == built, f"leased {finished}, finished {built}:\n{r2.tail(20)}"
        grid = ci.api.grid()
        assert all(grid.state(u, sha) is not None for u in finished), describe_grid(ci)
        assert not ci.api.coverage()["leases"], "a lease stayed open after a clean stop"

        r2.start()
        mark = len(r2.log_text())
        # r2 is the only runner left: it builds the rest of `sha`, then leases the new head.
        sha2 = ci.module.commit("Log the parameter", {"README": "trellis_ci 1.3: debug=1 logs more\n",
                                                       SLOW_BUILD: f"{ABORT_BUILD_SECS}\n"})
        wait_until("r2 leased a job of the newest commit", lambda: leased_at(r2, sha2, mark),
                   timeout=3 * BUILD_SECS + POLL_SECS + SLACK, every=0.05)
        t0 = time.monotonic()
        r2.terminate(2, timeout=SLACK)
        aborted = ABORTED.findall(r2.log_text(), mark)
        assert aborted, f"two SIGTERMs released no lease:\n{r2.tail(20)}"
        left = ci.api.coverage()["leases"]
        released_in = time.monotonic() - t0
        TIMINGS[(ci.backend, "7 two SIGTERMs to leases released")] = released_in
        assert not left and released_in < LEASE_SECS, f"leases still open after the abort: {left}"
        grid = ci.api.grid()
        for uname, sha7, _ in aborted:
            if sha2.startswith(sha7):
                assert grid.state(uname, sha2) is None, f"aborted {uname} @ {sha7} has a result"
        assert not [r.rejected() for r in ci.runners.values() if r.rejected()], "reports refused"
        FACTS.append((ci.backend, f"step 7: two SIGTERMs released {len(aborted)} lease(s) in "
                                  f"{released_in:.1f} s"))
        check_truth(ci, "step 7")


# --- a real kernel tree ------------------------------------------------------------------------------
HELLO_C = """\
// SPDX-License-Identifier: GPL-2.0
#include <linux/init.h>
#include <linux/module.h>

static int __init hello_init(void)
{
\tpr_info("hello from trellis\\n");
\treturn 0;
}

static void __exit hello_exit(void)
{
}

module_init(hello_init);
module_exit(hello_exit);
MODULE_LICENSE("GPL");
"""


def real_trees() -> list[str]:
    return sorted(set(glob.glob("/usr/src/linux-headers-*-amd64") + glob.glob("/lib/modules/*/build")))


def test_real_kernel_headers_build_a_hello_module(tmp_path: Path) -> None:
    """Where Debian's linux-headers are installed, a runner builds a real hello-world module with
    kbuild (`make -C <tree> M=<src> modules`) against them and the server shows it passing."""
    trees = real_trees()
    if not trees:
        pytest.skip("no real kernel headers (/usr/src/linux-headers-*-amd64, /lib/modules/*/build): "
                    "install linux-headers-amd64 to build a real module")
    trellis, why = binary("trellis")
    assert why is None, why
    runner_bin, why = binary("trellis-runner")
    assert why is None, why
    db = Database("sqlite", tmp_path)
    cli = Cli(trellis, db.url, tmp_path)
    server = TrellisServer(trellis, db, tmp_path, {})
    module = ModuleRepo(tmp_path / "hello")
    sha = module.commit("Say hello", {"Makefile": "obj-m += hello.o\n", "hello.c": HELLO_C})
    cli.run("project", "add", "hello")
    token = cli.runner_add("real", "hello")
    runner = Runner(runner_bin, "real", token, server.base, "hello", module.path, tmp_path / "real",
                    parallel=1, command="make -C {kernel_dir} M={src} modules", tree_globs=trees)
    try:
        server.start()
        runner.start("--once")
        assert runner.proc is not None
        code = runner.proc.wait(300)
        assert code == 0, f"trellis-runner run --once exited {code}:\n{runner.tail()}"
        grid = Api(server.base, "hello").grid()
        assert grid.kernels, f"no kernel announced:\n{runner.tail()}"
        states = {u: grid.state(u, sha) for u in grid.kernels}
        assert set(states.values()) == {"pass"}, f"{states}\n{runner.tail()}"
    finally:
        runner.stop()
        server.stop()

