# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg new-host and dh_guestpkg on the real hello source, built with the real
debhelper in a temporary directory: what ends up in the host package, and the checks
that fail a host's build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from guestpkg.host.manifest import read_manifest
from tests.support import hosts


@pytest.fixture(scope="module")
def hello_host(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("dh")
    guest = hosts.guest_tree(work / "src")
    tree = hosts.new_host(guest, work / "src" / "hello-installer-2.10-3")
    return tree, hosts.build_host(tree)


def test_new_host_pins_the_local_orig_tarball(hello_host: tuple[Path, Path]) -> None:
    tree, _ = hello_host
    manifest = read_manifest(tree / "guest" / "manifest")
    assert (manifest.host, manifest.guest_source, manifest.guest_version) == \
        ("hello-installer", "hello", "2.10-3")
    orig = tree.parent / "hello_2.10.orig.tar.gz"
    import hashlib
    assert manifest.main_file.sha256 == hashlib.sha256(orig.read_bytes()).hexdigest()
    assert manifest.main_file.size == orig.stat().st_size
    assert (tree / "debian" / "watch").read_bytes() == \
        (tree / "guest" / "debian" / "watch").read_bytes()
    assert (tree / "debian" / "changelog").read_text().startswith(
        "hello-installer (2.10-3-1) UNRELEASED;")


def test_host_package_carries_the_guest(hello_host: tuple[Path, Path]) -> None:
    _, deb = hello_host
    listing = hosts.deb_listing(deb)
    share = "./usr/share/guestpkg/hosts/hello-installer/"
    assert share + "manifest" in listing
    assert share + "debian/control" in listing
    assert share + "debian/watch" in listing
    assert hosts.deb_field(deb, "Version") == "2.10-3-1"
    depends = hosts.deb_field(deb, "Depends")
    assert "guestpkg" in depends and "debconf" in depends


def test_debconf_template_config_and_scripts(hello_host: tuple[Path, Path],
                                             tmp_path: Path) -> None:
    _, deb = hello_host
    control = hosts.deb_control_files(deb, tmp_path / "DEBIAN")
    templates = (control / "templates").read_text()
    assert "Template: hello-installer/build-guest\nType: boolean\nDefault: false\n" in templates
    assert re.search(r"^Description: .*hello", templates, re.M)
    assert " https://ftp.gnu.org/gnu/hello/\n" in templates  # the watch file's place
    # What else is downloaded the first time (issue 9): the build environment.
    assert ("also downloads a\n build environment (Debian's build-essential) of about "
            "100 MB from this\n system's apt sources") in templates
    config = (control / "config").read_text()
    assert ". /usr/share/debconf/confmodule" in config
    assert "db_input high hello-installer/build-guest" in config
    postinst = (control / "postinst").read_text()
    assert "guestpkg hook postinst hello-installer" in postinst
    assert postinst.index(". /usr/share/debconf/confmodule") < postinst.index("guestpkg hook")
    postrm = (control / "postrm").read_text()
    assert 'guestpkg hook postrm hello-installer "$1"' in postrm
    assert "rm -rf /usr/src/hello-installer" in postrm
    assert "db_purge" in postrm


def _host_copy(tmp_path: Path) -> Path:
    guest = hosts.guest_tree(tmp_path / "src")
    return hosts.new_host(guest, tmp_path / "src" / "hello-installer-2.10-3")


def test_build_fails_when_the_host_version_does_not_carry_the_guest(tmp_path: Path) -> None:
    tree = _host_copy(tmp_path)
    hosts.bump_changelog(tree, "2.10-4-1")
    with pytest.raises(hosts.HostBuildFailed) as e:
        hosts.build_host(tree)
    assert "host version 2.10-4-1 does not carry guest version 2.10-3" in e.value.output


def test_build_fails_when_the_watch_files_differ(tmp_path: Path) -> None:
    tree = _host_copy(tmp_path)
    (tree / "debian" / "watch").write_text("version=4\nhttps://example.org/ x-(.*).tar.gz\n")
    with pytest.raises(hosts.HostBuildFailed) as e:
        hosts.build_host(tree)
    assert "debian/watch differs from guest/debian/watch" in e.value.output


def test_new_host_needs_the_orig_tarball(tmp_path: Path) -> None:
    import subprocess
    guest = hosts.guest_tree(tmp_path / "src")
    (tmp_path / "src" / "hello_2.10.orig.tar.gz").unlink()
    result = subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "new-host", str(guest),
                             "-o", str(tmp_path / "out")], env=hosts.BUILD_ENV,
                            capture_output=True, text=True)
    assert result.returncode == 3
    assert "no hello_2.10.orig.tar.* next to" in result.stderr
    assert "hint:" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_committed_example_host_builds_and_pins_debians_tarball(tmp_path: Path) -> None:
    import hashlib
    import shutil

    from tests.support import debsrc

    tree = tmp_path / "hello-installer"
    shutil.copytree(hosts.REPO / "examples" / "hello-installer", tree)
    deb = hosts.build_host(tree)
    assert deb.name == "hello-installer_2.10-3-1_all.deb"
    manifest = read_manifest(tree / "guest" / "manifest")
    orig = debsrc.source_files("hello") / manifest.main_file.name
    assert manifest.main_file.sha256 == hashlib.sha256(orig.read_bytes()).hexdigest()


def test_new_host_fetch_gets_the_tarball_with_uscan(tmp_path: Path) -> None:
    import subprocess

    from tests.support import debsrc
    from tests.support.upstream import LocalUpstream

    (tmp_path / "upstream").mkdir()
    with LocalUpstream(tmp_path / "upstream") as upstream:
        orig = debsrc.source_files("hello") / "hello_2.10.orig.tar.gz"
        upstream.add_file(orig, "hello-2.10.tar.gz")
        watch = f"version=4\n{upstream.url} hello-@ANY_VERSION@@ARCHIVE_EXT@\n"
        guest = hosts.guest_tree(tmp_path / "src", watch=watch)
        (tmp_path / "src" / "hello_2.10.orig.tar.gz").unlink()
        result = subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "new-host", "--fetch",
                                 str(guest), "-o", str(tmp_path / "out")],
                                env=hosts.BUILD_ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    manifest = read_manifest(tmp_path / "out" / "guest" / "manifest")
    import hashlib
    assert manifest.main_file.sha256 == hashlib.sha256(orig.read_bytes()).hexdigest()
