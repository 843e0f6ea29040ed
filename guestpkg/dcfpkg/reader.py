# SPDX-License-Identifier: GPL-2.0-or-later
"""Read a dcfpkg safely: stream it, and refuse anything the format does not allow.

Bookworm's Python 3.11.2 ``tarfile`` has no extraction filters, and dcfpkg isn't tar
anyway, so every rule is enforced here (docs/dcfpkg.md sections 3, 4 and 6):

1. the metadata stanza is read with a size cap and parsed strictly; the file must be
   exactly header + ``Payload-Size`` bytes;
2. the caps of :class:`ReaderPolicy` are checked against the metadata before a byte is
   decompressed, and the zstd decompressor gets a window cap (``max_window_size``);
3. the manifest is read in full, its SHA256 checked and every line checked against the
   rules (paths, order, parents, link targets, hard links, setuid) *before anything is
   written*;
4. file contents are streamed in chunks and hashed as they are written; the stream
   must end exactly after the last file, and ``Payload-SHA256`` must match.

Extraction writes into a fresh temporary directory next to the destination, never
follows a link, and renames the directory into place only after step 4; any failure
removes it.  The file system operations run on a writer thread, in manifest order
(:mod:`guestpkg.dcfpkg.fswriter`), which hashes what it writes and checks each digest,
while this thread decompresses.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, cast

import zstandard

from guestpkg.dcfpkg.format import (
    DIRECTORY,
    HARDLINK,
    MAGIC,
    REGULAR,
    SYMLINK,
    Entry,
    Metadata,
    parse_line,
    sort_key,
)
from guestpkg.dcfpkg.fswriter import OrderedWriter
from guestpkg.dcfpkg.stanza import parse_stanzas
from guestpkg.errors import InputError, ParseError, UnsafeArchive
from guestpkg.fsutil import atomic_directory

CHUNK_BYTES = 1 << 20
MAX_METADATA_BYTES = 64 << 10
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


#: The setting that relaxes the setuid rule, as each front door spells it.
SETUID_HINT = ("if this package must have it: guestpkg dcfpkg --dcfpkg-allow-setuid, or "
               "GUESTPKG_DCFPKG_ALLOW_SETUID=yes, or dcfpkg_allow_setuid = yes in "
               "guestpkg.conf(5)")


@dataclass(frozen=True)
class ReaderPolicy:
    """What a reader accepts.  The defaults are the safe ones."""

    allow_setuid: bool = False
    #: what a refused setuid file's error tells the user to do: the front door's own
    setuid_hint: str = SETUID_HINT
    max_entries: int = 1_000_000
    max_installed_bytes: int = 64 << 30
    max_manifest_bytes: int = 256 << 20
    # zstd's own default limit for streaming decompression is 2**27 (128 MiB); frames
    # asking for more are refused rather than honoured (zstd.h ZSTD_d_windowLogMax).
    max_window_bytes: int = 1 << 27
    apply_owners: bool | None = None   # None: when running as root


class _PayloadSource:
    """The compressed bytes after the header: at most *size* of them are handed to the
    decompressor, all of them are hashed, and a longer or shorter file is refused."""

    def __init__(self, f: IO[bytes], size: int, where: str) -> None:
        self.f, self.left, self.where = f, size, where
        self.sha256 = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data = self.f.read(n) if n > 0 else b""
        self.left -= len(data)
        self.sha256.update(data)
        return data

    def drain(self) -> None:
        """Hash what the decompressor did not need (there should be nothing left)."""
        while self.read(CHUNK_BYTES):
            pass
        if self.left:
            raise UnsafeArchive(f"{self.where}: truncated: {self.left} bytes missing")
        if self.f.read(1):
            raise UnsafeArchive(f"{self.where}: data after the payload")


def read_metadata(f: IO[bytes], where: str) -> Metadata:
    """Read the magic line and the stanza from *f*, leaving it at the payload."""
    if f.read(len(MAGIC)) != MAGIC:
        raise UnsafeArchive(f"{where}: not a dcfpkg (bad magic line)",
                            hint="a dcfpkg starts with 'dcfpkg 1'")
    lines: list[bytes] = []
    size = 0
    while True:
        line = f.readline(MAX_METADATA_BYTES - size + 1)
        size += len(line)
        if size > MAX_METADATA_BYTES or not line.endswith(b"\n"):
            raise UnsafeArchive(f"{where}: metadata stanza too long or truncated")
        if line == b"\n":
            break
        lines.append(line)
    try:
        text = b"".join(lines).decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnsafeArchive(f"{where}: metadata is not UTF-8") from e
    stanzas = parse_stanzas(text, where, first_line=2)
    if len(stanzas) != 1:
        raise ParseError("expected one metadata stanza", where, 2)
    return Metadata.from_stanza(stanzas[0], where)


def _check_caps(meta: Metadata, policy: ReaderPolicy, where: str) -> None:
    caps = (("Entries", meta.entries, policy.max_entries),
            ("Installed-Size", meta.installed_size, policy.max_installed_bytes),
            ("Manifest-Size", meta.manifest_size, policy.max_manifest_bytes))
    for name, value, cap in caps:
        if value > cap:
            raise UnsafeArchive(f"{where}: {name} {value} is over the cap of {cap}",
                                hint="raise the cap (dcfpkg_max_entries, dcfpkg_max_size) "
                                "only for a package you expect to be that big")


def _check_path(path: bytes, where: str, lineno: int) -> None:
    if not path or path.startswith(b"/") or len(path) > MAX_PATH_BYTES or b"\0" in path:
        raise UnsafeArchive(f"{where}:{lineno}: path {path[:80]!r} is empty, absolute or "
                            "too long")
    for part in path.split(b"/"):
        if part in (b"", b".", b"..") or len(part) > MAX_NAME_BYTES:
            raise UnsafeArchive(f"{where}:{lineno}: path {path[:80]!r} has an empty, '.', "
                                "'..' or over-long component")


#: The kernel's limit on links followed in one path lookup (MAXSYMLINKS, ELOOP).
MAX_SYMLINK_FOLLOWS = 40


class _SymlinkLoop(Exception):
    pass


class _LinkResolver:
    """The unpacked tree as the kernel will walk it (path_resolution(7)), so that a
    symlink's target is judged by where it leads, not by its text: ``t -> d/s/..`` with
    ``d/s -> ..`` climbs out although the text of each looks harmless.

    A position is ``(node, extra)``: a listed entry (0 is the package root) and how many
    unlisted components lie below it.  The unpacked tree holds nothing unlisted, and
    what the installed system has there is outside the package's say, so an unlisted
    name is taken as a directory.  Each link's own resolution is remembered, so the
    work is linear in the manifest's size whatever the chains."""

    OUTSIDE = (-1, 0)

    def __init__(self, entries: list[Entry]) -> None:
        ids = {b"": 0}
        self.parent = [-1]
        self.children: dict[tuple[int, bytes], int] = {}
        self.targets: dict[int, bytes] = {}
        for e in entries:  # every parent is a directory listed earlier (checked)
            parent, _, name = e.path.rpartition(b"/")
            node = ids[e.path] = len(self.parent)
            self.parent.append(ids[parent])
            self.children[(ids[parent], name)] = node
            if e.kind == SYMLINK and e.target:
                self.targets[node] = e.target
        self.ids = ids
        self.resolved: dict[int, tuple[int, int]] = {}
        self.active: list[int] = []

    def stays_inside(self, path: bytes) -> bool:
        """Does the symlink at *path* lead to a place inside the package root?"""
        return self._resolve(self.ids[path]) != self.OUTSIDE

    def _resolve(self, link: int) -> tuple[int, int]:
        if link in self.resolved:
            return self.resolved[link]
        if link in self.active or len(self.active) >= MAX_SYMLINK_FOLLOWS:
            raise _SymlinkLoop
        self.active.append(link)
        target = self.targets[link]
        node, extra = (0, 0) if target.startswith(b"/") else (self.parent[link], 0)
        for part in target.split(b"/"):
            if part in (b"", b"."):
                continue
            if part == b"..":
                if extra:
                    extra -= 1
                elif node == 0:
                    node, extra = self.OUTSIDE
                    break
                else:
                    node = self.parent[node]
            elif extra:
                extra += 1
            elif (child := self.children.get((node, part))) is None:
                extra = 1
            elif child in self.targets:
                node, extra = self._resolve(child)
                if (node, extra) == self.OUTSIDE:
                    break
            else:
                node = child
        self.active.pop()
        self.resolved[link] = (node, extra)
        return node, extra


