# SPDX-License-Identifier: GPL-2.0-or-later
"""A source tree's upstream tarballs: find them through debian/watch, fetch, verify,
place.  See :mod:`guestpkg.fetch` for the API summary.

:func:`plan` resolves every watch entry the way ``uscan --download-current-version``
(``download=True``: the version of debian/changelog) or ``uscan --report``
(``download=False``: the newest) would.  Several entries are several tarballs: the
first is the main one, the others carry ``component=`` (uscan(1), "COMPONENTS"); a
``group`` entry takes its part of a ``+~``-joined changelog version, ``same`` the main
tarball's version, ``ignore`` the newest.  ``ctype=nodejs``/``perl`` read the
component's version from its package.json/META.json when the tree has it.

:func:`fetch_upstream` then downloads each tarball through the verified cache and places
``<source>_<version>.orig[-<component>].tar.<ext>`` atomically in the destination.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from guestpkg.config import Config
from guestpkg.debian.changelog import read_changelog
from guestpkg.debian.deb822 import is_sha256
from guestpkg.debian.perlre import apply_rules
from guestpkg.debian.version import upstream_version
from guestpkg.debian.watch import Ctype, VersionPolicy, WatchEntry, WatchFile, read_watch
from guestpkg.errors import InputError, SystemStateError, UsageError
from guestpkg.fetch.discover import Found, PageSource, Search, orig_name
from guestpkg.fetch.guard import FetchGuard
from guestpkg.fetch.transport import Page, fetch_verified, get_page
from guestpkg.fsutil import atomic_file

log = logging.getLogger(__name__)

Pins = Mapping[str, str] | Sequence[str]


@dataclass(frozen=True)
class Subject:
    """What is fetched: the source package's name and Debian version."""

    source: str
    version: str


@dataclass(frozen=True)
class Tarball:
    """One upstream tarball of the plan."""

    source: str
    component: str           # "" for the main tarball
    found: Found
    orig_version: str        # the version in the orig tarball's name

    @property
    def name(self) -> str:
        return orig_name(self.source, self.orig_version, self.found.filename,
                         self.component or None)


@dataclass(frozen=True)
class Plan:
    source: str
    debian_version: str      # the changelog version
    watch: WatchFile
    tarballs: tuple[Tarball, ...]
    notes: tuple[str, ...]   # ignored options and skipped entries, for the report

    def report(self) -> list[dict[str, str]]:
        """uscan --dehs-like records, one per tarball."""
        return [{
            "package": self.source,
            "component": t.component,
            "debian-uversion": t.found.debian_version,
            "debian-mangled-uversion": t.found.mangled_debian_version,
            "upstream-version": t.found.version,
            "upstream-url": t.found.url,
            "status": t.found.status,
            "orig": _name_or_empty(t),
        } for t in self.tarballs]


def _name_or_empty(tarball: Tarball) -> str:
    try:
        return tarball.name
    except InputError:  # a zip: reportable, not fetchable
        return ""


def _page_source(config: Config, guard: FetchGuard) -> PageSource:
    def pages(url: str, user_agent: str | None) -> Page:
        return get_page(config, url, user_agent=user_agent, guard=guard)
    return pages


def watching(config: Config, watch: WatchFile) -> contextlib.AbstractContextManager[FetchGuard]:
    """The guard of one fetch through *watch*: its deadline, budget and minimum rate
    hold for every page and download, and it may reach a local host only if the watch
    file names one (:mod:`guestpkg.fetch.guard`)."""
    return FetchGuard.watching(config, [entry.url for entry in watch.entries])


def plan(config: Config, source_dir: Path, *, download: bool,
         pages: PageSource | None = None) -> Plan:
    """Resolve the tarballs of *source_dir* (network access through *pages*)."""
    subject, watch = _read(source_dir)
    if pages is not None:
        return _resolve(subject, watch, source_dir, download, pages)
    with watching(config, watch) as guard:
        return _resolve(subject, watch, source_dir, download, _page_source(config, guard))


