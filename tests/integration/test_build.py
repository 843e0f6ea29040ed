# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build end to end: real bookworm source packages in real forks of the test
base root, their .debs inspected, built twice for reproducibility, and the layer
cache's second build asserted to run no apt.

Build systems: hello (autotools, from its .dsc), cjson (cmake, from its .dsc) and
readlike (pybuild, from an unpacked source tree; one of the few Python sources the test
mirror carries).  Each package is built twice in a module
fixture and the tests share the results.  hello's second build runs with real host ids
(``id_mapping = root``), its first in a user namespace (the default): the .debs must be
the same, and the layer the first made serves the second.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from guestpkg.build.deb import BuildOptions, BuildResult, build_package
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from tests.support import debsrc

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUIET = BuildOptions(tee=False)


def debs(result: BuildResult) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in result.artifacts if p.name.endswith(".deb")}


def deb_contents(path: Path) -> str:
    return subprocess.run(["dpkg-deb", "-c", str(path)], check=True, capture_output=True,
                          text=True).stdout


def deb_field(path: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(path), field], check=True,
                          capture_output=True, text=True).stdout.strip()


def build_twice(config: Config, source: Path, out: Path, options: BuildOptions = QUIET,
                second_config: Config | None = None) -> tuple[BuildResult, BuildResult]:
    first = build_package(config, source, out / "first", options)
    second = build_package(second_config or config, source, out / "second", options)
    return first, second


# --- hello: autotools, the layer cache ------------------------------------------
# The builds are the session fixture ``hello`` (tests/integration/conftest.py): the
# normal user's build (test_user_mode.py) is compared with them.

def test_hello_builds_and_its_deb_is_right(hello: tuple[BuildResult, BuildResult, bool]) -> None:
    first, _, _ = hello
    names = sorted(p.name for p in first.artifacts)
    assert names == ["hello-dbgsym_2.10-3_amd64.deb", "hello_2.10-3_amd64.build",
                     "hello_2.10-3_amd64.buildinfo", "hello_2.10-3_amd64.changes",
                     "hello_2.10-3_amd64.deb"]
    deb = first.changes.parent / "hello_2.10-3_amd64.deb" if first.changes else None
    assert deb is not None
    assert deb_field(deb, "Package") == "hello" and deb_field(deb, "Version") == "2.10-3"
    contents = deb_contents(deb)
    assert "./usr/bin/hello" in contents
    # Built by the unprivileged build user, packaged as root:root (rootless dh_builddeb)
    assert all(" root/root " in line for line in contents.splitlines())
    log = first.log_path.read_text()
    assert "dpkg-buildpackage" in log and "SOURCE_DATE_EPOCH=" in log
    assert first.log_path.parent == first.changes.parent


def test_hello_second_build_runs_no_apt(hello: tuple[BuildResult, BuildResult, bool]) -> None:
    first, second, removed = hello
    assert first.layer_key == second.layer_key is not None
    if removed:
        assert not first.layer_cached
        assert "into new layer" in first.log_path.read_text()
    assert second.layer_cached
    log = second.log_path.read_text()
    assert f"using cached build-dependency layer {second.layer_key}" in log
    # apt's own output is absent: nothing was resolved, fetched or unpacked
    for apt_says in ("Reading package lists", "Unpacking ", "Setting up ", "Get:"):
        assert apt_says not in log


def test_hello_is_reproducible(hello: tuple[BuildResult, BuildResult, bool]) -> None:
    first, second, _ = hello
    assert debs(first) and debs(first) == debs(second)


def test_hello_log_says_which_ids_ran(hello: tuple[BuildResult, BuildResult, bool]) -> None:
    first, second, _ = hello
    assert "guestpkg: sandbox ids: user namespace, uid 0-65535 inside = host uid " \
        in first.log_path.read_text()
    assert "guestpkg: sandbox ids: real root (no user namespace; id_mapping = root)" \
        in second.log_path.read_text()


# --- cjson: cmake ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cjson(test_config: Config, base_root: BaseRoot,
          tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, BuildResult]:
    return build_twice(test_config, debsrc.dsc_path("cjson"),
                       tmp_path_factory.mktemp("cjson"))


def test_cjson_cmake_build(cjson: tuple[BuildResult, BuildResult]) -> None:
    first, second = cjson
    built = debs(first)
    lib = next(n for n in built if n.startswith("libcjson1_"))
    contents = deb_contents(first.changes.parent / lib if first.changes else Path())
    assert "libcjson.so.1" in contents
    assert "-- Build files have been written to" in first.log_path.read_text()  # cmake ran
    assert built == debs(second)


# --- readlike: pybuild, from an unpacked source tree -------------------------------

@pytest.fixture(scope="module")
def readlike(test_config: Config, base_root: BaseRoot,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[BuildResult, BuildResult, Path]:
    top = tmp_path_factory.mktemp("readlike")
    (top / "src").mkdir()
    tree = debsrc.unpacked_source("readlike", top / "src")
    first, second = build_twice(test_config, tree, top)
    return first, second, tree


def test_pybuild_build_from_a_tree(readlike: tuple[BuildResult, BuildResult, Path]) -> None:
    first, second, tree = readlike
    [name] = debs(first)
    assert name.startswith("python3-readlike_") and name.endswith("_all.deb")
    deb = first.changes.parent / name if first.changes else Path()
    assert "/usr/lib/python3/dist-packages/readlike.py" in deb_contents(deb)
    assert "python3:any" in deb_field(deb, "Depends")
    assert "pybuild" in first.log_path.read_text()
    assert debs(first) == debs(second)
    # The caller's tree is left as it was: the build ran on a copy.
    assert not (tree / "debian" / "files").exists()
    assert not (tree / ".pybuild").exists()
