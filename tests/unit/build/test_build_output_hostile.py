# SPDX-License-Identifier: GPL-2.0-or-later
"""Attack tests: what guestpkg reads as root from a directory the build could write
(the .changes, the .debs, debian/ of an unpacked source, etc/passwd of a layer or a
fork's upper) is never a symlink followed, a FIFO waited on, or a file read whole."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg import fsutil
from guestpkg.build import artifacts
from guestpkg.build.deb import lookup_user
from guestpkg.build.source import read_source, refuse_symlinked_metadata
from guestpkg.errors import InputError

HOST_SECRET = "root:secret-hash:19000:0:99999:7:::\n"


@contextlib.contextmanager
def no_hang(seconds: int = 5) -> Iterator[None]:
    """Fail instead of hanging: a FIFO opened for reading blocks until a writer comes."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("blocked: the FIFO was opened without O_NONBLOCK")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def host_file(tmp_path: Path) -> Path:
    secret = tmp_path / "host" / "shadow"
    secret.parent.mkdir()
    secret.write_text(HOST_SECRET)
    return secret


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "build"
    directory.mkdir()
    return directory


#: What the one-line refusal says, per planted thing.
SAYS = {"symlink-to-host-file": "is a symbolic link", "symlink-to-dev-zero": "is a symbolic link",
        "fifo": "is a FIFO", "huge": "allowed; refusing", "etc-symlink": "not a directory"}


def one_line(error: pytest.ExceptionInfo[InputError], kind: str | None = None) -> str:
    text = str(error.value)
    assert "\n" not in text
    assert "secret" not in text
    if kind is not None:
        assert SAYS[kind] in text, text
    return text


def plant(build_dir: Path, name: str, kind: str, host_file: Path) -> Path:
    path = build_dir / name
    if kind == "symlink-to-host-file":
        os.symlink(host_file, path)
    elif kind == "symlink-to-dev-zero":
        os.symlink("/dev/zero", path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "huge":
        with open(path, "wb") as f:
            f.truncate(artifacts.MAX_ARTIFACT_BYTES + 1)    # sparse: no disk used
    return path


@pytest.mark.parametrize("kind", ["symlink-to-host-file", "symlink-to-dev-zero", "fifo"])
def test_planted_changes_is_refused(build_dir: Path, host_file: Path, kind: str) -> None:
    changes = plant(build_dir, "tiny_1.0_amd64.changes", kind, host_file)
    with no_hang(), pytest.raises(InputError) as error:
        artifacts.changes_files(changes)
    assert "tiny_1.0_amd64.changes" in one_line(error, kind)


def test_huge_changes_is_refused_unread(build_dir: Path) -> None:
    changes = build_dir / "tiny_1.0_amd64.changes"
    with open(changes, "wb") as f:
        f.truncate(50 << 30)
    with no_hang(), pytest.raises(InputError) as error:
        artifacts.changes_files(changes)
    assert "more than" in one_line(error, "huge")


@pytest.mark.parametrize("kind", ["symlink-to-host-file", "symlink-to-dev-zero", "fifo",
                                  "huge"])
def test_planted_deb_is_not_collected(build_dir: Path, host_file: Path, tmp_path: Path,
                                      kind: str) -> None:
    good = build_dir / "tiny_1.0_all.buildinfo"
    good.write_text("Format: 1.0\n")
    deb = plant(build_dir, "tiny_1.0_all.deb", kind, host_file)
    out = tmp_path / "out"
    with no_hang(), pytest.raises(InputError) as error:
        artifacts.collect([good, deb], out)
    assert "tiny_1.0_all.deb" in one_line(error, kind)
    assert sorted(os.listdir(out)) == []        # nothing at a final path, no staging left


@pytest.mark.parametrize("kind", ["symlink-to-host-file", "fifo", "etc-symlink"])
def test_planted_passwd_in_a_layer_is_refused(tmp_path: Path, host_file: Path,
                                              kind: str) -> None:
    layer = tmp_path / "layer"
    (layer / "etc").mkdir(parents=True)
    if kind == "etc-symlink":
        (layer / "etc").rmdir()
        host_etc = host_file.parent
        (host_etc / "passwd").write_text("builder:x:0:0::/:/bin/sh\n")
        os.symlink(host_etc, layer / "etc")
    else:
        plant(layer / "etc", "passwd", "symlink-to-host-file" if kind != "fifo" else "fifo",
              host_file)
    with no_hang(), pytest.raises(InputError) as error:
        lookup_user([layer], "root")
    assert "passwd" in one_line(error, kind)


def test_passwd_read_as_before(tmp_path: Path) -> None:
    upper, base = tmp_path / "upper", tmp_path / "base"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "passwd").write_text(
        "root:x:0:0::/root:/bin/sh\nbuilder:x:1234:1234::/:/bin/sh\n")
    upper.mkdir()
    assert lookup_user([upper, base], "builder") == (1234, 1234)
    assert lookup_user([upper, base], "nobody") is None


@pytest.mark.parametrize("kind", ["fifo", "symlink-to-host-file", "huge"])
def test_planted_debian_control_in_an_unpacked_source(tmp_path: Path, host_file: Path,
                                                      kind: str) -> None:
    tree = tmp_path / "source"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        "tiny (1.0) unstable; urgency=medium\n\n  * x\n\n -- A <a@b.c>  "
        "Tue, 02 Jan 2024 03:04:05 +0000\n")
    control = tree / "debian" / "control"
    if kind == "huge":
        with open(control, "wb") as f:
            f.truncate(20 << 30)
    else:
        plant(tree / "debian", "control", kind, host_file)
    with no_hang(), pytest.raises(InputError) as error:
        refuse_symlinked_metadata(tree)
    assert "debian/control" in one_line(error)
    with no_hang(), pytest.raises(InputError) as error:
        read_source(tree)
    assert "debian/control" in one_line(error, kind)


def test_symlinked_directory_on_the_way_is_refused(tmp_path: Path, host_file: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    os.symlink(host_file.parent, tree / "etc")
    with pytest.raises(InputError) as error:
        fsutil.read_untrusted(tree, "etc/shadow", 1 << 20)
    assert "etc is not a directory" in one_line(error)
    assert fsutil.read_untrusted(host_file.parent, "shadow", 1 << 20) == HOST_SECRET.encode()
    with pytest.raises(FileNotFoundError):
        fsutil.read_untrusted(tree, "missing", 10)
