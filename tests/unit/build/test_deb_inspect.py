# SPDX-License-Identifier: GPL-2.0-or-later
"""Attack tests: hand-made .debs whose data archive would make dpkg, as root, install
a setuid root file, a device node, a FIFO, an escaping symlink... (guestpkg.build.inspect,
guestpkg.debian.debfile)."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from guestpkg.build import inspect
from guestpkg.build.deb import BuildResult
from guestpkg.debian import debfile
from guestpkg.debian.debfile import tar_entry, write_deb
from guestpkg.errors import InputError, UnsafeArchive
from guestpkg.host.build import check_guest_output
from guestpkg.host.layout import HostPaths
from guestpkg.host.manifest import Manifest, UpstreamFile

CONTROL = ("Package: {package}\nVersion: {version}\nArchitecture: {arch}\n"
           "Maintainer: x <x@example.org>\nDepends: {depends}\nDescription: test\n")

DIRS = [tar_entry("./usr/", "dir", mode=0o755), tar_entry("./usr/bin/", "dir", mode=0o755),
        tar_entry("./etc/", "dir", mode=0o755)]


def make_deb(path: Path, *entries: tuple[tarfile.TarInfo, bytes | None],
             package: str = "tiny", version: str = "1.0~local", arch: str = "all",
             depends: str = "tiny-installer") -> Path:
    write_deb(path, CONTROL.format(package=package, version=version, arch=arch,
                                   depends=depends), [*DIRS, *entries])
    return path


def kinds(path: Path) -> list[tuple[str, str]]:
    return [(f.kind, f.path) for f in inspect.inspect_deb(path).findings]


HOSTILE = {
    "setuid-root": (tar_entry("./usr/bin/x", mode=0o4755, content=b"#!/bin/sh\n"),
                    [("setuid", "/usr/bin/x")]),
    "setgid": (tar_entry("./usr/bin/x", mode=0o2755, content=b"x"), [("setgid", "/usr/bin/x")]),
    "char-device": (tar_entry("./usr/bin/mem", "char", mode=0o666),
                    [("device", "/usr/bin/mem"), ("world-writable", "/usr/bin/mem")]),
    "block-device": (tar_entry("./etc/sda", "block", mode=0o600), [("device", "/etc/sda")]),
    "fifo": (tar_entry("./etc/pipe", "fifo", mode=0o644), [("fifo", "/etc/pipe")]),
    "absolute-symlink-out": (tar_entry("./usr/bin/k", "symlink", target="/root/.ssh"),
                             [("symlink", "/usr/bin/k")]),
    "relative-symlink-above-root": (
        tar_entry("./usr/bin/k", "symlink", target="../../../../root/.bashrc"),
        [("symlink", "/usr/bin/k")]),
    "relative-symlink-above-root-and-back": (
        tar_entry("./usr/lib/k", "symlink", target="../../../usr/bin/x"),
        [("symlink", "/usr/lib/k")]),
    "symlink-to-proc": (tar_entry("./etc/k", "symlink", target="/proc/self/root"),
                        [("symlink", "/etc/k")]),
    "symlink-to-root-dir": (tar_entry("./etc/k", "symlink", target="/"),
                            [("symlink", "/etc/k")]),
    "outside-fhs": (tar_entry("./opt/x", mode=0o755, content=b"x"), [("path", "/opt/x")]),
    "usr-local": (tar_entry("./usr/local/bin/x", mode=0o755, content=b"x"),
                  [("path", "/usr/local/bin/x")]),
    "home": (tar_entry("./home/user/.profile", content=b"x"), [("path", "/home/user/.profile")]),
    "foreign-owner": (tar_entry("./usr/bin/x", mode=0o755, content=b"x", uid=1234, gid=1234),
                      [("owner", "/usr/bin/x")]),
    "world-writable": (tar_entry("./usr/bin/x", mode=0o777, content=b"x"),
                       [("world-writable", "/usr/bin/x")]),
    "hardlink-out": (tar_entry("./usr/bin/x", "hardlink", target="./etc/shadow"),
                     [("hardlink", "/usr/bin/x")]),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_member_is_found(tmp_path: Path, name: str) -> None:
    entry, expected = HOSTILE[name]
    deb = make_deb(tmp_path / "tiny_1.0~local_all.deb", entry)
    assert kinds(deb) == expected


def test_symlink_escaping_through_the_package_s_own_links(tmp_path: Path) -> None:
    """Each link alone lands in the FHS; followed as the kernel does, the second
    leads to /root: the check resolves against the package's links."""
    deb = make_deb(tmp_path / "a.deb",
                   tar_entry("./usr/bin/d", "symlink", target="../.."),
                   tar_entry("./usr/bin/e", "symlink", target="d/root/.ssh"))
    assert ("symlink", "/usr/bin/e") in kinds(deb)
    loop = make_deb(tmp_path / "b.deb", tar_entry("./usr/bin/a", "symlink", target="b"),
                    tar_entry("./usr/bin/b", "symlink", target="a"))
    assert kinds(loop) == [("symlink", "/usr/bin/a"), ("symlink", "/usr/bin/b")]


