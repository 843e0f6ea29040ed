# SPDX-License-Identifier: GPL-2.0-or-later
"""The bootstrap set: the seed packages every recipe build starts from.

A recipe's chroot is made only of dcfpkgs.  The first ones can't come from recipes
("we can build tar without tar, make without make" needs a tar and a make to start
with), so they are imported from Debian: mmdebstrap(1) ``--variant=essential`` with
the toolchain (:data:`SEEDS`) for the architecture's Debian port (``amd64`` for
``x86_64``, ``i386`` for ``i586``), then every installed Debian package becomes one
dcfpkg of the files dpkg lists for it, with its provenance (package, version, the
SHA256 of the .deb that apt verified against the signed index) in its metadata.  What
no package owns but the installed system needs (the ``/bin`` -> ``usr/bin`` links of
merged /usr, alternatives such as ``cc`` and ``awk``, ``ld.so.cache``, ``/etc/passwd``
with the build user) becomes one more package, :data:`BASE_PACKAGE`.

The set's id is the SHA256 of its members' names and digests, part of every recipe's
cache key.  On disk, under ``<cachedir>/dcfpkg/bootstrap/<arch>/``::

    <id>/SET                  deb822: Bootstrap-Set, Architecture, Suite, Members
    <id>/*.dcfpkg             the members
    current                   the id ``guestpkg recipe`` uses (replaced atomically)

A set is written under a ``.tmp-`` name and renamed into place, so a killed bootstrap
leaves nothing that looks like a set.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from guestpkg import fsutil
from guestpkg.buildroot.roots import host_suite, require_root, system_proxy_options
from guestpkg.buildroot.sources import AptSource, read_host_sources, select_sources
from guestpkg.config import Config
from guestpkg.dcfpkg.format import Metadata
from guestpkg.dcfpkg.writer import write_dcfpkg
from guestpkg.debian import deb822
from guestpkg.debian.version import parse as parse_version
from guestpkg.errors import InputError, SystemStateError, UsageError
from guestpkg.recipe.files import ARCHES
from guestpkg.run import apt_env, run

log = logging.getLogger(__name__)

#: Debian packages installed over the Essential set: the toolchain and what autotools
#: builds need (the Essential set brings a shell, coreutils, sed, grep, tar, gzip,
#: diffutils, findutils and perl-base).
SEEDS = ("gcc", "g++", "make", "binutils", "libc6-dev", "gawk", "xz-utils", "bzip2",
         "patch", "perl")
#: A recipe architecture's Debian port, which is also the Architecture of its dcfpkgs
#: (dcfpkg(5) names architectures as Debian does).
DEBIAN_ARCH = {"x86_64": "amd64", "i586": "i386"}
BASE_PACKAGE = "bootstrap-base"
SET_FILE = "SET"
FORMAT = 1

#: Build user of recipe builds (the buildroots' BUILD_UID, pbuilder's BUILDUSERID).
BUILD_USER, BUILD_UID = "build", 1234

#: Parts of the root that are not part of any package: mount points of the sandbox,
#: and what apt and dpkg keep for themselves.
_NOT_PACKAGED = ("dev", "proc", "sys", "run", "tmp", "var/tmp", "var/cache/apt",
                 "var/lib/apt", "var/lib/dpkg", "var/log", "var/cache/debconf")


@dataclass(frozen=True)
class Member:
    file: str       # the dcfpkg's file name in the set directory
    sha256: str


@dataclass(frozen=True)
class BootstrapSet:
    id: str
    arch: str
    directory: Path
    suite: str
    members: tuple[Member, ...]

    def paths(self) -> list[Path]:
        return [self.directory / m.file for m in self.members]


def set_id(arch: str, members: list[Member]) -> str:
    lines = [f"guestpkg-bootstrap-set {FORMAT}", f"arch {arch}"]
    lines += [f"member {m.file} {m.sha256}" for m in sorted(members, key=lambda m: m.file)]
    return hashlib.sha256(("\n".join(lines) + "\n").encode()).hexdigest()


def sets_dir(config: Config, arch: str) -> Path:
    if arch not in ARCHES:
        raise UsageError(f"unknown architecture {arch!r}", hint="use " + " or ".join(ARCHES))
    return config.cachedir / "dcfpkg" / "bootstrap" / arch


def open_set(config: Config, arch: str) -> BootstrapSet:
    """The current bootstrap set of *arch*, its SET file checked against its id."""
    top = sets_dir(config, arch)
    try:
        current = (top / "current").read_text().strip()
    except FileNotFoundError:
        raise SystemStateError(f"no bootstrap set for {arch}",
                               hint=f"make it: guestpkg recipe bootstrap --arch {arch}") from None
    if not deb822.is_sha256(current):
        raise SystemStateError(f"{top / 'current'}: not a bootstrap set id",
                               hint=f"guestpkg recipe bootstrap --arch {arch} --update")
    path = top / current / SET_FILE
    broken = SystemStateError(f"{top / current}: an incomplete or changed bootstrap set",
                              hint=f"guestpkg recipe bootstrap --arch {arch} --update")
    try:
        stanzas = deb822.parse(path.read_text(), path, deb822.DCFPKG)
    except (OSError, UnicodeDecodeError, InputError):
        raise broken from None
    fields = stanzas[0].fields if len(stanzas) == 1 else {}
    members = []
    for line in fields.get("Members", "").split("\n")[1:]:
        file, _, digest = line.partition(" ")
        members.append(Member(file, digest))
    if (fields.get("Bootstrap-Set") != current or set_id(arch, members) != current
            or not all((top / current / m.file).is_file() for m in members)):
        raise broken
    return BootstrapSet(current, arch, top / current, fields.get("Suite", ""), tuple(members))


def make_set(config: Config, arch: str, *, suite: str | None = None,
             mirror: str | None = None) -> BootstrapSet:
    """Bootstrap a Debian root for *arch*, import it as dcfpkgs and make it current."""
    require_root("making the bootstrap set")
    suite = suite or config.suite or host_suite()
    sources = bootstrap_sources(select_sources(read_host_sources(), suite,
                                               mirror or config.mirror),
                                config.bootstrap_security)
    top = sets_dir(config, arch)
    log_path = config.logdir / "recipes" / f"bootstrap-{arch}.log"
    top.mkdir(parents=True, exist_ok=True)
    with fsutil.locked(top.parent / f"{arch}.lock"), _scratch(top) as work:
        root, out = work / "root", work / "set"
        out.mkdir()
        log.warning("bootstrapping %s (%s, %s) with mmdebstrap; log: %s", arch, suite,
                    DEBIAN_ARCH[arch], log_path)
        argv = ["mmdebstrap", "--variant=essential", "--mode=unshare",
                f"--architectures={DEBIAN_ARCH[arch]}", "--include=" + ",".join(SEEDS),
                "--skip=essential/unlink", "--skip=cleanup/apt/cache",
                '--aptopt=Acquire::Languages "none"',
                *[f"--aptopt={option}" for option in system_proxy_options()], suite, str(root),
                *[s.line() for s in sources]]
        run(argv, env=apt_env(throwaway_root=True), log_path=log_path,
            hint=f"mmdebstrap failed; its full log is {log_path}")
        members = import_root(root, out, arch, suite, config.dcfpkg_level)
        identity = set_id(arch, members)
        fsutil.atomic_write(out / SET_FILE, deb822.format_stanza([
            ("Bootstrap-Set", identity), ("Architecture", arch), ("Suite", suite),
            ("Members", "".join(f"\n{m.file} {m.sha256}" for m in members))]))
        final = top / identity
        if not final.exists():
            os.rename(out, final)
        fsutil.atomic_write(top / "current", identity + "\n")
    return open_set(config, arch)


def bootstrap_sources(sources: list[AptSource], security: bool) -> list[AptSource]:
    """The apt sources of a bootstrap root: the buildroot's, less the security suite
    when the ``bootstrap_security`` setting says no.  The seeds' provenance names each
    .deb's version and SHA256 either way, so a set made without it says so."""
    if security:
        return sources
    kept = [s for s in sources if not s.suite.endswith("-security")]
    if len(kept) != len(sources):
        log.warning("bootstrap_security = no: the security suite is left out")
    return kept


