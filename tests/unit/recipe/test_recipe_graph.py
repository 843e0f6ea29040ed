# SPDX-License-Identifier: GPL-2.0-or-later
"""The recipe dependency graph (guestpkg.recipe.graph): resolution, rundeps in the
build chroot, cycles with their path, levels, text and dot output."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.errors import RecipeError
from guestpkg.recipe import graph as rgraph
from guestpkg.recipe.tree import RecipeTree, load_tree
from tests.support.recipetree import write_recipe


def example(root: Path) -> RecipeTree:
    """Three deep, three wide: sources, libraries, tools using them."""
    for name in ("zlib", "m4", "make"):
        write_recipe(root, f"{name}-src/1.0/1", type="source")
        write_recipe(root, f"{name}/1.0/1", builddeps=f"{name}-src\n")
    write_recipe(root, "pigz/2.8/1", builddeps="zlib\nmake from make\n")
    write_recipe(root, "bison-src/3.8/1", type="source", builddeps="latest make\n")
    write_recipe(root, "bison/3.8/1", builddeps="bison-src\nm4\n", rundeps="m4\n")
    write_recipe(root, "flex/2.6/1", builddeps="bison\n")
    write_recipe(root, "old/1/1", arch="i586\n")
    return load_tree(root)


def test_levels_of_the_example(tmp_path: Path) -> None:
    tree = example(tmp_path)
    graph = rgraph.resolve(tree, "x86_64", [tree.find("flex"), tree.find("pigz")])
    assert [[n.recipe.id for n in level] for level in graph.levels()] == [
        ["m4-src/1.0/1", "make-src/1.0/1", "zlib-src/1.0/1"],
        ["m4/1.0/1", "make/1.0/1", "zlib/1.0/1"],
        ["bison-src/3.8/1", "pigz/2.8/1"],
        ["bison/3.8/1"],
        ["flex/2.6/1"],
    ]
    assert graph.requested == ("flex/2.6/1:x86_64", "pigz/2.8/1:x86_64")
    assert [n.recipe.id for n in graph.critical_path()] == [
        "make-src/1.0/1", "make/1.0/1", "bison-src/3.8/1", "bison/3.8/1", "flex/2.6/1"]


def test_rundeps_of_inputs_are_needed_and_latest_stays_out_of_the_key(tmp_path: Path) -> None:
    tree = example(tmp_path)
    graph = rgraph.resolve(tree, "x86_64", [tree.find("flex")])
    needs = {n.target: (n.runtime, n.in_key, str(n.dep)) for n in graph.needs["flex/2.6/1:x86_64"]}
    assert needs == {"bison/3.8/1:x86_64": (False, True, "bison"),
                     "m4/1.0/1:x86_64": (True, True, "m4")}
    bison_src = graph.needs["bison-src/3.8/1:x86_64"]
    assert [(n.target, n.in_key) for n in bison_src] == [("make/1.0/1:x86_64", False)]
    assert graph.dependents("m4/1.0/1:x86_64") == {"bison/3.8/1:x86_64", "flex/2.6/1:x86_64"}
    assert graph.dependents("flex/2.6/1:x86_64") == set()


def test_newest_version_is_what_a_name_resolves_to(tmp_path: Path) -> None:
    write_recipe(tmp_path, "zlib/1.2/1")
    write_recipe(tmp_path, "zlib/1.3/1")
    write_recipe(tmp_path, "zlib/1.3~rc/9")
    write_recipe(tmp_path, "pigz/2/1", builddeps="zlib\n")
    tree = load_tree(tmp_path)
    graph = rgraph.resolve(tree, "i586", [tree.find("pigz")])
    assert sorted(graph.nodes) == ["pigz/2/1:i586", "zlib/1.3/1:i586"]
    assert [r.id for r in rgraph.default_request(tree, "i586")] == ["pigz/2/1", "zlib/1.3/1"]


def problems(tree: RecipeTree) -> list[str]:
    return [p.replace(str(tree.root) + "/", "") for p in rgraph.lint(tree)]


def test_unknown_recipes_and_arches_are_reported_at_their_line(tmp_path: Path) -> None:
    write_recipe(tmp_path, "aa/1/1", builddeps="zlib\ncc from gcc\n")
    write_recipe(tmp_path, "bb/1/1", builddeps="only32\n")
    write_recipe(tmp_path, "only32/1/1", arch="i586\n")
    write_recipe(tmp_path, "cc/1/1", rundeps="ghost\n")
    write_recipe(tmp_path, "dd/1/1", builddeps="cc\n")
    write_recipe(tmp_path, "ee/1/1", builddeps="broken\n")
    write_recipe(tmp_path, "broken/1/1", arch="arm\n")
    assert problems(load_tree(tmp_path)) == [
        "broken/1/1/arch:1: unknown architecture 'arm': expected i586 or x86_64",
        "aa/1/1/builddeps:1: no recipe provides zlib (no zlib/VERSION/RELEASE/ in "
        f"{tmp_path})",
        f"aa/1/1/builddeps:2: no recipe provides cc from gcc (no gcc/VERSION/RELEASE/ in "
        f"{tmp_path})",
        f"cc/1/1/rundeps:1: no recipe provides ghost (no ghost/VERSION/RELEASE/ in {tmp_path})",
        "bb/1/1/builddeps:1: only32/1/1 does not build for x86_64 (its arch file lists i586)",
    ]


def test_cycles_are_reported_with_their_path(tmp_path: Path) -> None:
    write_recipe(tmp_path, "aa/1/1", builddeps="bb\n")
    write_recipe(tmp_path, "bb/1/1", builddeps="cc\n")
    write_recipe(tmp_path, "cc/1/1", builddeps="cc from aa\n")
    write_recipe(tmp_path, "xx/1/1", builddeps="yy\n")
    write_recipe(tmp_path, "yy/1/1", rundeps="xx\n")
    write_recipe(tmp_path, "r1/1/1", rundeps="r2\n")   # runtime cycles are fine
    write_recipe(tmp_path, "r2/1/1", rundeps="r1\n")
    write_recipe(tmp_path, "user/1/1", builddeps="r1\n")
    tree = load_tree(tmp_path)
    with pytest.raises(RecipeError) as info:
        rgraph.resolve(tree, "x86_64", [tree.find("aa")])
    assert info.value.problems == [
        f"{tmp_path}/aa/1/1/builddeps:1: dependency cycle: aa/1/1:x86_64 -> bb/1/1:x86_64 -> "
        "cc/1/1:x86_64 -> aa/1/1:x86_64"]
    assert info.value.hint == f"guestpkg recipe lint --recipes {tmp_path} lists every problem"
    with pytest.raises(RecipeError, match=r"yy/1/1/rundeps:1: dependency cycle: "
                       r"xx/1/1:x86_64 -> xx/1/1:x86_64"):
        rgraph.resolve(tree, "x86_64", [tree.find("xx")])
    graph = rgraph.resolve(tree, "x86_64", [tree.find("user")])
    assert sorted(graph.nodes) == ["r1/1/1:x86_64", "r2/1/1:x86_64", "user/1/1:x86_64"]


def test_a_very_long_chain_is_refused_not_a_crash(tmp_path: Path) -> None:
    for i in range(300):
        write_recipe(tmp_path, f"p{i}/1/1", builddeps=f"p{i + 1}\n" if i < 299 else None)
    tree = load_tree(tmp_path)
    with pytest.raises(RecipeError, match="dependency chain longer than 200 recipes"):
        rgraph.resolve(tree, "x86_64", [tree.find("p0")])


def test_text_and_dot(tmp_path: Path) -> None:
    tree = example(tmp_path)
    graph = rgraph.resolve(tree, "x86_64", [tree.find("flex"), tree.find("bison-src")])
    assert rgraph.render_text(graph) == """\