def test_an_ordinary_package_has_no_findings(tmp_path: Path) -> None:
    deb = make_deb(
        tmp_path / "ok.deb",
        tar_entry("./usr/bin/hello", mode=0o755, content=b"\x7fELF"),
        tar_entry("./usr/bin/hi", "symlink", target="hello"),
        tar_entry("./usr/bin/cfg", "symlink", target="/etc/hello.conf"),  # Policy 10.5
        tar_entry("./usr/bin/again", "hardlink", target="./usr/bin/hello"),
        tar_entry("./etc/hello.conf", content=b"x=1\n"),
        tar_entry("./var/", "dir", mode=0o755),
        tar_entry("./var/tmp-like/", "dir", mode=0o1777))
    assert kinds(deb) == []


def test_dpkg_deb_s_own_packages_are_read(tmp_path: Path) -> None:
    """What dpkg-deb writes (xz, zstd, gzip, none) reads the same."""
    tree = tmp_path / "tree"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(CONTROL.format(
        package="tiny", version="1.0~local", arch="all", depends="tiny-installer"))
    (tree / "usr" / "bin").mkdir(parents=True)
    (tree / "usr" / "bin" / "x").write_text("x")
    for compression in ("xz", "zstd", "gzip", "none"):
        deb = tmp_path / f"{compression}.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build",
                        str(tree), str(deb)], check=True, capture_output=True)
        report = inspect.inspect_deb(deb)
        assert (report.package, report.version, report.findings) == ("tiny", "1.0~local", ())
        with open(deb, "rb") as f:
            contents = debfile.read_deb(f, deb.stat().st_size)
        assert "usr/bin/x" in [m.path for m in contents.members]


