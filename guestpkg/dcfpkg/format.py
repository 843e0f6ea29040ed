# SPDX-License-Identifier: GPL-2.0-or-later
"""The dcfpkg file format: the magic line, the metadata stanza and manifest lines.

A dcfpkg (docs/dcfpkg.md, dcfpkg(5)) is::

    dcfpkg 1\\n
    <deb822 metadata stanza>\\n
    \\n
    <one zstd frame: the manifest, then every regular file's contents in manifest order>

This module only encodes and decodes; what a reader must refuse is in
:mod:`guestpkg.dcfpkg.reader`, how a tree becomes a package in
:mod:`guestpkg.dcfpkg.writer`.

Manifest lines follow Arch's ``.MTREE`` in spirit (type, mode, owner, size, sha256,
link) but in fixed columns::

    <path> <type> <mode> <uid>:<gid> <size> <sha256|-> <target|->

Paths and targets escape every byte outside ``!``..``~`` and the backslash as ``\\ooo``
(three octal digits), the ``vis(3)`` escaping ``.MTREE`` uses, so any Linux file name
round-trips and no name can split a line or a column.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from guestpkg.dcfpkg.stanza import Stanza, format_stanza
from guestpkg.debian.deb822 import is_package_name, is_sha256, is_version
from guestpkg.errors import ParseError

MAGIC = b"dcfpkg 1\n"
COMPRESSION = "zstd"

DIRECTORY, REGULAR, SYMLINK, HARDLINK = "d", "f", "l", "h"
TYPES = (DIRECTORY, REGULAR, SYMLINK, HARDLINK)

_RELEASE = re.compile(r"^[A-Za-z0-9.+~]+$")
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_NUMBER = re.compile(r"^(0|[1-9][0-9]{0,18})$")
_URL = re.compile(r"^https?://[!-~]{1,500}$")
_ONE_LINE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]{1,200}$")
#: ``<Debian package> <Debian version> <SHA256 of the .deb>``
_PROVENANCE = re.compile(r"^(\S+) (\S+) ([0-9a-f]{64})$")
#: one line of Inputs: ``<recipe name>/<version>/<release> <SHA256 of its dcfpkg>``,
#: ``latest`` after it for an input left out of the cache key
_INPUT = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,62}/[0-9][A-Za-z0-9.+~]{0,63}/[A-Za-z0-9.+~]{1,32}"
                    r" [0-9a-f]{64}( latest)?$")

#: Fields in the order the writer emits them, and whether they are required.
FIELDS: tuple[tuple[str, bool], ...] = (
    ("Package", True), ("Version", True), ("Release", True), ("Architecture", True),
    ("Depends", False), ("Build-Depends", False), ("Source", False),
    ("Description", False), ("Homepage", False), ("License", False), ("Maintainer", False),
    ("Provenance", False), ("Recipe-Key", False), ("Bootstrap-Set", False), ("Inputs", False),
    ("Build-Date", True), ("Entries", True),
    ("Installed-Size", True), ("Manifest-Size", True), ("Manifest-SHA256", True),
    ("Compression", True), ("Payload-Size", True), ("Payload-SHA256", True),
)
KNOWN_FIELDS = {name for name, _ in FIELDS}


@dataclass(frozen=True)
class Metadata:
    """The metadata stanza.  Sizes and digests are filled in by the writer."""

    package: str
    version: str
    release: str
    architecture: str
    build_date: int
    depends: str = ""
    build_depends: str = ""
    source: str = ""
    description: str = ""
    homepage: str = ""
    license: str = ""
    maintainer: str = ""
    provenance: str = ""       # a package imported from Debian: package, version, .deb SHA256
    recipe_key: str = ""       # a recipe's result: its cache key (docs/recipes.md)
    bootstrap_set: str = ""    # ... the id of the bootstrap set it was built over
    inputs: tuple[str, ...] = ()   # ... and its inputs, "name/version/release sha256"
    extra: tuple[tuple[str, str], ...] = ()      # X- fields, kept as given
    entries: int = 0
    installed_size: int = 0
    manifest_size: int = 0
    manifest_sha256: str = ""
    compression: str = COMPRESSION
    payload_size: int = 0
    payload_sha256: str = ""

    @property
    def full_version(self) -> str:
        """``<version>-<release>``: what signatures and version counters compare."""
        return f"{self.version}-{self.release}"

    def check_identity(self) -> None:
        """Refuse names and versions that could not be a file name or a version."""
        checks: tuple[tuple[str, str, Callable[[str], object]], ...] = (
            ("Package", self.package, is_package_name),
            # the version without the revision: full_version appends the Release
            ("Version", self.version, lambda v: is_version(v) and "-" not in v),
            ("Release", self.release, _RELEASE.match),
            ("Architecture", self.architecture, _ARCH.match))
        for name, value, valid in checks:
            if not valid(value):
                raise ValueError(f"{name}: {value!r} is not a valid value")
        for name, _ in self.extra:
            if not name.startswith("X-"):
                raise ValueError(f"extra field {name!r} must start with X-")
        self.check_origin()

    def check_origin(self) -> None:
        """Refuse malformed where-it-came-from fields (meta, provenance, recipe)."""
        def valid_provenance(text: str) -> bool:
            match = _PROVENANCE.match(text)
            return (match is not None and is_package_name(match.group(1))
                    and is_version(match.group(2)))

        checks: tuple[tuple[str, str, Callable[[str], object]], ...] = (
            ("Homepage", self.homepage, _URL.match),
            ("License", self.license, _ONE_LINE.match),
            ("Maintainer", self.maintainer, _ONE_LINE.match),
            ("Provenance", self.provenance, valid_provenance),
            ("Recipe-Key", self.recipe_key, is_sha256),
            ("Bootstrap-Set", self.bootstrap_set, is_sha256),
            *(("Inputs", line, _INPUT.match) for line in self.inputs))
        for name, value, valid in checks:
            if value and not valid(value):
                raise ValueError(f"{name}: {value[:80]!r} is not a valid value")

    def to_bytes(self) -> bytes:
        """The magic line, the stanza and the empty line that ends it."""
        values = {
            "Package": self.package, "Version": self.version, "Release": self.release,
            "Architecture": self.architecture, "Depends": self.depends,
            "Build-Depends": self.build_depends, "Source": self.source,
            "Description": self.description, "Homepage": self.homepage,
            "License": self.license, "Maintainer": self.maintainer,
            "Provenance": self.provenance, "Recipe-Key": self.recipe_key,
            "Bootstrap-Set": self.bootstrap_set,
            # a multi-line field starts on the line after its name, as Checksums-Sha256
            "Inputs": "".join("\n" + line for line in self.inputs),
            "Build-Date": str(self.build_date),
            "Entries": str(self.entries), "Installed-Size": str(self.installed_size),
            "Manifest-Size": str(self.manifest_size),
            "Manifest-SHA256": self.manifest_sha256, "Compression": self.compression,
            "Payload-Size": str(self.payload_size), "Payload-SHA256": self.payload_sha256,
        }
        fields = [(n, values[n]) for n, required in FIELDS if required or values[n]]
        return MAGIC + format_stanza([*fields, *self.extra]).encode() + b"\n"

    @classmethod
    def from_stanza(cls, stanza: Stanza, path: str) -> Metadata:
        """Parse and check a metadata stanza strictly: unknown fields are refused."""
        f = stanza.fields
        for name in f:
            if name not in KNOWN_FIELDS and not name.startswith("X-"):
                raise ParseError(f"unknown field {name}", path, stanza.lines[name],
                                 hint="this dcfpkg needs a newer guestpkg, or is not one")
        for name, required in FIELDS:
            if required and name not in f:
                raise ParseError(f"missing field {name}", path, stanza.first_line)

        def number(name: str) -> int:
            if not _NUMBER.match(f[name]):
                raise ParseError(f"{name}: not a number: {f[name]!r}", path, stanza.lines[name])
            return int(f[name])

        def digest(name: str) -> str:
            if not is_sha256(f[name]):
                raise ParseError(f"{name}: not a SHA256: {f[name]!r}", path, stanza.lines[name])
            return f[name]

        if f["Compression"] != COMPRESSION:
            raise ParseError(f"Compression: only {COMPRESSION} is defined", path,
                             stanza.lines["Compression"])
        meta = cls(
            package=f["Package"], version=f["Version"], release=f["Release"],
            architecture=f["Architecture"], build_date=number("Build-Date"),
            depends=f.get("Depends", ""), build_depends=f.get("Build-Depends", ""),
            source=f.get("Source", ""), description=f.get("Description", ""),
            homepage=f.get("Homepage", ""), license=f.get("License", ""),
            maintainer=f.get("Maintainer", ""), provenance=f.get("Provenance", ""),
            recipe_key=f.get("Recipe-Key", ""), bootstrap_set=f.get("Bootstrap-Set", ""),
            inputs=tuple(f.get("Inputs", "").split("\n")[1:]) if f.get("Inputs") else (),
            extra=tuple((k, v) for k, v in f.items() if k.startswith("X-")),
            entries=number("Entries"), installed_size=number("Installed-Size"),
            manifest_size=number("Manifest-Size"), manifest_sha256=digest("Manifest-SHA256"),
            payload_size=number("Payload-Size"), payload_sha256=digest("Payload-SHA256"),
        )
        if "Inputs" in f and f["Inputs"].split("\n")[0]:
            raise ParseError("Inputs: the first line must be empty (one input a line "
                             "after it)", path, stanza.lines["Inputs"])
        try:
            meta.check_identity()
        except ValueError as e:
            field_name = str(e).split(":", 1)[0]
            raise ParseError(str(e), path, stanza.lines.get(field_name, stanza.first_line)
                             ) from e
        return meta


@dataclass(frozen=True)
class Entry:
    """One manifest line.  *path* and *target* are raw bytes, as Linux names are."""

    path: bytes
    kind: str
    mode: int
    uid: int = 0
    gid: int = 0
    size: int = 0
    sha256: str | None = None
    target: bytes | None = None
    # Where the writer reads a regular file from; never written to the manifest.
    source: bytes | None = field(default=None, compare=False)

    def to_line(self) -> bytes:
        return b" ".join((
            escape(self.path), self.kind.encode(), b"%04o" % self.mode,
            b"%d:%d" % (self.uid, self.gid), b"%d" % self.size,
            (self.sha256 or "-").encode(),
            escape(self.target) if self.target is not None else b"-",
        )) + b"\n"


def sort_key(path: bytes) -> list[bytes]:
    """Order by path components, so a directory comes right before its contents
    (``a/b`` < ``a-b`` because ``a`` < ``a-b``, where plain byte order says otherwise)."""
    return path.split(b"/")


_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("\\")}
_PLAIN_BYTES = bytes(sorted(_PLAIN))


def escape(name: bytes) -> bytes:
    if name == b"-":  # "-" alone means "none" in a column
        return b"\\055"
    if not name.translate(None, _PLAIN_BYTES):  # the common case, checked in C
        return name
    return b"".join(bytes((b,)) if b in _PLAIN else b"\\%03o" % b for b in name)


def unescape(text: bytes, where: str, lineno: int) -> bytes:
    if b"\\" not in text:
        return text
    out = bytearray()
    i = 0
    while i < len(text):
        if text[i] != ord("\\"):
            out.append(text[i])
            i += 1
            continue
        code = text[i + 1:i + 4]
        if len(code) != 3 or any(c not in b"01234567" for c in code) or int(code, 8) > 255:
            raise ParseError(f"bad escape in {text[:60]!r}", where, lineno)
        out.append(int(code, 8))
        i += 4
    return bytes(out)


_LINE_NUMBER = re.compile(rb"^(0|[1-9][0-9]{0,18})$")
_MODE = re.compile(rb"^[0-7]{4}$")
_OWNER = re.compile(rb"^(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,9})$")


def parse_line(line: bytes, where: str, lineno: int) -> Entry:
    """Decode one manifest line (without its newline); syntax only, no policy."""
    columns = line.split(b" ")
    if len(columns) != 7:
        raise ParseError(f"expected 7 columns, got {len(columns)}", where, lineno)
    path, kind, mode, owner, size, digest, target = columns
    if kind.decode("ascii", "replace") not in TYPES:
        raise ParseError(f"type {kind[:8]!r} is not one of d, f, l, h (devices, FIFOs and "
                         "sockets are not allowed)", where, lineno)
    owner_match = _OWNER.match(owner)
    if not _MODE.match(mode) or owner_match is None or not _LINE_NUMBER.match(size):
        raise ParseError("bad mode, owner or size column", where, lineno)
    if digest != b"-" and not is_sha256(digest.decode("ascii", "replace")):
        raise ParseError(f"bad SHA256 {digest[:70]!r}", where, lineno)
    return Entry(
        path=unescape(path, where, lineno), kind=kind.decode(), mode=int(mode, 8),
        uid=int(owner_match.group(1)), gid=int(owner_match.group(2)), size=int(size),
        sha256=None if digest == b"-" else digest.decode(),
        target=None if target == b"-" else unescape(target, where, lineno),
    )
