# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.recipe.workdirs without root: a held work directory is listed as running
and kept, what has no live owner is reaped, and nothing that is not ours (other
names, links) is touched or followed.  The end-to-end case (a SIGKILLed build, trees
of subordinate ids) is tests/integration/test_recipe_cache.py."""

from __future__ import annotations

import os
from pathlib import Path

from guestpkg.config import Config
from guestpkg.recipe import workdirs


def test_held_kept_orphans_reaped_others_untouched(tmp_path: Path,
                                                   test_config: Config) -> None:
    config = test_config.replace(vardir=tmp_path / "var", cachedir=tmp_path / "cache")
    builds = workdirs.top(config, "builds")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("mine\n")
    with workdirs.owned(config, "builds", "zlib") as held:
        (held / "upper").mkdir()
        old = builds / ".tmp-old.0123456789ab"     # an older guestpkg's: no lock file
        (old / "sub").mkdir(parents=True)
        (builds / ".tmp-gone.0123456789ab.lock").write_text("")  # killed before mkdir
        (builds / "not-ours").mkdir()
        (builds / ".tmp-link.0123456789ab").symlink_to(victim)
        linked = builds / ".tmp-linked.0123456789ab"
        linked.mkdir()
        (builds / ".tmp-linked.0123456789ab.lock").symlink_to(victim / "file")
        assert {w.path.name: w.state for w in workdirs.list_workdirs(config)} == {
            held.name: "running", old.name: "leftover", linked.name: "leftover"}
        reaped = workdirs.reap(config)
        assert (reaped.removed, reaped.running) == (2, 1)  # no owner locks by a link
        assert held.is_dir() and os.path.exists(f"{held}.lock")
        assert sorted(p.name for p in builds.iterdir()) == sorted([
            held.name, f"{held.name}.lock", "not-ours", ".tmp-link.0123456789ab"])
    assert not held.exists() and not os.path.lexists(f"{held}.lock")
    assert (victim / "file").read_text() == "mine\n"
