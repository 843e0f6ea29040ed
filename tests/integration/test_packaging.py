# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg's own .deb: it builds from a clean copy, lintian finds nothing above
warning level (none at warning level either), and its Depends name what it uses."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}

RUNTIME_IMPORTS = ["apt", "debian", "requests", "prctl", "cryptography",
                   "zstandard", "debconf", "seccomp"]


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("deb")
    subprocess.run([str(REPO / "tools" / "build-deb"), str(out)], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    return next(out.glob("guestpkg_*_all.deb"))


def test_lintian_reports_no_errors_or_warnings(deb: Path) -> None:
    debs = sorted(str(p) for p in deb.parent.glob("*.deb"))
    assert len(debs) == 2, debs  # guestpkg and dh-guestpkg
    result = subprocess.run(["lintian", "--fail-on", "error,warning", *debs],
                            capture_output=True, text=True, env=ENV)
    tags = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert result.returncode == 0 and not tags, result.stdout + result.stderr


def test_depends_name_every_debian_library_imported(deb: Path) -> None:
    depends = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True,
                             text=True, check=True).stdout
    for module in RUNTIME_IMPORTS:
        package = "python3-" + {"apt": "apt"}.get(module, module)
        assert package in depends, f"{package} missing from Depends: {depends}"
    for tool in ("mmdebstrap", "dpkg-dev", "fakeroot"):
        assert tool in depends


def test_package_ships_command_man_pages_and_library(deb: Path) -> None:
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True,
                             check=True).stdout
    for path in ("./usr/bin/guestpkg", "./usr/share/man/man1/guestpkg.1.gz",
                 "./usr/share/man/man5/guestpkg.conf.5.gz",
                 "./usr/lib/python3/dist-packages/guestpkg/cli.py",
                 "./etc/apt/apt.conf.d/90guestpkg", "./usr/lib/guestpkg/apt-post-invoke",
                 "./usr/lib/guestpkg/pending.sh",
                 "./lib/systemd/system/guestpkg-retry.timer", "./etc/cron.daily/guestpkg"):
        assert path in listing, path
    for line in listing.splitlines():
        assert "/tests/" not in line and "__pycache__" not in line, line


def test_debhelper_addon_package(deb: Path) -> None:
    addon = next(deb.parent.glob("dh-guestpkg_*_all.deb"))
    fields = subprocess.run(["dpkg-deb", "-f", str(addon), "Provides", "Depends"],
                            capture_output=True, text=True, check=True).stdout
    assert "dh-sequence-guestpkg" in fields and "debhelper" in fields
    listing = subprocess.run(["dpkg-deb", "-c", str(addon)], capture_output=True, text=True,
                             check=True).stdout
    for path in ("./usr/bin/dh_guestpkg",
                 "./usr/share/perl5/Debian/Debhelper/Sequence/guestpkg.pm",
                 "./usr/share/debhelper/autoscripts/postinst-guestpkg",
                 "./usr/share/man/man1/dh_guestpkg.1.gz"):
        assert path in listing, path