def _check_symlinks(entries: list[Entry], where: str) -> None:
    """Each symlink's target, resolved through the package's own links."""
    resolver = _LinkResolver(entries)
    for lineno, e in enumerate(entries, 1):
        if e.kind != SYMLINK:
            continue
        at = f"{where}:{lineno}: {e.path!r}"
        try:
            inside = resolver.stays_inside(e.path)
        except _SymlinkLoop:
            raise UnsafeArchive(f"{at}: symlink to {e.target!r} is a loop or goes through "
                                f"more than {MAX_SYMLINK_FOLLOWS} links") from None
        if not inside:
            raise UnsafeArchive(f"{at}: symlink to {e.target!r} leaves the package root "
                                "(resolved through the package's own links)")


def check_manifest(entries: list[Entry], meta: Metadata, policy: ReaderPolicy,
                   where: str) -> None:
    """Every rule of docs/dcfpkg.md section 3; raise :class:`UnsafeArchive` on the first
    broken one."""
    directories: set[bytes] = set()
    regular: dict[bytes, Entry] = {}
    previous: list[bytes] | None = None
    for lineno, e in enumerate(entries, 1):
        _check_path(e.path, where, lineno)
        key = sort_key(e.path)
        if previous is not None and key <= previous:
            raise UnsafeArchive(f"{where}:{lineno}: {e.path!r} is out of order or repeated")
        previous = key
        parent = e.path.rpartition(b"/")[0]
        if parent and parent not in directories:
            raise UnsafeArchive(f"{where}:{lineno}: the parent of {e.path!r} is not a "
                                "directory listed before it")
        if e.mode & (stat.S_ISUID | stat.S_ISGID) and not policy.allow_setuid:
            raise UnsafeArchive(f"{where}:{lineno}: {e.path!r} is setuid or setgid",
                                hint=policy.setuid_hint)
        _check_entry(e, regular, where, lineno)
        if e.kind == DIRECTORY:
            directories.add(e.path)
        elif e.kind == REGULAR:
            regular[e.path] = e
    _check_symlinks(entries, where)
    if len(entries) != meta.entries:
        raise UnsafeArchive(f"{where}: {len(entries)} entries, Entries says {meta.entries}")
    total = sum(e.size for e in regular.values())
    if total != meta.installed_size:
        raise UnsafeArchive(f"{where}: files add up to {total} bytes, Installed-Size says "
                            f"{meta.installed_size}")


