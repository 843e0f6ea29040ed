# SPDX-License-Identifier: GPL-2.0-or-later
"""Signature archives: out-of-band Ed25519 signatures of dcfpkg files.

An archive (docs/dcfpkg.md section 7) is deb822: a header stanza, then one stanza per
signature, the ``<pkg>, <pubkey>, <signature>, <expiration-date>`` of the design::

    Format: dcfpkg-signatures 1
    Repository: main
    Archive-Version: 7

    Package: hello
    Version: 2.10-1
    Architecture: amd64
    Size: 53120
    SHA256: <of the whole .dcfpkg file>
    Payload-SHA256: <its metadata's Payload-SHA256>
    Public-Key: <base64>
    Signature: <base64>
    Expires: 2027-06-30T00:00:00Z

The signature covers :func:`message`, which binds every field above *and* the archive's
repository and version, in the spirit of minisign's trusted comment: a signature can't
be moved to another package, repository or archive version (TUF's mix-and-match), nor
have its expiry extended.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from guestpkg.dcfpkg.format import Metadata
from guestpkg.dcfpkg.keys import SecretKey, b64decode, b64encode
from guestpkg.dcfpkg.stanza import Stanza, format_stanza, parse_stanzas
from guestpkg.debian.deb822 import is_package_name, is_sha256, is_version
from guestpkg.errors import ParseError

FORMAT = "dcfpkg-signatures 1"
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_COUNT = re.compile(r"^(0|[1-9][0-9]{0,18})$")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_time(epoch: int) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(epoch))


def parse_time(text: str) -> int:
    """``2027-06-30T00:00:00Z`` (UTC), or a date ``2027-06-30`` meaning its midnight."""
    for fmt in (TIME_FORMAT, "%Y-%m-%d"):
        try:
            return calendar.timegm(time.strptime(text, fmt))
        except ValueError:
            continue
    raise ValueError(f"{text!r} is not a UTC time like 2027-06-30T00:00:00Z")


def valid_name(name: str) -> bool:
    return is_package_name(name)


@dataclass(frozen=True)
class Signature:
    """One entry of an archive."""

    package: str
    version: str            # <Version>-<Release>
    architecture: str
    size: int
    sha256: str
    payload_sha256: str
    public_key: bytes
    signature: bytes
    expires: int            # seconds since the epoch, UTC

    def to_fields(self) -> list[tuple[str, str]]:
        return [("Package", self.package), ("Version", self.version),
                ("Architecture", self.architecture), ("Size", str(self.size)),
                ("SHA256", self.sha256), ("Payload-SHA256", self.payload_sha256),
                ("Public-Key", b64encode(self.public_key)),
                ("Signature", b64encode(self.signature)), ("Expires", format_time(self.expires))]

    def is_valid(self, repository: str, archive_version: int) -> bool:
        """Does the signature verify over :func:`message` for this archive?"""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                self.signature, message(self, repository, archive_version))
        except (InvalidSignature, ValueError):
            return False
        return True


def message(sig: Signature, repository: str, archive_version: int) -> bytes:
    """The exact bytes that are signed (docs/dcfpkg.md, "The signed message")."""
    return (f"dcfpkg-signature 1\nrepository: {repository}\n"
            f"archive-version: {archive_version}\npackage: {sig.package}\n"
            f"version: {sig.version}\narchitecture: {sig.architecture}\nsize: {sig.size}\n"
            f"sha256: {sig.sha256}\npayload-sha256: {sig.payload_sha256}\n"
            f"expires: {format_time(sig.expires)}\n").encode()


def sign(key: SecretKey, meta: Metadata, size: int, sha256: str, repository: str,
         archive_version: int, expires: int) -> Signature:
    """Sign the dcfpkg file whose metadata is *meta*, *size* bytes with SHA256 *sha256*."""
    unsigned = Signature(meta.package, meta.full_version, meta.architecture, size, sha256,
                         meta.payload_sha256, key.public_key, b"", expires)
    return replace(unsigned, signature=key.sign(message(unsigned, repository, archive_version)))


@dataclass(frozen=True)
class Archive:
    repository: str
    archive_version: int
    signatures: tuple[Signature, ...] = ()

    def to_bytes(self) -> bytes:
        header = format_stanza([("Format", FORMAT), ("Repository", self.repository),
                                ("Archive-Version", str(self.archive_version))])
        return "\n".join([header, *(format_stanza(s.to_fields()) for s in self.signatures)]
                         ).encode()


def parse_archive(data: bytes, where: str, max_entries: int) -> Archive:
    """Parse strictly; signatures are *not* checked here (see :mod:`.trust`)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError("not UTF-8", where) from e
    stanzas = parse_stanzas(text, where)
    if not stanzas:
        raise ParseError("empty signature archive", where)
    if len(stanzas) - 1 > max_entries:
        raise ParseError(f"more than {max_entries} signatures", where,
                         hint="raise trust_max_entries only for an archive you expect")
    header = stanzas[0]
    _expect_fields(header, ("Format", "Repository", "Archive-Version"), where)
    if header.fields["Format"] != FORMAT:
        raise ParseError(f"Format must be {FORMAT!r}", where, header.first_line)
    repository = header.fields["Repository"]
    if not valid_name(repository) or not _COUNT.match(header.fields["Archive-Version"]):
        raise ParseError("bad Repository or Archive-Version", where, header.first_line)
    signatures = tuple(_parse_signature(s, where) for s in stanzas[1:])
    return Archive(repository, int(header.fields["Archive-Version"]), signatures)


SIGNATURE_FIELDS = ("Package", "Version", "Architecture", "Size", "SHA256", "Payload-SHA256",
                    "Public-Key", "Signature", "Expires")


def _expect_fields(stanza: Stanza, names: tuple[str, ...], where: str) -> None:
    if set(stanza.fields) != set(names):
        missing = sorted(set(names) - set(stanza.fields))
        extra = sorted(set(stanza.fields) - set(names))
        raise ParseError(f"fields missing {missing} or unexpected {extra}", where,
                         stanza.first_line)


def _parse_signature(stanza: Stanza, where: str) -> Signature:
    _expect_fields(stanza, SIGNATURE_FIELDS, where)
    f = stanza.fields
    checks: tuple[tuple[Callable[[str], object], str], ...] = (
        (is_package_name, "Package"), (is_version, "Version"), (_ARCH.match, "Architecture"),
        (_COUNT.match, "Size"), (is_sha256, "SHA256"), (is_sha256, "Payload-SHA256"))
    for valid, name in checks:
        if not valid(f[name]):
            raise ParseError(f"bad {name}: {f[name][:80]!r}", where, stanza.lines[name])
    try:
        return Signature(f["Package"], f["Version"], f["Architecture"], int(f["Size"]),
                         f["SHA256"], f["Payload-SHA256"],
                         b64decode(f["Public-Key"], 32, "Public-Key"),
                         b64decode(f["Signature"], 64, "Signature"), parse_time(f["Expires"]))
    except ValueError as e:
        raise ParseError(str(e), where, stanza.first_line) from e
