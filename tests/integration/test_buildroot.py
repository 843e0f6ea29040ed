# SPDX-License-Identifier: GPL-2.0-or-later
"""Base roots on real mmdebstrap trees: create, list, update, remove."""

from __future__ import annotations

import json
import subprocess

import pytest

from guestpkg.buildroot import BaseRoot, list_base_roots, open_base_root
from guestpkg.buildroot.roots import METADATA, generations, reap_buildroots
from guestpkg.config import Config
from guestpkg.errors import SystemStateError
from tests.support.debsrc import host_codename


def test_base_root_is_a_buildd_tree_of_this_system(base_root: BaseRoot) -> None:
    assert base_root.suite == host_codename()
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert base_root.arch == arch
    tree = base_root.path
    # buildd variant: build-essential and apt are installed.
    status = (tree / "var/lib/dpkg/status").read_text()
    for package in ("build-essential", "apt", "dpkg-dev"):
        assert f"Package: {package}\nStatus: install ok installed" in status
    # The package lists stay, so builds resolve build dependencies without apt update.
    lists = [p.name for p in (tree / "var/lib/apt/lists").glob("*_Packages")]
    assert any(f"_dists_{base_root.suite}_main_binary-{arch}_Packages" in n for n in lists)


def test_base_root_has_only_the_debian_sources(base_root: BaseRoot) -> None:
    text = (base_root.path / "etc/apt/sources.list").read_text()
    suites = [line.split()[2] for line in text.splitlines() if line.startswith("deb ")]
    family = {base_root.suite, f"{base_root.suite}-updates", f"{base_root.suite}-security"}
    assert suites and set(suites) <= family and base_root.suite in suites
    assert "nodesource" not in text and "cloud" not in text
    assert list(base_root.sources) == [x for x in text.splitlines() if x.startswith("deb ")]


def test_base_root_has_the_build_user(base_root: BaseRoot) -> None:
    passwd = (base_root.path / "etc/passwd").read_text()
    entry = next(x for x in passwd.splitlines()
                 if x.startswith(base_root.build_user + ":"))
    assert entry.split(":")[2:4] == [str(base_root.build_uid)] * 2


def test_open_and_list(test_config: Config, base_root: BaseRoot) -> None:
    assert open_base_root(test_config, "default") == base_root
    names = [r.name for r in list_base_roots(test_config)]
    assert "default" in names
    data = json.loads((base_root.directory / METADATA).read_text())
    assert data["generation"] == base_root.generation
    assert base_root.path in generations(base_root.directory)


def test_missing_root_says_how_to_create_it(test_config: Config) -> None:
    with pytest.raises(SystemStateError) as info:
        open_base_root(test_config, "no-such-root")
    assert "guestpkg buildroot create --buildroot no-such-root" in (info.value.hint or "")


def test_bad_name_is_refused(test_config: Config) -> None:
    from guestpkg.errors import UsageError

    with pytest.raises(UsageError):
        open_base_root(test_config, "../etc")


def test_interrupted_create_leaves_nothing_that_looks_like_a_root(
        test_config: Config, base_root: BaseRoot) -> None:
    top = test_config.vardir / "buildroots"
    left = top / ".tmp-half.abc123"
    (left / "gen-x" / "etc").mkdir(parents=True)
    assert "half" not in [r.name for r in list_base_roots(test_config)]
    reap_buildroots(test_config)
    assert not left.exists()
    assert open_base_root(test_config, "default") == base_root


