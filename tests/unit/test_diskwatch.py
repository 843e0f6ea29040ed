# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.sandbox.diskwatch: the usage walk counts what du(1) -s -x counts, by file
descriptors, never through a symlink the command made; the watch skips tmpfs and says
which limit a command passed.  (The watch stopping real commands: tests/sandbox/
test_resources.py.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from guestpkg.config import Config
from guestpkg.fsutil import tree_usage_bytes as usage_bytes
from guestpkg.sandbox.diskwatch import DiskWatch, size_text
from guestpkg.sandbox.spec import Bind, SandboxSpec, from_json, to_json

MiB = 1 << 20


def usage(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return usage_bytes(fd, set())
    finally:
        os.close(fd)


def du(path: Path) -> int:
    out = subprocess.run(["du", "-s", "-x", "--block-size=1", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return int(out.split()[0])


def test_usage_is_what_du_counts(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "big").write_bytes(os.urandom(300_000))
    (tree / "a" / "b" / "small").write_text("x")
    (tree / "sparse").touch()
    os.truncate(tree / "sparse", 10 << 20)           # allocated: nothing
    os.link(tree / "a" / "big", tree / "a" / "b" / "again")   # counted once
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "huge").write_bytes(os.urandom(2 * MiB))
    (tree / "link").symlink_to(outside)              # never followed
    (tree / "a" / "b" / "link").symlink_to("../../..")
    assert usage(tree) == du(tree)
    assert usage(tree) < MiB


def test_hard_links_across_watched_trees_count_once(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "file").write_bytes(os.urandom(MiB))
    os.link(one / "file", two / "file")
    watch = DiskWatch.open([one, two], MiB, None)
    assert watch is not None
    try:
        assert watch.usage() == du(tmp_path) - os.stat(tmp_path).st_blocks * 512
    finally:
        watch.close()


def test_nothing_to_watch_without_limits_or_on_tmpfs(tmp_path: Path) -> None:
    assert DiskWatch.open([tmp_path], None, None) is None
    assert DiskWatch.open([Path("/dev/shm")], MiB, MiB) is None  # a tmpfs: sized already


def test_growth_over_the_cap_is_named(tmp_path: Path) -> None:
    (tmp_path / "before").write_bytes(os.urandom(3 * MiB))  # there before: not counted
    watch = DiskWatch.open([tmp_path], 2 * MiB, None)
    assert watch is not None
    try:
        watch.start()
        assert watch.poll() is None
        (tmp_path / "written").write_bytes(os.urandom(3 * MiB))
        os.sync()
        watch.next_walk = 0  # the next poll measures
        reason = watch.poll()
        assert reason is not None
        assert reason.startswith("it wrote 3 MiB to disk (") or reason.startswith(
            "it wrote 3.0 MiB to disk (")
        assert reason.endswith("more than its limit of 2 MiB (setting disk_max; raise it with "
                               "--disk-max SIZE)")
    finally:
        watch.close()


def test_a_reserve_above_the_free_space_stops_at_once(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    watch = DiskWatch.open([tmp_path], None, st.f_blocks * st.f_frsize)
    assert watch is not None
    try:
        reason = watch.poll()
        assert reason is not None and "(setting disk_reserve;" in reason
    finally:
        watch.close()


def test_size_text() -> None:
    assert size_text(64 * MiB) == "64 MiB"
    assert size_text(5 << 29) == "2.5 GiB"
    assert size_text(64 * MiB + 200_000) == "64.2 MiB"


def test_the_spec_watches_the_upper_and_writable_binds(tmp_path: Path) -> None:
    spec = SandboxSpec(argv=("true",), lowerdirs=(tmp_path,), upperdir=tmp_path / "u",
                       workdir=tmp_path / "w", disk_max_bytes=MiB, disk_reserve_bytes=2 * MiB,
                       binds=(Bind(tmp_path / "ro", "/ro"),
                              Bind(tmp_path / "rw", "/rw", readonly=False)))
    assert spec.disk_paths == [tmp_path / "u", tmp_path / "rw"]
    again = from_json(to_json(spec))
    assert (again.disk_max_bytes, again.disk_reserve_bytes) == (MiB, 2 * MiB)


def test_settings_give_every_sandbox_its_disk_limits() -> None:
    limits = Config.defaults(disk_max=5 << 30).sandbox_limits
    assert limits["disk_max_bytes"] == 5 << 30
    assert limits["disk_reserve_bytes"] == 1 << 30
    assert Config.defaults(disk_reserve=0).sandbox_limits["disk_reserve_bytes"] is None
    assert Config.defaults().sandbox_limits["disk_max_bytes"] is None


def test_the_reserve_alone_walks_nothing(tmp_path: Path) -> None:
    """The default (disk_reserve only) costs a statvfs per poll, no walk of the tree."""
    watch = DiskWatch.open([tmp_path], None, 1)
    assert watch is not None
    try:
        def walked() -> int:
            raise AssertionError("the tree was walked")

        watch.usage = walked  # type: ignore[method-assign]
        watch.start()
        assert watch.poll() is None
    finally:
        watch.close()
