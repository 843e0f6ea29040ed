# SPDX-License-Identifier: GPL-2.0-or-later
"""Write a dcfpkg from a directory tree, deterministically.

The same tree and the same :class:`~guestpkg.dcfpkg.format.Metadata` give the same bytes
(docs/dcfpkg.md section 5): entries sorted by path components, owners ``0:0`` unless
kept, no mtimes (every file gets ``Build-Date``), zstd at a fixed level.  zstd's
multi-threaded mode is used because its output depends on the level and parameters
but not on the number of worker threads (zstd.h, ``ZSTD_c_nbWorkers``), so a package
built on a 2-core and a 64-core machine is the same file.

Every regular file is read exactly once: it is hashed and compressed in the same pass
into a content frame kept in a temporary file; the manifest, which needs the digests,
becomes a second, smaller frame written *before* it.  The decompressed stream of the
two frames is the manifest followed by the contents, as the format says.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import IO

import zstandard

from guestpkg.dcfpkg.format import DIRECTORY, HARDLINK, REGULAR, SYMLINK, Entry, Metadata
from guestpkg.errors import InputError
from guestpkg.fsutil import atomic_file

#: zstd's own default and what ``tar --zstd`` uses: most dcfpkgs are made and unpacked
#: on the same machine.  A publisher can raise it (19 is about 20% smaller, 50x slower).
DEFAULT_LEVEL = 3

CHUNK_BYTES = 1 << 20


def scan_tree(root: Path, *, keep_owners: bool = False, prefix: str = "") -> list[Entry]:
    """The manifest entries of *root*, sorted, without digests (:func:`write_dcfpkg`
    fills them in while compressing).  Refuses what a package can't hold.

    *prefix* (``usr/share/doc``) places the tree below that path in the package, with
    ``0755 0:0`` directories leading to it: a package's paths start at ``/``."""
    entries: list[Entry] = []
    first_path: dict[tuple[int, int], bytes] = {}
    lead = os.fsencode(prefix.strip("/"))
    if lead:
        parts = lead.split(b"/")
        entries += [Entry(b"/".join(parts[:i]), DIRECTORY, 0o755) for i in range(1, len(parts))]
        entries.append(Entry(lead, DIRECTORY, stat.S_IMODE(os.stat(root).st_mode)))
    for path, full, st in _walk(os.fsencode(root), lead):
        uid, gid = (st.st_uid, st.st_gid) if keep_owners else (0, 0)
        mode = stat.S_IMODE(st.st_mode)
        if stat.S_ISDIR(st.st_mode):
            entries.append(Entry(path, DIRECTORY, mode, uid, gid))
        elif stat.S_ISLNK(st.st_mode):
            entries.append(Entry(path, SYMLINK, 0o777, uid, gid, target=os.readlink(full)))
        elif stat.S_ISREG(st.st_mode):
            inode = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and inode in first_path:
                entries.append(Entry(path, HARDLINK, mode, uid, gid, target=first_path[inode]))
                continue
            first_path[inode] = path
            entries.append(Entry(path, REGULAR, mode, uid, gid, st.st_size, source=full))
        else:
            raise InputError(f"{os.fsdecode(full)}: a package can't hold device nodes, "
                             "FIFOs or sockets", hint="remove it from the tree")
    return entries


def _sorted_children(directory: bytes) -> Iterator[os.DirEntry[bytes]]:
    with os.scandir(directory) as it:
        return iter(sorted(it, key=lambda item: item.name))


def _walk(root: bytes, lead: bytes) -> Iterator[tuple[bytes, bytes, os.stat_result]]:
    """(package path, file system path, lstat) in manifest order.  A depth-first walk
    taking each directory's names in byte order *is* the order of :func:`sort_key`, so
    nothing needs sorting as a whole; the stack of iterators avoids one generator
    frame per level of depth."""
    stack = [(_sorted_children(root), lead)]
    while stack:
        children, relative = stack[-1]
        item = next(children, None)
        if item is None:
            stack.pop()
            continue
        path = relative + b"/" + item.name if relative else item.name
        st = item.stat(follow_symlinks=False)
        yield path, item.path, st
        if stat.S_ISDIR(st.st_mode):
            stack.append((_sorted_children(item.path), path))


