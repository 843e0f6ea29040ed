# SPDX-License-Identifier: GPL-2.0-or-later
"""State that holds base roots, layers, forks and build trees is root's alone.

A base root generation holds setuid-root binaries of the suite it was made from
(``su``, ``passwd``, ``mount``...), which never get the host's security updates: no
local user may reach them.  So the state directories are 0700 root (made so, and an
older, open one tightened on use), and whatever the sandbox mounts from them is
``nosuid,nodev``.  Checked as a local user would try: ``setpriv --reuid=65534``.
"""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg import fsutil
from guestpkg.build import layers
from guestpkg.build.deb import build_directory
from guestpkg.buildroot import BaseRoot, fork, open_base_root
from guestpkg.config import Config
from guestpkg.sandbox import Bind, run_sandboxed
from tests.integration.test_buildroot_fork import in_child
from tests.support.paths import TEST_AREA

NOBODY = 65534
STATE_DIRECTORIES = ("buildroots", "layers", "forks", "builds", "work")


class Abandoned(Exception):
    pass


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "--", *argv],
                          capture_output=True, text=True, check=False)


def assert_closed(path: Path) -> None:
    """A local user can't even look at *path*."""
    result = as_nobody("stat", str(path))
    assert result.returncode != 0 and "Permission denied" in result.stderr, \
        (path, result.stdout, result.stderr)


def assert_private(path: Path) -> None:
    st = path.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 0, 0), \
        (path, oct(st.st_mode))


def setuid_files(tree: Path) -> list[Path]:
    found = []
    for directory in ("usr/bin", "usr/sbin", "bin", "sbin"):
        top = tree / directory
        if top.is_dir() and not top.is_symlink():
            found += [p for p in top.iterdir() if not p.is_symlink() and p.is_file()
                      and p.stat().st_mode & stat.S_ISUID and p.stat().st_uid == 0]
    return found


def test_a_generation_is_closed_to_local_users(test_config: Config,
                                               base_root: BaseRoot) -> None:
    stale = setuid_files(base_root.path)
    assert stale, "a buildd root has setuid-root binaries: what is at stake"
    open_base_root(test_config, base_root.name)
    assert_private(test_config.vardir / "buildroots")
    for path in (*stale, base_root.path, base_root.directory):
        assert_closed(path)


@pytest.fixture
def open_vardir() -> Iterator[Path]:
    """A vardir whose parents anyone may traverse, as /var/lib (pytest's tmp_path is
    under a 0700 directory, which would hide the very thing tested)."""
    path = TEST_AREA / f"state-{secrets.token_hex(4)}"
    path.mkdir(mode=0o755)
    os.chmod(path, 0o755)  # what /var/lib/guestpkg is
    yield path
    fsutil.remove_tree(path)


def test_forks_layers_and_builds_are_closed_and_old_ones_tightened(
        test_config: Config, base_root: BaseRoot, open_vardir: Path) -> None:
    config = test_config.replace(vardir=open_vardir)
    for name in STATE_DIRECTORIES:     # as an older guestpkg left them
        (open_vardir / name).mkdir(mode=0o755)
        os.chmod(open_vardir / name, 0o755)

    def work() -> None:
        with fork(config, base_root) as f:
            assert_private(open_vardir / "forks")
            assert_closed(f.upperdir)
        with build_directory(config, "never") as directory:
            assert_private(open_vardir / "builds")
            assert_closed(directory / "build")
        with layers.use_layer(config, "j" * 64) as missing:
            assert missing is None
            assert_private(open_vardir / "layers")
        os.chmod(open_vardir / "layers", 0o755)
        with pytest.raises(Abandoned), layers.creating_layer(config, "k" * 64) as tmp:
            assert tmp is not None
            assert_private(open_vardir / "layers")
            assert_closed(tmp)
            raise Abandoned
    in_child(work)


def test_mounts_in_a_fork_are_nosuid_and_nodev(test_config: Config, base_root: BaseRoot,
                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    log = tmp_path / "mountinfo.log"

    def work() -> None:
        with fork(test_config, base_root) as f:
            run_sandboxed(f.spec(["/bin/cat", "/proc/self/mountinfo"],
                                 binds=(Bind(out, "/out", readonly=False),
                                        Bind(base_root.path / "etc", "/mnt/etc"))),
                          log_path=log)
    in_child(work)
    options = {}
    for line in log.read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[0].isdigit():
            options[fields[4]] = set(fields[5].split(","))
    for mount_point in ("/", "/out", "/mnt/etc"):
        assert {"nosuid", "nodev"} <= options[mount_point], (mount_point, options)