def _read(source_dir: Path) -> tuple[Subject, WatchFile]:
    changelog = read_changelog(source_dir / "debian" / "changelog")
    return (Subject(changelog.source, changelog.version),
            _read_watch(source_dir / "debian" / "watch", changelog.source))


def _read_watch(path: Path, source: str) -> WatchFile:
    watch = read_watch(path, source)
    _check_usable(watch)
    return watch


def _resolve(subject: Subject, watch: WatchFile, source_dir: Path | None, download: bool,
             pages: PageSource) -> Plan:
    """*source_dir*, the unpacked tree if there is one, is where a ``ctype``
    component's own version is read (uscan's Ctype::nodejs and perl)."""
    upstream = upstream_version(subject.version)
    group_versions = upstream.split("+~")
    notes: list[str] = []
    results: list[tuple[WatchEntry, Found]] = []
    main_version: str | None = None
    group_index = 0
    for entry in watch.entries:
        if entry.ignored:
            notes.append(f"{entry.where}: ignored (the SHA256 is pinned): "
                         + ", ".join(entry.ignored))
        if entry.policy is VersionPolicy.PREVIOUS:  # a signature of the previous line: moot
            notes.append(f"{entry.where}: skipped: version 'previous' (signature)")
            continue
        last = upstream
        if entry.policy is VersionPolicy.GROUP:
            last = group_versions[min(group_index, len(group_versions) - 1)]
            group_index += 1
        elif entry.policy is VersionPolicy.LITERAL and entry.literal_version:
            last = entry.literal_version
        last = (_ctype_version(entry, source_dir) if source_dir else None) or last
        want = _wanted(entry, last, main_version, download)
        found = Search(entry, pages).find(last, want)
        main_version = main_version or found.version
        results.append((entry, found))
    return Plan(subject.source, subject.version, watch, _tarballs(subject.source, results),
                tuple(notes))


def _check_usable(watch: WatchFile) -> None:
    if watch.untrackable:
        raise InputError(f"{watch.path}: untrackable: {watch.untrackable}")
    if not watch.entries:
        raise InputError(f"{watch.path}: no watch entries (only comments?)",
                         hint="the guest's upstream cannot be fetched without one")
    for entry in watch.entries:
        if entry.unsupported:
            raise InputError(f"{entry.where}: not supported by guestpkg: "
                             + ", ".join(entry.unsupported),
                             hint="guestpkg fetches tarballs over http(s) only")


def _wanted(entry: WatchEntry, last: str, main_version: str | None,
            download: bool) -> str | None:
    """The version the entry must yield (uscan's download_version), None: the newest."""
    if entry.policy is VersionPolicy.SAME:
        if main_version is None:
            raise InputError(f"{entry.where}: version 'same' needs an entry before it")
        return main_version
    if not download or entry.policy in (VersionPolicy.IGNORE, VersionPolicy.CHECKSUM):
        return None
    return apply_rules(entry.rules("dversionmangle"), last)