def _check_entry(e: Entry, regular: dict[bytes, Entry], where: str, lineno: int) -> None:
    at = f"{where}:{lineno}: {e.path!r}"
    if e.kind == REGULAR:
        if e.sha256 is None or e.target is not None:
            raise UnsafeArchive(f"{at}: a regular file needs a SHA256 and no target")
        return
    if e.size != 0 or e.sha256 is not None:
        raise UnsafeArchive(f"{at}: only regular files have a size and a SHA256")
    if e.kind == DIRECTORY:
        if e.target is not None:
            raise UnsafeArchive(f"{at}: a directory has no target")
    elif e.kind == SYMLINK:
        if not e.target or len(e.target) > MAX_PATH_BYTES or b"\0" in e.target:
            raise UnsafeArchive(f"{at}: bad symlink target")
        if e.mode != 0o777:
            raise UnsafeArchive(f"{at}: a symlink's mode is 0777")
    elif e.kind == HARDLINK:
        first = regular.get(e.target or b"")
        if first is None:
            raise UnsafeArchive(f"{at}: hard link to {e.target!r}, which is not an earlier "
                                "regular file")
        # One inode has one mode and owner: a link that disagrees would change the file.
        if (e.mode, e.uid, e.gid) != (first.mode, first.uid, first.gid):
            raise UnsafeArchive(f"{at}: hard link's mode or owner differs from its target's")


