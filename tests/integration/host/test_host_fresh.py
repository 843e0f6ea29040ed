# SPDX-License-Identifier: GPL-2.0-or-later
"""A host package on a fresh machine, where nothing of guestpkg exists (issue 9): no
buildroot, no layers, no state, none of it brought in from this machine.  The system is
a plain copy of the cached base (a real file system, as a user's disk, not an overlay),
its apt going through tools/run-example's caching proxy for Debian's .debs.

The scenarios follow each other on one system, as they would on a user's machine:

1. one apt run installs guestpkg and the host, consent preseeded, while the upstream
   server is down: apt exits 0; before fetching, the job made the buildroot itself
   (with progress lines) and checked that the guest's build dependencies can be
   installed; the failure records the unreachable server, and the host's own log is
   written (and no message names the host twice);
2. the server is back: ``guestpkg status`` notices and retries at once instead of
   after the backoff; but the sandbox of the build-dependency install can't be set up
   (guestpkg's fork directory is on a file system that can't hold an overlay's upper
   directory, as in issue 9's report): the step and the OS error are shown by
   guestpkg status, in the host's log and in the next apt run's output, never a bare
   "exit status 125";
3. the user fixes that and runs ``guestpkg buildroot update``: the next apt run retries
   at once (the buildroot the failure depended on changed); installing the build
   dependencies meets a 404 for a .deb that the buildroot's lists name (the proxy
   answers so once, as a mirror that moved on does), so guestpkg updates the buildroot
   and builds again, and the guest is installed;
4. a host whose guest needs a package that the system's apt sources don't have: the
   failure names it, and the upstream was not even contacted.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guestpkg.host.buildenv import PROGRESS_EVERY_S
from tests.support import debsrc, hosts
from tests.support.debcache import DebCache, apt_proxy_conf
from tests.support.paths import TEST_CACHE
from tests.support.sysroot import SystemRoot, new_workdir
from tests.support.upstream import LocalUpstream

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HOST = "hello-installer"
CONSENT = f"{HOST} {HOST}/build-guest boolean true"
STATE = f"/var/lib/guestpkg/hosts/{HOST}.json"
HOST_LOG = f"/var/log/guestpkg/hosts/{HOST}.log"
BUILDROOT = "/var/lib/guestpkg/buildroots/default/root.json"
FORKS = "/var/lib/guestpkg/forks"
NEEDY = "bc-installer"
MISSING = "guestpkg-tests-no-such-package"
NOTHING_OF_GUESTPKG = ("/var/lib/guestpkg", "/var/cache/guestpkg", "/var/log/guestpkg",
                       "/etc/guestpkg", f"/usr/src/{HOST}")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, upstream: LocalUpstream,
         system_base: Path, guestpkg_debs: list[Path]) -> Iterator[SystemRoot]:
    work = tmp_path_factory.mktemp("hosts")
    watch = f"version=4\n{upstream.url} hello-@ANY_VERSION@@ARCHIVE_EXT@\n"
    host_deb = hosts.build_host(hosts.new_host(hosts.guest_tree(work / "src", watch=watch),
                                               work / "src" / HOST))
    triggers = [hosts.tiny_deb(work, f"trigger-{n}") for n in "ab"]
    # Another guest (hello is installed by then), whose upstream is never asked for.
    guest = hosts.guest_tree(work / "needy", "bc", watch=f"version=4\n{upstream.url} "
                             "bc-@ANY_VERSION@@ARCHIVE_EXT@\n")
    control = guest / "debian" / "control"
    control.write_text(control.read_text().replace(
        "Build-Depends: ", f"Build-Depends: {MISSING}, ", 1))
    needy_deb = hosts.build_host(hosts.new_host(guest, work / "needy" / NEEDY, NEEDY))
    mirror = urllib.parse.urlsplit(debsrc.host_mirror()).hostname or "deb.debian.org"
    with DebCache(TEST_CACHE / "debs", {mirror}) as cache:
        system = SystemRoot(system_base, new_workdir(), copy=True)
        system.debcache = cache  # type: ignore[attr-defined]
        system.start()
        try:
            system.write_file("/etc/apt/apt.conf.d/00guestpkg-tests-proxy",
                              apt_proxy_conf(cache))
            system.hide_archive_packages("hello")
            system.add_debs([*guestpkg_debs, host_deb, needy_deb, *triggers])
            yield system
        finally:
            system.close()


def status(root: SystemRoot) -> dict[str, Any]:
    return hosts.status_row(root, HOST)


def failure(root: SystemRoot) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(root.read_file(STATE))["failure"]
    return data


def test_one_apt_run_on_a_fresh_system_while_the_upstream_is_down(
        root: SystemRoot, upstream: LocalUpstream) -> None:
    assert [p for p in NOTHING_OF_GUESTPKG if root.exists(p)] == []
    upstream.stop()
    result = root.apt_install("guestpkg", HOST, preseed=CONSENT)
    assert result.returncode == 0
    assert f"{HOST}: build and install guest 2.10-3~local after this package run" in \
        result.stdout + result.stderr
    root.wait_idle(timeout_s=900)
    assert root.dpkg_status(HOST) == "install ok installed"
    row = status(root)
    assert row["state"] == "waiting to retry" and row["failures"] == 1, row
    assert upstream.url.rstrip("/") in row["last_error"]
    assert failure(root)["unreachable"] == upstream.url.rstrip("/")
    # The message points at the host's log, and the log is there, with the failure.
    assert HOST_LOG in row["last_error"] or HOST_LOG in root.read_file(HOST_LOG)
    host_log = root.read_file(HOST_LOG)
    assert "build and install guest 2.10-3~local failed" in host_log
    main_log = root.read_file("/var/log/guestpkg/guestpkg.log")
    assert f"{HOST}: {HOST}:" not in main_log and f"{HOST}: {HOST}:" not in host_log
    # Before the upstream, the job made the build environment and resolved the
    # guest's build dependencies in it (what the build needs, checked first).
    assert root.exists(BUILDROOT), "the job did not make the buildroot"
    assert "making the build environment (buildroot 'default'), once" in host_log
    made = re.search(r"made the build environment in (\d+) s", host_log)
    assert made, host_log
    # The progress line comes every PROGRESS_EVERY_S while mmdebstrap works (its timing
    # is unit-tested in test_host_recovery); a creation from cached .debs on a quiet
    # machine can be quicker than that.
    if int(made.group(1)) > PROGRESS_EVERY_S + 5:
        assert "still making the build environment (" in host_log
    assert f"{HOST}: the build dependencies can be installed" in host_log


def test_server_back_buildroot_made_by_the_job_sandbox_failure_says_why(
        root: SystemRoot, upstream: LocalUpstream) -> None:
    # guestpkg's forks directory on an overlayfs, which can't hold another overlay's
    # upper directory (overlayfs(5)): a sandbox set-up failure, inside the system's
    # private mount namespace only.
    root.shell(f"mkdir -p /tmp/ovl/lower /tmp/ovl/upper /tmp/ovl/work {FORKS}\n"
               "mount -t overlay overlay -o lowerdir=/tmp/ovl/lower,upperdir=/tmp/ovl/upper,"
               f"workdir=/tmp/ovl/work {FORKS}")
    upstream.start()
    shown = root.run(["guestpkg", "status", HOST]).stdout
    assert f"{HOST}: retrying now" in shown, shown
    assert "reachable again" in shown
    root.wait_idle(timeout_s=1800)
    row = status(root)
    assert row["failures"] == 2 and row["state"] == "waiting to retry", row
    reason = "could not be set up: mount the root (overlay): EINVAL"
    assert reason in row["last_error"], row["last_error"]
    assert "exit status 125" not in row["last_error"]
    assert reason in root.read_file(HOST_LOG)
    assert failure(root)["buildroot"] not in ("", "none")
    # The next apt run shows the reason in the hook's line, and waits (nothing changed).
    result = root.apt_install("trigger-a")
    output = result.stdout + result.stderr
    assert result.returncode == 0
    assert reason in output and "next try after" in output, output
    assert status(root)["failures"] == 2


def test_after_the_user_updates_the_buildroot_the_next_apt_run_retries_at_once(
        root: SystemRoot) -> None:
    root.run(["umount", FORKS])
    root.run(["guestpkg", "buildroot", "update"], timeout_s=1800)
    cache: DebCache = root.debcache  # type: ignore[attr-defined]
    cache.gone_once.add("texinfo")  # a build dependency of hello
    result = root.apt_install("trigger-b")
    output = result.stdout + result.stderr
    assert result.returncode == 0
    assert "the buildroot was made or updated since: retrying now" in output, output
    root.wait_idle(timeout_s=1800)
    assert [name.split("_")[0] for name in cache.refused] == ["texinfo"]
    host_log = root.read_file(HOST_LOG)
    assert "updating the buildroot and trying again" in host_log
    assert root.installed_version("hello") == "2.10-3~local"
    row = status(root)
    assert (row["state"], row["failures"], row["last_error"]) == ("installed", 0, None)


def test_a_missing_build_dependency_is_named_before_the_upstream_is_fetched(
        root: SystemRoot, upstream: LocalUpstream) -> None:
    upstream.clear_log()
    result = root.apt_install(NEEDY, preseed=f"{NEEDY} {NEEDY}/build-guest boolean true")
    assert result.returncode == 0
    root.wait_idle(timeout_s=900)
    row: dict[str, Any] = json.loads(
        root.run(["guestpkg", "status", "--json", NEEDY]).stdout)[0]
    assert row["state"] == "waiting to retry", row
    assert f"unsatisfiable build dependencies: {MISSING}" in row["last_error"]
    assert upstream.requests == []
    # Every place that shows it names the command that retries now.
    assert f"to retry now: guestpkg rebuild {NEEDY}" in \
        root.read_file(f"/var/log/guestpkg/hosts/{NEEDY}.log")
    assert f"to try again: guestpkg rebuild {NEEDY}" in \
        root.run(["guestpkg", "status", NEEDY]).stdout
