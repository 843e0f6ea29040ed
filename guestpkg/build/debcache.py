# SPDX-License-Identifier: GPL-2.0-or-later
"""The shared download cache: the .debs apt fetched for build-dependency layers, kept
across builds and layers, so that a second cold layer of the same packages (a new
request that shares most of them, a layer removed by ``cache clean``) downloads
nothing.

It is apt's own archives directory, ``<cachedir>/debs/``, bound at
``/var/cache/apt/archives`` into the dependency phase of a layer's creation, which runs
in two sandboxed commands over the same fork:

1. ``apt-get --download-only``, with network, the cache bound read-write: apt fetches
   what is missing into ``partial/``, verifies each file against the hashes of the
   root's signed package lists, and only then renames it into the cache (apt's
   pkgAcqArchive); concurrent downloads take turns on ``<cachedir>/debs.download.lock``
   (:func:`downloading`: apt's own ``lock`` in the directory fails rather than waits).
   Not run when the cache has the .deb of every package to install: apt takes a
   file already in its archives directory by its name and size (pkgAcqArchive),
   so this run would fetch nothing and check nothing the installation does not;
2. ``apt-get install``, without network, the cache bound read-only beside apt's own
   archives directory, which gets a symlink to each cached .deb: apt finds every .deb
   in place and dpkg installs them; nothing of the installation (maintainer scripts)
   can write to the cache.

The cache is never visible to a build phase, only to apt's dependency phase, which
runs trusted code from the root's own sources.  Its files have the canonical ids (the
binds are idmapped like the layers), so forks on any slice share them.  A build holds
``<cachedir>/debs.lock`` shared while it uses the cache; ``guestpkg cache clean``
takes it exclusively (non-blocking) to remove files.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.config import Config

#: Where apt keeps downloaded .debs inside a root (apt.conf(5) Dir::Cache::Archives).
ARCHIVES_MOUNT = "/var/cache/apt/archives"

#: Where the installation sees the cache, read-only (guestpkg.build.deb).
CACHE_MOUNT = "/var/cache/guestpkg-debs"


def debs_dir(config: Config) -> Path:
    return config.cachedir / "debs"


def _lock_path(config: Config) -> Path:
    return config.cachedir / "debs.lock"


@contextlib.contextmanager
def using_cache(config: Config) -> Iterator[Path]:
    """The cache directory, held in use (shared lock) for the duration; made with
    apt's ``partial/`` on first use."""
    directory = debs_dir(config)
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    (directory / "partial").mkdir(mode=0o700, exist_ok=True)
    with fsutil.locked(_lock_path(config), shared=True):
        yield directory


@contextlib.contextmanager
def downloading(config: Config) -> Iterator[None]:
    """Held (exclusively) while apt downloads into the cache.  apt takes the cache's
    own ``lock`` without waiting and fails when another apt holds it ("Could not get
    lock /var/cache/apt/archives/lock. It is held by process 0": the holder runs in
    another build's pid namespace), so concurrent layer creations take turns here."""
    with fsutil.locked(config.cachedir / "debs.download.lock"):
        yield


def deb_file_name(action: str) -> str | None:
    """The name apt gives the .deb of a layer action ``name:arch=version``
    (``name_version_arch.deb``, the epoch's ``:`` quoted as ``%3a``); None for a
    removal."""
    if action.startswith("-") or "=" not in action:
        return None
    package, version = action.split("=", 1)
    # A foreign package's action is name:arch:arch=version (layers.parse_simulation).
    name, arch = package.split(":")[0], package.rsplit(":", 1)[-1]
    return f"{name}_{version.replace(':', '%3a')}_{arch}.deb"


@dataclass(frozen=True)
class CachedDeb:
    path: Path
    size_bytes: int


def list_debs(config: Config) -> list[CachedDeb]:
    directory = debs_dir(config)
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(directory.iterdir()):
        st = entry.lstat()
        if entry.suffix == ".deb" and entry.is_file() and not entry.is_symlink():
            found.append(CachedDeb(entry, st.st_size))
    return found


def clean_debs(config: Config, keep: Iterable[str] | None) -> int | None:
    """Remove the cached .debs whose names are not in *keep* (every one when None);
    returns how many, or None if a build is using the cache (nothing removed)."""
    kept = set(keep or ())
    removed = 0
    with fsutil.locked(_lock_path(config), blocking=False) as free:
        if not free:
            return None
        for deb in list_debs(config):
            if keep is None or deb.path.name not in kept:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(deb.path)
                    removed += 1
    return removed