@contextlib.contextmanager
def _scratch(top: Path) -> Iterator[Path]:
    """A ``.tmp-`` work directory beside the sets, removed whatever happens (the
    Debian root in it is only the source of the packages)."""
    work = Path(tempfile.mkdtemp(prefix=fsutil.TMP_PREFIX + "bootstrap.", dir=top))
    try:
        yield work
    finally:
        fsutil.remove_tree(work)


@dataclass(frozen=True)
class _Installed:
    name: str
    version: str
    list_file: Path


def installed_packages(root: Path) -> list[_Installed]:
    """The packages dpkg installed in *root* (a root we made from Debian's packages)."""
    status = root / "var/lib/dpkg/status"
    out = []
    for stanza in deb822.parse(status.read_text(encoding="utf-8"), status):
        if stanza.get("Status") != "install ok installed":
            continue
        name, arch = stanza.get("Package") or "", stanza.get("Architecture") or ""
        info = root / "var/lib/dpkg/info"
        list_file = next((p for p in (info / f"{name}:{arch}.list", info / f"{name}.list")
                          if p.exists()), None)
        if list_file is None:
            raise SystemStateError(f"{status}: {name} has no file list")
        out.append(_Installed(name, stanza.get("Version") or "", list_file))
    return sorted(out, key=lambda p: p.name)


def deb_digests(root: Path) -> dict[tuple[str, str], str]:
    """``(package, version)`` -> SHA256 of every .deb apt downloaded (and verified)."""
    digests = {}
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        name, version, _ = deb.name.removesuffix(".deb").split("_")
        with open(deb, "rb") as f:
            digests[(name, version.replace("%3a", ":"))] = hashlib.file_digest(
                f, "sha256").hexdigest()
    return digests


