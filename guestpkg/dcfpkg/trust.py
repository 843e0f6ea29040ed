# SPDX-License-Identifier: GPL-2.0-or-later
"""The trust store: which signatures count, and the TUF-style checks on archives.

:class:`TrustStore` imports signature archives into ``<trustdir>/pkgs/`` and verifies
a dcfpkg against them.  Each check answers one attack of TUF's threat model
(theupdateframework.io, "Security"; docs/dcfpkg.md section 7):

- endless data: archives and packages are read with a size cap;
- rollback: a persisted counter per archive (``Archive-Version``) and per package (the
  highest version accepted) refuses anything older;
- freeze: signatures expire; an archive with an expired one is refused;
- mix-and-match: signatures bind their archive's version, so stanzas copied from
  another version fail to verify;
- arbitrary package, wrong level, another package's key, a lone junior key: only
  signatures over the file's exact SHA256 and size by keys whose level *for this
  repository and package* meets :class:`Policy` count.

A junior key becomes senior for one repository and package after ``promotion_s`` as
junior there, counted from the first import that carried its valid signature for that
package; the first sighting and the promotion are recorded in the level log
(:class:`~guestpkg.dcfpkg.keys.LevelLog`), so neither can be rolled back.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

from debian.debian_support import Version

from guestpkg.dcfpkg.format import Metadata
from guestpkg.dcfpkg.keys import (
    ANY,
    LEVELS,
    Level,
    LevelEvent,
    LevelLog,
    PublicKey,
    key_id,
    load_keys,
)
from guestpkg.dcfpkg.reader import open_input, read_metadata
from guestpkg.dcfpkg.sigdb import Archive, Signature, format_time, parse_archive, valid_name
from guestpkg.dcfpkg.stanza import format_stanza, parse_stanzas
from guestpkg.errors import ConfigError, InputError, ParseError, TrustError
from guestpkg.fsutil import atomic_write, locked

DEFAULT_POLICY = "trusted:1 | senior:1 | junior:2"
_TERM = re.compile(r"^\s*([a-z]+)\s*:\s*([1-9][0-9]*)\s*$")


@dataclass(frozen=True)
class Policy:
    """Alternatives of ``level:count`` terms (``trusted:1 | senior:1 | junior:2``).

    ``level:N`` needs N distinct keys at that level or above; the terms of one
    alternative need *different* keys, so ``senior:1 + junior:1`` means two keys of which
    one is at least senior."""

    alternatives: tuple[tuple[tuple[int, int], ...], ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> Policy:
        alternatives = []
        for alternative in text.split("|"):
            terms = []
            for term in alternative.split("+"):
                match = _TERM.match(term)
                if match is None or match.group(1) not in LEVELS[1:]:
                    raise ConfigError(f"trust policy {text!r}: bad term {term.strip()!r}",
                                      hint="terms are junior:N, senior:N or trusted:N, "
                                      "joined by + and separated by |")
                terms.append((Level(match.group(1)).rank, int(match.group(2))))
            alternatives.append(tuple(terms))
        return cls(tuple(alternatives), text)

    def satisfied(self, levels: list[Level]) -> bool:
        ranks = [level.rank for level in levels if level != Level.UNTRUSTED]
        return any(self._alternative(sorted(ranks), terms) for terms in self.alternatives)

    @staticmethod
    def _alternative(ranks: list[int], terms: tuple[tuple[int, int], ...]) -> bool:
        # Highest term first, each taking the lowest keys good enough for it: a key
        # good enough for a higher term is good enough for every lower one.
        left = list(ranks)
        for rank, count in sorted(terms, reverse=True):
            fitting = [r for r in left if r >= rank]
            if len(fitting) < count:
                return False
            for r in fitting[:count]:
                left.remove(r)
        return True


@dataclass(frozen=True)
class TrustSettings:
    policy: Policy
    promotion_s: float = 30 * 86400.0
    max_archive_bytes: int = 1 << 20
    max_entries: int = 10_000


@dataclass(frozen=True)
class Verdict:
    """Why a package was accepted: the keys that counted, with their levels."""

    package: str
    version: str
    repository: str
    signers: tuple[tuple[str, Level], ...]
    #: the header that was accepted: its Payload-SHA256 binds the contents, so a
    #: reader that finds the same header later reads what was verified
    metadata: Metadata | None = None


def effective_level(key: PublicKey, events: list[LevelEvent], repository: str, package: str,
                    now: int, promotion_s: float) -> Level:
    """The level of *key* for *package* in *repository* at time *now*.

    Start at the key file's level; replay the key's events for this scope in order (a
    global event can only lower the level below the key file's, so restoring an old
    file doesn't undo a demotion); a key ever demoted to untrusted stays so; a junior
    key is senior once it has been junior here for *promotion_s*.  A key file whose
    "add" is not in the log is untrusted: deleting the log and its head, then putting
    a demoted key's old file back, must not undo the demotion."""
    if not was_added(key, events):
        return Level.UNTRUSTED
    file_rank = key.level.rank
    rank, junior_since = file_rank, None
    for e in events:
        if e.key_id != key.key_id or not e.matches(repository, package):
            continue
        if e.action == "seen":
            junior_since = e.time if junior_since is None else junior_since
            continue
        if e.is_global and e.level == Level.UNTRUSTED:
            return Level.UNTRUSTED
        rank = min(e.level.rank, file_rank) if e.is_global else e.level.rank
        if e.action in ("add", "demote"):
            # Junior again: trust is earned again, from now.
            junior_since = e.time if e.action == "demote" else None
    if Level.UNTRUSTED.rank in (file_rank, rank):
        return Level.UNTRUSTED
    if rank == Level.JUNIOR.rank and junior_since is not None \
            and now - junior_since >= promotion_s:
        return Level.SENIOR
    return LEVELS[rank]


def was_added(key: PublicKey, events: list[LevelEvent]) -> bool:
    """Did ``guestpkg trust add-key`` log this key?  (Its file alone proves nothing.)"""
    return any(e.action == "add" and e.key_id == key.key_id for e in events)


def _read_capped(path: Path, cap: int, what: str) -> bytes:
    with open_input(path) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise InputError(f"{path}: {what} is over the cap of {cap} bytes (endless data?)",
                         hint="raise trust_max_archive_size only for an archive you expect")
    return data


class TrustStore:
    """Keys, level log and signature archives under *trustdir*."""

    def __init__(self, trustdir: Path, settings: TrustSettings) -> None:
        self.trustdir, self.settings = trustdir, settings
        self.log = LevelLog(trustdir)

    def archive_path(self, repository: str) -> Path:
        return self.trustdir / "pkgs" / f"{repository}.sigs"

    def versions_path(self, repository: str) -> Path:
        return self.trustdir / "pkgs" / f"{repository}.versions"

    # state -------------------------------------------------------------------------

    def stored_archive(self, repository: str) -> Archive | None:
        path = self.archive_path(repository)
        if not path.exists():
            return None
        data = _read_capped(path, self.settings.max_archive_bytes, "the stored archive")
        return parse_archive(data, str(path), self.settings.max_entries)

    def counters(self, repository: str) -> tuple[int, dict[str, str]]:
        """The persisted archive version and highest accepted version of each package."""
        path = self.versions_path(repository)
        if not path.exists():
            return 0, {}
        stanzas = parse_stanzas(path.read_text(encoding="utf-8"), str(path))
        if not stanzas or "Archive-Version" not in stanzas[0].fields:
            raise ParseError("no Archive-Version", path)
        packages = {s.fields["Package"]: s.fields["Version"] for s in stanzas[1:]}
        return int(stanzas[0].fields["Archive-Version"]), packages

    def _write_counters(self, repository: str, archive_version: int,
                        packages: dict[str, str]) -> None:
        text = format_stanza([("Repository", repository),
                              ("Archive-Version", str(archive_version))])
        for name in sorted(packages):
            text += "\n" + format_stanza([("Package", name), ("Version", packages[name])])
        atomic_write(self.versions_path(repository), text)

    # counting signatures -------------------------------------------------------------

    def _counted(self, sigs: list[Signature], repository: str, package: str, now: int,
                 keys: dict[bytes, PublicKey], events: list[LevelEvent],
                 not_counted: list[str] | None = None) -> list[tuple[PublicKey, Level]]:
        """The distinct known keys among *sigs* that cover *package*, with their level;
        why each other signature doesn't count goes to *not_counted*."""
        counted: dict[str, tuple[PublicKey, Level]] = {}
        reasons: list[str] = []
        for sig in sigs:
            key = keys.get(sig.public_key)
            if key is None:
                reasons.append(f"{key_id(sig.public_key)} (not in the store)")
            elif not key.covers(repository, package):
                reasons.append(f"{key.key_id} (may not sign {package} in {repository})")
            elif sig.expires <= now:
                reasons.append(f"{key.key_id} (signature expired {format_time(sig.expires)})")
            elif not was_added(key, events):
                reasons.append(f'{key.key_id} (no "add" in levels.log: a key file put in '
                               "the store by hand, or a log that was deleted)")
            elif (level := effective_level(key, events, repository, package, now,
                                           self.settings.promotion_s)) == Level.UNTRUSTED:
                reasons.append(f"{key.key_id} (untrusted)")
            else:
                counted[key.key_id] = (key, level)
        if not_counted is not None:
            not_counted.extend(r for r in dict.fromkeys(reasons)
                               if r.split()[0] not in counted)
        return list(counted.values())

    # import ------------------------------------------------------------------------

    def import_archive(self, source: Path, now: int, extends: bool = False) -> Archive:
        """Check *source* and make it the stored archive of its repository, atomically.

        With *extends* (a local signing run, guestpkg.recipe.publish, never ``trust
        import``), *source* may also have the stored archive's own version if it holds
        every unexpired signature of the stored archive (or the same key's signature of
        the same file, expiring later): signatures only added or refreshed, so the
        signatures other keys made for that version are kept (they can't be re-signed
        for a new one)."""
        data = _read_capped(source, self.settings.max_archive_bytes, "the archive")
        archive = parse_archive(data, str(source), self.settings.max_entries)
        with locked(self.trustdir / ".import.lock"):
            self._check_fresh(archive, source, now, extends)
            keys, events = load_keys(self.trustdir), self.log.read()
            accepted = self._accepted_versions(archive, now, keys, events)
            _, counters = self.counters(archive.repository)
            for package, version in accepted.items():
                if package in counters and Version(version) < Version(counters[package]):
                    raise TrustError(f"{source}: {package} {version} is older than the "
                                     f"{counters[package]} already accepted (rollback)")
                counters[package] = version
            # Counters first: if we stop between the two writes, the counters are ahead
            # of the stored archive, which errs on the side of refusing.
            self._write_counters(archive.repository, archive.archive_version, counters)
            atomic_write(self.archive_path(archive.repository), data)
            self._record_levels(archive, now, keys, events)
        return archive

    def _check_fresh(self, archive: Archive, source: Path, now: int, extends: bool) -> None:
        stored = self.stored_archive(archive.repository)
        counter, _ = self.counters(archive.repository)
        newest = max(counter, stored.archive_version if stored else 0)
        extended = (extends and stored is not None and archive.archive_version == newest
                    == stored.archive_version and _keeps(archive, stored, now))
        if archive.archive_version <= newest and not extended:
            raise TrustError(f"{source}: Archive-Version {archive.archive_version} is not "
                             f"newer than {newest} (rollback or replay)")
        for sig in archive.signatures:
            what = f"{source}: {sig.package} {sig.version}"
            if not sig.is_valid(archive.repository, archive.archive_version):
                raise TrustError(f"{what}: bad signature (tampered, or taken from another "
                                 "archive version or repository)")
            if sig.expires <= now:
                raise TrustError(f"{what}: signature expired (a frozen or stale archive)")

    def _accepted_versions(self, archive: Archive, now: int, keys: dict[bytes, PublicKey],
                           events: list[LevelEvent]) -> dict[str, str]:
        """The highest version of each package whose signatures meet the policy; refuses
        an archive in which no signature counts at all."""
        groups: dict[tuple[str, str, str, int, str], list[Signature]] = {}
        for sig in archive.signatures:
            groups.setdefault((sig.package, sig.version, sig.architecture, sig.size,
                               sig.sha256), []).append(sig)
        accepted: dict[str, str] = {}
        anything_counted = False
        for (package, version, *_), sigs in groups.items():
            counted = self._counted(sigs, archive.repository, package, now, keys, events)
            anything_counted |= bool(counted)
            if self.settings.policy.satisfied([level for _, level in counted]) and (
                    package not in accepted or Version(version) > Version(accepted[package])):
                accepted[package] = version
        if not anything_counted:
            raise TrustError(f"archive of {archive.repository}: no signature by a key in the "
                             "store (an arbitrary archive)",
                             hint="add the signers' keys with guestpkg trust add-key")
        return accepted

    def _record_levels(self, archive: Archive, now: int, keys: dict[bytes, PublicKey],
                       events: list[LevelEvent]) -> None:
        """Log the first sighting of junior keys per package, and due promotions."""
        new: list[tuple[str, str, Level, str, str, str]] = []
        seen = {(e.key_id, e.repository, e.package) for e in events if e.action == "seen"}
        promoted = {(e.key_id, e.repository, e.package) for e in events
                    if e.action == "promote" and not e.is_global}
        for sig in archive.signatures:
            key = keys.get(sig.public_key)
            if key is None or not key.covers(archive.repository, sig.package):
                continue
            scope = (key.key_id, archive.repository, sig.package)
            level = effective_level(key, events, archive.repository, sig.package, now,
                                    self.settings.promotion_s)
            if level == Level.JUNIOR and scope not in seen:
                new.append(("seen", key.key_id, Level.JUNIOR, archive.repository, sig.package,
                            "-"))
                seen.add(scope)
            elif level == Level.SENIOR and key.level == Level.JUNIOR and scope not in promoted:
                new.append(("promote", key.key_id, Level.SENIOR, archive.repository,
                            sig.package, "time"))
                promoted.add(scope)
        self.log.append(now, *new)

    # verify ------------------------------------------------------------------------

    def accept_signatures(self, sigs: list[Signature], repository: str, package: str,
                          now: int, what: str) -> list[tuple[PublicKey, Level]]:
        """The keys counted among *sigs*, made outside an archive (a buildhost's over the
        result it sends), if they meet the policy; else :class:`TrustError`.  The caller
        has checked each signature (:meth:`Signature.is_valid`) over the file it has."""
        keys, events = load_keys(self.trustdir), self.log.read()
        not_counted: list[str] = []
        counted = self._counted(sigs, repository, package, now, keys, events, not_counted)
        if not self.settings.policy.satisfied([level for _, level in counted]):
            others = f"; not counted: {', '.join(not_counted)}" if not_counted else ""
            raise TrustError(
                f"{what}: the signatures that count ({_describe(counted)}) don't meet the "
                f"policy {self.settings.policy.text!r}{others}",
                hint="add the key at a level the policy accepts: guestpkg trust add-key")
        return counted


    def verify_package(self, path: Path, repository: str, now: int) -> Verdict:
        """Accept *path* only if its signatures in *repository*'s archive meet the policy."""
        if not valid_name(repository):
            raise TrustError(f"bad repository name {repository!r}")
        archive = self.stored_archive(repository)
        counter, counters = self.counters(repository)
        if archive is None:
            raise TrustError(f"no signature archive for repository {repository}",
                             hint="import one with guestpkg trust import")
        if archive.archive_version < counter:
            raise TrustError(f"{self.archive_path(repository)}: version "
                             f"{archive.archive_version} is older than the {counter} seen "
                             "(the stored archive was rolled back)")
        # One pass over one open file: the header parsed is part of the bytes hashed,
        # so a file swapped or rewritten meanwhile can't pair its header with
        # another file's digest.
        with open_input(path) as f:
            source = _HashingReader(f)
            meta = read_metadata(cast("IO[bytes]", source), str(path))
            candidates = [s for s in archive.signatures
                          if (s.package, s.version, s.architecture)
                          == (meta.package, meta.full_version, meta.architecture)]
            if not candidates:
                raise TrustError(f"{path}: {meta.package} {meta.full_version} "
                                 f"{meta.architecture} is not signed in {repository}")
            size, sha256 = source.rest(path, max(s.size for s in candidates))
        matching = [s for s in candidates if (s.size, s.sha256) == (size, sha256)
                    and s.payload_sha256 == meta.payload_sha256
                    and s.is_valid(repository, archive.archive_version)]
        keys, events = load_keys(self.trustdir), self.log.read()
        not_counted: list[str] = []
        counted = self._counted(matching, repository, meta.package, now, keys, events,
                                not_counted)
        levels = [level for _, level in counted]
        if not self.settings.policy.satisfied(levels):
            others = f"; not counted: {', '.join(not_counted)}" if not_counted else ""
            raise TrustError(
                f"{path}: the signatures that count ({_describe(counted)}) don't meet the "
                f"policy {self.settings.policy.text!r}{others}",
                hint="signatures by unknown, untrusted, expired or out-of-scope keys, or over "
                "another file, don't count")
        newest = counters.get(meta.package)
        if newest is not None and Version(meta.full_version) < Version(newest):
            raise TrustError(f"{path}: {meta.full_version} is older than the {newest} "
                             "already accepted (rollback)")
        return Verdict(meta.package, meta.full_version, repository,
                       tuple((key.key_id, level) for key, level in counted), meta)


def _keeps(archive: Archive, stored: Archive, now: int) -> bool:
    """Does *archive* hold each unexpired signature of *stored*, or its key's signature
    of the same file expiring no earlier?"""
    def file_of(sig: Signature) -> tuple[bytes, str, str, str, int, str, str]:
        return (sig.public_key, sig.package, sig.version, sig.architecture, sig.size,
                sig.sha256, sig.payload_sha256)

    latest: dict[tuple[bytes, str, str, str, int, str, str], int] = {}
    for sig in archive.signatures:
        latest[file_of(sig)] = max(sig.expires, latest.get(file_of(sig), 0))
    return all(latest.get(file_of(sig), 0) >= sig.expires
               for sig in stored.signatures if sig.expires > now)


def _describe(counted: list[tuple[PublicKey, Level]]) -> str:
    return ", ".join(f"{key.key_id} {level}" for key, level in counted) or "none"


class _HashingReader:
    """*f* read through a SHA256: every byte handed out (header included) is hashed."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def _seen(self, data: bytes) -> bytes:
        self.digest.update(data)
        self.size += len(data)
        return data

    def read(self, n: int = -1) -> bytes:
        return self._seen(self.f.read(n))

    def readline(self, limit: int = -1) -> bytes:
        return self._seen(self.f.readline(limit))

    def rest(self, path: Path, cap: int) -> tuple[int, str]:
        """Size and SHA256 of the whole file, reading at most *cap* + 1 bytes in all
        (endless data)."""
        while self.size <= cap:
            if not self.read(min(1 << 20, cap + 1 - self.size)):
                return self.size, self.digest.hexdigest()
        raise TrustError(f"{path}: longer than any signed size ({cap} bytes)")


__all__ = ["ANY", "DEFAULT_POLICY", "Policy", "TrustSettings", "TrustStore", "Verdict",
           "effective_level"]
