# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures of the end-to-end tests: throwaway system roots, a local upstream web
server, guestpkg's own .debs.

- ``system_base``: the cached base system tree (made once with mmdebstrap).
- ``make_sysroot(buildroots=False, binds=(), builder=False)``: start a
  :class:`SystemRoot`, closed at the end of the test; ``buildroots=True`` gives
  guestpkg inside the ``base_root`` fixture's buildroots (read-only) and layers
  (read-write) as ``/var/lib/guestpkg/{buildroots,layers}``, so it builds without
  running mmdebstrap.
- ``sysroot``: ``make_sysroot()``.
- ``builder_sysroot``: ``make_sysroot(builder=True)``, a root over a second cached base
  with build-essential and debhelper, for ``SystemRoot.build_debs``.
- ``local_upstream``: a :class:`LocalUpstream` on 127.0.0.1 serving an empty directory.
- ``hello_upstream``: the same, serving hello-2.10.tar.gz (hello's orig tarball).
- ``guestpkg_debs`` / ``guestpkg_deb``: guestpkg's own .debs / the ``guestpkg_*.deb``.
- ``example_set``: the example recipe set (``recipes/``) built locally once per
  session, for every architecture it has (:mod:`tests.support.examples`).
- ``hello``: two builds of hello from its .dsc as root, in a user namespace and with
  real root ids (test_build.py checks them, test_user_mode.py compares a normal
  user's build with them), and whether hello's layer was removed first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from guestpkg.build import layers
from guestpkg.build.deb import BuildOptions, BuildResult, build_package
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from guestpkg.recipe.bootstrap import BootstrapSet
from tests.integration.fetch_fixtures import scenario, upstream  # noqa: F401 (the fetch tests' fixtures)
from tests.support import debsrc, selfdeb
from tests.support.examples import ExampleBuild, build_examples
from tests.support.sysroot import (
    BUILDER_PACKAGES,
    Bind,
    SystemRoot,
    base_system,
    buildroot_binds,
    link_buildroots,
    new_workdir,
)
from tests.support.upstream import LocalUpstream

REPO = Path(__file__).resolve().parents[2]



@pytest.fixture(scope="session")
def system_base() -> Path:
    return base_system()


@pytest.fixture
def make_sysroot(request: pytest.FixtureRequest,
                 system_base: Path) -> Iterator[Callable[..., SystemRoot]]:
    started: list[SystemRoot] = []

    def make(buildroots: bool = False, binds: Sequence[Bind] = (),
             builder: bool = False) -> SystemRoot:
        base = base_system(BUILDER_PACKAGES) if builder else system_base
        extra = list(binds)
        if buildroots:
            base_root = request.getfixturevalue("base_root")
            extra += buildroot_binds(Path(base_root.path).parent.parent)
        root = SystemRoot(base, new_workdir(), extra)
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


@pytest.fixture
def builder_sysroot(make_sysroot: Callable[..., SystemRoot]) -> SystemRoot:
    """A system root with build-essential and debhelper, for :meth:`SystemRoot.build_debs`
    (not the user's machine: build host packages here, install them in ``sysroot``)."""
    return make_sysroot(builder=True)


@pytest.fixture
def local_upstream(tmp_path: Path) -> Iterator[LocalUpstream]:
    directory = tmp_path / "upstream"
    directory.mkdir()
    with LocalUpstream(directory) as server:
        yield server


@pytest.fixture
def hello_upstream(local_upstream: LocalUpstream) -> LocalUpstream:
    """Serves ``hello-2.10.tar.gz`` (the bytes of hello_2.10.orig.tar.gz) at its root,
    as https://ftp.gnu.org/gnu/hello/ does."""
    orig = next(debsrc.source_files("hello").glob("hello_*.orig.tar.gz"))
    version = orig.name.removeprefix("hello_").removesuffix(".orig.tar.gz")
    local_upstream.add_file(orig, f"hello-{version}.tar.gz")
    return local_upstream


@pytest.fixture(scope="session")
def hello(test_config: Config, base_root: BaseRoot,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, BuildResult, bool]:
    """Two builds of hello from its .dsc.  hello's layer is removed first when no
    other build uses it, so that the first build really makes it.  The first runs in
    a user namespace (the default), with --run-lintian, --run-piuparts and
    --run-autopkgtest (test_build_postbuild.py reads their results: one hello build
    less in the suite), the second with real host ids."""
    dsc = debsrc.dsc_path("hello")
    removed = True
    for layer in layers.list_layers(test_config):
        # hello's own layer: not its cross-build layer (test_build_cross.py), which
        # has the same tools but a variant (--host-arch) and is costly to remake.
        if layer.generation == base_root.generation and not layer.metadata.variant and \
                any(p.startswith("texinfo:") for p in layer.packages) and \
                any(p.startswith("help2man:") for p in layer.packages):
            removed = layers.remove_layer(test_config, layer) and removed
    out = tmp_path_factory.mktemp("hello")
    quiet = BuildOptions(tee=False)
    first = build_package(test_config, dsc, out / "first", BuildOptions(
        tee=False, checks=frozenset({"lintian", "piuparts", "autopkgtest"})))
    second = build_package(test_config.replace(id_mapping="root"), dsc, out / "second", quiet)
    return first, second, removed


@pytest.fixture(scope="session")
def guestpkg_debs() -> list[Path]:
    return selfdeb.build_self_debs(REPO)


@pytest.fixture(scope="session")
def guestpkg_deb(guestpkg_debs: list[Path]) -> Path:
    return selfdeb.main_deb(guestpkg_debs)


@pytest.fixture(scope="session")
def example_set(tmp_path_factory: pytest.TempPathFactory, test_config: Config,
                bootstrap_x86_64: BootstrapSet, bootstrap_i586: BootstrapSet) -> ExampleBuild:
    return build_examples(tmp_path_factory.mktemp("example-set"), test_config)
