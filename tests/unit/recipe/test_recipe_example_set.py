# SPDX-License-Identifier: GPL-2.0-or-later
"""The example set in recipes/ is a valid tree with the shape issue 13 asks for
(building it is tests/integration/test_recipe_examples.py)."""

from __future__ import annotations

from pathlib import Path

from guestpkg.recipe import graph as rgraph
from guestpkg.recipe.files import DepKind
from guestpkg.recipe.tree import load_tree

RECIPES = Path(__file__).resolve().parents[3] / "recipes"


def test_the_example_set_lints_clean_and_has_its_shape() -> None:
    tree = load_tree(RECIPES)
    assert rgraph.lint(tree) == []
    names = {r.name for r in tree.recipes}
    for name in ("zlib", "bzip2", "xz", "m4", "sed", "hello", "bison", "libpng", "autoconf",
                 "automake", "make"):
        assert {name, f"{name}-src"} <= names
        assert tree.find(name).type == "binary" and tree.find(f"{name}-src").type == "source"
        assert tree.find(f"{name}-src").pins
    graph = rgraph.resolve(tree, "x86_64", rgraph.default_request(tree, "x86_64"))
    levels = graph.levels()
    # at least three deep and three wide: five levels, three of them three wide or more
    assert len(levels) == 5 and sum(len(level) >= 3 for level in levels) >= 3
    assert [n.recipe.name for n in levels[-1]] == ["make"]  # after automake, autoconf, m4
    assert tree.find("zlib").arches == ("i586", "x86_64")
    hello = tree.find("hello")
    assert [(d.name, d.recipe, d.kind) for d in hello.builddeps
            if d.kind is DepKind.FROM] == [("sed", "sed", DepKind.FROM)]
    assert [d.name for d in tree.find("bison").rundeps] == ["m4"]
    i586 = rgraph.resolve(tree, "i586", rgraph.default_request(tree, "i586"))
    assert sorted(n.recipe.name for n in i586.order()) == ["zlib", "zlib-src"]
