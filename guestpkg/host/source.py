# SPDX-License-Identifier: GPL-2.0-or-later
"""The guest as a Debian source package: the host's ``debian/`` plus the verified
upstream tarballs, put together as a ``.dsc`` for the builder.

A host ships the guest's ``debian/`` directory, not its source package; the builder
takes a ``.dsc`` (or a tree) and unpacks it in its sandbox.  Making a ``3.0 (quilt)``
source package here means the untrusted upstream tarball is never unpacked outside the
sandbox: we only pack ``debian/`` (our own, trusted files) into
``<source>_<version>.debian.tar.xz`` and describe the files in a ``.dsc``
(dsc(5): ``Format``, ``Source``, ``Version``, ``Files`` with MD5 sums, and
``Checksums-Sha256``).

Only the ``3.0 (quilt)`` format is supported: it is the one that keeps upstream
tarballs apart from the packaging, which is what a host needs.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

from guestpkg.debian.version import without_epoch
from guestpkg.errors import InputError
from guestpkg.fsutil import atomic_write
from guestpkg.host.manifest import Manifest

SUPPORTED_FORMAT = "3.0 (quilt)"
SOURCE_FIELDS = ("Maintainer", "Uploaders", "Homepage", "Standards-Version",
                 "Build-Depends", "Build-Depends-Indep", "Build-Depends-Arch",
                 "Build-Conflicts", "Build-Conflicts-Indep", "Build-Conflicts-Arch")


def source_format(debian: Path) -> str:
    path = debian / "source" / "format"
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return "1.0"


def check_source_format(debian: Path) -> None:
    found = source_format(debian)
    if found != SUPPORTED_FORMAT:
        raise InputError(f"{debian}/source/format: {found!r}: a guest must use "
                         f"{SUPPORTED_FORMAT!r}", hint="see guestpkg-host(7)")


def _digests(path: Path) -> tuple[str, str, int]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha256.update(chunk)
            size += len(chunk)
    return md5.hexdigest(), sha256.hexdigest(), size


def pack_debian(debian: Path, target: Path) -> None:
    """``debian/`` as a reproducible tar.xz (sorted, root-owned, fixed mtime)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz", format=tarfile.PAX_FORMAT) as tar:
        for path in [debian, *sorted(debian.rglob("*"))]:
            info = tar.gettarinfo(str(path), arcname="debian/" + str(path.relative_to(debian))
                                  if path != debian else "debian")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = 0
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            elif info.isdir() or info.issym():
                tar.addfile(info)
            else:
                raise InputError(f"{path}: not a file, directory or symlink")
    atomic_write(target, buffer.getvalue())


def _source_stanza(debian: Path) -> dict[str, str]:
    from debian.deb822 import Deb822

    with open(debian / "control", encoding="utf-8") as f:
        stanzas = list(Deb822.iter_paragraphs(f))
    if not stanzas or "Source" not in stanzas[0]:
        raise InputError(f"{debian}/control: no Source stanza")
    binaries = [s["Package"] for s in stanzas[1:] if "Package" in s]
    archs = sorted({a for s in stanzas[1:] for a in s.get("Architecture", "any").split()})
    fields = {k: " ".join(stanzas[0][k].split()) for k in SOURCE_FIELDS if k in stanzas[0]}
    return {"Binary": ", ".join(binaries), "Architecture": " ".join(archs), **fields}


def binary_packages(debian: Path) -> list[str]:
    return [p.strip() for p in _source_stanza(debian)["Binary"].split(",") if p.strip()]


def make_dsc(manifest: Manifest, debian: Path, upstream_dir: Path, outdir: Path) -> Path:
    """Write ``<source>_<version>.dsc`` and the debian tarball into *outdir*, beside the
    verified upstream files (copied from *upstream_dir* unless it is *outdir*)."""
    check_source_format(debian)
    version = without_epoch(manifest.guest_version)
    stem = f"{manifest.guest_source}_{version}"
    outdir.mkdir(parents=True, exist_ok=True)
    debian_tar = outdir / f"{stem}.debian.tar.xz"
    pack_debian(debian, debian_tar)
    files = []
    for upstream in manifest.files:
        path = outdir / upstream.name
        if upstream_dir.resolve() != outdir.resolve():
            os.link(upstream_dir / upstream.name, path)
        files.append(path)
    files.append(debian_tar)
    lines = [f"Format: {SUPPORTED_FORMAT}", f"Source: {manifest.guest_source}"]
    lines += [f"{k}: {v}" for k, v in _source_stanza(debian).items() if v]
    lines.append(f"Version: {manifest.guest_version}")
    sums = [(p.name, *_digests(p)) for p in files]
    lines.append("Checksums-Sha256:")
    lines += [f" {sha} {size} {name}" for name, _md5, sha, size in sums]
    lines.append("Files:")
    lines += [f" {md5} {size} {name}" for name, md5, _sha, size in sums]
    dsc = outdir / f"{stem}.dsc"
    atomic_write(dsc, "\n".join(lines) + "\n")
    return dsc
