#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Time ``guestpkg recipe build`` on the example set in recipes/.

  (a) the whole set from an empty result cache at -j1, timing every recipe;
  (b) the same at -j2 (each build gets every CPU as JOBS in both, as
      ``guestpkg recipe build`` does);
  (c) an all-cached build of the whole set: in-process (load, lint, resolve, one key
      per recipe), and as the command (Python's start-up included).

It prints the critical path of the graph (the longest chain of needs, each recipe
costed at its time in (a)), the ideal -j2 time (the larger of the critical path and
half the total), and the parallel efficiency ideal/(b) (goal: at least 0.85).  As
each build of (a) already uses both CPUs while it compiles (JOBS), half the total of
(a) is not reachable on two CPUs: so it also prints the CPU time the builds of (a)
used, the bound max(critical path, CPU time / 2) and (b) against it.  Then the -j2
time that list scheduling would reach with the times of (a) when ready builds start in
graph order and when the longest remaining chain starts first (what guestpkg does);
and the time of (c) (goal: well under a second).  The sources come from a local mirror of
Debian's orig tarballs (tests/support/recipemirror.py) on this machine's outside
address; the bootstrap set is made first when missing.

Run as root, from the repository:  /usr/bin/python3 bench/recipes.py
The settings come from the environment like guestpkg's (GUESTPKG_VARDIR, ...).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guestpkg import config as settings  # noqa: E402
from guestpkg.build.schedule import Outcome, build_graph  # noqa: E402
from guestpkg.config import Config  # noqa: E402
from guestpkg.errors import SystemStateError  # noqa: E402
from guestpkg.recipe import graph as rgraph  # noqa: E402
from guestpkg.recipe.bootstrap import BootstrapSet, make_set, open_set  # noqa: E402
from guestpkg.recipe.tree import load_tree  # noqa: E402
from tests.support.recipemirror import example_mirror  # noqa: E402

ARCH = "x86_64"


def resolve(config: Config) -> rgraph.Graph:
    tree = load_tree(config.recipes)
    problems = rgraph.lint(tree)
    assert not problems, problems
    return rgraph.resolve(tree, ARCH, rgraph.default_request(tree, ARCH))


def cpu_seconds() -> float:
    """User and system time of the waited-for descendants: the sandboxed builds."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_build(config: Config, bootstrap: BootstrapSet, jobs: int) -> tuple[float,
                                                                            list[Outcome]]:
    start = time.monotonic()
    cpu = cpu_seconds()
    graph = resolve(config)
    outcomes = build_graph(config, graph, bootstrap, jobs=jobs, build_jobs=config.build_jobs)
    elapsed = time.monotonic() - start
    print(f"bench: -j{jobs}: the builds used {cpu_seconds() - cpu:.1f} s of CPU", flush=True)
    bad = [o for o in outcomes if o.state not in ("built", "cached")]
    assert not bad, [(o.node.key, o.detail) for o in bad]
    return elapsed, outcomes


def critical_path(graph: rgraph.Graph, cost: dict[str, float]) -> tuple[float, list[str]]:
    best: dict[str, tuple[float, list[str]]] = {}
    for node in graph.order():
        empty: tuple[float, list[str]] = (0.0, [])
        before = max((best[n.target] for n in graph.needs[node.key]), default=empty)
        best[node.key] = (before[0] + cost[node.key], [*before[1], node.recipe.id])
    return max(best.values())


def simulate(graph: rgraph.Graph, cost: dict[str, float], jobs: int,
             first: list[rgraph.Node]) -> float:
    """The makespan of list scheduling *graph* on *jobs* slots with the costs *cost*,
    starting ready nodes in the order *first*."""
    finish: dict[str, float] = {}
    slots = [0.0] * jobs
    pending = list(first)
    while pending:
        slot = min(range(jobs), key=lambda i: slots[i])
        now = slots[slot]
        ready = [n for n in pending if all(finish.get(m.target, float("inf")) <= now
                                           for m in graph.needs[n.key])]
        if not ready:  # wait for the next build to finish
            slots[slot] = min(t for t in finish.values() if t > now)
            continue
        node = ready[0]
        pending.remove(node)
        finish[node.key] = slots[slot] = now + cost[node.key]
    return max(finish.values())


def load() -> str:
    """The 1, 5 and 15 minute load averages: on a shared machine, what else ran."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    base = settings.load()
    try:
        bootstrap = open_set(base, ARCH)
    except SystemStateError:
        bootstrap = make_set(base, ARCH)
    with tempfile.TemporaryDirectory(prefix="guestpkg-bench-") as scratch, \
            example_mirror(Path(scratch) / "mirror") as mirror:
        def fresh(name: str) -> Config:
            cachedir = Path(scratch) / name
            (cachedir / "dcfpkg").mkdir(parents=True)
            shutil.copytree(bootstrap.directory.parent.parent, cachedir / "dcfpkg" / "bootstrap",
                            copy_function=os.link)
            return base.replace(cachedir=cachedir, logdir=Path(scratch) / f"log-{name}",
                                recipes=REPO / "recipes", recipe_mirror=mirror.url)

        # the unpacked bootstrap layer is shared and made once, outside the timings
        one = fresh("j1")
        cpu = cpu_seconds()
        serial, outcomes = run_build(one, bootstrap, 1)
        cpu_j1 = cpu_seconds() - cpu
        cost = {o.node.key: o.seconds for o in outcomes}
        print(f"bench: -j1: {serial:.1f} s for {len(outcomes)} recipes (load average "
              f"{load()})", flush=True)
        two = fresh("j2")
        parallel, _ = run_build(two, bootstrap, 2)
        print(f"bench: -j2: {parallel:.1f} s (load average {load()})", flush=True)
        graph = resolve(one)
        path_s, path = critical_path(graph, cost)
        ideal = max(path_s, sum(cost.values()) / 2)
        print(f"bench: critical path {path_s:.1f} s: {' -> '.join(path)}")
        print(f"bench: total of all builds {sum(cost.values()):.1f} s; ideal -j2 "
              f"{ideal:.1f} s; parallel efficiency {ideal / parallel:.2f} (goal >= 0.85)")
        bound = max(path_s, cpu_j1 / 2)
        print(f"bench: the -j1 builds used {cpu_j1:.1f} s of CPU; on two CPUs -j2 needs at "
              f"least max(critical path, CPU / 2) = {bound:.1f} s; -j2 took "
              f"{parallel / bound:.2f} times that")
        work = graph.remaining_work(lambda node: cost[node.key])
        by_work = sorted(graph.order(), key=lambda node: -work[node.key])
        as_listed = simulate(graph, cost, 2, graph.order())
        print(f"bench: -j2 simulated from the -j1 times: {as_listed:.1f} s starting in graph "
              f"order, {simulate(graph, cost, 2, by_work):.1f} s longest chain first "
              "(guestpkg's order, from the recorded times)")

        cached, outcomes = run_build(two, bootstrap, 2)
        assert all(o.state == "cached" for o in outcomes)
        env = {**os.environ, "GUESTPKG_CACHEDIR": str(two.cachedir),
               "GUESTPKG_RECIPES": str(REPO / "recipes")}
        start = time.monotonic()
        subprocess.run([sys.executable, "-m", "guestpkg", "recipe", "build", "--arch", ARCH],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        command = time.monotonic() - start
        print(f"bench: all cached: {cached * 1000:.0f} ms in-process, {command * 1000:.0f} ms "
              "as the command (goal: well under a second)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
