# SPDX-License-Identifier: GPL-2.0-or-later
"""Fixtures of the host-package tests (tests/support/hosts.py has the helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import hosts
from tests.support.upstream import LocalUpstream


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    """hello's upstream (:func:`tests.support.hosts.hello_upstream`), one server per
    test module; a module that wants another defines its own."""
    with hosts.hello_upstream(tmp_path_factory.mktemp("upstream")) as server:
        yield server
