# SPDX-License-Identifier: GPL-2.0-or-later
"""Building a resolved graph: inputs first, independent recipes in parallel.

Up to *jobs* builds run at once, each a sandboxed process watched by a thread.  A node
is started when everything it needs is built or cached, the ready node with the most
work after it first (:meth:`Graph.remaining_work`, costed by each recipe's last build
time, kept in ``<vardir>/recipes/durations.json`` as ninja keeps ``.ninja_log``); its
cache key is made then,
from its inputs' digests (:mod:`guestpkg.recipe.key`), so a cached node starts
nothing.  A failed node's dependents are skipped with the reason; without
``keep_going`` nothing new starts after a failure (what runs finishes), with it
everything that does not need the failure is built.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.build.recipe import Input, RecipeBuild, build_recipe
from guestpkg.config import Config
from guestpkg.errors import GuestpkgError, InputError
from guestpkg.recipe import cache, key, workdirs
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.graph import Graph, Node

log = logging.getLogger(__name__)

BUILT, CACHED, FAILED, SKIPPED = "built", "cached", "failed", "skipped"


@dataclass(frozen=True)
class Outcome:
    node: Node
    state: str
    detail: str = ""
    seconds: float = 0.0
    result: cache.Result | None = None


#: Called when a build starts (state "building") and when a node is decided.
Progress = Callable[[Node, str, str], None]


def plan_build(config: Config, graph: Graph, node: Node, bootstrap: BootstrapSet,
               results: dict[str, cache.Result], jobs: int,
               build_path: str | None = None) -> RecipeBuild:
    """The context of *node*'s build, its inputs taken from *results*."""
    order = {n.key: i for i, n in enumerate(graph.order())}
    inputs = tuple(Input(graph.nodes[need.target].recipe.id, results[need.target].path,
                         results[need.target].sha256, need.in_key)
                   for need in sorted(graph.needs[node.key], key=lambda n: order[n.target]))
    keyed = {i.recipe_id: i.sha256 for i in inputs if i.in_key}
    text = key.key_text(node.recipe, node.arch, keyed, bootstrap.id).decode()
    ctx = RecipeBuild(config, node.recipe, node.arch, bootstrap, inputs,
                      key.cache_key(node.recipe, node.arch, keyed, bootstrap.id), text,
                      jobs=jobs)
    if build_path is not None:
        ctx.build_path = build_path
    return ctx


def build_graph(config: Config, graph: Graph, bootstrap: BootstrapSet, *, jobs: int = 1,
                keep_going: bool = False, progress: Progress | None = None,
                build_jobs: int = 1,
                execute: Callable[[RecipeBuild], cache.Result] = build_recipe,
                ) -> list[Outcome]:
    """Build every node of *graph*; returns one outcome per node, in build order.
    *execute* builds one planned recipe into its ``ctx.result`` (here by default; on a
    buildhost with ``recipe build --buildhosts``, guestpkg.buildhost.coordinator)."""
    tell = progress or (lambda node, state, detail: None)
    # what killed builds left (locks free), as a fork reaps dead forks: never a
    # running build's, and a listing of two directories when there is nothing
    workdirs.reap(config, ("builds",))
    order = graph.order()
    durations = load_durations(config)
    work = graph.remaining_work(estimate(durations))
    start_order = sorted(order, key=lambda node: -work[node.key])  # stable: then by level
    measured: dict[str, float] = {}
    outcomes: dict[str, Outcome] = {}
    results: dict[str, cache.Result] = {}
    running: dict[concurrent.futures.Future[cache.Result], tuple[Node, float]] = {}
    stopped = False

    def decide(node: Node, outcome: Outcome) -> None:
        outcomes[node.key] = outcome
        tell(node, outcome.state, outcome.detail)
        if outcome.result is not None:
            results[node.key] = outcome.result
        if outcome.state in (FAILED, SKIPPED):
            for other in sorted(graph.dependents(node.key)):
                if other not in outcomes:
                    outcomes[other] = Outcome(graph.nodes[other], SKIPPED,
                                              f"needs {node.recipe.id}, which {outcome.state}")
                    tell(graph.nodes[other], SKIPPED, outcomes[other].detail)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while True:
            for node in start_order:
                if stopped or len(running) >= max(1, jobs):
                    break
                if node.key in outcomes or node.key in {n.key for n, _ in running.values()}:
                    continue
                if not all(n.target in results for n in graph.needs[node.key]):
                    continue
                ctx = plan_build(config, graph, node, bootstrap, results, build_jobs)
                hit = cache.cached(ctx.result, ctx.key)
                if hit is not None:
                    decide(node, Outcome(node, CACHED, ctx.result.name, 0.0, hit))
                    continue
                tell(node, "building", str(ctx.log))
                running[pool.submit(execute, ctx)] = (node, time.monotonic())
            if not running:
                break
            done, _ = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
            for future in done:
                node, started = running.pop(future)
                seconds = time.monotonic() - started
                try:
                    result = future.result()
                except GuestpkgError as e:
                    decide(node, Outcome(node, FAILED, e.message_and_hint, seconds))
                    stopped = stopped or not keep_going
                    continue
                decide(node, Outcome(node, BUILT, result.path.name, seconds, result))
                measured[_duration_key(node)] = round(seconds, 1)
    if measured:
        save_durations(config, measured)
    for node in order:
        if node.key not in outcomes:
            outcomes[node.key] = Outcome(node, SKIPPED, "not started after a failure "
                                         "(--keep-going builds what it can)")
    return [outcomes[n.key] for n in order]


