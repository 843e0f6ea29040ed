# SPDX-License-Identifier: GPL-2.0-or-later
"""The source stanza of ``debian/control`` (or of a ``.dsc``) as a build needs it.

deb-src-control(5) describes the fields read here:

- ``Build-Depends``, ``Build-Depends-Arch``, ``Build-Depends-Indep`` and the matching
  ``Build-Conflicts*``: relation lists whose entries may carry an architecture list
  (``foo [amd64 !i386]``) and build-profile restriction formulas
  (``foo <!nocheck> <stage1 cross>``), see deb-src-control(5) and
  https://wiki.debian.org/BuildProfileSpec.  Which fields apply depends on what is
  built: dpkg-checkbuilddeps(1) reads ``Build-Depends`` always, ``-Arch`` when
  architecture-dependent packages are built and ``-Indep`` for ``Architecture: all``
  ones.
- ``Rules-Requires-Root``: ``no`` means ``debian/rules binary`` runs without (fake)
  root; ``binary-targets`` (dpkg 1.21's default when the field is absent) means it
  needs one; anything else is a space-separated list of keywords that also need the
  gain-root command (dpkg-buildpackage(1), "rootless builds").

:func:`reduce_relations` turns a relation field into the plain list a resolver can
install on one architecture with one set of profiles, the way sbuild's apt resolver
does: entries for other architectures and unmet profile formulas are dropped, and of
each ``a | b`` only the first remaining alternative is kept, so that a build pulls the
same packages every time rather than whatever happens to be installed already.

The ``.dsc`` format (dsc(5)) repeats the build relations of ``debian/control``, so the
same reader serves both.  Nothing here runs a command.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debian.deb822 import Deb822
from debian.debian_support import DpkgArchTable

from guestpkg.debian.relations import (
    RELATION_FIELDS,
    ArchRestriction,
    ProfileTerm,
    parse_relations,
)
from guestpkg.errors import ParseError


class BuildMode(enum.Enum):
    """What dpkg-buildpackage builds; the value is its option (dpkg-buildpackage(1))."""

    BINARY = "-b"        # architecture-dependent and -independent binaries
    SOURCE = "-S"        # the source package only
    FULL = ""            # source and all binaries (no option)
    ARCH_ONLY = "-B"     # architecture-dependent binaries only
    INDEP_ONLY = "-A"    # Architecture: all binaries only

    @property
    def builds_arch(self) -> bool:
        return self in (BuildMode.BINARY, BuildMode.FULL, BuildMode.ARCH_ONLY)

    @property
    def builds_indep(self) -> bool:
        return self in (BuildMode.BINARY, BuildMode.FULL, BuildMode.INDEP_ONLY)


@dataclass(frozen=True)
class BinaryPackage:
    name: str
    architecture: str
    package_type: str = "deb"    # deb or udeb (deb-src-control(5) Package-Type)


@dataclass(frozen=True)
class SourceControl:
    """The build-relevant fields of a source stanza, as written."""

    source: str
    build_depends: str = ""
    build_depends_arch: str = ""
    build_depends_indep: str = ""
    build_conflicts: str = ""
    build_conflicts_arch: str = ""
    build_conflicts_indep: str = ""
    rules_requires_root: str = "binary-targets"
    binaries: tuple[BinaryPackage, ...] = ()

    @property
    def needs_root_command(self) -> bool:
        """Whether ``debian/rules binary*`` must run under a gain-root command
        (fakeroot): every Rules-Requires-Root value but ``no`` (dpkg-buildpackage(1))."""
        return self.rules_requires_root.strip() != "no"

    def depends_for(self, mode: BuildMode) -> list[str]:
        """The Build-Depends fields that apply to *mode* (dpkg-checkbuilddeps(1))."""
        fields = [self.build_depends]
        if mode.builds_arch:
            fields.append(self.build_depends_arch)
        if mode.builds_indep:
            fields.append(self.build_depends_indep)
        return [f for f in fields if f.strip()]

    def conflicts_for(self, mode: BuildMode) -> list[str]:
        fields = [self.build_conflicts]
        if mode.builds_arch:
            fields.append(self.build_conflicts_arch)
        if mode.builds_indep:
            fields.append(self.build_conflicts_indep)
        return [f for f in fields if f.strip()]


def _field(stanza: Deb822, name: str) -> str:
    # Continuation lines keep their newlines in python-debian; a relation list is
    # whitespace-insensitive, so fold them.
    return " ".join(str(stanza.get(name, "")).split())


def _source_control(source_stanza: Deb822, binaries: Iterable[BinaryPackage],
                    path: Path | str) -> SourceControl:
    source = _field(source_stanza, "Source")
    if not source:
        raise ParseError("no Source field in the first stanza", path)
    return SourceControl(
        source=source,
        build_depends=_field(source_stanza, "Build-Depends"),
        build_depends_arch=_field(source_stanza, "Build-Depends-Arch"),
        build_depends_indep=_field(source_stanza, "Build-Depends-Indep"),
        build_conflicts=_field(source_stanza, "Build-Conflicts"),
        build_conflicts_arch=_field(source_stanza, "Build-Conflicts-Arch"),
        build_conflicts_indep=_field(source_stanza, "Build-Conflicts-Indep"),
        rules_requires_root=_field(source_stanza, "Rules-Requires-Root") or "binary-targets",
        binaries=tuple(binaries),
    )


def relation_fields(text: str, path: Path | str) -> list[tuple[str, str, list[int]]]:
    """Every relation field in *text*: its name, its raw value (lines joined by
    newlines) and the line number of each of its lines (python-debian's values lose
    comment lines, and with them the line numbers an error should name).  A field
    twice in one stanza is an error, as in dpkg: which one would count?"""
    names = {name.lower(): name for name in RELATION_FIELDS}
    found: list[tuple[str, str, list[int]]] = []
    in_stanza: set[str] = set()
    current: int | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        if raw.startswith("#"):
            continue
        if not raw.strip():
            in_stanza, current = set(), None
            continue
        if raw[:1] in (" ", "\t"):
            if current is not None:
                name, value, lines = found[current]
                found[current] = (name, value + "\n" + raw, [*lines, lineno])
            continue
        current = None
        head, sep, value = raw.partition(":")
        field = names.get(head.strip().lower())
        if sep and field is not None:
            if field in in_stanza:
                raise ParseError(f"duplicate field {field}", path, lineno)
            in_stanza.add(field)
            found.append((field, value, [lineno]))
            current = len(found) - 1
    return found


def check_relation_fields(text: str, path: Path | str) -> None:
    """Refuse, at ``path:line``, a relation field that does not follow Policy's
    grammar (:mod:`guestpkg.debian.relations`)."""
    for field, value, lines in relation_fields(text, path):
        parse_relations(value, field, path, lines)


def parse_control(text: str, path: Path | str = "debian/control") -> SourceControl:
    """The source stanza and the binary packages of ``debian/control`` *text*; relation
    fields are checked against Policy's grammar."""
    check_relation_fields(text, path)
    stanzas = list(Deb822.iter_paragraphs(text.splitlines(keepends=True)))
    if not stanzas:
        raise ParseError("empty control file", path)
    binaries = []
    for stanza in stanzas[1:]:
        name = _field(stanza, "Package")
        if not name:
            raise ParseError("a binary stanza has no Package field", path)
        binaries.append(BinaryPackage(name, _field(stanza, "Architecture") or "any",
                                      _field(stanza, "Package-Type") or "deb"))
    return _source_control(stanzas[0], binaries, path)


