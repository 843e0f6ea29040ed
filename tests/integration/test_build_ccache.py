# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build --ccache on hello from its bookworm .dsc: ccache comes into the
layer, the compiler runs through it into VARDIR/ccache/<buildroot>/hello, a second
build hits that cache (ccache's statistics of each build are in its log) and gives the
same .debs; another source package's build gets a cache of its own and sees none of
hello's results."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guestpkg.build.deb import BuildOptions, build_package
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from tests.integration.test_build_failures import make_tiny
from tests.support import debsrc

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ccache_per_source_package(test_config: Config, base_root: BaseRoot,
                                   tmp_path: Path) -> None:
    options = BuildOptions(tee=False, ccache=True)
    dsc = debsrc.dsc_path("hello")
    first = build_package(test_config, dsc, tmp_path / "one", options)
    cache = test_config.vardir / "ccache" / base_root.name / "hello"
    assert first.layer_key is not None
    log = first.log_path.read_text()
    assert f"ccache: {cache} at /ccache" in log
    assert "CCACHE_DIR=/ccache" in log and "PATH=/usr/lib/ccache:" in log
    results = sorted(p for p in cache.rglob("*") if p.is_file() and p.name.endswith("R"))
    assert results, "ccache stored no compilation result"
    second = build_package(test_config, dsc, tmp_path / "two", options)
    # ccache's statistics of the second build alone (zeroed before it): it hit the cache
    stats = second.log_path.read_text().split("| Build ")[1]
    hits = re.search(r"^\s+Hits:\s+(\d+) / ", stats, re.M)
    assert hits is not None and int(hits.group(1)) > 0, stats[-2000:]
    debs = {p.name: p.read_bytes() for p in first.artifacts if p.name.endswith(".deb")}
    assert debs == {p.name: p.read_bytes() for p in second.artifacts if p.name.endswith(".deb")}


def test_another_source_package_never_sees_the_cache(test_config: Config, base_root: BaseRoot,
                                                     tmp_path: Path) -> None:
    """tiny's build, with --ccache, gets VARDIR/ccache/<buildroot>/tiny and finds no
    compilation result there, whatever hello's cache holds."""
    tree = make_tiny(tmp_path / "src", build="@echo ccache results visible: "
                     "$$(find $$CCACHE_DIR -type f -name '*R' | wc -l)")
    result = build_package(test_config, tree, tmp_path / "out",
                           BuildOptions(tee=False, ccache=True))
    log = result.log_path.read_text()
    assert f"ccache: {test_config.vardir / 'ccache' / base_root.name / 'tiny'} at /ccache" in log
    assert "\nccache results visible: 0\n" in log
