# SPDX-License-Identifier: GPL-2.0-or-later
"""Unpacked dcfpkgs, cached as read-only overlay layers for recipe builds.

A recipe's chroot is an overlay of unpacked packages, as a deb build's chroot is an
overlay of its build-dependency layer over the buildroot (:mod:`guestpkg.build.layers`).
Each package is unpacked once, by the safe reader, and kept under
``<vardir>/recipes/layers/``::

    pkg-<sha256 of the dcfpkg>/     one package
    set-<bootstrap set id>/         the whole bootstrap set, merged into one tree
    .tmp-*                          an unpack in progress (or killed: reaped later)

The bootstrap set is merged into one layer because overlayfs takes its lower layers
in one mount option of at most a page (about 60 paths of this length), and a set has
over a hundred members.  A layer is made under a ``.tmp-`` name and renamed into
place, under a lock, so two builds needing the same package unpack it once and no
build sees half a layer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from guestpkg import fsutil
from guestpkg.config import Config
from guestpkg.dcfpkg.reader import ReaderPolicy, extract
from guestpkg.errors import ChecksumMismatch, UnsafeArchive
from guestpkg.recipe.bootstrap import BootstrapSet


def layers_dir(config: Config) -> Path:
    return config.vardir / "recipes" / "layers"


def policy(config: Config) -> ReaderPolicy:
    """Never setuid files in a build chroot, whatever the dcfpkg setting says."""
    return ReaderPolicy(allow_setuid=False, max_entries=config.dcfpkg_max_entries,
                        max_installed_bytes=config.dcfpkg_max_size, apply_owners=True,
                        setuid_hint="a recipe's package may not carry setuid or setgid "
                        "files (no setting allows them in a build chroot): rebuild it "
                        "without them")


def _digest(path: Path) -> str:
    import hashlib

    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def package_layer(config: Config, package: Path, sha256: str) -> Path:
    """The unpacked tree of *package*, whose file must have digest *sha256*."""
    layer = layers_dir(config) / f"pkg-{sha256}"
    if layer.is_dir():
        return layer
    with fsutil.locked(layers_dir(config) / f".pkg-{sha256}.lock"):
        if layer.is_dir():
            return layer
        actual = _digest(package)
        if actual != sha256:
            raise ChecksumMismatch(str(package), sha256, actual)
        extract(package, layer, policy(config))
    return layer


def set_layer(config: Config, bootstrap: BootstrapSet) -> Path:
    """The whole bootstrap set unpacked into one tree (members in set order; a later
    member's file replaces an earlier one's, as dpkg's unpack order would)."""
    layer = layers_dir(config) / f"set-{bootstrap.id}"
    if layer.is_dir():
        return layer
    with fsutil.locked(layers_dir(config) / f".set-{bootstrap.id}.lock"):
        if layer.is_dir():
            return layer
        with fsutil.atomic_directory(layer) as tmp:
            merged = tmp / "tree"
            merged.mkdir()
            for member in bootstrap.members:
                path = bootstrap.directory / member.file
                actual = _digest(path)
                if actual != member.sha256:
                    raise ChecksumMismatch(str(path), member.sha256, actual)
                unpacked = tmp / "member"
                extract(path, unpacked, policy(config))
                merge_into(unpacked, merged)
                fsutil.remove_tree(unpacked)
            for name in os.listdir(merged):
                os.rename(merged / name, tmp / name)
            merged.rmdir()
            os.chmod(tmp, 0o755)  # noqa: S103 (the root of a chroot)
    return layer


def merge_into(source: Path, target: Path) -> None:
    """Move everything in *source* into *target*, directories merged.  Both trees were
    unpacked by the safe reader; a directory meeting a non-directory is refused."""
    for entry in os.scandir(source):
        there = target / entry.name
        if entry.is_dir(follow_symlinks=False):
            try:
                st = os.lstat(there)
            except FileNotFoundError:
                os.rename(entry.path, there)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeArchive(f"{there}: a directory in one package, not in another")
            merge_into(Path(entry.path), there)
        else:
            if there.is_dir() and not there.is_symlink():
                raise UnsafeArchive(f"{there}: a directory in one package, not in another")
            os.replace(entry.path, there)
