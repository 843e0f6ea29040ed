# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.recipe's checks of what a build installed, on crafted trees (the
sandbox itself refuses a setuid chmod, so only this reaches the check)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg.build.recipe import RecipeBuild, collect_output
from guestpkg.config import Config
from guestpkg.errors import BuildFailed
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.tree import load_tree
from tests.support.recipetree import write_recipe


def context(tmp_path: Path, filter: str = "") -> RecipeBuild:
    write_recipe(tmp_path / "recipes", "out/1/1", filter=filter)
    recipe = load_tree(tmp_path / "recipes").recipes[0]
    config = Config.defaults(cachedir=tmp_path / "cache", logdir=tmp_path / "log",
                             vardir=tmp_path / "var")
    ctx = RecipeBuild(config, recipe, "x86_64",
                      BootstrapSet("0" * 64, "x86_64", tmp_path, "bookworm", ()), (),
                      "1" * 64, "")
    ctx.work = tmp_path / "work"
    ctx.install.mkdir(parents=True)
    ctx.log.parent.mkdir(parents=True)
    return ctx


def test_setuid_and_setgid_files_are_refused(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    (ctx.install / "usr/bin").mkdir(parents=True)
    (ctx.install / "usr/bin/su").write_text("x")
    os.chmod(ctx.install / "usr/bin/su", 0o2755)
    with pytest.raises(BuildFailed, match=r"/usr/bin/su: a setuid or setgid file"):
        collect_output(ctx)
    assert "guestpkg: FAILED: /usr/bin/su: a setuid or setgid file" in ctx.log.read_text()


def test_names_are_shown_escaped(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    os.mkfifo(ctx.install / "a\x1b[2Jb")
    with pytest.raises(BuildFailed, match=r"/a\\x1b\[2Jb: a device node, FIFO or socket"):
        collect_output(ctx)


def test_the_filter_removes_what_it_names(tmp_path: Path) -> None:
    ctx = context(tmp_path, filter="*.la\n/usr/share/doc\n")
    for path in ("usr/lib/libz.la", "usr/lib/libz.a", "usr/share/doc/z/README"):
        (ctx.install / path).parent.mkdir(parents=True, exist_ok=True)
        (ctx.install / path).write_text("x")
    os.symlink("libz.a", ctx.install / "usr/lib/libz-link.a")
    os.symlink("/usr/lib/libz.a", ctx.install / "usr/lib/abs.a")
    collect_output(ctx)
    assert sorted(os.listdir(ctx.install / "usr/lib")) == ["abs.a", "libz-link.a", "libz.a"]
    assert os.listdir(ctx.install / "usr/share") == []
