# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.fsutil.disk_usage_bytes counts as du(1) -s -x does: the one size of a tree
that buildroot list and cache list show."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from guestpkg.fsutil import disk_usage_bytes


def du(path: Path) -> int:
    out = subprocess.run(["du", "-s", "-x", "--block-size=1", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[0])


def test_same_total_as_du(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "big").write_bytes(os.urandom(300_000))
    (tree / "a" / "b" / "small").write_text("x")
    (tree / "sparse").touch()
    os.truncate(tree / "sparse", 10 << 20)           # allocated: nothing
    os.link(tree / "a" / "big", tree / "a" / "b" / "again")   # counted once
    (tree / "link").symlink_to("/usr")               # not followed
    assert disk_usage_bytes(tree) == du(tree)
    assert disk_usage_bytes(tree) < 1 << 20


def test_missing_tree_is_empty(tmp_path: Path) -> None:
    assert disk_usage_bytes(tmp_path / "nothing") == 0


def test_a_wide_tree_is_counted_whole_within_a_small_descriptor_limit(tmp_path: Path) -> None:
    """The walk keeps one descriptor per level, not one per directory waiting: a tree
    with more sibling directories than the process may open is still counted whole
    (the disk watch measures trees a hostile build makes)."""
    import resource

    tree = tmp_path / "wide"
    tree.mkdir()
    for i in range(300):
        (tree / f"d{i}").mkdir()
        (tree / f"d{i}" / "f").write_bytes(b"x" * 5000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
    try:
        measured = disk_usage_bytes(tree)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert measured == du(tree)
