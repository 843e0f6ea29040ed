# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg recipe lint|list|graph`` as a user runs them: output and exit status."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from guestpkg import cli
from tests.support.recipetree import write_recipe


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def good_tree(root: Path) -> Path:
    write_recipe(root, "zlib-src/1.3/1", type="source")
    write_recipe(root, "zlib/1.3/1", builddeps="zlib-src\n")
    write_recipe(root, "pigz/2.8/1", builddeps="zlib\n", arch="x86_64\n")
    return root


def test_lint_of_a_good_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recipe", "lint", "--recipes", str(good_tree(tmp_path)))
    assert (code, out) == (0, f"{tmp_path}: 3 recipes, no problems\n")
    code, out, _ = run(capsys, "recipe", "--recipes", str(tmp_path), "lint")
    assert (code, out) == (0, f"{tmp_path}: 3 recipes, no problems\n")


def test_lint_prints_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_tree(tmp_path)
    write_recipe(tmp_path, "bad/1/1", builddeps="ghost\n")
    write_recipe(tmp_path, "worse/1/1", type="script")
    code, out, err = run(capsys, "recipe", "lint", "--recipes", str(tmp_path))
    assert code == 3
    assert out.splitlines() == [
        f"{tmp_path}/worse/1/1/type:1: unknown type 'script': expected 'source' or 'binary'",
        f"{tmp_path}/bad/1/1/builddeps:1: no recipe provides ghost (no ghost/VERSION/RELEASE/"
        f" in {tmp_path})",
    ]
    assert err.splitlines()[0] == \
        f"guestpkg: error: 2 problem(s) in the recipe tree {tmp_path}"


def test_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "recipe", "list", "--recipes", str(good_tree(tmp_path)),
                       "--arch", "i586")
    assert code == 0
    assert [line.split()[:4] for line in out.splitlines()] == [
        ["zlib", "1.3-1", "binary", "i586,x86_64"],
        ["zlib-src", "1.3-1", "source", "i586,x86_64"]]


def test_graph_text_and_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good_tree(tmp_path)
    code, out, _ = run(capsys, "recipe", "graph", "--recipes", str(tmp_path), "--arch",
                       "x86_64")
    assert code == 0
    assert out.splitlines()[-2:] == ["level 2:", "  pigz/2.8/1 (binary) <- zlib/1.3/1"]
    code, out, _ = run(capsys, "recipe", "graph", "--recipes", str(tmp_path), "--arch",
                       "i586", "--dot", "zlib/1.3")
    assert code == 0
    assert '"zlib-src/1.3/1" -> "zlib/1.3/1";' in out and "pigz" not in out


def test_graph_refuses_a_tree_with_problems(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    good_tree(tmp_path)
    write_recipe(tmp_path, "aa/1/1", builddeps="bb\n")
    write_recipe(tmp_path, "bb/1/1", builddeps="aa\n")
    code, out, err = run(capsys, "recipe", "graph", "--recipes", str(tmp_path))
    assert (code, out) == (3, "")
    lines = err.splitlines()
    assert lines[0].startswith(f"guestpkg: error: {tmp_path}/aa/1/1/builddeps:1: dependency "
                               "cycle: aa/1/1:i586 -> bb/1/1:i586 -> aa/1/1:i586 (and 1 more)")
    assert lines[1] == (f"guestpkg: hint: guestpkg recipe lint --recipes {tmp_path} lists "
                        "every problem")


def test_missing_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "recipe", "list", "--recipes", str(tmp_path / "none"))
    assert code == 3
    assert "cannot read the recipe tree: No such file or directory" in err


def test_progress_on_a_terminal_keeps_one_line_per_running_recipe(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from guestpkg.commands.recipe import Progress
    from guestpkg.recipe import graph as rgraph
    from guestpkg.recipe.tree import load_tree

    tree = load_tree(good_tree(tmp_path))
    nodes = {n.recipe.name: n for n in rgraph.resolve(
        tree, "x86_64", [tree.find("pigz")]).order()}
    progress = Progress(terminal=True)
    progress(nodes["zlib-src"], "building", "log")
    progress(nodes["zlib"], "cached", "zlib.dcfpkg")
    progress(nodes["zlib-src"], "built", "zlib-src.dcfpkg")
    out = capsys.readouterr().out
    assert out == ("building zlib-src/1.3/1 (x86_64) (0 s)\n"
                   "\x1b[1F\x1b[Jcached   zlib/1.3/1 (x86_64): zlib.dcfpkg\n"
                   "building zlib-src/1.3/1 (x86_64) (0 s)\n"
                   "\x1b[1F\x1b[Jbuilt    zlib-src/1.3/1 (x86_64): zlib-src.dcfpkg\n")
    progress(nodes["pigz"], "building", "log")
    capsys.readouterr()
    progress.tick()  # every second while ticking: the running lines redrawn in place
    assert capsys.readouterr().out == "\x1b[1F\x1b[Jbuilding pigz/2.8/1 (x86_64) (0 s)\n"
    with progress.ticking(interval_s=0.01):
        time.sleep(0.2)
    assert capsys.readouterr().out.startswith("\x1b[1F\x1b[Jbuilding pigz/2.8/1")
    Progress(terminal=False)(nodes["pigz"], "building", "the log")
    assert capsys.readouterr().out == "building pigz/2.8/1 (x86_64): the log\n"
