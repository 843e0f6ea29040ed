# SPDX-License-Identifier: GPL-2.0-or-later
"""Reading a recipe tree (guestpkg.recipe.tree): layout, hostile entries, problems with
their path, the cache key's canonical tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg.errors import InputError
from guestpkg.recipe import key
from guestpkg.recipe.tree import load_tree
from tests.support.recipetree import write_recipe


def test_a_recipe_is_read_whole(tmp_path: Path) -> None:
    write_recipe(tmp_path, "zlib/1.3/1", builddeps="make from make\n", rundeps="libc\n",
                 filter="*.la\n", extra={"patches/fix.patch": b"--- a\n"})
    tree = load_tree(tmp_path)
    assert tree.problems == ()
    (zlib,) = tree.recipes
    assert (zlib.id, zlib.full_version, zlib.type, zlib.arches) == (
        "zlib/1.3/1", "1.3-1", "binary", ("i586", "x86_64"))
    assert [str(d) for d in zlib.builddeps] == ["make from make"]
    assert zlib.builddeps[0].where == f"{tmp_path}/zlib/1.3/1/builddeps:1"
    assert [d.name for d in zlib.rundeps] == ["libc"]
    assert zlib.description == "the zlib recipe"
    assert [(f.path, f.is_dir, f.executable) for f in zlib.files] == [
        ("arch", False, False), ("build", False, True), ("builddeps", False, False),
        ("filter", False, False), ("meta", False, False), ("patches", True, False),
        ("patches/fix.patch", False, False), ("rundeps", False, False),
        ("type", False, False)]


def test_versions_are_ordered_as_dpkg_does(tmp_path: Path) -> None:
    for recipe_id in ("m4/1.4.9/1", "m4/1.4.19/1", "m4/1.4.19/2", "m4/1.4.19~rc1/5"):
        write_recipe(tmp_path, recipe_id)
    tree = load_tree(tmp_path)
    assert [r.id for r in tree.versions("m4")] == [
        "m4/1.4.19/2", "m4/1.4.19/1", "m4/1.4.19~rc1/5", "m4/1.4.9/1"]
    assert tree.find("m4").id == "m4/1.4.19/2"
    assert tree.find("m4/1.4.19/1").id == "m4/1.4.19/1"
    assert tree.find("m4/1.4.9").id == "m4/1.4.9/1"
    with pytest.raises(InputError, match="no recipe m4/2"):
        tree.find("m4/2")
    with pytest.raises(InputError, match="is not a recipe"):
        tree.find("../../etc")


def problems(root: Path) -> list[str]:
    return [p.replace(str(root) + "/", "") for p in load_tree(root).problems]


def test_missing_and_malformed_files_are_problems_with_their_place(tmp_path: Path) -> None:
    write_recipe(tmp_path, "aa/1/1", build=None)
    write_recipe(tmp_path, "bb/1/1", type="binary", builddeps="latest aa\n")
    write_recipe(tmp_path, "cc/1/1", arch="x86_64\narm64\n")
    write_recipe(tmp_path, "dd/1/1").joinpath("build").chmod(0o644)
    write_recipe(tmp_path, "ee/1/1", type="source", sha256sums="")
    write_recipe(tmp_path, "ff/1/1", builddeps="ff\n")
    (tmp_path / "gg/1/1").mkdir(parents=True)
    write_recipe(tmp_path, "ok/1/1")
    assert problems(tmp_path) == [
        "aa/1/1: no 'build' file (every recipe has type, arch, meta, build)",
        "bb/1/1/builddeps:1: 'latest aa' is only allowed in source recipes (a binary recipe's "
        "inputs are fixed by its cache key)",
        "cc/1/1/arch:2: unknown architecture 'arm64': expected i586 or x86_64",
        "dd/1/1/build: not executable (chmod +x)",
        "ee/1/1/sha256sums: no file pinned: a source recipe pins every file it fetches",
        "ff/1/1/builddeps:1: ff depends on itself",
        "gg/1/1: no 'type' file (every recipe has type, arch, meta, build)",
    ]
    assert [r.id for r in load_tree(tmp_path).recipes] == ["ok/1/1"]
    assert load_tree(tmp_path).broken == {"aa", "bb", "cc", "dd", "ee", "ff", "gg"}


def test_layout_problems(tmp_path: Path) -> None:
    write_recipe(tmp_path, "ok/1/1")
    (tmp_path / "README").write_text("x")
    (tmp_path / ".git").mkdir()
    (tmp_path / "Upper/1/1").mkdir(parents=True)
    (tmp_path / "vv/latest/1").mkdir(parents=True)
    (tmp_path / "rr/1/-1").mkdir(parents=True)
    (tmp_path / "ww/1").mkdir(parents=True)
    (tmp_path / "ww/1/file").write_text("")
    assert problems(tmp_path) == [
        "README: not a recipe name (expected NAME/VERSION/RELEASE/)",
        "Upper: not a recipe name (expected NAME/VERSION/RELEASE/)",
        "rr/1/-1: not a release (expected NAME/VERSION/RELEASE/)",
        "vv/latest: not a version (expected NAME/VERSION/RELEASE/)",
        "ww/1/file: not a directory (a release must be a directory; symlinks are not followed)",
    ]


def test_hostile_entries_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("secret")
    root = tmp_path / "tree"
    write_recipe(root, "link/1/1").joinpath("stolen").symlink_to(outside)
    write_recipe(root, "metalink/1/1", meta=None).joinpath("meta").unlink()
    (root / "metalink/1/1/meta").symlink_to(outside)
    write_recipe(root, "fifo/1/1")
    os.mkfifo(root / "fifo/1/1/pipe")
    write_recipe(root, "name/1/1", extra={"a\nb": b""})
    write_recipe(root, "typedir/1/1", extra={"filter/x": b""})
    deep = "/".join(["d"] * 10)
    write_recipe(root, "deep/1/1", extra={f"{deep}/x": b""})
    many = {f"p/{i}": b"" for i in range(1001)}
    write_recipe(root, "many/1/1", extra=many)
    write_recipe(root, "big/1/1", meta="Description: x\n" + " y\n" * 40000)
    (root / "vlink").mkdir()
    (root / "vlink/1").symlink_to(root / "link/1")
    assert problems(root) == [
        "big/1/1/meta: larger than 65536 bytes",
        "deep/1/1/d/d/d/d/d/d/d/d/d: nested deeper than 8 directories",
        "fifo/1/1/pipe: only regular files and directories are allowed (no symlinks, "
        "devices, FIFOs or sockets)",
        "link/1/1/stolen: only regular files and directories are allowed (no symlinks, "
        "devices, FIFOs or sockets)",
        "many/1/1: more than 1000 files",
        "metalink/1/1/meta: only regular files and directories are allowed (no symlinks, "
        "devices, FIFOs or sockets)",
        "name/1/1: file name 'a\\nb' has characters outside letters, digits and ._+~@%,=:-",
        "typedir/1/1/filter: must be a file, not a directory",
        "vlink/1: not a directory (a version must be a directory; symlinks are not followed)",
    ]


def test_a_missing_tree_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the recipe tree") as info:
        load_tree(tmp_path / "nope")
    assert info.value.hint is not None and "--recipes" in info.value.hint


def test_the_canonical_tree_names_every_file_and_changes_with_each(tmp_path: Path) -> None:
    directory = write_recipe(tmp_path, "zlib/1.3/1", extra={"patches/a.patch": b"x"})
    recipe = load_tree(tmp_path).recipes[0]
    text = key.canonical_tree(recipe).decode()
    assert text.splitlines()[:3] == ["guestpkg-recipe-tree 1", "recipe zlib 1.3 1",
                                     "f arch - 12 " + recipe.files[0].sha256]
    assert "d patches\n" in text and "f build x " in text
    before = key.tree_digest(recipe)
    os.utime(directory / "meta", (0, 0))
    (directory / "meta").chmod(0o600)
    assert key.tree_digest(load_tree(tmp_path).recipes[0]) == before  # times, modes: no
    (directory / "patches/a.patch").write_bytes(b"y")
    assert key.tree_digest(load_tree(tmp_path).recipes[0]) != before
    (directory / "patches/a.patch").write_bytes(b"x")
    assert key.tree_digest(load_tree(tmp_path).recipes[0]) == before
    (directory / "patches/a.patch").chmod(0o755)
    assert key.tree_digest(load_tree(tmp_path).recipes[0]) != before


def test_the_cache_key_names_each_part(tmp_path: Path) -> None:
    write_recipe(tmp_path, "zlib/1.3/1")
    recipe = load_tree(tmp_path).recipes[0]
    inputs = {"make/4.3/1": "1" * 64, "bzip2/1/1": "2" * 64}
    base = key.cache_key(recipe, "x86_64", inputs, "b" * 64)
    text = key.key_text(recipe, "x86_64", inputs, "b" * 64).decode().splitlines()
    assert text == ["guestpkg-recipe-key 1", f"tree {key.tree_digest(recipe)}", "arch x86_64",
                    f"bootstrap {'b' * 64}", f"input bzip2/1/1 {'2' * 64}",
                    f"input make/4.3/1 {'1' * 64}"]
    assert len({base, key.cache_key(recipe, "i586", inputs, "b" * 64),
                key.cache_key(recipe, "x86_64", inputs, "c" * 64),
                key.cache_key(recipe, "x86_64", {**inputs, "make/4.3/1": "3" * 64}, "b" * 64),
                key.cache_key(recipe, "x86_64", {}, "b" * 64)}) == 5
    assert key.cache_key(recipe, "x86_64", dict(reversed(inputs.items())), "b" * 64) == base
