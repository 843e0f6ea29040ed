# SPDX-License-Identifier: GPL-2.0-or-later
"""The host/guest lifecycle end to end, on a throwaway bookworm system driven with its
own apt, dpkg and debconf: guestpkg's .deb and the example host for hello (built with
dh_guestpkg, its watch file pointing at an upstream on 127.0.0.1) in a local apt
repository, the guest built for real in guestpkg's sandbox.

The tests of this module share one system and run in order, one rule of docs/design.md
each, as a user would meet them: install guestpkg and the host in one apt run; a
host-only upgrade; a guest revision upgrade (built and installed from the APT hook); the
user removes the guest; dpkg-reconfigure; removing the host; purging it, with a
piuparts-like check that nothing of the host or its guest is left behind.
Consent defaulting to no has its own system (no build at all).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_piuparts_guestpkg import PACKAGE_MANAGER_STATE
from tests.support import debsrc, hosts
from tests.support.sysroot import (
    SystemRoot,
    buildroot_binds,
    compare_trees,
    link_buildroots,
    new_workdir,
)
from tests.support.upstream import LocalUpstream

pytestmark = pytest.mark.integration

HOST = "hello-installer"
CONSENT = f"{HOST} {HOST}/build-guest boolean true"
SRC = f"/usr/src/{HOST}"
#: guestpkg's own state, locks, caches and logs, which stay while guestpkg does, and
#: the range of subordinate ids its postinst adds to /etc/subuid and /etc/subgid;
#: nothing of the host's (its state, pending marker, work space, log) may stay after
#: a purge.
GUESTPKG_OWN_FILES = rf"^(/var/(lib|cache|log)/guestpkg/(?!.*{HOST}).*|/etc/sub[ug]id)$"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalUpstream]:
    directory = tmp_path_factory.mktemp("upstream")
    with LocalUpstream(directory) as server:
        orig = next(debsrc.source_files("hello").glob("hello_*.orig.tar.gz"))
        server.add_file(orig, "hello-2.10.tar.gz")
        yield server


@pytest.fixture(scope="module")
def host_debs(tmp_path_factory: pytest.TempPathFactory,
              upstream: LocalUpstream) -> dict[str, Path]:
    return hosts.example_host_debs(tmp_path_factory.mktemp("hosts"), upstream.url)


def start_root(system_base: Path, base_root: Any, guestpkg_debs: list[Path],
               host_debs: dict[str, Path], with_buildroots: bool = True) -> SystemRoot:
    binds = buildroot_binds(Path(base_root.path).parent.parent) if with_buildroots else []
    root = SystemRoot(system_base, new_workdir(), binds)
    root.start()
    if with_buildroots:
        link_buildroots(root)
    root.add_debs([*guestpkg_debs, host_debs["2.10-3-1"]])
    return root


@pytest.fixture(scope="module")
def root(system_base: Path, base_root: Any, guestpkg_debs: list[Path],
         host_debs: dict[str, Path]) -> Iterator[SystemRoot]:
    system = start_root(system_base, base_root, guestpkg_debs, host_debs)
    try:
        yield system
    finally:
        system.close()


def status(root: SystemRoot) -> dict[str, Any]:
    rows = json.loads(root.run(["guestpkg", "status", "--json", HOST]).stdout)
    assert len(rows) == 1
    row: dict[str, Any] = rows[0]
    return row


def deb_identity(root: SystemRoot) -> str:
    return root.run(["sh", "-c", f"ls -i {SRC}/*.deb"]).stdout


@pytest.fixture(scope="module")
def before(root: SystemRoot) -> dict[str, dict[str, object]]:
    return root.tree_snapshot(contents=True)


def test_guestpkg_and_host_in_one_apt_run_install_the_guest(
        root: SystemRoot, before: dict[str, dict[str, object]]) -> None:
    # guestpkg comes in as the host's dependency: apt read its configuration before
    # guestpkg was unpacked, so no hook of ours runs in this apt run; the detached job
    # started by the host's postinst waits for apt to exit and installs with apt-get.
    result = root.apt_install(HOST, preseed=CONSENT)
    assert "after this package run" in result.stdout + result.stderr
    assert root.dpkg_status(HOST) == "install ok installed"
    root.wait_idle()
    hosts.ensure_hook_installed(root)
    assert root.installed_version("hello") == "2.10-3~local"
    assert root.run(["hello"]).stdout == "Hello, world!\n"
    depends = root.run(["dpkg-query", "-W", "-f=${Depends}", "hello"]).stdout
    assert depends.split(", ")[-1] == HOST
    files = root.run(["ls", SRC]).stdout.split()
    assert "hello_2.10-3~local_amd64.deb" in files
    assert any(f.endswith(".dcfpkg") for f in files)
    row = status(root)
    assert (row["consent"], row["state"], row["installed_version"]) == \
        (True, "installed", "2.10-3~local")
    assert not root.exists(f"/var/lib/guestpkg/pending/{HOST}")


def test_host_only_bump_does_not_rebuild(root: SystemRoot, host_debs: dict[str, Path]) -> None:
    built = deb_identity(root)
    root.add_debs([host_debs["2.10-3-2"]])
    result = root.apt_install(HOST)
    root.wait_idle()
    assert root.installed_version(HOST) == "2.10-3-2"
    assert root.installed_version("hello") == "2.10-3~local"
    assert "building" not in result.stdout + result.stderr
    assert deb_identity(root) == built


def test_guest_revision_bump_rebuilds_and_upgrades_from_the_hook(
        root: SystemRoot, host_debs: dict[str, Path]) -> None:
    root.add_debs([host_debs["2.10-4-1"]])
    result = root.apt_install(HOST)
    output = result.stdout + result.stderr
    # Built and installed with dpkg -i inside apt's Post-Invoke: done when apt returns.
    assert "building hello 2.10-4~local for hello-installer" in output
    assert "installed hello 2.10-4~local" in output
    assert root.installed_version("hello") == "2.10-4~local"
    root.wait_idle()
    assert root.run(["dpkg", "--audit"]).stdout == ""
    assert status(root)["state"] == "installed"


def test_a_guest_removed_by_the_user_is_not_reinstalled(root: SystemRoot) -> None:
    root.apt("remove", "hello")
    assert root.dpkg_status("hello") is None
    built = deb_identity(root)
    root.apt("install", "--reinstall", HOST)
    root.wait_idle()
    assert root.dpkg_status("hello") is None
    assert status(root)["state"] == "removed by user"
    assert deb_identity(root) == built


def test_dpkg_reconfigure_asks_again_then_installs(root: SystemRoot) -> None:
    built = deb_identity(root)
    root.run(["dpkg-reconfigure", "-fnoninteractive", HOST])
    root.wait_idle()
    assert root.installed_version("hello") == "2.10-4~local"
    assert status(root)["state"] == "installed"
    assert deb_identity(root) == built  # installed from the kept .debs, not rebuilt


def test_removing_the_host_removes_the_guest(root: SystemRoot) -> None:
    root.apt("remove", HOST)
    root.wait_idle()
    assert root.dpkg_status("hello") is None
    assert root.dpkg_status(HOST) == "deinstall ok config-files"
    assert root.exists(SRC)  # kept until purge


def test_purging_the_host_deletes_its_debs_state_and_answer(
        root: SystemRoot, before: dict[str, dict[str, object]]) -> None:
    root.apt("purge", HOST)
    root.wait_idle()
    assert root.dpkg_status(HOST) is None
    assert not root.exists(SRC)
    assert not root.exists(f"/var/lib/guestpkg/hosts/{HOST}.json")
    assert root.run(["debconf-show", HOST]).stdout.strip() == ""
    # piuparts-like: besides guestpkg itself (installed in the same apt run as the host
    # and still there: its own install/purge is test_piuparts_guestpkg.py), the system
    # is as before.  guestpkg's files (its code, hook, timer, state, dpkg's records of
    # it) have "guestpkg" in their path or are listed by dpkg; nothing of the host's
    # may be left.
    import re
    listed = root.run(["dpkg-query", "-L", "guestpkg", "dh-guestpkg"], check=False).stdout
    ignore = [*PACKAGE_MANAGER_STATE, GUESTPKG_OWN_FILES, rf"^(?!.*{HOST}).*guestpkg.*$",
              *[f"^{re.escape(p.strip())}$" for p in listed.splitlines() if p.strip()]]
    left = compare_trees(before, root.tree_snapshot(contents=True), ignore)
    assert not left, "the host and its guest left traces:\n" + left.describe()


def test_consent_defaults_to_no(system_base: Path, base_root: Any,
                                guestpkg_debs: list[Path], host_debs: dict[str, Path]) -> None:
    # Also the piuparts-style install/purge of the example host: no consent, no build.
    system = start_root(system_base, base_root, guestpkg_debs, host_debs,
                        with_buildroots=False)
    try:
        system.apt_install("guestpkg")
        hosts.ensure_hook_installed(system)
        snapshot = system.tree_snapshot(contents=True)
        system.apt_install(HOST)
        system.wait_idle()
        assert system.dpkg_status(HOST) == "install ok installed"
        assert system.dpkg_status("hello") is None
        assert not system.exists(f"/var/lib/guestpkg/pending/{HOST}")
        assert status(system)["state"] == "no consent"
        assert "false" in system.run(["debconf-show", HOST]).stdout
        system.apt("purge", HOST)
        left = compare_trees(snapshot, system.tree_snapshot(contents=True),
                             [*PACKAGE_MANAGER_STATE, GUESTPKG_OWN_FILES])
        assert not left, "install and purge of the host changed the system:\n" + \
            left.describe()
    finally:
        system.close()
