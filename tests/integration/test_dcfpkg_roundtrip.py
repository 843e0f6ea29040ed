# SPDX-License-Identifier: GPL-2.0-or-later
"""Round trips of real trees: parts of this Debian system's /usr, read only.

Pack, extract into tmp_path, compare with the source (GNU diff, symlinks not followed)
and with the manifest (an independent walk), repack: the bytes must be identical.  Then
the same through the ``guestpkg dcfpkg`` and ``guestpkg trust`` commands.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from guestpkg.dcfpkg import Metadata, extract, read_manifest, verify, write_dcfpkg
from guestpkg.dcfpkg.format import DIRECTORY, HARDLINK, REGULAR, SYMLINK

REPO = Path(__file__).resolve().parents[2]
META = Metadata(package="usr-part", version="12", release="1", architecture="amd64",
                build_date=1700000000, source="bookworm /usr")


def _walk(root: Path) -> dict[bytes, tuple[str, int, str | bytes]]:
    """path -> (type, mode, sha256 or link target), by an independent os.walk."""
    found: dict[bytes, tuple[str, int, str | bytes]] = {}
    base = os.fsencode(root)
    for directory, dirs, files in os.walk(base):
        for name in dirs + files:
            full = os.path.join(directory, name)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("l", 0o777, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("d", stat.S_IMODE(st.st_mode), "")
            else:
                with open(full, "rb") as f:
                    digest = hashlib.file_digest(f, "sha256").hexdigest()
                found[rel] = ("f", stat.S_IMODE(st.st_mode), digest)
    return found


@pytest.mark.parametrize("part", ["usr/share/doc", "usr/lib/python3"])
def test_real_tree_round_trip_is_bit_identical(tmp_path: Path, part: str) -> None:
    source = Path("/") / part
    assert source.is_dir(), f"{source} is missing: this test needs a Debian /usr"
    first = write_dcfpkg(source, META, tmp_path / "a.dcfpkg", prefix=part)
    assert verify(tmp_path / "a.dcfpkg") == first
    extract(tmp_path / "a.dcfpkg", tmp_path / "root")

    diff = subprocess.run(["diff", "-r", "--no-dereference", str(source),
                           str(tmp_path / "root" / part)], capture_output=True, text=True)
    assert diff.returncode == 0, diff.stdout[-3000:] + diff.stderr[-2000:]

    _, entries = read_manifest(tmp_path / "a.dcfpkg")
    walked = _walk(tmp_path / "root")
    digests = {e.path: e.sha256 for e in entries if e.kind == REGULAR}
    assert len(walked) == len(entries)
    for e in entries:
        kind, mode, what = walked[e.path]
        expected = {DIRECTORY: ("d", e.mode, ""), SYMLINK: ("l", 0o777, e.target),
                    REGULAR: ("f", e.mode, e.sha256),
                    HARDLINK: ("f", e.mode, digests.get(e.target or b""))}[e.kind]
        assert (kind, mode, what) == expected, e.path

    second = write_dcfpkg(tmp_path / "root" / part, META, tmp_path / "b.dcfpkg", prefix=part)
    assert second == first
    assert (tmp_path / "a.dcfpkg").read_bytes() == (tmp_path / "b.dcfpkg").read_bytes()


def _guestpkg(tmp_path: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path),
           "GUESTPKG_TRUSTDIR": str(tmp_path / "trust"), "GUESTPKG_LOGDIR": str(tmp_path / "log"),
           "GUESTPKG_CONFDIR": str(tmp_path / "etc"), "SOURCE_DATE_EPOCH": "1700000000"}
    result = subprocess.run([sys.executable, "-m", "guestpkg", *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    assert (result.returncode == 0) == ok, result.stdout + result.stderr
    return result


def test_commands_end_to_end(tmp_path: Path) -> None:
    g = lambda *a, ok=True: _guestpkg(tmp_path, *a, ok=ok)  # noqa: E731
    tree = "/usr/share/doc/dpkg"
    g("dcfpkg", "create", tree, "-o", "dpkg-doc.dcfpkg", "--name", "dpkg-doc", "--version",
      "1.21", "--arch", "all", "--prefix", "usr/share/doc/dpkg")
    assert "Package: dpkg-doc" in g("dcfpkg", "info", "dpkg-doc.dcfpkg").stdout
    assert "usr/share/doc/dpkg/copyright" in g("dcfpkg", "list", "dpkg-doc.dcfpkg").stdout
    assert ": OK:" in g("dcfpkg", "verify", "dpkg-doc.dcfpkg").stdout

    g("trust", "keygen", "alice")
    g("trust", "keygen", "bob")
    assert (tmp_path / "alice.key").stat().st_mode & 0o777 == 0o600
    g("trust", "add-key", "alice.pub", "junior")
    g("trust", "add-key", "bob.pub", "junior", "--package", "dpkg-*")
    sign = ("trust", "sign", "dpkg-doc.dcfpkg", "--repository", "main", "--archive-version",
            "1", "--expires", "2099-01-01", "--archive", "main.sigs", "--key")
    g(*sign, "alice.key")
    g("trust", "import", "main.sigs")
    refused = g("dcfpkg", "extract", "dpkg-doc.dcfpkg", "out", "--repository", "main", ok=False)
    assert refused.returncode == 6 and "don't meet the policy" in refused.stderr
    assert not (tmp_path / "out").exists()

    (tmp_path / "main.sigs").unlink()
    g(*sign[:6], "2", *sign[7:], "alice.key")
    g(*sign[:6], "2", *sign[7:], "bob.key")
    g("trust", "import", "main.sigs")
    g("dcfpkg", "extract", "dpkg-doc.dcfpkg", "out", "--repository", "main")
    assert (tmp_path / "out/usr/share/doc/dpkg/copyright").read_bytes() == \
        Path(tree, "copyright").read_bytes()
    listing = g("trust", "list").stdout
    assert "seen junior in main/dpkg-doc" in listing and "archive main version 2" in listing
    old = g("trust", "import", "main.sigs", ok=False)
    assert old.returncode == 6 and "rollback" in old.stderr
