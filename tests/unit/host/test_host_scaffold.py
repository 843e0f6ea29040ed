# SPDX-License-Identifier: GPL-2.0-or-later
"""new-host's pure parts on a made-up guest tree, and host names as path parts."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from guestpkg.errors import InputError, UsageError
from guestpkg.host.layout import check_host_name
from guestpkg.host.manifest import read_manifest
from guestpkg.host.scaffold import scaffold

CONTROL = "Source: foo\nSection: utils\nMaintainer: A B <a@b.example>\n\nPackage: foo\n" \
          "Architecture: any\nDescription: x\n long\n"


def guest(tmp_path: Path, version: str = "1.2-3", fmt: str = "3.0 (quilt)") -> Path:
    tree = tmp_path / "foo-1.2"
    (tree / "debian" / "source").mkdir(parents=True)
    (tree / "debian" / "source" / "format").write_text(fmt + "\n")
    (tree / "debian" / "changelog").write_text(
        f"foo ({version}) unstable; urgency=medium\n\n  * x\n\n"
        " -- A B <a@b.example>  Tue, 14 Nov 2023 22:13:20 +0000\n")
    (tree / "debian" / "control").write_text(CONTROL)
    (tree / "debian" / "watch").write_text("version=4\nhttps://example.org/ foo-(.*)\\.tar\\.gz\n")
    return tree


def test_scaffold_writes_a_complete_host(tmp_path: Path) -> None:
    tree = guest(tmp_path)
    (tmp_path / "foo_1.2.orig.tar.gz").write_bytes(b"main")
    (tmp_path / "foo_1.2.orig-docs.tar.xz").write_bytes(b"docs")
    (tmp_path / "foo_1.2.orig.tar.gz.asc").write_bytes(b"sig")
    (tmp_path / "bar_1.2.orig.tar.gz").write_bytes(b"other")
    out = scaffold(tree, tmp_path / "out")
    manifest = read_manifest(out / "guest" / "manifest")
    assert manifest.host == "foo-installer"
    assert [(f.name, f.component, f.size) for f in manifest.files] == [
        ("foo_1.2.orig-docs.tar.xz", "docs", 4), ("foo_1.2.orig.tar.gz", None, 4)]
    assert manifest.main_file.sha256 == hashlib.sha256(b"main").hexdigest()
    assert (out / "debian" / "changelog").read_text().startswith("foo-installer (1.2-3-1) ")
    control = (out / "debian" / "control").read_text()
    assert "Build-Depends: debhelper-compat (= 13), dh-sequence-guestpkg" in control
    assert "Section: contrib/utils" in control
    assert (out / "debian" / "watch").read_text() == (tree / "debian" / "watch").read_text()
    assert (out / "debian" / "source" / "format").read_text() == "1.0\n"
    assert (out / "debian" / "rules").stat().st_mode & 0o111
    assert (out / "guest" / "debian" / "control").read_text() == CONTROL


def test_scaffold_refuses_native_guests_and_other_formats(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="native package"):
        scaffold(guest(tmp_path / "a", version="1.2"), tmp_path / "out")
    with pytest.raises(InputError, match=r"3\.0 \(quilt\)"):
        scaffold(guest(tmp_path / "b", fmt="3.0 (native)"), tmp_path / "out")


def test_scaffold_needs_the_tarball_and_a_free_output(tmp_path: Path) -> None:
    tree = guest(tmp_path)
    with pytest.raises(InputError, match=r"no foo_1\.2\.orig\.tar"):
        scaffold(tree, tmp_path / "out")
    (tmp_path / "out").mkdir()
    (tmp_path / "foo_1.2.orig.tar.gz").write_bytes(b"main")
    with pytest.raises(UsageError, match="exists"):
        scaffold(tree, tmp_path / "out")


@pytest.mark.parametrize("name", ["../etc", "a/b", "-rf", "", "A", "x"])
def test_host_names_that_are_not_package_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError):
        check_host_name(name)


def test_host_name_accepted() -> None:
    assert check_host_name("hello-installer") == "hello-installer"
