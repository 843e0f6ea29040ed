# SPDX-License-Identifier: GPL-2.0-or-later
"""fsutil.remove_tree on what a hostile build can leave: a build's output, upper
directory or work tree is removed by guestpkg after the build, whatever its shape."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from guestpkg import fsutil


def _deep_tree(top: Path, depth: int) -> None:
    """A chain of *depth* nested directories under *top*, made by descriptors (its
    path is far longer than PATH_MAX, as ``mkdir d; cd d`` in a loop makes it)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        with open(os.open("file", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd), "w") as f:
            f.write("x")
        os.fchmod(fd, 0o500)  # the innermost directory is read-only, too
    finally:
        os.close(fd)


def test_a_tree_deeper_than_pythons_recursion_limit_is_removed(tmp_path: Path) -> None:
    # shutil.rmtree recurses once per level (Python 3.11): a build that nests more
    # directories than the recursion limit would leave its tree and crash the caller
    tree = tmp_path / "tree"
    tree.mkdir()
    _deep_tree(tree, sys.getrecursionlimit() + 500)
    try:
        fsutil.remove_tree(tree)
        assert not tree.exists()
    finally:  # pytest's own clean-up of old temporary directories can't remove it
        subprocess.run(["rm", "-rf", "--", str(tree)], check=True)
    assert list(tmp_path.iterdir()) == []


def test_a_link_in_the_tree_is_removed_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = tmp_path / "tree"
    _deep = tree / "a" / "b"
    _deep.mkdir(parents=True)
    (_deep / "link").symlink_to(outside)
    fsutil.remove_tree(tree)
    assert not tree.exists()
    assert (outside / "keep").read_text() == "keep"
