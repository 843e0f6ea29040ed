# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build --ccache on hello from its bookworm .dsc: ccache comes into the
layer, the compiler runs through it into VARDIR/ccache/<buildroot>/hello, and a
second build from that cache gives the same .debs."""

from __future__ import annotations

from pathlib import Path

import pytest

from guestpkg.build.deb import BuildOptions, build_package
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
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
    debs = {p.name: p.read_bytes() for p in first.artifacts if p.name.endswith(".deb")}
    assert debs == {p.name: p.read_bytes() for p in second.artifacts if p.name.endswith(".deb")}
