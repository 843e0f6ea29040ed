# SPDX-License-Identifier: GPL-2.0-or-later
"""The example set in recipes/: real upstreams (Debian's orig tarballs from a local
mirror), built from the bootstrap set (the session's ``example_set``, which
test_buildhosts builds a second time from nothing, on three buildhosts, and finds byte
for byte equal); then all cached; then one change rebuilds exactly the changed recipe
and its dependents."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.config import Config
from guestpkg.dcfpkg.reader import ReaderPolicy, extract, read_manifest
from tests.support.examples import ExampleBuild
from tests.support.recipemirror import example_mirror
from tests.support.upstream_server import Upstream

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = {"zlib", "bzip2", "xz", "m4", "sed", "hello", "bison", "libpng", "autoconf",
            "automake", "make"}


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[Upstream]:
    with example_mirror(tmp_path / "mirror") as upstream:
        yield upstream


def guestpkg(config: Config, tree: Path, mirror: Upstream,
             *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GUESTPKG_CACHEDIR": str(config.cachedir),
           "GUESTPKG_VARDIR": str(config.vardir), "GUESTPKG_LOGDIR": str(config.logdir),
           "GUESTPKG_RECIPES": str(tree), "GUESTPKG_RECIPE_MIRROR": mirror.url}
    return subprocess.run([sys.executable, "-m", "guestpkg", "recipe", *args], env=env,
                          capture_output=True, text=True)


def digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in directory.glob("*.dcfpkg")}


def summary(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout.splitlines()[-1]


def test_the_example_set(tmp_path: Path, test_config: Config, example_set: ExampleBuild,
                         mirror: Upstream) -> None:
    tree = tmp_path / "recipes"
    shutil.copytree(example_set.tree, tree)
    cachedir = tmp_path / "cache"   # the session's results, linked: changed here only
    shutil.copytree(example_set.cachedir, cachedir, copy_function=os.link)
    config = test_config.replace(cachedir=cachedir, logdir=tmp_path / "log")
    results = cachedir / "dcfpkg"

    lint = guestpkg(config, tree, mirror, "lint")
    assert lint.returncode == 0, lint.stdout
    graph = guestpkg(config, tree, mirror, "graph", "--arch", "x86_64").stdout
    widths = [len(level.splitlines()) - 1 for level in graph.split("level ")[1:]]
    assert len(widths) == 5  # sources; zlib, m4, ...; autoconf, ...; automake; make
    assert sum(width >= 3 for width in widths) >= 3  # three deep and three wide

    assert example_set.summaries["x86_64"] == \
        f"built {2 * len(EXAMPLES)}, cached 0, failed 0, skipped 0"
    built = digests(results)
    assert built == example_set.digests()
    assert {name.split("_")[0] for name in built} == EXAMPLES | {f"{n}-src" for n in EXAMPLES}

    # hello was configured with the sed recipe's sed, not the seed's (sed from sed)
    sed_files = {e.path: e.sha256 for e in read_manifest(results / "sed_4.9-1_amd64.dcfpkg")[1]}
    log = (example_set.logdir / "recipes" / "hello_2.10-1_amd64.log").read_text()
    assert f"sed: /usr/bin/sed {sed_files[b'usr/bin/sed']}\n" in log
    # bison got m4 from the m4 recipe; libpng found zlib's headers and library
    assert "checking for GNU M4 that supports accurate traces... /usr/bin/m4" in \
        (example_set.logdir / "recipes" / "bison_3.8.2-1_amd64.log").read_text()
    # make was built with the autoconf and automake recipes (the set has no autotools)
    make_log = (example_set.logdir / "recipes" / "make_4.3-1_amd64.log").read_text()
    assert "\nautotools: autoconf (GNU Autoconf) 2.71, automake (GNU automake) 1.16.5\n" \
        in make_log and "\nGNU Make 4.3\n" in make_log
    assert b"usr/bin/make" in {e.path for e in
                               read_manifest(results / "make_4.3-1_amd64.dcfpkg")[1]}
    libpng = {e.path for e in read_manifest(results / "libpng_1.6.39-1_amd64.dcfpkg")[1]}
    assert b"usr/lib/libpng16.so.16.39.0" in libpng and b"usr/share/man" not in libpng

    # zlib for i586 too: i386 code, built with -march=i586
    assert example_set.summaries["i586"] == "built 2, cached 0, failed 0, skipped 0"
    assert "CFLAGS='-O2 -ffile-prefix-map=/build/recipe=. -march=i586'" in \
        (example_set.logdir / "recipes" / "zlib_1.2.13-1_i386.log").read_text()
    extract(results / "zlib_1.2.13-1_i386.dcfpkg", tmp_path / "zlib", ReaderPolicy())
    elf = (tmp_path / "zlib" / "usr/lib/libz.so.1.2.13").read_bytes()
    assert elf[:5] == b"\x7fELF\x01" and elf[18] == 3  # ELFCLASS32, EM_386

    # all cached: nothing runs
    assert summary(guestpkg(config, tree, mirror, "build", "--arch", "x86_64")) == \
        f"built 0, cached {2 * len(EXAMPLES)}, failed 0, skipped 0"

    # one change: that recipe and its dependents only
    build = tree / "zlib/1.2.13/1/build"
    build.write_text(build.read_text() + 'echo "changed" > "$DESTDIR/usr/lib/zlib.note"\n')
    assert summary(guestpkg(config, tree, mirror, "build", "--arch", "x86_64")) == \
        f"built 2, cached {2 * len(EXAMPLES) - 2}, failed 0, skipped 0"
    changed = digests(results)
    assert sorted(n for n in changed if changed[n] != built[n]) == [
        "libpng_1.6.39-1_amd64.dcfpkg", "zlib_1.2.13-1_amd64.dcfpkg"]
