# SPDX-License-Identifier: GPL-2.0-or-later
"""Ed25519 keys at four trust levels, and the append-only log of level changes.

Keys live in ``<trustdir>/keys/<level>/<key-id>.pub`` (docs/dcfpkg.md section 7), where
*level* is one of :data:`LEVELS` and the key id is the first 16 hex digits of the SHA256
of the raw 32-byte public key.  A key file is a deb822 stanza::

    Key-Id: 3f2a9c0e51b7d884
    Public-Key: <base64 of the raw Ed25519 public key (RFC 8032)>
    Comment: alice's package signing key
    Repositories: main
    Packages: hello hello-*

Every change of level is appended to ``<trustdir>/levels.log``: one line per event,
each carrying the SHA256 of the line before it, and ``levels.head`` records the number
and hash of the last line, so an edited or truncated log is detected
(:class:`~guestpkg.errors.TrustError`) and a recorded demotion can't be undone by
restoring an old key file.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import os
import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from guestpkg.dcfpkg.stanza import format_stanza, parse_stanzas
from guestpkg.errors import ParseError, TrustError, UsageError
from guestpkg.fsutil import atomic_write, locked


class Level(enum.StrEnum):
    """A key's trust level, lowest first.  Untrusted keys are kept (so they are known)
    but never count.  The value is the level's name in the store (``keys/<level>/``),
    in levels.log and in the policy (``senior:1``)."""

    UNTRUSTED = "untrusted"
    JUNIOR = "junior"
    SENIOR = "senior"
    TRUSTED = "trusted"

    @property
    def rank(self) -> int:
        """Its place, 0 (untrusted) to 3 (trusted): a higher level counts for a lower."""
        return LEVELS.index(self)


#: Lowest to highest.
LEVELS: tuple[Level, ...] = tuple(Level)
ANY = "*"

_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_SCOPE = re.compile(r"^[A-Za-z0-9*?\[\]+.-]+$")


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()[:16]


def b64decode(text: str, length: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{what} is not base64") from e
    if len(raw) != length:
        raise ValueError(f"{what} must be {length} bytes, not {len(raw)}")
    return raw


def b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class SecretKey:
    key_id: str
    seed: bytes                 # the raw 32-byte Ed25519 private key
    public_key: bytes
    comment: str = ""

    def sign(self, message: bytes) -> bytes:
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    public_key: bytes
    comment: str = ""
    repositories: tuple[str, ...] = (ANY,)
    packages: tuple[str, ...] = (ANY,)
    level: Level = Level.UNTRUSTED

    def covers(self, repository: str, package: str) -> bool:
        """Does this key's scope include *package* in *repository*?"""
        return (any(fnmatchcase(repository, p) for p in self.repositories)
                and any(fnmatchcase(package, p) for p in self.packages))

    def to_text(self) -> str:
        return format_stanza([("Key-Id", self.key_id), ("Public-Key", b64encode(self.public_key)),
                              ("Comment", self.comment),
                              ("Repositories", " ".join(self.repositories)),
                              ("Packages", " ".join(self.packages))])


def generate(comment: str = "") -> SecretKey:
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    return SecretKey(key_id(public), seed, public, comment)


def write_keypair(secret: SecretKey, stem: Path) -> tuple[Path, Path]:
    """``<stem>.key`` (mode 0600) and ``<stem>.pub``."""
    secret_path = stem.with_name(stem.name + ".key")
    public_path = stem.with_name(stem.name + ".pub")
    atomic_write(secret_path, format_stanza([
        ("Key-Id", secret.key_id), ("Public-Key", b64encode(secret.public_key)),
        ("Secret-Key", b64encode(secret.seed)), ("Comment", secret.comment)]), mode=0o600)
    atomic_write(public_path, PublicKey(secret.key_id, secret.public_key, secret.comment).to_text())
    return secret_path, public_path


def read_secret_key(path: Path) -> SecretKey:
    fields = _one_stanza(path)
    try:
        seed = b64decode(fields.get("Secret-Key", ""), 32, "Secret-Key")
    except ValueError as e:
        raise ParseError(str(e), path) from e
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(serialization.Encoding.Raw,
                                               serialization.PublicFormat.Raw)
    return SecretKey(key_id(public), seed, public, fields.get("Comment", ""))


def read_public_key(path: Path, level: Level = Level.UNTRUSTED) -> PublicKey:
    fields = _one_stanza(path)
    try:
        public = b64decode(fields.get("Public-Key", ""), 32, "Public-Key")
    except ValueError as e:
        raise ParseError(str(e), path) from e
    if fields.get("Key-Id", key_id(public)) != key_id(public):
        raise ParseError(f"Key-Id does not match the key (it is {key_id(public)})", path)
    repositories = tuple(fields.get("Repositories", ANY).split()) or (ANY,)
    packages = tuple(fields.get("Packages", ANY).split()) or (ANY,)
    for pattern in repositories + packages:
        if not _SCOPE.match(pattern):
            raise ParseError(f"bad repository or package pattern {pattern!r}", path)
    return PublicKey(key_id(public), public, fields.get("Comment", ""), repositories, packages,
                     level)