class _HashingSink:
    """A file-like sink that hashes what passes through and counts it."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


def _compressor(level: int) -> zstandard.ZstdCompressor:
    # threads=-1: one worker per CPU; write_checksum adds zstd's own XXH64 per frame, a
    # cheap early warning of corruption before our SHA256 over the whole payload.
    return zstandard.ZstdCompressor(level=level, threads=-1, write_checksum=True,
                                    write_content_size=True)


def _read_exactly(entry: Entry) -> Iterator[bytes]:
    """The contents of *entry*'s source, refusing a file that changed since the scan."""
    assert entry.source is not None
    fd = os.open(entry.source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if entry.size < CHUNK_BYTES:
            # One read of size + 1 bytes gets a small file and proves it didn't grow.
            data = os.read(fd, entry.size + 1)
            if len(data) != entry.size:
                raise InputError(f"{os.fsdecode(entry.source)}: changed size while the "
                                 "package was written",
                                 hint="don't modify the tree while packing it")
            yield data
            return
        left = entry.size
        while left > 0:
            chunk = os.read(fd, min(left, CHUNK_BYTES))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
        if left != 0 or os.read(fd, 1):
            raise InputError(f"{os.fsdecode(entry.source)}: changed size while the package "
                             "was written", hint="don't modify the tree while packing it")
    finally:
        os.close(fd)


def _compress_contents(entries: list[Entry], out: IO[bytes], level: int) -> list[Entry]:
    """Hash and compress every regular file into *out*; return entries with digests.

    Small files are joined into about a megabyte before they go to zstd: one call per
    file would cost more than compressing a small file does."""
    total = sum(e.size for e in entries if e.kind == REGULAR)
    done: list[Entry] = []
    pending: list[bytes] = []
    pending_bytes = 0
    with _compressor(level).stream_writer(out, size=total, closefd=False) as writer:
        for entry in entries:
            if entry.kind != REGULAR:
                done.append(entry)
                continue
            digest = hashlib.sha256()
            for chunk in _read_exactly(entry):
                digest.update(chunk)
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= CHUNK_BYTES:
                    writer.write(b"".join(pending))
                    pending.clear()
                    pending_bytes = 0
            # The constructor, not dataclasses.replace: this runs once per file.
            done.append(Entry(entry.path, REGULAR, entry.mode, entry.uid, entry.gid,
                              entry.size, digest.hexdigest()))
        writer.write(b"".join(pending))
    return done


def write_dcfpkg(tree: Path, metadata: Metadata, out: Path, *, level: int = DEFAULT_LEVEL,
                 keep_owners: bool = False, prefix: str = "") -> Metadata:
    """Pack *tree* into *out* (atomically) and return the metadata as written, with
    its sizes and digests.  *metadata* supplies the identity fields and Build-Date;
    *tree* is the package root (a DESTDIR), or lies at *prefix* in the package."""
    metadata.check_identity()
    entries = scan_tree(tree, keep_owners=keep_owners, prefix=prefix)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent, prefix=".tmp-dcfpkg-content.") as content:
        entries = _compress_contents(entries, content, level)
        manifest = b"".join(e.to_line() for e in entries)
        manifest_frame = _compressor(level).compress(manifest)
        content_size = content.seek(0, os.SEEK_END)
        payload_sha256 = hashlib.sha256(manifest_frame)
        content.seek(0)
        while chunk := content.read(CHUNK_BYTES):
            payload_sha256.update(chunk)
        final = replace(
            metadata, entries=len(entries),
            installed_size=sum(e.size for e in entries if e.kind == REGULAR),
            manifest_size=len(manifest), manifest_sha256=hashlib.sha256(manifest).hexdigest(),
            payload_size=len(manifest_frame) + content_size,
            payload_sha256=payload_sha256.hexdigest())
        with atomic_file(out) as f:
            f.write(final.to_bytes())
            f.write(manifest_frame)
            f.flush()
            _copy_all(content, f, content_size)
    return final


def _copy_all(source: IO[bytes], target: IO[bytes], size: int) -> None:
    """Copy *size* bytes in the kernel (copy_file_range), falling back to read/write."""
    source.seek(0)
    offset = 0
    try:
        while offset < size:
            copied = os.copy_file_range(source.fileno(), target.fileno(), size - offset,
                                        offset_src=offset)
            if copied == 0:
                raise OSError("copy_file_range copied nothing")
            offset += copied
    except OSError:
        source.seek(offset)
        while chunk := source.read(CHUNK_BYTES):
            target.write(chunk)