def _ctype_version(entry: WatchEntry, source_dir: Path) -> str | None:
    """The component's version from its own metadata (uscan's Ctype::nodejs/perl)."""
    if entry.ctype is None:
        return None
    directory = source_dir / (entry.component or ".")
    name = "package.json" if entry.ctype is Ctype.NODEJS else "META.json"
    try:
        data = json.loads((directory / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version else None


def _tarballs(source: str, results: list[tuple[WatchEntry, Found]]) -> tuple[Tarball, ...]:
    main = [f for e, f in results if not e.component]
    if len(main) != 1:
        raise InputError(f"{results[0][0].path}: {len(main)} main tarballs; every entry "
                         "but one needs component=", hint="see uscan(1), COMPONENTS")
    groups = [f for e, f in results if e.policy is VersionPolicy.GROUP]
    versions = [apply_rules(f.entry.rules("oversionmangle"), f.version) for f in groups]
    orig_version = ("+~".join(versions) if groups else
                    apply_rules(main[0].entry.rules("oversionmangle"), main[0].version))
    tarballs = []
    for entry, found in results:
        tarballs.append(Tarball(source, entry.component or "", found, orig_version))
    return tuple(tarballs)


def pins_for(tarballs: Sequence[Tarball], pins: Pins) -> dict[str, str]:
    """Map each tarball's component to its pinned SHA256; every one must have a pin."""
    if isinstance(pins, Mapping):
        mapping = {k: v.lower() for k, v in pins.items()}
    else:
        listed = [p.lower() for p in pins]
        if len(listed) != len(tarballs):
            raise UsageError(f"{len(listed)} SHA256 given for {len(tarballs)} tarballs",
                             hint="give one --sha256 per tarball, main first, or "
                             "COMPONENT:HEX")
        mapping = {t.component: p for t, p in zip(tarballs, listed, strict=True)}
    for tarball in tarballs:
        digest = mapping.get(tarball.component)
        label = tarball.component or "the main tarball"
        if digest is None:
            raise UsageError(f"no SHA256 pinned for {label} ({tarball.found.url})",
                             hint="guestpkg never uses a download it could not verify")
        if not is_sha256(digest):
            raise UsageError(f"not a SHA256 for {label}: {digest!r}")
    unknown = set(mapping) - {t.component for t in tarballs}
    if unknown:
        raise UsageError(f"SHA256 given for unknown components: {', '.join(sorted(unknown))}")
    return mapping


def fetch_upstream(config: Config, source_dir: Path, destdir: Path, expected_sha256: Pins,
                   *, pages: PageSource | None = None) -> list[Path]:
    """Download, verify and place the orig tarball(s) of *source_dir*'s changelog
    version into *destdir*; returns the placed paths, main tarball first."""
    subject, watch = _read(source_dir)
    with watching(config, watch) as guard:
        resolved = _resolve(subject, watch, source_dir, True,
                            pages or _page_source(config, guard))
        return _download_and_place(config, resolved, destdir, expected_sha256, guard)


def fetch_watch(config: Config, watch_path: Path, source: str, version: str,
                destdir: Path, expected_sha256: Pins, *,
                pages: PageSource | None = None) -> list[Path]:
    """:func:`fetch_upstream` without a source tree: the tarballs that the watch file
    at *watch_path* gives for *source* at Debian *version* (a host package's guest,
    whose ``debian/`` is read-only package content and whose version is pinned)."""
    watch = _read_watch(watch_path, source)
    with watching(config, watch) as guard:
        resolved = _resolve(Subject(source, version), watch, None, True,
                            pages or _page_source(config, guard))
        return _download_and_place(config, resolved, destdir, expected_sha256, guard)


def _download_and_place(config: Config, resolved: Plan, destdir: Path,
                        expected_sha256: Pins, guard: FetchGuard) -> list[Path]:
    for note in resolved.notes:
        log.warning("%s", note)
    digests = pins_for(resolved.tarballs, expected_sha256)
    names = [t.name for t in resolved.tarballs]  # refuse a zip before any download
    log.debug("orig tarballs: %s", ", ".join(names))
    placed = []
    for tarball in resolved.tarballs:
        cached = fetch_verified(config, tarball.found.url, digests[tarball.component],
                                user_agent=tarball.found.entry.user_agent,
                                label=tarball.found.filename, guard=guard)
        placed.append(place(cached, destdir / tarball.name, digests[tarball.component]))
    return placed


def place(cached: Path, target: Path, sha256: str) -> Path:
    """Copy a verified cache file to *target* atomically, unless it is already there.
    A copy, not a link: what a build does to its input must not reach the cache."""
    if target.is_file() and _sha256_of(target) == sha256:
        log.info("already in place: %s", target)
        return target
    try:
        with cached.open("rb") as source, atomic_file(target) as out:
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as e:
        raise SystemStateError(f"cannot place {target}: {e.strerror}",
                               hint="choose a writable directory with --destdir") from e
    log.info("placed %s", target)
    return target


def _sha256_of(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