def read_control(path: Path) -> SourceControl:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", path) from e
    return parse_control(text, path)


@dataclass(frozen=True)
class Dsc:
    """A source package description (dsc(5)): its control fields and its files."""

    control: SourceControl
    version: str
    files: tuple[str, ...]          # names of the files beside the .dsc


def parse_dsc(text: str, path: Path | str = "source.dsc") -> Dsc:
    """Parse a .dsc; an OpenPGP signature around it is skipped, not checked: apt or
    the caller verified the source already (dscverify(1) is the tool for that)."""
    stanza = Deb822(text.splitlines(keepends=True))
    if "Source" not in stanza or "Version" not in stanza:
        raise ParseError("not a .dsc: no Source or Version field", path)
    check_relation_fields(text, path)
    names: list[str] = []
    for field in ("Checksums-Sha256", "Files"):
        for line in str(stanza.get(field, "")).splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2] not in names:
                names.append(parts[2])
    for name in names:
        if "/" in name or name in (".", ".."):
            raise ParseError(f"the .dsc names a file outside its directory: {name!r}", path)
    binaries = tuple(BinaryPackage(b.strip(), "any") for b in
                     _field(stanza, "Binary").split(",") if b.strip())
    return Dsc(_source_control(stanza, binaries, path), _field(stanza, "Version"),
               tuple(names))


def read_dsc(path: Path) -> Dsc:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", path) from e
    return parse_dsc(text, path)


# --- reducing relations for one architecture and one set of profiles -------------

@functools.cache
def _arch_table() -> Any:
    # Read once from dpkg's own tables (/usr/share/dpkg/{tupletable,cputable,...}):
    # wildcards such as linux-any or any-amd64 mean exactly what dpkg says they mean.
    return DpkgArchTable.load_arch_table()


