# SPDX-License-Identifier: GPL-2.0-or-later
"""What a built .deb would install, checked before anyone installs it.

The build runs untrusted code without privileges, and the sandbox forbids a setuid
chmod; but the build writes the .deb itself, and a .deb is only a description: its
data archive can say ``-rwsr-xr-x root/root ./usr/bin/x`` and dpkg, as root, makes
exactly that.  So the data archive of every .deb is read (:mod:`guestpkg.debian.debfile`:
member headers only, nothing extracted, bounded) and each entry is checked:

==============  ============================================================  =========
finding         what                                                          declared?
==============  ============================================================  =========
setuid/setgid   a file or directory with S_ISUID or S_ISGID                   allowed
owner           an owner or group other than root (dpkg-deb                   allowed
                --root-owner-group and dh_fixperms make everything root's)
world-writable  o+w on anything but a symlink or a sticky directory           allowed
device          a character or block device node                              never
fifo            a named pipe (and sockets, anything not file/dir/link)        never
symlink         a target that leaves Policy's FHS roots, climbs above /, or   never
                does so through the package's own symlinks
hardlink        a link to a path that is not a regular file of the package    never
path            outside the FHS roots Debian Policy 9.1 lets a package use    never
                (``/bin /boot /etc /lib* /sbin /usr /var``; not ``/usr/local``,
                ``/var/local``, ``/opt``, ``/srv``, ``/home``, ``/root``...)
==============  ============================================================  =========

"Declared" means listed in the host package's manifest (``Setuid:``, see
guestpkg-host(7)): a maintainer states, reviewably, that the guest ships e.g. a setgid
``games`` binary.  Absolute symlinks are allowed when they land in the FHS roots:
Policy 10.5 asks for them between top-level directories.

:func:`check_identity` adds what the host lifecycle knows: the .debs must be exactly
the guest's binary packages (and their ``-dbgsym``), at ``<version>~local``, for the
build's architecture or ``all``, each depending on the host.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.debian import deb822
from guestpkg.debian.debfile import MAX_CONTROL_FILE_BYTES, DataMember, DebContents, read_deb
from guestpkg.errors import InputError, ParseError

#: Debian Policy 9.1.1 (the FHS, with Debian's multiarch and merged-/usr additions):
#: the top-level directories a package may ship files in.
FHS_ROOTS = frozenset({"bin", "boot", "etc", "lib", "lib32", "lib64", "libx32", "libo32",
                       "sbin", "usr", "var"})
#: Below the roots, reserved for the local administrator (Policy 9.1.2, FHS 4.9, 5.10).
LOCAL_ONLY = ("usr/local", "var/local")
#: The findings a manifest's Setuid: list can allow for its paths.
DECLARABLE = frozenset({"setuid", "setgid", "owner", "world-writable"})
#: More symlinks than this on one path is a loop (the kernel's MAXSYMLINKS is 40).
MAX_SYMLINKS = 40


@dataclass(frozen=True)
class Finding:
    kind: str
    path: str            # "/usr/bin/x": as it would be installed
    detail: str

    @property
    def declarable(self) -> bool:
        return self.kind in DECLARABLE

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


@dataclass(frozen=True)
class DebReport:
    """One .deb: its name, control fields and findings."""

    name: str
    package: str
    version: str
    architecture: str
    depends: str
    findings: tuple[Finding, ...]


def in_fhs(path: str) -> bool:
    """Is *path* ("usr/bin/x", no leading slash) where Policy lets packages install?"""
    if path == "":
        return True
    top = path.split("/", 1)[0]
    return top in FHS_ROOTS and not any(
        path == local or path.startswith(local + "/") for local in LOCAL_ONLY)


def _resolve(path: str, links: dict[str, str]) -> str | None:
    """Where *path* ("a/b/c") leads once the package's own symlinks are followed as the
    kernel follows them; None if it climbs above / or loops."""
    parts = [p for p in path.split("/") if p]
    done: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not done:
                return None     # above /: only a hostile link needs that
            done.pop()
            continue
        current = "/".join([*done, part])
        target = links.get(current)
        if target is None:
            done.append(part)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            return None
        if target.startswith("/"):
            done = []
        parts = [p for p in target.split("/") if p] + parts
    return "/".join(done)


def _mode_findings(member: DataMember, where: str) -> list[Finding]:
    found = []
    if member.mode & stat.S_ISUID:
        found.append(Finding("setuid", where, f"setuid (mode {member.mode:04o}, "
                                              f"uid {member.uid})"))
    if member.mode & stat.S_ISGID:
        found.append(Finding("setgid", where, f"setgid (mode {member.mode:04o}, "
                                              f"gid {member.gid})"))
    if (member.uid, member.gid) != (0, 0) and member.kind != "symlink":
        found.append(Finding("owner", where, f"owned by {member.uid}:{member.gid}, "
                                             "not root"))
    sticky_dir = member.kind == "dir" and member.mode & stat.S_ISVTX
    if member.kind != "symlink" and member.mode & stat.S_IWOTH and not sticky_dir:
        found.append(Finding("world-writable", where, f"writable by everyone (mode "
                                                      f"{member.mode:04o})"))
    return found


def inspect_members(members: Sequence[DataMember]) -> list[Finding]:
    """The findings of a data archive's entries (see the module docstring)."""
    links = {m.path: m.target for m in members if m.kind == "symlink"}
    files = {m.path for m in members if m.kind == "file"}
    found: list[Finding] = []
    for member in members:
        where = "/" + member.path
        if not in_fhs(member.path):
            found.append(Finding("path", where, "outside the directories Debian Policy 9.1 "
                                                "lets a package use"))
        if member.kind in ("char", "block"):
            found.append(Finding("device", where, f"a {member.kind} device node"))
        elif member.kind in ("fifo", "other"):
            found.append(Finding("fifo", where, "a FIFO or other special file"))
        elif member.kind == "symlink":
            found += _symlink_findings(member, where, links)
        elif member.kind == "hardlink" and member.target not in files:
            found.append(Finding("hardlink", where, f"a hard link to {member.target!r}, "
                                                    "which is no file of the package"))
        found += _mode_findings(member, where)
    return found


