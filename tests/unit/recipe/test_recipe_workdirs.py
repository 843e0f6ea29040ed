# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.recipe.workdirs without root: a held work directory is listed as running
and kept, what has no live owner is reaped, and nothing that is not ours (other
names, links) is touched or followed.  The end-to-end case (a SIGKILLed build, trees
of subordinate ids) is tests/integration/test_recipe_cache.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
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


def test_a_receive_killed_is_listed_and_reaped_a_held_one_kept(tmp_path: Path) -> None:
    """The coordinator of ``recipe build --buildhosts`` receives a result into a name
    of :func:`workdirs.receiving`: SIGKILLed mid-receive, its file is a leftover that
    cache clean removes; one this process holds is running and stays."""
    config = Config.defaults(vardir=tmp_path / "var", cachedir=tmp_path / "cache")
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from guestpkg.config import Config
            from guestpkg.recipe import workdirs
            config = Config.defaults(vardir=Path({str(config.vardir)!r}),
                                     cachedir=Path({str(config.cachedir)!r}))
            with workdirs.receiving(config, "zlib") as received:
                received.write_bytes(b"half a package")
                print(received, flush=True)
                time.sleep(600)
            """)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        killed = Path(child.stdout.readline().strip())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert killed.parent == config.cachedir / "dcfpkg" and killed.exists()
    with workdirs.receiving(config, "zlib") as held:
        held.write_bytes(b"half a package")
        assert {(w.path, w.kind, w.state) for w in workdirs.list_workdirs(config)} == {
            (killed, "results", "leftover"), (held, "results", "running")}
        assert workdirs.reap(config) == workdirs.Reaped(removed=1, running=1)
        assert held.exists() and not killed.exists()
        assert sorted(p.name for p in workdirs.top(config, "builds").iterdir()) == [
            held.name.removesuffix(workdirs.RESULT_SUFFIX) + ".lock"]
    assert not held.exists()
    assert list(workdirs.top(config, "builds").iterdir()) == []


def test_a_build_reaps_only_builds_and_a_check_only_checks(tmp_path: Path) -> None:
    """What recipe build (kinds builds: with the results being written or received)
    and recipe check (kinds check) reap when they start."""
    config = Config.defaults(vardir=tmp_path / "var", cachedir=tmp_path / "cache")
    built = workdirs.top(config, "builds") / ".tmp-zlib.0123456789ab"
    checked = workdirs.top(config, "check") / ".tmp-check.0123456789ab"
    part = config.cachedir / "dcfpkg" / ".tmp-gone.0123456789ab.part"
    for directory in (built, checked, part.parent):
        directory.mkdir(parents=True)
    part.write_bytes(b"half a package")
    # its killed owner's lock, left as a kill leaves it (free)
    (workdirs.top(config, "builds") / ".tmp-gone.0123456789ab.lock").write_text("")
    assert workdirs.reap(config, ("builds",)) == workdirs.Reaped(removed=2)
    assert checked.is_dir() and not built.exists() and not part.exists()
    assert workdirs.reap(config, ("check",)) == workdirs.Reaped(removed=1)
    assert not checked.exists()


def test_a_result_written_for_another_state_directory_is_not_ours(tmp_path: Path) -> None:
    """Two state directories over one cache (two buildhosts of a lab, a test area, a
    user's GUESTPKG_VARDIR): a result being written has its owner's lock in the
    writer's state directory, so the other sees no lock for it.  A lock that is not
    there is not a dead owner: the file is neither listed nor removed."""
    cache = tmp_path / "cache"
    writer = Config.defaults(vardir=tmp_path / "var-writer", cachedir=cache)
    other = Config.defaults(vardir=tmp_path / "var-other", cachedir=cache)
    with workdirs.receiving(writer, "zlib") as part:
        part.write_bytes(b"half a package")
        assert workdirs.list_workdirs(other) == []
        assert workdirs.reap(other) == workdirs.Reaped(0, 0)
        assert part.read_bytes() == b"half a package"
        assert [w.state for w in workdirs.list_workdirs(writer)] == ["running"]
    assert not part.exists()