level 0:
  m4-src/1.0/1 (source)
  make-src/1.0/1 (source)
level 1:
  m4/1.0/1 (binary) <- m4-src/1.0/1
  make/1.0/1 (binary) <- make-src/1.0/1
level 2:
  bison-src/3.8/1 (source) <- make/1.0/1 (latest)
level 3:
  bison/3.8/1 (binary) <- bison-src/3.8/1, m4/1.0/1
level 4:
  flex/2.6/1 (binary) <- bison/3.8/1, m4/1.0/1 (rundep)
"""
    dot = rgraph.render_dot(graph)
    assert dot.startswith('digraph "recipes-x86_64" {\n')
    assert '  "bison-src/3.8/1" [label="bison-src/3.8/1\\nsource", style=dashed];' in dot
    assert '  "make/1.0/1" -> "bison-src/3.8/1" [label="latest"];' in dot
    assert '  "m4/1.0/1" -> "flex/2.6/1" [style=dotted];' in dot
    assert dot.endswith("}\n")


def test_from_is_labelled(tmp_path: Path) -> None:
    tree = example(tmp_path)
    graph = rgraph.resolve(tree, "x86_64", [tree.find("pigz")])
    assert "pigz/2.8/1 (binary) <- make/1.0/1 (make from), zlib/1.0/1" in \
        rgraph.render_text(graph)
    assert '"make/1.0/1" -> "pigz/2.8/1" [label="make from"];' in rgraph.render_dot(graph)
