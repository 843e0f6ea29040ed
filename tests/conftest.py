# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared fixtures.  Tests mirror the package: ``tests/unit`` needs no root and no
network; ``tests/sandbox`` and ``tests/integration`` use the real kernel features, real
mmdebstrap roots and real apt, dpkg and debconf, and skip nothing silently: when they
can't run (not root) they fail, unless GUESTPKG_TESTS_UNIT_ONLY=1 deselects them."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from guestpkg.buildroot import BaseRoot
    from guestpkg.config import Config
    from guestpkg.recipe.bootstrap import BootstrapSet

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Whatever a test runs (library calls or `python3 -m guestpkg` subprocesses), it never
# reads the machine's /etc/guestpkg or writes its /var/lib, /var/cache or /var/log
# guestpkg directories: the defaults point into a test area unless a test says otherwise.
from tests.support.paths import TEST_AREA  # noqa: E402

for _name, _sub in (("GUESTPKG_CONFDIR", "etc"), ("GUESTPKG_LOGDIR", "log"),
                    ("GUESTPKG_CACHEDIR", "cache"), ("GUESTPKG_VARDIR", "vardir")):
    os.environ.setdefault(_name, str(TEST_AREA / _sub))
os.environ["PYTHONPATH"] = str(REPO) + (
    os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit_only = os.environ.get("GUESTPKG_TESTS_UNIT_ONLY") == "1"
    keep, drop = [], []
    for item in items:
        needs_root = "tests/unit/" not in str(item.fspath).replace(os.sep, "/")
        if needs_root:
            item.add_marker(pytest.mark.root)
        (drop if unit_only and needs_root else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def test_config() -> Config:
    """Built-in defaults with every directory in the test area (never the machine's)."""
    from guestpkg.config import Config

    return Config.defaults(vardir=TEST_AREA / "vardir", cachedir=TEST_AREA / "cache",
                           logdir=TEST_AREA / "log", srcdir=TEST_AREA / "src",
                           trustdir=TEST_AREA / "etc" / "trust.d")


@pytest.fixture(scope="session")
def base_root(test_config: Config) -> BaseRoot:
    """A real buildd base root of this system's suite (buildroot ``default`` of the
    test vardir), made once by guestpkg's own create and reused across runs.  Test
    sessions running at the same time wait for each other's create on a lock."""
    import fcntl

    from guestpkg.buildroot import create_base_root, open_base_root, remove_base_root
    from guestpkg.errors import SystemStateError

    test_config.vardir.mkdir(parents=True, exist_ok=True)
    with open(TEST_AREA / "base-root.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return open_base_root(test_config, "default")
        except SystemStateError:
            if (test_config.vardir / "buildroots" / "default" / "root.json").exists():
                remove_base_root(test_config, "default")  # broken: start again
        return create_base_root(test_config, "default")


def _bootstrap_set(test_config: Config, arch: str) -> BootstrapSet:
    """The bootstrap set of *arch* in the test cache, made once through the front door
    (``guestpkg recipe bootstrap``) and reused across runs, as the base root is."""
    import fcntl
    import subprocess

    from guestpkg.errors import SystemStateError
    from guestpkg.recipe.bootstrap import open_set

    test_config.cachedir.mkdir(parents=True, exist_ok=True)
    with open(TEST_AREA / f"bootstrap-{arch}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return open_set(test_config, arch)
        except SystemStateError:
            env = {**os.environ, "GUESTPKG_CACHEDIR": str(test_config.cachedir),
                   "GUESTPKG_VARDIR": str(test_config.vardir),
                   "GUESTPKG_LOGDIR": str(test_config.logdir)}
            if arch == "i586":
                # The Debian mirror this suite runs against serves a bookworm-security
                # i386 Packages.xz that does not match its InRelease (apt: hash sum
                # mismatch): the i386 seeds come from bookworm and its updates only.
                env["GUESTPKG_BOOTSTRAP_SECURITY"] = "no"
            subprocess.run([sys.executable, "-m", "guestpkg", "recipe", "bootstrap",
                            "--arch", arch, "--update"], env=env, check=True)
        return open_set(test_config, arch)


@pytest.fixture(scope="session")
def bootstrap_x86_64(test_config: Config) -> BootstrapSet:
    return _bootstrap_set(test_config, "x86_64")


@pytest.fixture(scope="session")
def bootstrap_i586(test_config: Config) -> BootstrapSet:
    return _bootstrap_set(test_config, "i586")
