# SPDX-License-Identifier: GPL-2.0-or-later
"""Files moved through the broker by SHA256: recipe files, input dcfpkgs, results, logs.

A blob is stored under its digest in chunks (``guestpkg:blob:<sha256>:<n>``, at most
:data:`CHUNK` bytes each, Redis strings being limited), then its header
(``guestpkg:blob:<sha256>`` = ``<size> <chunks>``) is written last, so a header means a
complete blob.  Blobs expire after a day.

A blob is hostile until verified: :func:`fetch` streams it into a ``.tmp-`` file beside
its destination, bounded by the size the caller expects (or a maximum), hashes it while
writing, and renames it into place only when size and SHA256 match.  Nothing
unverified ever has a final name, so nothing unverified enters a build or the cache.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from guestpkg import fsutil
from guestpkg.debian.deb822 import is_sha256
from guestpkg.errors import InputError

if TYPE_CHECKING:
    import redis

CHUNK = 8 << 20
TTL_S = 86400
_KEY = "guestpkg:blob:"


def digest_file(path: Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        return digest, f.tell()


def put(client: redis.Redis[bytes], path: Path) -> tuple[str, int]:
    """Store the file at *path*; returns its SHA256 and size (the digest is of what was
    sent, read once)."""
    hasher = hashlib.sha256()
    size = chunks = 0
    pending = f"{_KEY}.pending.{secrets.token_hex(8)}"
    with open(path, "rb") as f:
        while data := f.read(CHUNK):
            hasher.update(data)
            client.set(f"{pending}:{chunks}", data, ex=TTL_S)
            size += len(data)
            chunks += 1
    digest = hasher.hexdigest()
    for n in range(chunks):
        client.rename(f"{pending}:{n}", f"{_KEY}{digest}:{n}")  # type: ignore[no-untyped-call]
    client.set(f"{_KEY}{digest}", f"{size} {chunks}", ex=TTL_S)
    return digest, size


def put_bytes(client: redis.Redis[bytes], data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    for n in range(max(1, -(-len(data) // CHUNK))):
        client.set(f"{_KEY}{digest}:{n}", data[n * CHUNK:(n + 1) * CHUNK], ex=TTL_S)
    client.set(f"{_KEY}{digest}", f"{len(data)} {max(1, -(-len(data) // CHUNK))}", ex=TTL_S)
    return digest


def fetch(client: redis.Redis[bytes], sha256: str, destination: Path, max_size: int,
          what: str, *, in_place: bool = False) -> int:
    """Write the blob *sha256* to *destination*, verified; returns its size.

    :class:`InputError` if it is missing, bigger than *max_size* or not what its digest
    says (then nothing is left at *destination* or beside it).  *in_place* writes
    straight into *destination*, which must be a temporary name the caller holds (the
    coordinator's receive file, guestpkg.recipe.workdirs: a kill leaves only what
    ``guestpkg cache clean`` reaps, not a second name beside it)."""
    if not is_sha256(sha256):
        raise InputError(f"{what}: {sha256[:70]!r} is not a SHA256")
    header = client.get(f"{_KEY}{sha256}")
    if header is None:
        raise InputError(f"{what}: blob {sha256} is not on the broker (expired, or never "
                         "sent)")
    try:
        size_text, chunks_text = header.decode("ascii").split()
        size, chunks = int(size_text), int(chunks_text)
    except (UnicodeDecodeError, ValueError):
        raise InputError(f"{what}: blob {sha256} has a malformed header") from None
    if size > max_size or chunks > size // CHUNK + 1:
        raise InputError(f"{what}: blob {sha256} is {size} bytes, more than the "
                         f"{max_size} allowed")
    tmp = destination if in_place else destination.with_name(
        f"{fsutil.TMP_PREFIX}{destination.name}.{secrets.token_hex(4)}")
    hasher = hashlib.sha256()
    written = 0
    try:
        # O_EXCL: never through a link planted at the name, never another's file
        with open(tmp, "xb") as out:
            for n in range(chunks):
                data = client.get(f"{_KEY}{sha256}:{n}")
                if data is None:
                    raise InputError(f"{what}: blob {sha256} lost its part {n}")
                written += len(data)
                if written > size:
                    raise InputError(f"{what}: blob {sha256} is longer than its header says")
                hasher.update(data)
                out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if written != size or hasher.hexdigest() != sha256:
            raise InputError(f"{what}: received {written} bytes with SHA256 "
                                   f"{hasher.hexdigest()}, expected {size} bytes with "
                                   f"SHA256 {sha256}")
        if not in_place:
            os.replace(tmp, destination)
    except BaseException:  # also Ctrl-C: nothing unverified stays
        tmp.unlink(missing_ok=True)
        raise
    fsutil.fsync_dir(destination.parent)
    return size
