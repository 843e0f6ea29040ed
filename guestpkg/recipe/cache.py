# SPDX-License-Identifier: GPL-2.0-or-later
"""Where recipe results live, and whether a cached one still holds.

A result is ``<cachedir>/dcfpkg/<name>_<version>-<release>_<arch>.dcfpkg`` (``arch``
the Debian name dcfpkgs use: ``amd64`` for ``x86_64``, ``i386`` for ``i586``), written
atomically.  It is a cache hit when its metadata's ``Recipe-Key`` is the key of the
request: the key covers everything that went into the build (docs/recipes.md), so a
changed recipe or input makes a different key and the file is rebuilt in place.
Reading the metadata stanza costs one small read, so an all-cached request is fast.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from guestpkg.config import Config
from guestpkg.dcfpkg.format import Metadata
from guestpkg.dcfpkg.reader import read_metadata
from guestpkg.errors import InputError
from guestpkg.recipe.bootstrap import DEBIAN_ARCH
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
