# SPDX-License-Identifier: GPL-2.0-or-later
"""sbuild's --binNMU and --append-to-version on a real build of hello from its
bookworm .dsc: the .debs carry the new version, the source version stays in their
Source field, the .changes says Binary-Only, and the CLI takes the options."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from guestpkg.build.deb import BuildOptions, build_package
from guestpkg.build.versioning import VersionChange
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from tests.support import debsrc

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def deb_field(path: Path, field: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(path), field], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_binnmu_of_hello(test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    change = VersionChange(binnmu=3, binnmu_text="Rebuild to test guestpkg.")
    result = build_package(test_config, debsrc.dsc_path("hello"), tmp_path,
                           BuildOptions(tee=False, version_change=change))
    assert result.version == "2.10-3+b3"
    deb = tmp_path / "hello_2.10-3+b3_amd64.deb"
    assert deb_field(deb, "Version") == "2.10-3+b3"
    assert deb_field(deb, "Source") == "hello (2.10-3)"
    assert result.changes is not None and result.changes.name == "hello_2.10-3+b3_amd64.changes"
    changes = result.changes.read_text()
    assert "\nBinary-Only: yes\n" in changes and "Rebuild to test guestpkg." in changes
    # dh_installchangelogs puts a binNMU's entry in changelog.Debian.<arch>.gz
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True,
                             text=True).stdout
    assert "changelog.Debian.amd64.gz" in listing
    # the .build log ends as sbuild's does
    log = (tmp_path / "hello_2.10-3+b3_amd64.build").read_text()
    tail = log[log.index("| Summary "):]
    for line in ("Status: successful", "Package: hello", "Version: 2.10-3+b3",
                 "Source-Version: 2.10-3", "Build Architecture: amd64", "Distribution: unstable"):
        assert f"\n{line}\n" in tail
    assert int(tail.split("\nBuild-Space: ")[1].split()[0]) > 1000    # KiB of the build dir
    assert int(tail.split("\nBuild-Time: ")[1].split()[0]) >= 1
    environment = log[log.index("| Build environment "):log.index("| Summary ")]
    assert "\nhelp2man_" in environment and "\ntexinfo_" in environment


def test_append_to_version_from_the_command_line(test_config: Config, base_root: BaseRoot,
                                                 tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    tree = debsrc.unpacked_source("hello", tmp_path / "src")
    env = {"GUESTPKG_VARDIR": str(test_config.vardir), "GUESTPKG_CACHEDIR":
           str(test_config.cachedir), "GUESTPKG_LOGDIR": str(test_config.logdir),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    out = tmp_path / "out"
    done = subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "build", "--quiet-build",
                           "--append-to-version", "~guestpkg1", str(tree), str(out)],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    deb = out / "hello_2.10-3~guestpkg1_amd64.deb"
    assert deb_field(deb, "Version") == "2.10-3~guestpkg1"
    # the caller's tree is untouched
    assert (tree / "debian" / "changelog").read_text().startswith("hello (2.10-3) ")
    bad = subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "build",
                          "--append-to-version", "x\n -- evil", str(tree), str(out)],
                         env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "not a version suffix" in bad.stderr