#: What a recipe is assumed to take before it was ever built: a source recipe only
#: downloads; a binary one compiles (the median of the known ones, if any).
SOURCE_SECONDS, BINARY_SECONDS = 5.0, 60.0
#: durations.json holds at most this many recipes (the ones built last), so it stays
#: under DURATIONS_CAP_BYTES: a key is a recipe name (at most 63 characters) and an
#: arch, about 90 bytes a line.
MAX_DURATIONS = 10_000
DURATIONS_CAP_BYTES = 1 << 20
_DURATION_KEY = re.compile(r"[a-z0-9][a-z0-9+.-]{0,62}:(i586|x86_64)")


def durations_path(config: Config) -> Path:
    return config.vardir / "recipes" / "durations.json"


def _duration_key(node: Node) -> str:
    # Not the version: a new version of a recipe costs about what the last one did,
    # and its first build is then ordered by that rather than by a guess.  Two
    # versions of one name in one graph share the figure (rare, and only an order).
    return f"{node.recipe.name}:{node.arch}"


def load_durations(config: Config) -> dict[str, float]:
    """The last build time of each recipe (name and arch), in seconds, oldest first.
    The order is only a matter of speed: a file that is not a durations file (too
    large, not JSON, nested too deep, a link, a FIFO) is ignored with a warning and
    replaced after the next build; entries that are not a recipe name and arch with a
    plausible time are dropped."""
    data, problem = _read_durations(durations_path(config))
    if problem is not None:
        log.warning("%s: ignored (%s); builds start in an estimated order until it is "
                    "written again", durations_path(config), problem)
    return data


def _read_durations(path: Path) -> tuple[dict[str, float], str | None]:
    try:
        # not followed if a link, no blocking open of a FIFO, at most the cap
        raw = fsutil.read_untrusted(path.parent, path.name, DURATIONS_CAP_BYTES)
        data = json.loads(raw)
    except FileNotFoundError:
        return {}, None
    except InputError as e:
        return {}, e.message
    except OSError as e:
        return {}, e.strerror or str(e)
    except (ValueError, RecursionError) as e:  # RecursionError: "[[[[..." nested deep
        return {}, f"not JSON: {type(e).__name__}"
    if not isinstance(data, dict):
        return {}, "not a JSON object"
    return {k: float(v) for k, v in data.items()
            if isinstance(k, str) and _DURATION_KEY.fullmatch(k)
            and isinstance(v, (int, float)) and not isinstance(v, bool)
            and 0 <= v < 1e7}, None


def save_durations(config: Config, measured: dict[str, float]) -> None:
    """Record *measured* (atomically, under a lock: concurrent builds each add theirs);
    the oldest entries go when there are more than :data:`MAX_DURATIONS`."""
    path = durations_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fsutil.locked(path.with_name(".durations.lock")):
        known = {k: v for k, v in _read_durations(path)[0].items() if k not in measured}
        known.update(measured)  # the latest last
        kept = dict(list(known.items())[-MAX_DURATIONS:])
        fsutil.atomic_write(path, json.dumps(kept, indent=0) + "\n")


def estimate(durations: dict[str, float]) -> Callable[[Node], float]:
    """The cost of a node for :meth:`Graph.remaining_work`: its last build time, else
    a default by type."""
    binaries = sorted(v for k, v in durations.items() if not k.split(":")[0].endswith("-src"))
    binary = statistics.median(binaries) if binaries else BINARY_SECONDS

    def cost(node: Node) -> float:
        default = SOURCE_SECONDS if node.recipe.type == "source" else binary
        return durations.get(_duration_key(node), default)

    return cost


def check_reproducible(config: Config, graph: Graph, node: Node, bootstrap: BootstrapSet,
                       results: dict[str, cache.Result], log: Callable[[str], None]) -> str:
    """Build *node* twice more, varying the build path, the job count and (by running
    later) the time, and compare with its cached result; returns the common SHA256.
    On a difference the outputs are compared with diffoscope(1) if it is installed,
    into the second build's log, and :class:`BuildFailed` is raised."""
    import os
    import secrets
    import shutil

    from guestpkg.errors import BuildFailed
    from guestpkg.run import run

    variants = (("/build/recipe", 1), (f"/build/check-{secrets.token_hex(4)}",
                                       max(2, len(os.sched_getaffinity(0)) * 2)))
    digests: list[str] = []
    workdirs.reap(config, ("check",))
    with workdirs.owned(config, "check", "check") as scratch:
        for number, (build_path, jobs) in enumerate(variants, 1):
            ctx = plan_build(config, graph, node, bootstrap, results, jobs, build_path)
            reference = ctx.result
            ctx.result = scratch / str(number) / reference.name
            ctx.log = ctx.log.with_name(f"{ctx.log.stem}.check{number}.log")
            log(f"check    {node.recipe.id} ({node.arch}): build {number} at {build_path}, "
                f"JOBS={jobs}; log: {ctx.log}")
            digests.append(build_recipe(ctx).sha256)
        cached = results[node.key]
        if len({*digests, cached.sha256}) == 1:
            return cached.sha256
        outputs = [str(scratch / str(n) / reference.name) for n in (1, 2)]
        detail = f"SHA256 {', '.join(digests)}; cached {cached.sha256}"
        if shutil.which("diffoscope", path="/usr/bin:/bin") is not None:
            run(["diffoscope", "--no-progress", cached.path, outputs[-1]], check=False,
                log_path=ctx.log)
            detail += f"; diffoscope's report is in {ctx.log}"
        raise BuildFailed(f"{node.recipe.id} ({node.arch}) is not reproducible: {detail}",
                          ctx.log)
