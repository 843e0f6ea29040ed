# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg cache list|clean`` and the recipe cache: unpacked-package layers no
cached result has any more are reaped, layers a build holds are kept, replaced
bootstrap sets go, and ``--all`` removes the results too; the work directories of
builds killed mid-way (and the results a killed coordinator was receiving) are
listed and reaped, by cache clean and by the next recipe build, never a running
build's."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from guestpkg.config import Config
from guestpkg.recipe import workdirs
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


def own_state(tmp_path: Path, test_config: Config, bootstrap: BootstrapSet) -> Config:
    """An own vardir and cachedir (in the shared ones, other tests' layers are stale to
    this cache), the bootstrap layer hard-linked from the shared one, not unpacked again."""
    shared = set_layer(test_config, bootstrap)
    cachedir, vardir = tmp_path / "cache", tmp_path / "vardir"
    (cachedir / "dcfpkg").mkdir(parents=True)
    shutil.copytree(test_config.cachedir / "dcfpkg" / "bootstrap",
                    cachedir / "dcfpkg" / "bootstrap", copy_function=os.link)
    config = test_config.replace(cachedir=cachedir, vardir=vardir, logdir=tmp_path / "log",
                                 recipes=tmp_path / "recipes")
    layers_dir(config).mkdir(parents=True)
    subprocess.run(["cp", "-a", "--link", str(shared), str(layers_dir(config))], check=True)
    return config


def states(listing: str) -> dict[str, str]:
    """RECIPE LAYER rows of ``cache list``: name (first 20 characters) -> state."""
    return {line.split()[0]: line.split()[1] for line in listing.splitlines()
            if line.startswith(("pkg-", "set-"))}


def test_cache_clean_reaps_the_recipe_layers_nothing_uses(
        tmp_path: Path, test_config: Config, bootstrap_x86_64: BootstrapSet) -> None:
    config = own_state(tmp_path, test_config, bootstrap_x86_64)
    cachedir = config.cachedir
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


def start_build(config: Config, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``guestpkg recipe build NAME`` started, once its build is sleeping: the process
    and its work directory."""
    env = {**os.environ, "GUESTPKG_CACHEDIR": str(config.cachedir),
           "GUESTPKG_VARDIR": str(config.vardir), "GUESTPKG_LOGDIR": str(config.logdir),
           "GUESTPKG_RECIPES": str(config.recipes)}
    builds = config.vardir / "recipes" / "builds"
    before = set(builds.glob(f".tmp-{name}.*/upper/build/recipe/started"))
    process = subprocess.Popen([sys.executable, "-m", "guestpkg", "recipe", "build", name,
                                "--arch", "x86_64"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        started = set(builds.glob(f".tmp-{name}.*/upper/build/recipe/started")) - before
        if started:
            return process, started.pop().parents[3]
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"the build of {name} did not start (status {process.wait()})")


def workdir_rows(listing: str) -> dict[str, str]:
    """Work-directory rows of ``cache list``: directory name -> state."""
    return {line.split()[3]: line.split()[4] for line in listing.splitlines()
            if line.startswith("recipe work directory ")}


def test_cache_clean_reaps_the_work_trees_of_killed_builds(
        tmp_path: Path, test_config: Config, bootstrap_x86_64: BootstrapSet) -> None:
    config = own_state(tmp_path, test_config, bootstrap_x86_64)
    victim = tmp_path / "victim"
    (victim / "dir").mkdir(parents=True)
    (victim / "dir" / "file").write_text("not the build's\n")
    # a tree written by the build user (a subordinate id), with a directory nobody may
    # enter or write, a read-only file in it, and links out of the tree
    sleeper = (f'#!/bin/sh\nset -eu\nmkdir -p closed/inner "$DESTDIR/usr/share/x"\n'
               f'echo x > closed/inner/file\nchmod 0400 closed/inner/file\n'
               f'chmod 0 closed/inner closed\nln -s {victim} out\n'
               f'ln -s {victim}/dir/file closed-link 2>/dev/null || true\n'
               f'touch started\nexec sleep 600\n').encode()
    write_recipe(config.recipes, "killed/1/1", arch="x86_64\n", build=sleeper)
    write_recipe(config.recipes, "running/1/1", arch="x86_64\n", build=sleeper)

    process, killed = start_build(config, "killed")
    process.send_signal(signal.SIGKILL)
    process.wait()
    closed = killed / "upper" / "build" / "recipe" / "closed"
    assert closed.lstat().st_mode & 0o777 == 0 and closed.lstat().st_uid != 0
    # a link named like a work directory is not followed
    os.symlink(victim / "dir", killed.with_name(".tmp-link.000000000000"))

    # a result being written when its build was killed, and one being received by a
    # killed coordinator of recipe build --buildhosts (its lock free, no directory)
    packing = config.cachedir / "dcfpkg" / f"{killed.name}.part"
    packing.write_bytes(b"half a package")
    receiving = config.cachedir / "dcfpkg" / ".tmp-gone.0123456789ab.part"
    receiving.write_bytes(b"half a package")
    (config.vardir / "recipes" / "builds" / ".tmp-gone.0123456789ab.lock").write_text("")

    with contextlib.ExitStack() as held:
        # a build's tree and a receive this process holds: a build starting reaps the
        # leftovers above, never these
        tree = held.enter_context(workdirs.owned(config, "builds", "held"))
        (tree / "upper").mkdir()
        received = held.enter_context(workdirs.receiving(config, "held"))
        received.write_bytes(b"half a package")
        running, alive = start_build(config, "running")
        held.callback(running.wait)
        held.callback(running.send_signal, signal.SIGKILL)
        assert not killed.exists() and not os.path.lexists(f"{killed}.lock")
        assert not packing.exists() and not receiving.exists()
        assert (tree / "upper").is_dir() and received.exists()
        assert sorted(p.name for p in (config.vardir / "recipes" / "builds").iterdir()) \
            == sorted([".tmp-link.000000000000", alive.name, f"{alive.name}.lock",
                       tree.name, f"{tree.name}.lock",
                       received.name.removesuffix(".part") + ".lock"])

        writing = config.cachedir / "dcfpkg" / f"{alive.name}.part"
        writing.write_bytes(b"half a package")
        old = config.vardir / "recipes" / "builds" / ".tmp-old.0123456789ab"
        (old / "upper").mkdir(parents=True)
        left = config.cachedir / "dcfpkg" / f"{old.name}.part"
        left.write_bytes(b"half a package")
        rows = workdir_rows(guestpkg(config, "cache", "list"))
        assert rows == {old.name: "leftover", left.name: "leftover", tree.name: "running",
                        received.name: "running", alive.name: "running",
                        writing.name: "running"}
        out = guestpkg(config, "cache", "clean")
        assert "removed 2 leftover(s) of killed recipe builds, 4 of running builds kept" in out
        assert not old.exists() and not left.exists()
        assert writing.exists() and received.exists() and (tree / "upper").is_dir()
        assert (alive / "upper" / "build" / "recipe" / "started").exists()
        assert running.poll() is None
    assert not tree.exists() and not received.exists()
    assert workdir_rows(guestpkg(config, "cache", "list")) == {alive.name: "leftover",
                                                               writing.name: "leftover"}
    guestpkg(config, "cache", "clean")
    assert sorted(p.name for p in (config.vardir / "recipes" / "builds").iterdir()) \
        == [".tmp-link.000000000000"]
    assert (victim / "dir" / "file").read_text() == "not the build's\n"
