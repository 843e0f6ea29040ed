# SPDX-License-Identifier: GPL-2.0-or-later
"""Binary packages (deb(5)) read and written in pure Python, with bounds.

A .deb is an ar(5) archive of three members, in this order: ``debian-binary``
(``2.0\\n``), ``control.tar[.gz|.xz|.zst]`` (deb-control(5) and the maintainer
scripts) and ``data.tar[.gz|.xz|.zst|.bz2]`` (the files).  The ar format is 8 bytes of
magic and then per member a 60-byte header (name 16, mtime 12, uid 6, gid 6, mode 8,
size 10, ``\\x60\\n``) and the data padded to an even length.

:func:`read_deb` is for .debs a build produced, which are hostile: it never extracts
(bookworm's Python 3.11.2 ``tarfile`` has no extraction filters), it only lists the
data archive's members and reads the control file, and everything is bounded: the
ar members' sizes by the file's size, the control archive to
:data:`MAX_CONTROL_BYTES` decompressed, the data archive to :data:`MAX_DATA_BYTES`
decompressed and :data:`MAX_MEMBERS` entries.  Any violation raises
:class:`~guestpkg.errors.UnsafeArchive`.

:func:`write_deb` makes the small packages guestpkg needs itself (the build
dependencies' dummy package, sbuild's way) and the hand-made hostile ones the tests
use; dpkg-deb(1) reads what it writes.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from guestpkg.errors import UnsafeArchive

AR_MAGIC = b"!<arch>\n"
#: A control archive is a few files of text; dpkg-deb itself has no bound, we do.
MAX_CONTROL_BYTES = 16 << 20
#: The decompressed data archive: generous for real packages, finite for a bomb.
MAX_DATA_BYTES = 8 << 30
MAX_MEMBERS = 500_000
#: The control file inside the control archive.
MAX_CONTROL_FILE_BYTES = 1 << 20

@dataclass(frozen=True)
class ArMember:
    name: str
    offset: int        # of the data, in the file
    size: int


@dataclass(frozen=True)
class DataMember:
    """One entry of the data archive, as dpkg would install it."""

    path: str           # normalised, without the leading "./": "usr/bin/hello"; "" is /
    kind: str           # file, dir, symlink, hardlink, char, block, fifo
    mode: int           # permission bits including setuid/setgid/sticky
    uid: int
    gid: int
    size: int
    target: str = ""    # symlink target or hardlink's member path


@dataclass(frozen=True)
class DebContents:
    control_text: str
    members: tuple[DataMember, ...]
    control_members: tuple[str, ...]    # names in the control archive: postinst, ...


def _ar_members(f: IO[bytes], file_size: int) -> list[ArMember]:
    if f.read(8) != AR_MAGIC:
        raise UnsafeArchive("not a Debian binary package: no ar archive magic")
    members = []
    offset = 8
    while offset < file_size:
        f.seek(offset)
        header = f.read(60)
        if len(header) != 60 or header[58:60] != b"`\n":
            raise UnsafeArchive("truncated or corrupt ar member header")
        name = header[0:16].decode("ascii", "replace").strip().removesuffix("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as e:
            raise UnsafeArchive(f"ar member {name!r}: bad size") from e
        if size < 0 or offset + 60 + size > file_size:
            raise UnsafeArchive(f"ar member {name!r} runs past the end of the file")
        members.append(ArMember(name, offset + 60, size))
        offset += 60 + size + (size & 1)
        if len(members) > 16:
            raise UnsafeArchive("too many ar members for a .deb")
    return members


class _Window(io.RawIOBase):
    """Bytes [offset, offset+size) of *f*, as a file."""

    def __init__(self, f: IO[bytes], offset: int, size: int) -> None:
        self.f, self.offset, self.remaining = f, offset, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self.remaining)
        if want <= 0:
            return 0
        self.f.seek(self.offset)
        data = self.f.read(want)
        buffer[:len(data)] = data
        self.offset += len(data)
        self.remaining -= len(data)
        return len(data)


class _Bounded(io.RawIOBase):
    """At most *limit* bytes from *stream* (decompressed); more is an error."""

    def __init__(self, stream: IO[bytes], limit: int, what: str) -> None:
        self.stream, self.limit, self.what, self.count = stream, limit, what, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.stream.read(min(len(buffer), 1 << 20))
        self.count += len(data)
        if self.count > self.limit:
            raise UnsafeArchive(f"{self.what} decompresses to more than {self.limit} bytes")
        buffer[:len(data)] = data
        return len(data)


def _zstd_reader(raw: IO[bytes]) -> IO[bytes]:
    import zstandard
    return zstandard.ZstdDecompressor().stream_reader(raw)  # type: ignore[return-value]


def _gzip_reader(raw: IO[bytes]) -> IO[bytes]:
    # The caller closes the whole chain; a context manager would close it here.
    return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]


#: Decompressing readers by ar member suffix (deb(5) lists these).
_OPENERS: dict[str, Callable[[IO[bytes]], IO[bytes]]] = {
    "": lambda raw: raw,
    ".gz": _gzip_reader,
    ".xz": lambda raw: lzma.LZMAFile(raw),  # type: ignore[return-value]  # noqa: SIM115
    ".bz2": lambda raw: bz2.BZ2File(raw),  # type: ignore[return-value]
    ".zst": _zstd_reader,
}


def _decompressed(raw: IO[bytes], suffix: str, limit: int, what: str) -> IO[bytes]:
    opener = _OPENERS.get(suffix)
    if opener is None:
        raise UnsafeArchive(f"{what}: unknown compression {suffix!r}")
    return io.BufferedReader(_Bounded(opener(raw), limit, what), 1 << 16)


def _member_path(name: str) -> str:
    """``./usr/bin/x`` -> ``usr/bin/x``; refuses absolute names and ``..``."""
    if name.startswith("/"):
        raise UnsafeArchive(f"data member with an absolute name: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(f"data member name with '..': {name!r}")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UnsafeArchive(f"data member name with a control character: {name!r}")
    return "/".join(parts)


def _kind(info: tarfile.TarInfo) -> str:
    if info.isreg():
        return "file"
    if info.isdir():
        return "dir"
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.ischr():
        return "char"
    if info.isblk():
        return "block"
    if info.isfifo():
        return "fifo"
    return "other"


def _tar_members(stream: IO[bytes], what: str) -> Iterator[tarfile.TarInfo]:
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for count, info in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise UnsafeArchive(f"{what}: more than {MAX_MEMBERS} members")
                yield info
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, ValueError) as e:
        raise UnsafeArchive(f"{what}: corrupt archive: {e}") from e


def _read_control(stream: IO[bytes]) -> tuple[str, tuple[str, ...]]:
    text = None
    names = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for info in tar:
                name = _member_path(info.name)
                if not name:
                    continue
                names.append(name)
                if name == "control" and info.isreg():
                    if info.size > MAX_CONTROL_FILE_BYTES:
                        raise UnsafeArchive("the control file is too large")
                    member = tar.extractfile(info)
                    assert member is not None
                    text = member.read(MAX_CONTROL_FILE_BYTES).decode("utf-8", "replace")
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, ValueError) as e:
        raise UnsafeArchive(f"control archive: corrupt: {e}") from e
    if text is None:
        raise UnsafeArchive("the control archive has no control file")
    return text, tuple(names)


def read_deb(f: IO[bytes], file_size: int) -> DebContents:
    """The control file and the data archive's member list of the .deb open as *f*
    (*file_size* bytes: the caller fstat()ed it).  Nothing is extracted."""
    members = _ar_members(f, file_size)
    if [m.name for m in members[:1]] != ["debian-binary"] or len(members) < 3:
        raise UnsafeArchive("not a Debian binary package: debian-binary, control.tar "
                            "and data.tar expected in that order")
    control, data = members[1], members[2]
    if not control.name.startswith("control.tar") or not data.name.startswith("data.tar"):
        raise UnsafeArchive(f"unexpected ar members {control.name!r}, {data.name!r}")
    control_text, control_names = _read_control(_decompressed(
        _Window(f, control.offset, control.size), control.name[len("control.tar"):],  # type: ignore[arg-type]
        MAX_CONTROL_BYTES, "control archive"))
    entries = []
    stream = _decompressed(_Window(f, data.offset, data.size),  # type: ignore[arg-type]
                           data.name[len("data.tar"):], MAX_DATA_BYTES, "data archive")
    for info in _tar_members(stream, "data archive"):
        path = _member_path(info.name)
        kind = _kind(info)
        target = info.linkname
        if kind == "hardlink":
            target = _member_path(info.linkname)
        entries.append(DataMember(path, kind, stat.S_IMODE(info.mode), info.uid, info.gid,
                                  info.size if kind == "file" else 0, target))
    return DebContents(control_text, tuple(entries), control_names)


# --- writing ---------------------------------------------------------------------

def _ar_header(name: str, size: int, mode: int = 0o100644) -> bytes:
    header = (f"{name:<16}{0:<12}{0:<6}{0:<6}{mode:<8o}{size:<10}").encode() + b"`\n"
    assert len(header) == 60
    return header


def _tar_gz(entries: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, content in entries:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0)


def tar_entry(name: str, kind: str = "file", *, mode: int = 0o644, content: bytes = b"",
              target: str = "", uid: int = 0, gid: int = 0) -> tuple[tarfile.TarInfo,
                                                                     bytes | None]:
    """One data-archive entry for :func:`write_deb`; *mode* is taken as given, setuid
    bits and all (that is what the hostile test packages need)."""
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE,
             "hardlink": tarfile.LNKTYPE, "char": tarfile.CHRTYPE, "block": tarfile.BLKTYPE,
             "fifo": tarfile.FIFOTYPE}
    info = tarfile.TarInfo(name)
    info.type = types[kind]
    info.mode = mode
    info.uid, info.gid = uid, gid
    info.uname = info.gname = "root" if uid == 0 else ""
    info.linkname = target
    info.mtime = 0
    if kind == "file":
        info.size = len(content)
        return info, content
    return info, None


def write_deb(path: Path, control_text: str,
              data: Sequence[tuple[tarfile.TarInfo, bytes | None]] = (),
              scripts: Sequence[tuple[str, bytes]] = ()) -> None:
    """Write a .deb with *control_text* as its control file, *data* as its files
    (see :func:`tar_entry`) and *scripts* (name, text) as maintainer scripts."""
    control = [tar_entry("./", "dir", mode=0o755),
               tar_entry("./control", content=control_text.encode())]
    control += [tar_entry(f"./{name}", mode=0o755, content=text) for name, text in scripts]
    members = [("debian-binary", b"2.0\n"), ("control.tar.gz", _tar_gz(control)),
               ("data.tar.gz", _tar_gz([tar_entry("./", "dir", mode=0o755), *data]))]
    out = bytearray(AR_MAGIC)
    for name, content in members:
        out += _ar_header(name, len(content)) + content
        if len(content) & 1:
            out += b"\n"
    path.write_bytes(bytes(out))
