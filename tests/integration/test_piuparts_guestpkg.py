# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg's own .deb on a throwaway system, in the manner of piuparts: installed with
apt and purged again, it leaves the file tree as it found it (but for the package
manager's own bookkeeping); and its APT hook never makes an unrelated ``apt-get
install`` fail, installed, removed or purged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.sysroot import SystemRoot, compare_trees

pytestmark = pytest.mark.integration

#: What dpkg, apt and debconf change by themselves when any package comes and goes;
#: piuparts ignores the same files (piuparts.conf(5), ``ignore_files``).
PACKAGE_MANAGER_STATE = (
    r"/var/lib/dpkg/(status|available|diversions|statoverride)(-old)?$",
    r"/var/lib/dpkg/(lock.*|triggers/.*|info/format|cmethopt)$",
    r"/var/lib/apt/(extended_states|periodic/.*)$",
    r"/var/cache/apt/.*",
    r"/var/cache/debconf/(config|templates|passwords)\.dat(-old)?$",
    r"/var/log/(apt/.*|dpkg\.log|alternatives\.log)$",
    r"/var/cache/ldconfig/aux-cache$",
    r"/etc/ld\.so\.cache$",
)


def test_install_then_purge_leaves_no_trace(sysroot: SystemRoot, guestpkg_deb: Path) -> None:
    sysroot.add_debs([guestpkg_deb])
    before = sysroot.tree_snapshot(contents=True)

    sysroot.apt_install("guestpkg")
    assert sysroot.dpkg_status("guestpkg") == "install ok installed"
    assert sysroot.run(["guestpkg", "--version"]).stdout.startswith("guestpkg ")
    installed = compare_trees(before, sysroot.tree_snapshot(), PACKAGE_MANAGER_STATE)
    assert "/usr/bin/guestpkg" in installed.added

    sysroot.apt("purge", "--autoremove", "guestpkg")
    assert sysroot.dpkg_status("guestpkg") is None
    left = compare_trees(before, sysroot.tree_snapshot(contents=True), PACKAGE_MANAGER_STATE)
    assert not left, "install and purge changed the system:\n" + left.describe()


def test_apt_hook_never_breaks_an_unrelated_install(sysroot: SystemRoot,
                                                    guestpkg_deb: Path) -> None:
    sysroot.add_debs([guestpkg_deb])
    sysroot.apt_install("guestpkg")
    hooks = sysroot.run(["apt-config", "dump", "DPkg::Post-Invoke"]).stdout
    assert "guestpkg" in hooks, hooks

    # Installed: the hook runs after dpkg and apt still succeeds.
    sysroot.apt_install("--no-install-recommends", "tree")
    assert sysroot.dpkg_status("tree") == "install ok installed"

    # Removed, conffile (the hook) kept: the guard skips the missing entry point.
    sysroot.apt("remove", "guestpkg")
    assert sysroot.dpkg_status("guestpkg") == "deinstall ok config-files"
    assert "guestpkg" in sysroot.run(["apt-config", "dump", "DPkg::Post-Invoke"]).stdout
    sysroot.apt("purge", "tree")
    sysroot.apt_install("--no-install-recommends", "tree")
    assert sysroot.dpkg_status("tree") == "install ok installed"

    # Purged: the hook is gone with it.
    sysroot.apt("purge", "guestpkg")
    assert "guestpkg" not in sysroot.run(["apt-config", "dump", "DPkg::Post-Invoke"]).stdout