class DcfpkgReader:
    """One pass over a dcfpkg: :attr:`metadata` and :attr:`entries` (checked) on open,
    then :meth:`contents` streams the files, then :meth:`finish` checks the end."""

    def __init__(self, f: IO[bytes], where: str, policy: ReaderPolicy) -> None:
        self.where, self.policy = where, policy
        self.metadata = read_metadata(f, where)
        _check_caps(self.metadata, policy, where)
        header_end = f.tell()
        try:
            st = os.fstat(f.fileno())
        except (OSError, ValueError, AttributeError):
            st = None
        if st is not None and stat.S_ISREG(st.st_mode) \
                and st.st_size != header_end + self.metadata.payload_size:
            raise UnsafeArchive(f"{where}: file is {st.st_size} bytes, the header says "
                                f"{header_end + self.metadata.payload_size} (truncated or "
                                "data appended)")
        self.source = _PayloadSource(f, self.metadata.payload_size, where)
        decompressor = zstandard.ZstdDecompressor(max_window_size=policy.max_window_bytes)
        self.stream = decompressor.stream_reader(
            cast("IO[bytes]", self.source), read_size=CHUNK_BYTES, read_across_frames=True)
        self.entries = self._read_manifest()

    def _read(self, n: int) -> bytes:
        try:
            data = self.stream.read(n)
        except zstandard.ZstdError as e:
            raise UnsafeArchive(f"{self.where}: bad zstd data: {e}",
                                hint="the file is corrupt, or its window is over the cap") from e
        if not data and n:
            raise UnsafeArchive(f"{self.where}: payload ends early")
        return data

    def _read_manifest(self) -> list[Entry]:
        meta, where = self.metadata, f"{self.where}:manifest"
        manifest = bytearray()
        while len(manifest) < meta.manifest_size:
            manifest += self._read(min(CHUNK_BYTES, meta.manifest_size - len(manifest)))
        if hashlib.sha256(manifest).hexdigest() != meta.manifest_sha256:
            raise UnsafeArchive(f"{self.where}: manifest SHA256 mismatch")
        if manifest and not manifest.endswith(b"\n"):
            raise UnsafeArchive(f"{where}: the last line has no newline")
        lines = bytes(manifest).split(b"\n")[:-1]
        if len(lines) > self.policy.max_entries:
            raise UnsafeArchive(f"{where}: more than {self.policy.max_entries} entries")
        try:
            entries = [parse_line(line, where, n) for n, line in enumerate(lines, 1)]
        except ParseError as e:
            raise UnsafeArchive(e.message) from e
        check_manifest(entries, meta, self.policy, where)
        return entries

    def contents(self, entry: Entry) -> Iterator[bytes]:
        """The next regular file's contents, in chunks; checks its SHA256 at the end."""
        digest = hashlib.sha256()
        for chunk in self.unchecked_contents(entry):
            digest.update(chunk)
            yield chunk
        self.check_digest(entry, digest.hexdigest())

    def unchecked_contents(self, entry: Entry) -> Iterator[bytes]:
        """The next regular file's contents; the caller must :meth:`check_digest`."""
        left = entry.size
        while left:
            chunk = self._read(min(left, CHUNK_BYTES))
            left -= len(chunk)
            yield chunk

    def check_digest(self, entry: Entry, sha256: str) -> None:
        if sha256 != entry.sha256:
            raise UnsafeArchive(f"{self.where}: {entry.path!r}: SHA256 mismatch")

    def finish(self) -> None:
        """The stream must end here, and the whole payload must have its SHA256."""
        if self._read_more():
            raise UnsafeArchive(f"{self.where}: data after the last file")
        self.source.drain()
        if self.source.sha256.hexdigest() != self.metadata.payload_sha256:
            raise UnsafeArchive(f"{self.where}: Payload-SHA256 mismatch")

    def _read_more(self) -> bool:
        try:
            return bool(self.stream.read(1))
        except zstandard.ZstdError as e:
            raise UnsafeArchive(f"{self.where}: bad zstd data after the last file: {e}") from e


def open_input(path: Path) -> io.BufferedReader:
    """*path* opened for reading; a missing or unreadable file is bad input (one line,
    exit 3), not a bug."""
    try:
        return open(path, "rb")
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror}") from e


def open_package(f: IO[bytes], where: str, policy: ReaderPolicy) -> DcfpkgReader:
    return DcfpkgReader(f, where, policy)


def read_manifest(path: Path, policy: ReaderPolicy | None = None
                  ) -> tuple[Metadata, list[Entry]]:
    """Metadata and the checked manifest, without reading the contents."""
    with open_input(path) as f:
        reader = DcfpkgReader(f, str(path), policy or ReaderPolicy())
        return reader.metadata, reader.entries


def verify(path: Path, policy: ReaderPolicy | None = None) -> Metadata:
    """Read everything and check every digest; write nothing."""
    with open_input(path) as f:
        reader = DcfpkgReader(f, str(path), policy or ReaderPolicy())
        for entry in reader.entries:
            if entry.kind == REGULAR:
                for _ in reader.contents(entry):
                    pass
        reader.finish()
        return reader.metadata


