# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest's source package made from a host's debian/ and the verified tarball is a
real 3.0 (quilt) source package: dpkg-source unpacks it and finds the guest's tree."""

from __future__ import annotations

import filecmp
import subprocess
from pathlib import Path

import pytest

from guestpkg.build.versioning import add_changelog_entry, local_build
from guestpkg.errors import InputError
from guestpkg.host.build import prepare_guest_source
from guestpkg.host.manifest import read_manifest
from guestpkg.host.source import make_dsc
from tests.support import hosts


def test_dsc_unpacks_with_dpkg_source(tmp_path: Path) -> None:
    guest = hosts.guest_tree(tmp_path / "src")
    host = hosts.new_host(guest, tmp_path / "src" / "host")
    manifest = read_manifest(host / "guest" / "manifest")
    out = tmp_path / "out"
    dsc = make_dsc(manifest, host / "guest" / "debian", tmp_path / "src", out)
    assert dsc.name == "hello_2.10-3.dsc"
    subprocess.run(["dpkg-source", "-x", str(dsc), str(tmp_path / "x")], check=True,
                   capture_output=True)
    unpacked = tmp_path / "x"
    assert (unpacked / "src" / "hello.c").is_file()
    compare = filecmp.dircmp(unpacked / "debian", guest / "debian")
    assert not compare.diff_files and not compare.left_only and not compare.right_only

    # The edits the builder makes: the new changelog entry, then the prepare_source hook.
    add_changelog_entry(local_build(manifest.guest_version, "hello-installer"), unpacked,
                        "amd64")
    prepare_guest_source("hello-installer")(unpacked)
    version = subprocess.run(["dpkg-parsechangelog", "-S", "Version"], cwd=unpacked,
                             check=True, capture_output=True, text=True).stdout.strip()
    assert version == "2.10-3~local"
    control = (unpacked / "debian" / "control").read_text()
    assert "Depends: ${misc:Depends}, ${shlibs:Depends}, hello-installer\n" in control


def test_other_source_formats_are_refused(tmp_path: Path) -> None:
    guest = hosts.guest_tree(tmp_path / "src")
    host = hosts.new_host(guest, tmp_path / "src" / "host")
    manifest = read_manifest(host / "guest" / "manifest")
    (host / "guest" / "debian" / "source" / "format").write_text("1.0\n")
    with pytest.raises(InputError, match=r"must use '3\.0 \(quilt\)'"):
        make_dsc(manifest, host / "guest" / "debian", tmp_path / "src", tmp_path / "out")
