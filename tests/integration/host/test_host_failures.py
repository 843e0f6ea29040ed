# SPDX-License-Identifier: GPL-2.0-or-later
"""When building the guest goes wrong, on a throwaway bookworm system with guestpkg
already installed (so its APT hook runs): a checksum mismatch and an offline upstream
leave the host installed and configured, apt exits 0, the failure is shown in apt's
output and by guestpkg status, and a later apt run retries; an interrupted build
leaves the previous result in place and starts again.

"Time passes" between attempts by moving the recorded retry time into the past (the
backoff itself is unit-tested in tests/unit/host/test_host_state_plan.py)."""

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
SRC = f"/usr/src/{HOST}"

# Run inside the root: the retry time of the host's failure is now.
LET_TIME_PASS = f"""
import json
path = "{STATE}"
state = json.load(open(path))
state["failure"]["next_retry_at"] = 0
json.dump(state, open(path, "w"))
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, upstream: LocalUpstream,
         system_base: Path, base_root: Any, guestpkg_debs: list[Path]) -> Iterator[SystemRoot]:
    work = tmp_path_factory.mktemp("hosts")
    host_debs = hosts.example_host_debs(work, upstream.url)
    triggers = [hosts.tiny_deb(work, f"trigger-{n}") for n in "abc"]
    with hosts.system_with_guestpkg(system_base, base_root,
                                    [*guestpkg_debs, host_debs["2.10-3-1"], *triggers]) as system:
        yield system


def status(root: SystemRoot) -> dict[str, Any]:
    return hosts.status_row(root, HOST)


def state(root: SystemRoot) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(root.read_file(STATE))
    return data


def test_checksum_mismatch_keeps_the_host_configured(root: SystemRoot,
                                                     upstream: LocalUpstream) -> None:
    upstream.behaviour = Behaviour.CORRUPT
    result = root.apt_install(HOST, preseed=f"{HOST} {HOST}/build-guest boolean true")
    output = result.stdout + result.stderr
    assert result.returncode == 0
    assert "SHA256 mismatch" in output and "will retry after" in output
    root.wait_idle()
    assert root.dpkg_status(HOST) == "install ok installed"
    assert root.dpkg_status("hello") is None
    row = status(root)
    assert row["state"] == "waiting to retry"
    assert row["failures"] == 1 and "SHA256 mismatch" in row["last_error"]
    assert not root.exists(SRC)
    assert "last error (1 failures):" in root.run(["guestpkg", "status", HOST]).stdout


def test_offline_upstream_is_recorded_and_retried_later(root: SystemRoot,
                                                        upstream: LocalUpstream) -> None:
    upstream.behaviour = Behaviour.NORMAL
    upstream.stop()
    # Before the retry time, an apt run only reminds of the failure.
    result = root.apt_install("trigger-a")
    assert "next try after" in result.stdout + result.stderr
    assert state(root)["failure"]["count"] == 1
    root.run(["python3", "-c", LET_TIME_PASS])
    result = root.apt_install("trigger-b")
    root.wait_idle()
    assert result.returncode == 0
    failure = state(root)["failure"]
    assert failure["count"] == 2
    assert "127.0.0.1" in failure["last_error"]
    # Backoff: the second wait is twice the first (retry_delay, an hour by default).
    assert failure["next_retry_at"] - failure["last_at"] == pytest.approx(7200, abs=1)
    assert root.dpkg_status(HOST) == "install ok installed"


def test_a_later_apt_run_retries_and_installs(root: SystemRoot,
                                              upstream: LocalUpstream) -> None:
    upstream.start()
    root.run(["python3", "-c", LET_TIME_PASS])
    result = root.apt_install("trigger-c")
    output = result.stdout + result.stderr
    assert "installed hello 2.10-3~local" in output
    root.wait_idle()
    assert root.installed_version("hello") == "2.10-3~local"
    row = status(root)
    assert (row["state"], row["failures"], row["last_error"]) == ("installed", 0, None)


def test_an_interrupted_build_starts_again(root: SystemRoot) -> None:
    previous = root.run(["sh", "-c", f"ls -i {SRC}/*.deb"]).stdout
    root.run(["sh", "-c", "setsid guestpkg rebuild hello-installer > /tmp/rebuild.log 2>&1 "
              "< /dev/null & echo $! > /tmp/rebuild.pid"])
    # Wait until the guest's build is really under way (dh_auto_configure runs, in the
    # sandbox's pid namespace, which the root's /proc shows), then kill.  The brackets
    # keep this loop's own command line from matching.
    root.run(["sh", "-c", "for i in $(seq 600); do grep -qsa 'dh_auto_[c]onfigure' "
              "/proc/[0-9]*/cmdline && exit 0; sleep 0.5; done; cat /tmp/rebuild.log; "
              "exit 1"], timeout_s=400)
    root.run(["sh", "-c", "kill -KILL $(cat /tmp/rebuild.pid)"])
    root.wait_idle()
    assert state(root)["in_progress"] == "building"
    assert root.run(["sh", "-c", f"ls -i {SRC}/*.deb"]).stdout == previous
    assert root.installed_version("hello") == "2.10-3~local"

    result = root.run(["guestpkg", "rebuild", HOST])
    assert "installed hello 2.10-3~local" in result.stderr
    assert state(root)["in_progress"] is None
    assert root.run(["sh", "-c", f"ls -i {SRC}/*.deb"]).stdout != previous
    assert root.run(["dpkg", "--audit"]).stdout == ""
    assert status(root)["state"] == "installed"
