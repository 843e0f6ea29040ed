# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures shared by the fetch tests: each scenario of tests.support.upstreams served
by a real HTTP server on 127.0.0.1.  Test modules import them by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.upstream_server import Upstream, serve
from tests.support.upstreams import SCENARIOS, Scenario


@pytest.fixture(params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def upstream(tmp_path: Path, scenario: Scenario) -> Iterator[Upstream]:
    root = tmp_path / "www"
    root.mkdir()
    with serve(root) as server:
        scenario.write_web(root, server.url)
        yield server
