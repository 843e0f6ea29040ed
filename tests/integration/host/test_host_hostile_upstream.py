# SPDX-License-Identifier: GPL-2.0-or-later
"""A hostile upstream against the APT hook, on a throwaway bookworm system with
guestpkg installed (issue 10, finding 8): the server's reason phrase carries escape
sequences; apt still exits 0 with the host configured, and neither apt's output, nor
guestpkg status, nor the state file gets them raw."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import hosts
from tests.support.sysroot import SystemRoot
from tests.support.upstream import Behaviour, LocalUpstream

pytestmark = pytest.mark.integration

HOST = "hello-installer"
STATE = f"/var/lib/guestpkg/hosts/{HOST}.json"
ESCAPED = "Not Found\\x1b]0;owned\\x07\\x1b[2J"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, upstream: LocalUpstream,
         system_base: Path, base_root: Any, guestpkg_debs: list[Path]) -> Iterator[SystemRoot]:
    host_debs = hosts.example_host_debs(tmp_path_factory.mktemp("hosts"), upstream.url)
    with hosts.system_with_guestpkg(system_base, base_root,
                                    [*guestpkg_debs, host_debs["2.10-3-1"]]) as system:
        yield system


def test_escapes_from_the_upstream_never_reach_apt_output_status_or_state(
        root: SystemRoot, upstream: LocalUpstream) -> None:
    upstream.behaviour = Behaviour.HOSTILE
    result = root.apt_install(HOST, preseed=f"{HOST} {HOST}/build-guest boolean true")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert upstream.downloads("hello-2.10.tar.gz") >= 1  # the hostile answer was given
    assert "\x1b" not in output and "\x07" not in output
    assert ESCAPED in output                          # shown, escaped, in apt's output
    root.wait_idle()
    assert root.dpkg_status(HOST) == "install ok installed"
    shown = root.run(["guestpkg", "status", HOST]).stdout
    assert "\x1b" not in shown and ESCAPED in shown
    last_error = json.loads(root.read_file(STATE))["failure"]["last_error"]
    assert "\x1b" not in last_error and ESCAPED in last_error
