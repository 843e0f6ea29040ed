# SPDX-License-Identifier: GPL-2.0-or-later
"""The example recipe set (the project's ``recipes/``) built once per test session.

The set takes minutes to build on a loaded two-core machine, so the session builds it
locally once (:func:`build_examples`, the ``example_set`` fixture) and the tests that
need a local build of it share that one: ``test_recipe_examples`` (what the set makes,
then cached and incremental rebuilds on its own copy) and ``test_buildhosts`` (the
same set from nothing on three buildhosts, byte for byte equal to this build).

Whatever the tree holds is built, for every architecture one of its recipes lists.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from guestpkg.config import Config
from guestpkg.recipe.files import ARCHES
from guestpkg.recipe.tree import load_tree
from tests.support.recipemirror import example_mirror

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ExampleBuild:
    """A local build of the example set; nothing here may be changed by a test."""

    tree: Path                   # the copy of recipes/ that was built
    cachedir: Path               # its results in dcfpkg/, the bootstrap sets beside
    logdir: Path
    summaries: dict[str, str]    # arch -> the build's last line
    counts: dict[str, int]       # arch -> how many recipes build for it

    @property
    def results(self) -> Path:
        return self.cachedir / "dcfpkg"

    def digests(self) -> dict[str, str]:
        return digests(self.results)


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.glob("*.dcfpkg"))}


def arches_of(tree: Path) -> dict[str, int]:
    """Each architecture of *tree* (in ARCHES' order) -> how many recipes build for it."""
    recipes = load_tree(tree).recipes
    counts = {arch: sum(arch in r.arches for r in recipes) for arch in ARCHES}
    return {arch: n for arch, n in counts.items() if n}


def recipe_env(config: Config, tree: Path, mirror_url: str) -> dict[str, str]:
    return {**os.environ, "GUESTPKG_CACHEDIR": str(config.cachedir),
            "GUESTPKG_VARDIR": str(config.vardir), "GUESTPKG_LOGDIR": str(config.logdir),
            "GUESTPKG_RECIPES": str(tree), "GUESTPKG_RECIPE_MIRROR": mirror_url}


def build_examples(top: Path, test_config: Config) -> ExampleBuild:
    """Build a copy of recipes/ under *top* from an empty result cache, ``-j 2``, for
    each of its architectures (the bootstrap sets must exist in *test_config*'s cache)."""
    tree = top / "recipes"
    shutil.copytree(REPO / "recipes", tree)
    cachedir = top / "cache"
    (cachedir / "dcfpkg").mkdir(parents=True)
    shutil.copytree(test_config.cachedir / "dcfpkg" / "bootstrap",
                    cachedir / "dcfpkg" / "bootstrap", copy_function=os.link)
    config = test_config.replace(cachedir=cachedir, logdir=top / "log")
    counts = arches_of(tree)
    summaries = {}
    with example_mirror(top / "mirror") as mirror:
        for arch in counts:
            done = subprocess.run([sys.executable, "-m", "guestpkg", "recipe", "build",
                                   "--arch", arch, "-j", "2"],
                                  env=recipe_env(config, tree, mirror.url),
                                  capture_output=True, text=True)
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
            summaries[arch] = done.stdout.splitlines()[-1]
    return ExampleBuild(tree, cachedir, config.logdir, summaries, counts)
