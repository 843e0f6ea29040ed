# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg new-host``: a complete host source package made from a guest's source tree.

Given an unpacked guest source (``foo-1.2/`` with ``debian/``) and its orig tarballs
next to it (as ``apt-get source`` or ``uscan --download-current-version`` leave
them), this writes ``foo-installer-1.2-3/``::

    debian/changelog        foo-installer (1.2-3-1): the guest's full version + "-1"
    debian/control          Build-Depends: debhelper-compat (= 13), dh-sequence-guestpkg
    debian/rules            dh $@
    debian/watch            the guest's, byte for byte (dh_guestpkg checks it)
    debian/copyright        the guest's (the host redistributes its packaging)
    debian/source/format    1.0: a host has no upstream tarball, and a version with a
                            revision can't be "3.0 (native)" (dpkg-source(1))
    guest/debian/           the guest's packaging
    guest/manifest          guest source, version, and each upstream file's size and
                            SHA256, computed from the local tarballs

The host name is ``<guest>-installer`` unless given.  The pinned SHA256 is that of the
tarball the maintainer has in hand; with ``--fetch``, a missing tarball is first
downloaded with uscan(1), which checks upstream's signature when the guest says how.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from guestpkg.debian.version import without_epoch
from guestpkg.errors import InputError, UsageError
from guestpkg.fsutil import atomic_directory
from guestpkg.host.manifest import Manifest, UpstreamFile, render_manifest
from guestpkg.host.source import check_source_format
from guestpkg.host.versions import changelog_head, upstream_part
from guestpkg.run import base_env, run

ORIG = re.compile(r"^(?P<stem>.+)\.orig(?:-(?P<component>[A-Za-z0-9][A-Za-z0-9-]*))?"
                  r"\.tar\.(?:gz|xz|bz2|lzma|zst)$")


@dataclass(frozen=True)
class Guest:
    tree: Path
    source: str
    version: str
    maintainer: str
    section: str


def read_guest(tree: Path) -> Guest:
    debian = tree / "debian"
    for name in ("changelog", "control", "watch"):
        if not (debian / name).is_file():
            raise InputError(f"{debian / name} is missing",
                             hint="a guest needs a changelog, a control and a watch file")
    check_source_format(debian)
    source, version = changelog_head((debian / "changelog").read_text(encoding="utf-8"),
                                     str(debian / "changelog"))
    if "-" not in without_epoch(version):
        raise InputError(f"{source} {version} is a native package: it has no upstream "
                         "tarball for a host to pin")
    control = (debian / "control").read_text(encoding="utf-8")
    maintainer = re.search(r"^Maintainer:\s*(.+)$", control, re.M)
    section = re.search(r"^Section:\s*(\S+)$", control, re.M)
    return Guest(tree, source, version, maintainer.group(1).strip() if maintainer else
                 "Unknown <unknown@localhost>", section.group(1) if section else "misc")


def find_upstream_files(guest: Guest) -> list[UpstreamFile]:
    """The orig tarballs next to the guest's tree, with their sizes and SHA256."""
    stem = f"{guest.source}_{upstream_part(guest.version)}"
    found = []
    for path in sorted(guest.tree.resolve().parent.iterdir()):
        m = ORIG.match(path.name)
        if m is None or m.group("stem") != stem or not path.is_file():
            continue
        with open(path, "rb") as f:
            digest = hashlib.file_digest(f, "sha256")
        found.append(UpstreamFile(path.name, path.stat().st_size, digest.hexdigest(),
                                  m.group("component")))
    if not any(f.component is None for f in found):
        raise InputError(f"no {stem}.orig.tar.* next to {guest.tree}",
                         hint="get it with apt-get source --download-only or uscan "
                         "--download-current-version, check it, and run new-host again")
    return found


def fetch_with_uscan(guest: Guest) -> None:
    """Download the guest's orig tarball(s) next to its tree with uscan(1)
    (``--download-current-version``): on the maintainer's machine, where uscan also
    checks upstream's OpenPGP signature when the guest's watch file and
    ``debian/upstream/signing-key.asc`` ask for it.  The maintainer pins what it got."""
    # inherit: uscan downloads from upstream, so the environment's proxies apply.
    run(["uscan", "--download-current-version", "--rename",
         "--destdir", str(guest.tree.resolve().parent)], cwd=guest.tree,
        env=base_env(inherit=True),
        hint="check the guest's debian/watch, or put the orig tarball next to the tree")


def _maintainer() -> str | None:
    name, mail = os.environ.get("DEBFULLNAME"), os.environ.get("DEBEMAIL")
    return f"{name} <{mail}>" if name and mail else None


def render_control(host: str, guest: Guest, maintainer: str) -> str:
    # contrib: a host needs software from outside the archive to be useful (Policy 2.2.2).
    section = "contrib/" + guest.section.split("/")[-1]
    return f"""\
Source: {host}
Section: {section}
Priority: optional
Maintainer: {maintainer}
Build-Depends: debhelper-compat (= 13), dh-sequence-guestpkg
Standards-Version: 4.6.2
Rules-Requires-Root: no

Package: {host}
Architecture: all
Depends: ${{misc:Depends}}
Description: builds and installs {guest.source} from its upstream source
 This package carries the Debian packaging of {guest.source} {guest.version} and the
 SHA256 checksums of its upstream source, but not the source itself. With your
 consent, guestpkg downloads the upstream source, verifies it, builds
 {guest.source} in an isolated sandbox and installs it.
"""


def render_changelog(host: str, guest: Guest, maintainer: str) -> str:
    date = email.utils.formatdate(localtime=True)
    return (f"{host} ({without_epoch(guest.version)}-1) UNRELEASED; urgency=medium\n\n"
            f"  * Host package for {guest.source} {guest.version}, made by guestpkg "
            f"new-host.\n\n -- {maintainer}  {date}\n")


def scaffold(guest_tree: Path, output: Path, host: str | None = None,
             fetch: bool = False) -> Path:
    """Write the host source package for *guest_tree* into *output* (must not exist);
    with *fetch*, get missing orig tarballs with uscan first."""
    guest = read_guest(guest_tree)
    host = host or f"{guest.source}-installer"
    if output.exists():
        raise UsageError(f"{output} exists", hint="choose another --output or remove it")
    try:
        files = find_upstream_files(guest)
    except InputError:
        if not fetch:
            raise
        fetch_with_uscan(guest)
        files = find_upstream_files(guest)
    manifest = Manifest(host, guest.source, guest.version, tuple(files))
    maintainer = _maintainer() or guest.maintainer
    debian_in = guest_tree / "debian"
    with atomic_directory(output) as tmp:
        shutil.copytree(debian_in, tmp / "guest" / "debian", symlinks=True)
        (tmp / "guest" / "manifest").write_text(render_manifest(manifest), encoding="utf-8")
        debian = tmp / "debian"
        (debian / "source").mkdir(parents=True)
        (debian / "source" / "format").write_text("1.0\n")
        (debian / "changelog").write_text(render_changelog(host, guest, maintainer))
        (debian / "control").write_text(render_control(host, guest, maintainer))
        (debian / "rules").write_text("#!/usr/bin/make -f\n%:\n\tdh $@\n")
        (debian / "rules").chmod(0o755)
        shutil.copyfile(debian_in / "watch", debian / "watch")
        if (debian_in / "copyright").is_file():
            shutil.copyfile(debian_in / "copyright", debian / "copyright")
    return output
