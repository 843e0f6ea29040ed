# SPDX-License-Identifier: GPL-2.0-or-later
"""The order builds start in (guestpkg.build.schedule): of the ready recipes, the one
with the longest chain of work after it first, so the chain that bounds a parallel
build is never left waiting behind short independent builds."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from guestpkg.build.recipe import RecipeBuild
from guestpkg.build.schedule import (
    DURATIONS_CAP_BYTES,
    MAX_DURATIONS,
    build_graph,
    durations_path,
    load_durations,
    save_durations,
)
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


# --- durations.json: bounded, atomic, and never a reason to fail or hang ---------------

def durations_config(tmp_path: Path, test_config: Config) -> Config:
    config = test_config.replace(vardir=tmp_path / "var")
    (tmp_path / "var" / "recipes").mkdir(parents=True)
    return config


def test_durations_nested_too_deep_are_ignored(tmp_path: Path, test_config: Config) -> None:
    # a few hundred KiB of "[" make json's recursive parser raise RecursionError, not
    # ValueError: the build order must not crash on it
    config = durations_config(tmp_path, test_config)
    durations_path(config).write_text("[" * 200_000)
    assert load_durations(config) == {}


def test_durations_through_a_link_or_a_fifo_are_not_read(tmp_path: Path,
                                                          test_config: Config) -> None:
    config = durations_config(tmp_path, test_config)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"zlib:x86_64": 3}')
    durations_path(config).symlink_to(elsewhere)
    assert load_durations(config) == {}
    durations_path(config).unlink()
    os.mkfifo(durations_path(config))
    done: list[dict[str, float]] = []
    reader = threading.Thread(target=lambda: done.append(load_durations(config)), daemon=True)
    reader.start()
    reader.join(10)
    if not done:  # it hangs in open(2): let it go, then fail
        with open(durations_path(config), "w"):
            pass
    assert done == [{}]


def test_durations_too_large_or_hostile_entries_are_dropped(tmp_path: Path,
                                                            test_config: Config) -> None:
    config = durations_config(tmp_path, test_config)
    durations_path(config).write_text(" " * (2 << 20) + '{"zlib:x86_64": 3}')
    assert load_durations(config) == {}
    durations_path(config).write_text(json.dumps(
        {"zlib:x86_64": 3, "m4:i586": 4.5, "zlib": 1, "x" * 300 + ":x86_64": 1,
         "../etc:x86_64": 1, "bison:x86_64": True, "make:x86_64": float("nan"),
         "sed:x86_64": -1, "xz:x86_64": 1e300}))
    assert load_durations(config) == {"zlib:x86_64": 3.0, "m4:i586": 4.5}


def test_durations_stay_bounded_keeping_the_latest(tmp_path: Path,
                                                   test_config: Config) -> None:
    config = durations_config(tmp_path, test_config)
    old = {f"r{i}:x86_64": float(i) for i in range(MAX_DURATIONS)}
    durations_path(config).write_text(json.dumps(old))
    save_durations(config, {"r0:x86_64": 7.0, "new:i586": 2.0})
    saved = json.loads(durations_path(config).read_text())
    assert len(saved) == MAX_DURATIONS
    assert saved["r0:x86_64"] == 7.0 and saved["new:i586"] == 2.0
    assert "r1:x86_64" not in saved and f"r{MAX_DURATIONS - 1}:x86_64" in saved
    assert durations_path(config).stat().st_size < DURATIONS_CAP_BYTES
    assert load_durations(config) == saved
    assert [p.name for p in durations_path(config).parent.iterdir()
            if p.name.startswith(".tmp-")] == []
