# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg build`` of a hostile package that forks without end, eats memory or
fills the disk: each build ends with one line naming the limit, OUTPUT_DIR gets
nothing, and the next build on the same machine works.  The limits come from the
settings (memory_max, pids_max, upper_size, min_free_space)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from guestpkg.sandbox import cgroups
from tests.integration.test_build_failures import guestpkg, make_tiny

pytestmark = [pytest.mark.integration]

FORK_BOMB = "bomb() { bomb | bomb & }; bomb; sleep 60"
MEMORY_HOG = "x=$$(yes | head -c 400000000); echo $${#x}"
DISK_FILLER = "head -c 100000000 /dev/zero > /tmp/filler"


def guestpkg_cgroups() -> list[Path]:
    parents = cgroups.all_parents()
    assert parents
    return sorted(child for parent in parents if parent.is_dir()
                  for child in parent.iterdir() if child.is_dir())


@pytest.mark.parametrize("build, options, message", [
    (FORK_BOMB, ("--pids-max", "100", "--timeout", "20"),
     r"the limit of 100 processes and threads \(setting pids_max\) refused \d+ fork"),
    (MEMORY_HOG, ("--memory-max", "128M"),
     r"out of memory: the memory limit of 134217728 bytes \(setting memory_max\)"),
    (DISK_FILLER, ("--upper-size", "32M"), r"No space left on device"),
], ids=["fork-bomb", "memory-hog", "disk-filler"])
def test_hostile_build_ends_with_a_clear_message(test_config: Config, base_root: BaseRoot,
                                                 tmp_path: Path, build: str,
                                                 options: tuple[str, ...], message: str) -> None:
    before = guestpkg_cgroups()
    tree = make_tiny(tmp_path / "src", build=build)
    out = tmp_path / "out"
    result = guestpkg(test_config, "build", "--quiet-build", *options, str(tree), str(out))
    assert result.returncode != 0, result.stderr
    assert re.search(message, result.stderr), result.stderr
    assert not out.exists() or list(out.iterdir()) == []
    # none of the build's is left: a new one whose creator is gone would be (other
    # guestpkgs on the machine make and remove theirs meanwhile)
    assert not [c for c in set(guestpkg_cgroups()) - set(before)
                if not cgroups._creator_alive(c.name)]
    again = guestpkg(test_config, "build", "--quiet-build",
                     str(make_tiny(tmp_path / "ok")), str(tmp_path / "ok-out"))
    assert again.returncode == 0, again.stderr


def test_too_little_free_space_is_refused_up_front(test_config: Config, base_root: BaseRoot,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = guestpkg(test_config, "build", "--min-free-space", "1000000G",
                      str(make_tiny(tmp_path / "src")), str(out))
    assert result.returncode != 0
    assert "a build needs at least 1024000000 MiB (setting min_free_space)" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []
