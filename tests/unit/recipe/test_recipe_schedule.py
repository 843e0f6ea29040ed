# SPDX-License-Identifier: GPL-2.0-or-later
"""The order builds start in (guestpkg.build.schedule): of the ready recipes, the one
with the longest chain of work after it first, so the chain that bounds a parallel
build is never left waiting behind short independent builds."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from guestpkg.build.recipe import RecipeBuild
from guestpkg.build.schedule import build_graph
from guestpkg.config import Config
from guestpkg.dcfpkg.format import Metadata
from guestpkg.recipe import cache
from guestpkg.recipe import graph as rgraph
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.tree import load_tree

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def starts(tmp_path: Path, test_config: Config) -> list[str]:
    """The recipes of the example set in the order a -j1 build starts them."""
    config = test_config.replace(cachedir=tmp_path / "cache", logdir=tmp_path / "log",
                                 vardir=tmp_path / "var")
    tree = load_tree(RECIPES)
    graph = rgraph.resolve(tree, "x86_64", rgraph.default_request(tree, "x86_64"))
    bootstrap = BootstrapSet("0" * 64, "x86_64", tmp_path / "set", "bookworm", ())
    started: list[str] = []
    lock = threading.Lock()

    def execute(ctx: RecipeBuild) -> cache.Result:
        with lock:
            started.append(ctx.recipe.name)
        return cache.Result(ctx.result, hashlib.sha256(ctx.key.encode()).hexdigest(),
                            Metadata(package=ctx.recipe.name, version=ctx.recipe.version,
                                     release=ctx.recipe.release, architecture="amd64",
                                     build_date=0))

    outcomes = build_graph(config, graph, bootstrap, jobs=1, execute=execute)
    assert all(o.state == "built" for o in outcomes)
    assert sorted(started) == sorted(n.recipe.name for n in graph.order())
    return started


def test_the_longest_chain_starts_first(tmp_path: Path, test_config: Config) -> None:
    # nothing built yet: m4 -> autoconf -> automake -> make is the longest chain, so it
    # goes first (in graph order, autoconf-src, automake-src, bison-src, ... would
    # start before m4-src)
    assert starts(tmp_path, test_config)[:4] == ["m4-src", "m4", "autoconf-src", "autoconf"]


def test_the_recorded_build_times_cost_the_chains(tmp_path: Path,
                                                  test_config: Config) -> None:
    # bison took 20 minutes last time: m4 -> bison is now the longest chain
    (tmp_path / "var" / "recipes").mkdir(parents=True)
    (tmp_path / "var" / "recipes" / "durations.json").write_text(
        '{"bison:x86_64": 1200, "m4:x86_64": 30, "autoconf:x86_64": 20, "junk": "x"}')
    assert starts(tmp_path, test_config)[:4] == ["m4-src", "m4", "bison-src", "bison"]
    durations = json.loads((tmp_path / "var" / "recipes" / "durations.json").read_text())
    assert set(durations) > {"bison:x86_64", "make:x86_64", "zlib-src:x86_64"}