def test_not_a_deb_and_a_lying_ar_header(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.deb"
    bogus.write_bytes(b"not an archive")
    with pytest.raises(UnsafeArchive, match="no ar archive magic"):
        inspect.inspect_deb(bogus)
    deb = make_deb(tmp_path / "t.deb")
    data = bytearray(deb.read_bytes())
    data[8 + 48:8 + 58] = b"9999999999"     # debian-binary claims 9 GB
    deb.write_bytes(bytes(data))
    with pytest.raises(UnsafeArchive, match="past the end"):
        inspect.inspect_deb(deb)


def test_a_decompression_bomb_is_bounded(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(debfile, "MAX_DATA_BYTES", 1 << 20)
    big = tar_entry("./usr/bin/zeros", content=b"\0" * (4 << 20))
    deb = make_deb(tmp_path / "bomb.deb", big)
    assert deb.stat().st_size < 64 << 10
    with pytest.raises(UnsafeArchive, match="decompresses to more than"):
        inspect.inspect_deb(deb)


def test_member_names_that_escape_are_refused(tmp_path: Path) -> None:
    for name in ("../../etc/x", "/etc/passwd", "./usr/../../x"):
        deb = make_deb(tmp_path / "n.deb", tar_entry(name, content=b"x"))
        with pytest.raises(UnsafeArchive):
            inspect.inspect_deb(deb)


def test_build_output_warns_or_refuses_in_one_line(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "tiny_1.0~local_all.deb", HOSTILE["setuid-root"][0],
                   HOSTILE["char-device"][0])
    notes: list[str] = []
    reports = inspect.check_build_output([deb], refuse=False, declared=(), note=notes.append)
    assert len(reports) == 1
    assert notes == [
        "WARNING: tiny_1.0~local_all.deb: /usr/bin/x: setuid (mode 4755, uid 0)",
        "WARNING: tiny_1.0~local_all.deb: /usr/bin/mem: a char device node",
        "WARNING: tiny_1.0~local_all.deb: /usr/bin/mem: writable by everyone (mode 0666)"]
    with pytest.raises(UnsafeArchive) as error:
        inspect.check_build_output([deb], refuse=True, declared=(), note=notes.append)
    assert str(error.value) == ("tiny_1.0~local_all.deb: /usr/bin/x: setuid (mode 4755, "
                                "uid 0) (and 2 more): the .deb would install it as root")
    # The manifest's Setuid: allows the setuid file; a device node is never allowed.
    with pytest.raises(UnsafeArchive, match="a char device node"):
        inspect.check_build_output([deb], refuse=True, declared=["/usr/bin/x", "/usr/bin/mem"],
                                   note=notes.append)
    only_setuid = make_deb(tmp_path / "s.deb", HOSTILE["setuid-root"][0])
    inspect.check_build_output([only_setuid], refuse=True, declared=["/usr/bin/x"],
                               note=notes.append)


def _result(tmp_path: Path, *debs: Path, extra: tuple[Path, ...] = ()) -> BuildResult:
    log = tmp_path / "tiny.build"
    changes = tmp_path / "tiny.changes"
    return BuildResult([*debs, *extra, log, changes], log, changes, "tiny", "1.0~local",
                       reports=tuple(inspect.inspect_deb(d) for d in debs), arch="amd64")


def _host(tmp_path: Path) -> tuple[HostPaths, Manifest]:
    share = tmp_path / "share"
    (share / "debian").mkdir(parents=True)
    (share / "debian" / "control").write_text(
        "Source: tiny\nBuild-Depends: debhelper-compat (= 13)\n\n"
        "Package: tiny\nArchitecture: any\n\nPackage: tiny-data\nArchitecture: all\n")
    paths = HostPaths(host="tiny-installer", share=share, debs=tmp_path / "debs",
                      work=tmp_path / "work", log=tmp_path / "log")
    manifest = Manifest("tiny-installer", "tiny", "1.0-1",
                        (UpstreamFile("tiny_1.0.orig.tar.gz", 1, "0" * 64),))
    return paths, manifest


def test_guest_output_must_be_exactly_the_guest(tmp_path: Path) -> None:
    paths, manifest = _host(tmp_path)
    good = [make_deb(tmp_path / "tiny.deb", package="tiny", version="1.0-1~local",
                     arch="amd64"),
            make_deb(tmp_path / "data.deb", package="tiny-data", version="1.0-1~local"),
            make_deb(tmp_path / "dbg.deb", package="tiny-dbgsym", version="1.0-1~local",
                     arch="amd64", depends="tiny (= 1.0-1~local)")]
    check_guest_output(_result(tmp_path, *good), paths, manifest)
    bad = {
        "is not one of the guest's": make_deb(tmp_path / "evil.deb", package="sudo",
                                              version="1.0-1~local"),
        "version '9.9-1', not 1.0-1~local": make_deb(tmp_path / "v.deb", package="tiny",
                                                     version="9.9-1", arch="amd64"),
        "architecture 'i386'": make_deb(tmp_path / "a.deb", package="tiny",
                                        version="1.0-1~local", arch="i386"),
        "does not depend on the host": make_deb(tmp_path / "d.deb", package="tiny",
                                                version="1.0-1~local", depends="libc6"),
    }
    for says, deb in bad.items():
        with pytest.raises(InputError) as error:
            check_guest_output(_result(tmp_path, deb), paths, manifest)
        assert says in str(error.value) and "\n" not in str(error.value)
    extra = tmp_path / "tiny_1.0-1~local.tar.xz"
    extra.write_bytes(b"")
    with pytest.raises(InputError, match=r"made tiny_1\.0-1~local\.tar\.xz"):
        check_guest_output(_result(tmp_path, good[0], extra=(extra,)), paths, manifest)


def test_write_deb_is_gzip_tar_in_ar(tmp_path: Path) -> None:
    deb = make_deb(tmp_path / "x.deb")
    data = deb.read_bytes()
    assert data.startswith(b"!<arch>\ndebian-binary   ")
    start = data.index(b"data.tar.gz")
    size = int(data[start + 48:start + 58])
    payload = gzip.decompress(data[start + 60:start + 60 + size])
    with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
        assert tar.getnames()[:2] == [".", "./usr"]