def extract(path: Path, destination: Path, policy: ReaderPolicy | None = None,
            expect: Metadata | None = None) -> Metadata:
    """Extract into *destination*, which must not exist; all or nothing.  With *expect*
    (the header whose signatures were checked), the file must still carry exactly that
    header: its Payload-SHA256, checked at the end before anything is renamed into
    place, then binds what is extracted to what was verified, even if the file was
    swapped or rewritten since."""
    policy = policy or ReaderPolicy()
    if destination.exists() or destination.is_symlink():
        raise UnsafeArchive(f"{destination}: already exists",
                            hint="extract into a new directory")
    with open_input(path) as f:
        reader = DcfpkgReader(f, str(path), policy)
        if expect is not None and reader.metadata != expect:
            raise UnsafeArchive(f"{path} changed after its signatures were checked",
                                hint="extract from a directory only root can write to")
        with atomic_directory(destination) as tmp:
            _extract_into(reader, tmp, policy)
        return reader.metadata


def _extract_into(reader: DcfpkgReader, root: Path, policy: ReaderPolicy) -> None:
    """Decompress and check here, create files on an :class:`OrderedWriter` thread."""
    writer = OrderedWriter()
    try:
        directories = _create_entries(reader, root, policy, writer)
        reader.finish()
    except BaseException:
        writer.close(raise_error=False)  # the thread is done before the tree is removed
        raise
    writer.close()
    # Directories last and deepest first: a read-only directory must not stop its
    # children from being created, and creating a child changes the parent's mtime.
    owners = policy.apply_owners if policy.apply_owners is not None else os.geteuid() == 0
    mtime = reader.metadata.build_date
    for entry in reversed(directories):
        target = os.path.join(os.fsencode(root), entry.path)
        if owners:
            os.lchown(target, entry.uid, entry.gid)
        os.chmod(target, entry.mode, follow_symlinks=False)
        os.utime(target, (mtime, mtime), follow_symlinks=False)
    os.chmod(root, 0o755)  # noqa: S103 (the package root becomes /, which is 0755)
    os.utime(root, (mtime, mtime))


def _create_entries(reader: DcfpkgReader, root: Path, policy: ReaderPolicy,
                    writer: OrderedWriter) -> list[Entry]:
    owners = policy.apply_owners if policy.apply_owners is not None else os.geteuid() == 0
    # A file we create is ours already, unless a setgid directory above hands it its
    # group: then chown each file; otherwise skip the call (one syscall per file).
    ours = None if os.stat(root).st_mode & stat.S_ISGID else (os.geteuid(), os.getegid())
    mtime = reader.metadata.build_date
    base = os.fsencode(root)
    directories: list[Entry] = []
    for key, entry in enumerate(reader.entries):
        target = os.path.join(base, entry.path)
        if entry.kind == DIRECTORY:
            writer.submit(os.mkdir, target, 0o700)
            directories.append(entry)
        elif entry.kind == REGULAR:
            owner = (entry.uid, entry.gid)
            chown = owner if owners and owner != ours else None
            # The writer thread hashes what it writes and checks the digest
            # (reader.check_digest) before it sets the mode: SHA256 releases the GIL,
            # so hashing there overlaps with decompressing here.
            if entry.size <= CHUNK_BYTES:
                # Most files are small: one hand-over each, not three.
                data = b"".join(reader.unchecked_contents(entry))
                writer.write_file(target, data, chown, entry.mode, mtime,
                                  partial(reader.check_digest, entry))
                continue
            writer.open(key, target)
            for chunk in reader.unchecked_contents(entry):
                writer.write(key, chunk)
            writer.finish_file(key, chown, entry.mode, mtime, partial(reader.check_digest, entry))
        elif entry.kind == SYMLINK:
            writer.submit(_symlink, entry, target, owners, mtime)
        else:
            assert entry.target is not None
            writer.submit(_hardlink, os.path.join(base, entry.target), target)
    return directories


def _symlink(entry: Entry, target: bytes, owners: bool, mtime: int) -> None:
    assert entry.target is not None
    os.symlink(entry.target, target)
    if owners:
        os.lchown(target, entry.uid, entry.gid)
    os.utime(target, (mtime, mtime), follow_symlinks=False)


def _hardlink(existing: bytes, target: bytes) -> None:
    os.link(existing, target, follow_symlinks=False)