def _symlink_findings(member: DataMember, where: str, links: dict[str, str]) -> list[Finding]:
    target = member.target
    if not target or "\0" in target:
        return [Finding("symlink", where, "an empty symlink target")]
    start = target if target.startswith("/") else posixpath.join(
        posixpath.dirname("/" + member.path), target)
    lexical = posixpath.normpath(start).lstrip("/")
    climbs = fsutil.link_climbs_out(member.path, target)
    resolved = _resolve(start, links)
    if climbs or resolved is None:
        return [Finding("symlink", where, f"a symlink to {target!r}, which climbs above / "
                                          "or loops")]
    for landing in (lexical, resolved):
        if not landing or not in_fhs(landing):    # "" is / itself
            return [Finding("symlink", where, f"a symlink to {target!r}, which leads to "
                                              f"/{landing}, outside the FHS roots")]
    return []


def _control_fields(contents: DebContents, name: str) -> deb822.Stanza:
    try:
        stanzas = deb822.parse(contents.control_text[:MAX_CONTROL_FILE_BYTES],
                               f"{name}:control", deb822.CONTROL)
    except ParseError as e:
        raise InputError(f"{name}: its control file does not parse: {e.message}") from None
    if len(stanzas) != 1:
        raise InputError(f"{name}: its control file has {len(stanzas)} stanzas, not one")
    return stanzas[0]


def inspect_deb(path: Path) -> DebReport:
    """Read the .deb at *path* (which the build wrote: opened as
    :func:`guestpkg.fsutil.open_untrusted` opens) and check it."""
    from guestpkg.build.artifacts import MAX_ARTIFACT_BYTES
    from guestpkg.errors import UnsafeArchive

    fd, st = fsutil.open_untrusted(path.parent, path.name, shown=path,
                                   max_bytes=MAX_ARTIFACT_BYTES)
    with os.fdopen(fd, "rb") as f:
        try:
            contents = read_deb(f, st.st_size)
        except UnsafeArchive as e:
            raise UnsafeArchive(f"{path.name}: {e.message}") from None
    fields = _control_fields(contents, path.name)
    return DebReport(path.name, fields.get("Package") or "", fields.get("Version") or "",
                     fields.get("Architecture") or "", fields.get("Depends") or "",
                     tuple(inspect_members(contents.members)))


def undeclared(reports: Iterable[DebReport], declared: Iterable[str] = ()) -> list[str]:
    """One line per finding that *declared* (absolute paths) does not allow."""
    allowed = set(declared)
    return [f"{report.name}: {finding}" for report in reports for finding in report.findings
            if not (finding.declarable and finding.path in allowed)]


def _depends_on(depends: str, package: str) -> bool:
    for entry in depends.split(","):
        for alternative in entry.split("|"):
            name = alternative.strip().split(" ", 1)[0].split("(", 1)[0].split(":", 1)[0]
            if name == package and "|" not in entry:
                return True
    return False


def check_identity(reports: Sequence[DebReport], *, packages: Iterable[str], version: str,
                   arch: str, host: str) -> list[str]:
    """What is wrong with the set of .debs of a guest build: one line per problem."""
    expected = set(packages)
    problems = []
    seen: set[str] = set()
    for report in reports:
        base = report.package.removesuffix("-dbgsym")
        if base not in expected:
            problems.append(f"{report.name}: package {report.package!r} is not one of the "
                            f"guest's ({', '.join(sorted(expected))})")
        if report.package in seen:
            problems.append(f"{report.name}: package {report.package} built twice")
        seen.add(report.package)
        if report.version != version:
            problems.append(f"{report.name}: version {report.version!r}, not {version}")
        if report.architecture not in (arch, "all"):
            problems.append(f"{report.name}: architecture {report.architecture!r}, not "
                            f"{arch} or all")
        if report.package == base and not _depends_on(report.depends, host):
            problems.append(f"{report.name}: does not depend on the host {host}")
    if not reports:
        problems.append("the build made no .deb")
    return problems


def check_build_output(debs: Sequence[Path], *, refuse: bool, declared: Iterable[str],
                       note: Callable[[str], None], log_path: Path | None = None
                       ) -> list[DebReport]:
    """Inspect *debs* (in the build directory, before anything is collected): each
    undeclared finding is noted as a warning, or, with *refuse*, the first one is
    raised as one line (:class:`~guestpkg.errors.UnsafeArchive`) and nothing is
    collected."""
    from guestpkg.errors import UnsafeArchive

    reports = [inspect_deb(path) for path in debs]
    problems = undeclared(reports, declared)
    for problem in problems:
        note(("REFUSED: " if refuse else "WARNING: ") + problem)
    if problems and refuse:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        where = f"; the build log {log_path} lists them" if log_path and more else ""
        raise UnsafeArchive(
            f"{problems[0]}{more}: the .deb would install it as root",
            hint="a guest that needs a setuid, setgid or foreign-owned file declares it "
            f"in its host's manifest (Setuid:, guestpkg-host(7)){where}")
    return reports
