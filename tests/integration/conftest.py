# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures of the end-to-end tests: throwaway system roots, a local upstream web
server, guestpkg's own .debs.

- ``system_base``: the cached base system tree (made once with mmdebstrap).
- ``make_sysroot(buildroots=False, binds=())``: start a :class:`SystemRoot`, closed at
  the end of the test; ``buildroots=True`` gives guestpkg inside the ``base_root``
  fixture's buildroots (read-only) and layers (read-write) as
  ``/var/lib/guestpkg/{buildroots,layers}``, so it builds without running mmdebstrap.
- ``sysroot``: ``make_sysroot()``.
- ``local_upstream``: a :class:`LocalUpstream` on 127.0.0.1 serving an empty directory.
- ``hello_upstream``: the same, serving hello-2.10.tar.gz (hello's orig tarball).
- ``guestpkg_debs`` / ``guestpkg_deb``: guestpkg's own .debs / the ``guestpkg_*.deb``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support import debsrc, selfdeb
from tests.support.sysroot import Bind, SystemRoot, base_system, new_workdir
from tests.support.upstream import LocalUpstream

REPO = Path(__file__).resolve().parents[2]

#: Where guestpkg keeps its state inside a system root (its default vardir).
INNER_VARDIR = "/var/lib/guestpkg"
#: Where the test vardir's buildroots and layers are mounted inside a system root.
OUTER_VARDIR = "/srv/guestpkg-test-vardir"


@pytest.fixture(scope="session")
def system_base() -> Path:
    return base_system()


@pytest.fixture
def make_sysroot(request: pytest.FixtureRequest, system_base: Path,
                 tmp_path: Path) -> Iterator[Callable[..., SystemRoot]]:
    started: list[SystemRoot] = []

    def make(buildroots: bool = False, binds: Sequence[Bind] = ()) -> SystemRoot:
        extra = list(binds)
        if buildroots:
            extra += buildroot_binds(request.getfixturevalue("base_root"))
        root = SystemRoot(system_base, new_workdir(), extra)
        started.append(root)
        root.start()
        if buildroots:
            link_buildroots(root)
        return root

    yield make
    for root in reversed(started):
        root.close()


@pytest.fixture
def sysroot(make_sysroot: Callable[..., SystemRoot]) -> SystemRoot:
    return make_sysroot()


def buildroot_binds(base_root: Any) -> list[Bind]:
    """Bind mounts that give guestpkg inside a system root the test buildroots, under
    :data:`OUTER_VARDIR`: the ``buildroots`` directory read-only (with each
    generation's lock file read-write on top, since a fork takes a shared flock(2) on
    it; the lock works across the bind, so the host's ``update`` does not collect a
    generation in use inside either), and the ``layers`` cache read-write.

    :func:`link_buildroots` then points ``/var/lib/guestpkg/{buildroots,layers}`` at
    them with symlinks, not mounts, so that purging guestpkg inside (its postrm does
    ``rm -rf /var/lib/guestpkg``) removes two symlinks instead of failing on a mount
    point or emptying the host's layer cache.

    *base_root* is a :class:`guestpkg.buildroot.BaseRoot`, whose tree is
    ``<vardir>/buildroots/<name>/gen-<id>/`` (see :mod:`guestpkg.buildroot.roots`)."""
    buildroots = Path(base_root.path).parent.parent
    layers = buildroots.parent / "layers"
    layers.mkdir(parents=True, exist_ok=True)
    inner = f"{OUTER_VARDIR}/buildroots"
    binds = [Bind(buildroots, inner, readonly=True)]
    for generation in sorted(buildroots.glob("*/gen-*")):
        if not generation.is_dir():
            continue
        lock = generation.with_name(generation.name + ".lock")
        lock.touch()
        relative = lock.relative_to(buildroots)
        binds.append(Bind(lock, f"{inner}/{relative}", readonly=False))
    binds.append(Bind(layers, f"{OUTER_VARDIR}/layers", readonly=False))
    return binds


def link_buildroots(root: SystemRoot) -> None:
    """``/var/lib/guestpkg/buildroots`` and ``layers`` inside, as symlinks to the bind
    mounts that :func:`buildroot_binds` made."""
    root.shell(f'mkdir -p {INNER_VARDIR}\n'
               f'ln -sfn {OUTER_VARDIR}/buildroots {INNER_VARDIR}/buildroots\n'
               f'ln -sfn {OUTER_VARDIR}/layers {INNER_VARDIR}/layers')


@pytest.fixture
def local_upstream(tmp_path: Path) -> Iterator[LocalUpstream]:
    directory = tmp_path / "upstream"
    directory.mkdir()
    with LocalUpstream(directory) as upstream:
        yield upstream


@pytest.fixture
def hello_upstream(local_upstream: LocalUpstream) -> LocalUpstream:
    """Serves ``hello-2.10.tar.gz`` (the bytes of hello_2.10.orig.tar.gz) at its root,
    as https://ftp.gnu.org/gnu/hello/ does."""
    orig = next(debsrc.source_files("hello").glob("hello_*.orig.tar.gz"))
    version = orig.name.removeprefix("hello_").removesuffix(".orig.tar.gz")
    local_upstream.add_file(orig, f"hello-{version}.tar.gz")
    return local_upstream


@pytest.fixture(scope="session")
def guestpkg_debs() -> list[Path]:
    return selfdeb.build_self_debs(REPO)


@pytest.fixture(scope="session")
def guestpkg_deb(guestpkg_debs: list[Path]) -> Path:
    return selfdeb.main_deb(guestpkg_debs)