def arch_matches(restrictions: Sequence[ArchRestriction], arch: str) -> bool:
    """``[amd64 i386]`` holds if *arch* matches one of them; ``[!amd64 !i386]`` if it
    matches none (deb-src-control(5) forbids mixing the two forms)."""
    if not restrictions:
        return True
    table = _arch_table()
    positive = [r for r in restrictions if r.enabled]
    if positive:
        return any(table.matches_architecture(arch, r.arch) for r in positive)
    return not any(table.matches_architecture(arch, r.arch) for r in restrictions)


def profiles_match(formula: Sequence[Sequence[ProfileTerm]], profiles: frozenset[str]) -> bool:
    """``<a !b> <c>`` holds if one ``<...>`` group has all its terms true
    (BuildProfileSpec: groups are OR-ed, terms in a group AND-ed)."""
    if not formula:
        return True
    return any(all((term.profile in profiles) == term.enabled for term in group)
               for group in formula)


def reduce_relations(text: str, arch: str, profiles: Iterable[str] = (),
                     *, first_alternative: bool = True, field: str = "Build-Depends",
                     build_arch: str = "") -> list[str]:
    """The relations of *text* that apply to *arch* and *profiles*, one string per
    AND-ed entry, each with only its first applicable alternative unless
    *first_alternative* is off (then ``a | b`` stays).  *text* is parsed strictly
    (:mod:`guestpkg.debian.relations`): what comes out is safe to write into a
    control file."""
    active = frozenset(profiles)
    reduced: list[str] = []
    for group in parse_relations(text, field):
        kept = [rel for rel in group if arch_matches(rel.arch, arch)
                and profiles_match(rel.restrictions, active)]
        if not kept:
            continue
        if first_alternative:
            kept = kept[:1]
        entry = " | ".join(rel.text(build_arch=build_arch) for rel in kept)
        if entry not in reduced:
            reduced.append(entry)
    return reduced


#: The dummy package that carries a build's relations (see BuildRelations).
DUMMY_PACKAGE = "guestpkg-build-deps"
DUMMY_VERSION = "1"


@dataclass(frozen=True)
class BuildRelations:
    """What a resolver must install and keep away, reduced and in order."""

    depends: tuple[str, ...]
    conflicts: tuple[str, ...]

    def dummy_control(self, arch: str) -> str:
        """The control file of the dummy package that carries the request, sbuild's
        way (its ``sbuild-build-depends-main-dummy``): apt installs the dummy by file
        name and resolves its Depends and Conflicts, so the source's relations reach
        apt only inside a control file, never as command-line arguments, where an
        entry could be read as an option.  Every entry passed
        :mod:`guestpkg.debian.relations`, so none can break out of its field."""
        lines = [f"Package: {DUMMY_PACKAGE}", f"Version: {DUMMY_VERSION}",
                 f"Architecture: {arch}", "Maintainer: guestpkg <root@localhost>"]
        if self.depends:
            lines.append("Depends: " + ", ".join(self.depends))
        if self.conflicts:
            lines.append("Conflicts: " + ", ".join(self.conflicts))
        lines += ["Description: build dependencies of a guestpkg build",
                  " Installed only to have apt install its dependencies; removed again."]
        return "\n".join(lines) + "\n"

    def canonical(self) -> str:
        """A stable text of the request, for cache keys."""
        return "Depends: " + ", ".join(self.depends) + "\nConflicts: " + \
            ", ".join(self.conflicts) + "\n"


def build_relations(control: SourceControl, mode: BuildMode, arch: str,
                    profiles: Iterable[str] = (), extra: Iterable[str] = (),
                    build_arch: str = "") -> BuildRelations:
    """The build dependencies and conflicts of *control* for one build for *arch*
    (the host architecture; *build_arch* when cross-building, else "").

    *extra* adds packages the build itself needs beyond the source's own list
    (``fakeroot`` for a Rules-Requires-Root build, ``faketime``)."""
    profile_set = frozenset(profiles)
    depends: list[str] = []
    for text in [*control.depends_for(mode), ", ".join(extra)]:
        for rel in reduce_relations(text, arch, profile_set, build_arch=build_arch):
            if rel not in depends:
                depends.append(rel)
    conflicts: list[str] = []
    for text in control.conflicts_for(mode):
        # Every alternative of a conflict counts: "a | b" conflicts are unusual, but
        # dropping one would let a conflicting package in.
        for rel in reduce_relations(text, arch, profile_set, first_alternative=False,
                                    build_arch=build_arch):
            for alternative in rel.split(" | "):
                if alternative not in conflicts:
                    conflicts.append(alternative)
    return BuildRelations(tuple(depends), tuple(conflicts))
