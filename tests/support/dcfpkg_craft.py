# SPDX-License-Identifier: GPL-2.0-or-later
"""A low-level dcfpkg writer for tests: it writes whatever it is told, hostile or not.

Digests and sizes are computed by default, so that a hostile package is refused for the
rule it breaks and not for a checksum; every field can be overridden to break that too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import zstandard


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def line(path: bytes | str, kind: str, mode: str = "0755", owner: str = "0:0", size: int = 0,
         digest: str = "-", target: bytes | str = "-") -> bytes:
    """One manifest line, columns taken as given (no escaping, no checks)."""
    p = path.encode() if isinstance(path, str) else path
    t = target.encode() if isinstance(target, str) else target
    return b" ".join((p, kind.encode(), mode.encode(), owner.encode(), str(size).encode(),
                      digest.encode(), t)) + b"\n"


def file_line(path: str, data: bytes, mode: str = "0644") -> bytes:
    return line(path, "f", mode, size=len(data), digest=sha(data))


@dataclass
class Crafted:
    """A package in the making: manifest lines, contents, and field overrides."""

    lines: list[bytes]
    contents: bytes = b""
    fields: dict[str, str | None] = field(default_factory=dict)
    payload: bytes | None = None        # the compressed part, if not made from the above
    appended: bytes = b""               # raw bytes after the payload, uncounted
    magic: bytes = b"dcfpkg 1\n"

    def build(self) -> bytes:
        manifest = b"".join(self.lines)
        payload = self.payload
        if payload is None:
            payload = zstandard.ZstdCompressor(level=3).compress(manifest + self.contents)
        fields: dict[str, str | None] = {
            "Package": "evil", "Version": "1.0", "Release": "1", "Architecture": "all",
            "Build-Date": "1700000000", "Entries": str(len(self.lines)),
            "Installed-Size": str(len(self.contents)), "Manifest-Size": str(len(manifest)),
            "Manifest-SHA256": sha(manifest), "Compression": "zstd",
            "Payload-Size": str(len(payload)), "Payload-SHA256": sha(payload),
        }
        fields.update(self.fields)
        stanza = "".join(f"{k}: {v}\n" for k, v in fields.items() if v is not None)
        return self.magic + stanza.encode() + b"\n" + payload + self.appended


def simple(**overrides: str) -> Crafted:
    """A valid two-entry package: ``usr/`` and ``usr/hello``."""
    data = b"hello\n"
    crafted = Crafted([line("usr", "d"), file_line("usr/hello", data)], data)
    crafted.fields.update(overrides)
    return crafted