def import_root(root: Path, out: Path, arch: str, suite: str, level: int) -> list[Member]:
    """One dcfpkg per installed package, and :data:`BASE_PACKAGE` for the rest."""
    debs = deb_digests(root)
    _add_build_user(root)
    claimed: set[str] = set()
    members = []
    for package in installed_packages(root):
        digest = debs.get((package.name, package.version))
        if digest is None:
            raise SystemStateError(f"no .deb of {package.name} {package.version} was kept",
                                   hint="mmdebstrap must run with --skip=essential/unlink "
                                   "--skip=cleanup/apt/cache")
        paths = _physical_paths(root, package.list_file)
        claimed.update(p for p in paths if not os.path.isdir(root / p)
                       or os.path.islink(root / p))
        version = parse_version(package.version)
        meta = Metadata(package=package.name, version=str(version.upstream_version),
                        release=version.debian_revision or "0",
                        architecture=DEBIAN_ARCH[arch],
                        build_date=0, source=f"debian/{suite}",
                        provenance=f"{package.name} {package.version} {digest}")
        members.append(_pack(root, sorted(paths), meta, out, level, keep_owners=False))
    rest = [p for p in _walk_root(root) if p not in claimed]
    meta = Metadata(package=BASE_PACKAGE, version="1", release="1",
                    architecture=DEBIAN_ARCH[arch],
                    build_date=0, source=f"debian/{suite}",
                    description="files of the bootstrap root that no Debian package owns")
    members.append(_pack(root, rest, meta, out, level, keep_owners=True))
    return members


def _add_build_user(root: Path) -> None:
    """The unprivileged user recipe builds run as, with a home."""
    with open(root / "etc/passwd", "a") as f:
        f.write(f"{BUILD_USER}:x:{BUILD_UID}:{BUILD_UID}::/home/{BUILD_USER}:/bin/sh\n")
    with open(root / "etc/group", "a") as f:
        f.write(f"{BUILD_USER}:x:{BUILD_UID}:\n")
    home = root / "home" / BUILD_USER
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, BUILD_UID, BUILD_UID)


def _physical_paths(root: Path, list_file: Path) -> list[str]:
    """The paths of a dpkg file list, where they really are in *root*: a listed
    ``/bin/cat`` is ``usr/bin/cat`` on a merged-/usr system.  Paths that no longer
    exist (diverted, or replaced by another package) are left out."""
    out = []
    real_root = os.path.realpath(root)
    for line in list_file.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        if line in ("/.", "/", ""):
            continue
        parent = os.path.realpath(os.path.join(root, os.path.dirname(line).lstrip("/")))
        if parent != real_root and not parent.startswith(real_root + "/"):
            continue
        physical = os.path.relpath(os.path.join(parent, os.path.basename(line)), real_root)
        if os.path.lexists(os.path.join(real_root, physical)):
            out.append(physical)
    return out


def _walk_root(root: Path) -> list[str]:
    """Every path of *root* but :data:`_NOT_PACKAGED` (whose mount points are kept)."""
    out = []
    for directory, dirs, files in os.walk(root):  # does not descend into symlinks
        relative = os.path.relpath(directory, root)
        for name in dirs + files:
            path = os.path.normpath(os.path.join(relative, name))
            if not any(path.startswith(skip + "/") for skip in _NOT_PACKAGED):
                out.append(path)
        dirs[:] = [d for d in dirs
                   if os.path.normpath(os.path.join(relative, d)) not in _NOT_PACKAGED]
    return sorted(out)


def _pack(root: Path, paths: list[str], meta: Metadata, out: Path, level: int, *,
          keep_owners: bool) -> Member:
    """Stage *paths* of *root* as hard links (directories made, symlinks copied, setuid
    and setgid bits dropped: nothing in a build chroot may raise privileges), then pack
    them with the newest mtime as Build-Date."""
    stage = out / ".stage"
    stage.mkdir()
    newest = 0
    for path in paths:
        source, target = root / path, stage / path
        st = os.lstat(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISDIR(st.st_mode):
            target.mkdir(exist_ok=True)
            os.chmod(target, stat.S_IMODE(st.st_mode) & 0o1777)
            if keep_owners:
                os.chown(target, st.st_uid, st.st_gid)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), target)
        elif stat.S_ISREG(st.st_mode):
            if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(source, stat.S_IMODE(st.st_mode) & 0o1777)
            os.link(source, target, follow_symlinks=False)
            newest = max(newest, int(st.st_mtime))
        else:
            raise InputError(f"{source}: not a file, directory or symlink")
    for directory in _parents(stage, paths):
        os.chmod(directory, 0o755)  # noqa: S103 (a package directory, world-readable)
    meta = replace(meta, build_date=newest)
    name = f"{meta.package}_{meta.full_version}_{meta.architecture}.dcfpkg"
    write_dcfpkg(stage, meta, out / name, level=level, keep_owners=keep_owners)
    fsutil.remove_tree(stage)
    with open(out / name, "rb") as f:
        return Member(name, hashlib.file_digest(f, "sha256").hexdigest())


def _parents(stage: Path, paths: list[str]) -> set[Path]:
    """Directories made only because a listed path is below them."""
    listed = set(paths)
    return {stage / p for path in paths for p in _ancestors(path) if p not in listed}


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]

