# SPDX-License-Identifier: GPL-2.0-or-later
"""A failure that lasts becomes permanent: apt runs stop retrying (and stop costing a
download), guestpkg status says so and names the way out, and ``guestpkg rebuild``
takes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support import debsrc, hosts
from tests.support.sysroot import SystemRoot, buildroot_binds, link_buildroots, new_workdir
from tests.support.upstream import Behaviour, LocalUpstream

pytestmark = pytest.mark.integration

HOST = "hello-installer"
STATE = f"/var/lib/guestpkg/hosts/{HOST}.json"

# Inside the root: the first failure was long ago and its retry time has come.
LET_DAYS_PASS = f"""
import json
path = "{STATE}"
state = json.load(open(path))
state["failure"]["next_retry_at"] = 0
state["failure"]["first_at"] = 1
json.dump(state, open(path, "w"))
"""


def failure(root: SystemRoot) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(root.read_file(STATE))["failure"]
    return data


def test_permanent_failure_and_the_way_out(
        tmp_path: Path, local_upstream: LocalUpstream, system_base: Path, base_root: Any,
        guestpkg_debs: list[Path]) -> None:
    orig = next(debsrc.source_files("hello").glob("hello_*.orig.tar.gz"))
    local_upstream.add_file(orig, "hello-2.10.tar.gz")
    host_debs = hosts.example_host_debs(tmp_path / "hosts", local_upstream.url)
    triggers = [hosts.tiny_deb(tmp_path, f"trigger-{n}") for n in "ab"]
    root = SystemRoot(system_base, new_workdir(),
                      buildroot_binds(Path(base_root.path).parent.parent))
    root.start()
    try:
        link_buildroots(root)
        root.add_debs([*guestpkg_debs, host_debs["2.10-3-1"], *triggers])
        root.apt_install("guestpkg")
        hosts.ensure_hook_installed(root)
        local_upstream.behaviour = Behaviour.CORRUPT
        root.apt_install(HOST, preseed=f"{HOST} {HOST}/build-guest boolean true")
        root.wait_idle()
        assert failure(root)["count"] == 1 and not failure(root)["permanent"]

        root.run(["python3", "-c", LET_DAYS_PASS])
        result = root.apt_install("trigger-a")
        assert f"no more automatic retries: guestpkg rebuild {HOST}" in \
            result.stdout + result.stderr
        root.wait_idle()
        assert failure(root)["permanent"] and failure(root)["count"] == 2

        local_upstream.clear_log()
        root.run(["python3", "-c", LET_DAYS_PASS])
        root.apt_install("trigger-b")
        root.wait_idle()
        assert local_upstream.requests == []  # no more attempts
        assert failure(root)["count"] == 2
        text = root.run(["guestpkg", "status", HOST]).stdout
        assert f"{HOST}: failed permanently" in text
        assert f"to try again: guestpkg rebuild {HOST}" in text

        local_upstream.behaviour = Behaviour.NORMAL
        root.run(["guestpkg", "rebuild", HOST])
        assert root.installed_version("hello") == "2.10-3~local"
        assert f"{HOST}: installed" in root.run(["guestpkg", "status", HOST]).stdout
    finally:
        root.close()