def _one_stanza(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"{path}: can't read the key: {e}") from e
    stanzas = parse_stanzas(text, str(path))
    if len(stanzas) != 1:
        raise ParseError("expected one stanza", path)
    return stanzas[0].fields


def load_keys(trustdir: Path) -> dict[bytes, PublicKey]:
    """Every key in the store, by raw public key.  A key found at two levels (an
    interrupted move) counts at the lower one: that is always the safe reading."""
    keys: dict[bytes, PublicKey] = {}
    for level in LEVELS:
        directory = trustdir / "keys" / level
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.pub")):
            key = read_public_key(path, level)
            if path.stem != key.key_id:
                raise TrustError(f"{path}: file name is not the key id {key.key_id}")
            keys.setdefault(key.public_key, key)
    return keys


def find_key(trustdir: Path, wanted: str) -> PublicKey:
    for key in load_keys(trustdir).values():
        if key.key_id == wanted:
            return key
    raise UsageError(f"no key {wanted} in {trustdir}/keys", hint="see guestpkg trust list")


def store_key(trustdir: Path, key: PublicKey, level: Level) -> Path:
    """Write *key* at *level*, then remove it from any other level (lower wins if we
    are interrupted in between, see :func:`load_keys`)."""
    target = trustdir / "keys" / level / f"{key.key_id}.pub"
    atomic_write(target, key.to_text())
    for other in LEVELS:
        if other != level:
            (trustdir / "keys" / other / f"{key.key_id}.pub").unlink(missing_ok=True)
    return target


# The level log ---------------------------------------------------------------------

ACTIONS = ("add", "seen", "promote", "demote")


@dataclass(frozen=True)
class LevelEvent:
    """One line of levels.log.  *repository*/*package* are ``*`` for a global event."""

    seq: int
    time: int
    action: str
    key_id: str
    level: Level
    repository: str = ANY
    package: str = ANY
    note: str = "-"

    @property
    def is_global(self) -> bool:
        return self.repository == ANY and self.package == ANY

    def matches(self, repository: str, package: str) -> bool:
        return self.repository in (ANY, repository) and self.package in (ANY, package)

    def line(self, previous: str) -> str:
        return (f"{self.seq} {self.time} {self.action} {self.key_id} {self.level} "
                f"{self.repository} {self.package} {self.note} {previous}\n")


GENESIS = "0" * 64


class LevelLog:
    """levels.log with its hash chain and head; appends under a lock."""

    def __init__(self, trustdir: Path) -> None:
        self.path = trustdir / "levels.log"
        self.head = trustdir / "levels.head"
        self.lock = trustdir / ".levels.lock"

    def read(self) -> list[LevelEvent]:
        events, last = self._read_chain()
        head = self.head.read_text().split() if self.head.exists() else ["0", GENESIS]
        if head != [str(len(events)), last]:
            raise TrustError(f"{self.path} does not end where {self.head} says: the log of "
                             "level changes was cut or edited",
                             hint="restore both files from a backup; don't trust this store")
        return events

    def _read_chain(self) -> tuple[list[LevelEvent], str]:
        events: list[LevelEvent] = []
        previous = GENESIS
        if not self.path.exists():
            return events, previous
        for lineno, line in enumerate(self.path.read_text(encoding="utf-8")
                                      .splitlines(keepends=True), 1):
            event = self._parse(line, lineno)
            if line != event.line(previous):
                raise TrustError(f"{self.path}:{lineno}: broken hash chain: the log was edited")
            events.append(event)
            previous = hashlib.sha256(line.encode()).hexdigest()
        return events, previous

    def _parse(self, line: str, lineno: int) -> LevelEvent:
        parts = line.split()
        if (len(parts) != 9 or parts[2] not in ACTIONS or parts[4] not in LEVELS
                or not _KEY_ID.match(parts[3]) or not parts[0].isdigit()
                or not parts[1].isdigit() or int(parts[0]) != lineno):
            raise TrustError(f"{self.path}:{lineno}: malformed line")
        return LevelEvent(int(parts[0]), int(parts[1]), parts[2], parts[3], Level(parts[4]),
                          parts[5], parts[6], parts[7])

    def append(self, now: int, *new: tuple[str, str, Level, str, str, str]) -> None:
        """Append events given as (action, key_id, level, repository, package, note),
        stamped *now* (seconds since the epoch)."""
        if not new:
            return
        with locked(self.lock):
            events, previous = self._read_chain()
            self.read()  # checks the head too
            lines: list[str] = []
            for action, kid, level, repository, package, note in new:
                event = LevelEvent(len(events) + len(lines) + 1, now, action, kid, level,
                                   repository, package, note)
                line = event.line(previous)
                lines.append(line)
                previous = hashlib.sha256(line.encode()).hexdigest()
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(lines))
                f.flush()
                os.fsync(f.fileno())
            atomic_write(self.head, f"{len(events) + len(lines)} {previous}\n")
