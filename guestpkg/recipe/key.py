# SPDX-License-Identifier: GPL-2.0-or-later
"""The cache key of a recipe build: what decides whether a cached result still holds.

The key is the SHA256 of a small canonical text naming

- the recipe format version (:data:`RECIPE_FORMAT`, bumped when the meaning of a
  recipe or of the build environment changes),
- the digest of the canonical recipe tree (:func:`tree_digest`: every file's path,
  executable bit, size and SHA256, and every directory, in byte order of their paths;
  owners, other mode bits and times do not count, as in git),
- the architecture,
- the bootstrap set's id,
- the SHA256 of every input dcfpkg, sorted by recipe.

Inputs are named by the digest of the built package, not by their own keys: builds are
deterministic, so an input rebuilt to the same bytes does not rebuild its dependents
(Nix's content-addressed derivations call this early cut-off).  ``latest`` inputs of
source recipes are left out on purpose: a source recipe's output is fixed by its
``sha256sums`` pins, so a newer fetcher must not make every source refetch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from guestpkg.recipe.tree import Recipe

#: The recipe format and build environment version; part of every key.
RECIPE_FORMAT = 1


def canonical_tree(recipe: Recipe) -> bytes:
    """The recipe directory as canonical text (every name was checked to be printable
    ASCII without spaces by :mod:`guestpkg.recipe.tree`, so no name can split a line)."""
    lines = [f"guestpkg-recipe-tree {RECIPE_FORMAT}",
             f"recipe {recipe.name} {recipe.version} {recipe.release}"]
    for entry in sorted(recipe.files, key=lambda e: e.path.encode().split(b"/")):
        if entry.is_dir:
            lines.append(f"d {entry.path}")
        else:
            mode = "x" if entry.executable else "-"
            lines.append(f"f {entry.path} {mode} {entry.size} {entry.sha256}")
    return ("\n".join(lines) + "\n").encode()


def tree_digest(recipe: Recipe) -> str:
    return hashlib.sha256(canonical_tree(recipe)).hexdigest()


def key_text(recipe: Recipe, arch: str, inputs: Mapping[str, str], bootstrap_id: str) -> bytes:
    """What :func:`cache_key` hashes, kept in the build log so a key can be explained.

    *inputs* maps each input's recipe id (``name/version/release``) to the SHA256 of
    its dcfpkg; ``latest`` inputs must not be in it.
    """
    lines = [f"guestpkg-recipe-key {RECIPE_FORMAT}", f"tree {tree_digest(recipe)}",
             f"arch {arch}", f"bootstrap {bootstrap_id}"]
    lines += [f"input {name} {digest}" for name, digest in sorted(inputs.items())]
    return ("\n".join(lines) + "\n").encode()


def cache_key(recipe: Recipe, arch: str, inputs: Mapping[str, str], bootstrap_id: str) -> str:
    return hashlib.sha256(key_text(recipe, arch, inputs, bootstrap_id)).hexdigest()
