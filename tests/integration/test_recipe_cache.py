# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg cache list|clean`` and the recipe cache: unpacked-package layers no
cached result has any more are reaped, layers a build holds are kept, replaced
bootstrap sets go, and ``--all`` removes the results too."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from guestpkg.config import Config
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.layers import held_layers, layers_dir, set_layer
from tests.support.recipetree import write_recipe


def guestpkg(config: Config, *args: str, tree: Path | None = None) -> str:
    env = {**os.environ, "GUESTPKG_CACHEDIR": str(config.cachedir),
           "GUESTPKG_VARDIR": str(config.vardir), "GUESTPKG_LOGDIR": str(config.logdir),
           "GUESTPKG_RECIPES": str(tree or config.recipes)}
    done = subprocess.run([sys.executable, "-m", "guestpkg", *args], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def build_script(text: str) -> bytes:
    return (f'#!/bin/sh\nset -eu\nmkdir -p "$DESTDIR/usr/share/base"\n'
            f'echo {text} > "$DESTDIR/usr/share/base/text"\n').encode()


def states(listing: str) -> dict[str, str]:
    """RECIPE LAYER rows of ``cache list``: name (first 20 characters) -> state."""
    return {line.split()[0]: line.split()[1] for line in listing.splitlines()
            if line.startswith(("pkg-", "set-"))}


def test_cache_clean_reaps_the_recipe_layers_nothing_uses(
        tmp_path: Path, test_config: Config, bootstrap_x86_64: BootstrapSet) -> None:
    # An own vardir (in the shared one, other tests' layers are stale to this cache),
    # its bootstrap layer hard-linked from the shared one instead of unpacked again.
    shared = set_layer(test_config, bootstrap_x86_64)
    cachedir, vardir = tmp_path / "cache", tmp_path / "vardir"
    (cachedir / "dcfpkg").mkdir(parents=True)
    shutil.copytree(test_config.cachedir / "dcfpkg" / "bootstrap",
                    cachedir / "dcfpkg" / "bootstrap", copy_function=os.link)
    config = test_config.replace(cachedir=cachedir, vardir=vardir, logdir=tmp_path / "log",
                                 recipes=tmp_path / "recipes")
    layers_dir(config).mkdir(parents=True)
    subprocess.run(["cp", "-a", "--link", str(shared), str(layers_dir(config))], check=True)
    base = write_recipe(config.recipes, "base/1/1", arch="x86_64\n",
                        build=build_script("one"))
    write_recipe(config.recipes, "user/1/1", arch="x86_64\n", builddeps="base\n",
                 build=b'#!/bin/sh\nset -eu\nmkdir -p "$DESTDIR/usr/share/user"\n'
                 b'cp /usr/share/base/text "$DESTDIR/usr/share/user/"\n')
    results = cachedir / "dcfpkg"

    guestpkg(config, "recipe", "build", "user", "--arch", "x86_64")
    first = hashlib.sha256((results / "base_1-1_amd64.dcfpkg").read_bytes()).hexdigest()
    set_name = f"set-{bootstrap_x86_64.id}"[:20]
    assert states(guestpkg(config, "cache", "list")) == {f"pkg-{first}"[:20]: "current",
                                                         set_name: "current"}

    # base rebuilt in place: the layer of its old package can never be used again
    (base / "build").write_bytes(build_script("two"))
    guestpkg(config, "recipe", "build", "user", "--arch", "x86_64")
    base_path = results / "base_1-1_amd64.dcfpkg"
    second = hashlib.sha256(base_path.read_bytes()).hexdigest()
    listing = guestpkg(config, "cache", "list")
    assert states(listing) == {f"pkg-{first}"[:20]: "stale",
                               f"pkg-{second}"[:20]: "current", set_name: "current"}
    assert f"recipe results {results}: 2 .dcfpkg" in listing

    # a bootstrap set an --update replaced
    replaced = cachedir / "dcfpkg" / "bootstrap" / "x86_64" / ("0" * 64)
    replaced.mkdir()
    (replaced / "SET").write_text("Bootstrap-Set: 000\n")

    # what a build holds stays, even with --all
    with held_layers(config, [(base_path, second)], bootstrap_x86_64):
        out = guestpkg(config, "cache", "clean", "--all")
    assert out.splitlines()[-1] == ("removed 1 recipe layer(s), 2 in use, 1 replaced "
                                    "bootstrap set(s), 2 recipe result(s)")
    assert not replaced.exists() and not list(results.glob("*.dcfpkg"))
    assert bootstrap_x86_64.directory.is_dir()
    assert sorted(p.name for p in layers_dir(config).iterdir() if not p.name.startswith(".")) \
        == sorted([f"pkg-{second}", f"set-{bootstrap_x86_64.id}"])

    # no result has base's package now: its layer goes; the current set's stays
    out = guestpkg(config, "cache", "clean")
    assert out.splitlines()[-1] == ("removed 1 recipe layer(s), 0 replaced bootstrap "
                                    "set(s), 0 recipe result(s)")
    assert states(guestpkg(config, "cache", "list")) == {set_name: "current"}
