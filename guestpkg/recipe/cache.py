# SPDX-License-Identifier: GPL-2.0-or-later
"""Where recipe results live, and whether a cached one still holds.

A result is ``<cachedir>/dcfpkg/<name>_<version>-<release>_<arch>.dcfpkg`` (``arch``
the Debian name dcfpkgs use: ``amd64`` for ``x86_64``, ``i386`` for ``i586``), written
atomically.  It is a cache hit when its metadata's ``Recipe-Key`` is the key of the
request: the key covers everything that went into the build (docs/recipes.md), so a
changed recipe or input makes a different key and the file is rebuilt in place.
Reading the metadata stanza costs one small read, so an all-cached request is fast.

``guestpkg cache list|clean`` covers this cache too (:func:`bootstrap_sets`,
:func:`clean`): the results, the bootstrap sets (``current`` and the ones an
``--update`` replaced) and the unpacked layers of both (guestpkg.recipe.layers).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from guestpkg import fsutil
from guestpkg.config import Config
from guestpkg.dcfpkg.format import Metadata
from guestpkg.dcfpkg.reader import read_metadata
from guestpkg.errors import InputError
from guestpkg.recipe import layers
from guestpkg.recipe.bootstrap import DEBIAN_ARCH, sets_dir
from guestpkg.recipe.files import ARCHES
from guestpkg.recipe.tree import Recipe


def results_dir(config: Config) -> Path:
    return config.cachedir / "dcfpkg"


def result_path(config: Config, recipe: Recipe, arch: str) -> Path:
    return results_dir(config) / (f"{recipe.name}_{recipe.full_version}_"
                                  f"{DEBIAN_ARCH[arch]}.dcfpkg")


def log_path(config: Config, recipe: Recipe, arch: str) -> Path:
    """The build's log: the whole transaction (``/var/log/guestpkg/recipes/``)."""
    return config.logdir / "recipes" / (f"{recipe.name}_{recipe.full_version}_"
                                        f"{DEBIAN_ARCH[arch]}.log")


@dataclass(frozen=True)
class Result:
    path: Path
    sha256: str
    metadata: Metadata


def cached(path: Path, key: str) -> Result | None:
    """The result at *path* if it was built for *key*, else None (also when the file
    is missing or unreadable: then it is simply built again)."""
    try:
        with open(path, "rb") as f:
            meta = read_metadata(f, str(path))
            if meta.recipe_key != key:
                return None
            f.seek(0)
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except (OSError, InputError):
        return None
    return Result(path, digest, meta)


def results(config: Config) -> list[Path]:
    top = results_dir(config)
    # not the ".tmp-" files of results being written (guestpkg.recipe.workdirs)
    return sorted(p for p in top.glob("*.dcfpkg") if not p.name.startswith(".")) \
        if top.is_dir() else []


@dataclass(frozen=True)
class SetDir:
    arch: str
    id: str
    path: Path
    current: bool


def bootstrap_sets(config: Config) -> list[SetDir]:
    """Every bootstrap set on disk, the ``current`` one of each arch marked."""
    found = []
    for arch in ARCHES:
        top = sets_dir(config, arch)
        try:
            current = (top / "current").read_text().strip()
        except OSError:
            current = ""
        for entry in sorted(top.iterdir()) if top.is_dir() else ():
            if len(entry.name) == 64 and entry.is_dir() and not entry.is_symlink():
                found.append(SetDir(arch, entry.name, entry, entry.name == current))
    return found


@dataclass(frozen=True)
class Cleaned:
    layers: int = 0
    busy: int = 0
    sets: int = 0
    results: int = 0


def clean(config: Config, everything: bool) -> Cleaned:
    """Remove the unpacked layers no cached result or current bootstrap set has, the
    bootstrap sets an ``--update`` replaced, and the leftovers of killed unpacks; with
    *everything* also every result and every layer not in use.  A layer a build holds
    is kept (counted busy), as is a replaced set whose layer is being made."""
    removed_sets = removed_results = 0
    sets = bootstrap_sets(config)
    for old in (s for s in sets if not s.current):
        with fsutil.locked(layers.layers_dir(config) / f".set-{old.id}.lock",
                           blocking=False) as free:
            if free:
                doomed = old.path.with_name(f"{fsutil.TMP_PREFIX}{old.id}.removing")
                os.rename(old.path, doomed)
                fsutil.remove_tree(doomed)
                removed_sets += 1
    if everything:
        for path in results(config):
            path.unlink(missing_ok=True)
            removed_results += 1
    live = set() if everything else layers.live_layer_names(
        results(config), [s.id for s in sets if s.current])
    removed = busy = 0
    for layer in layers.stale_layers(config, live):
        if layers.remove_recipe_layer(config, layer):
            removed += 1
        else:
            busy += 1
    layers.reap(config)
    return Cleaned(removed, busy, removed_sets, removed_results)
