# SPDX-License-Identifier: GPL-2.0-or-later
"""Unpacked dcfpkgs, cached as read-only overlay layers for recipe builds.

A recipe's chroot is an overlay of unpacked packages, as a deb build's chroot is an
overlay of its build-dependency layer over the buildroot (:mod:`guestpkg.build.layers`).
Each package is unpacked once, by the safe reader, and kept under
``<vardir>/recipes/layers/``::

    pkg-<sha256 of the dcfpkg>/     one package
    set-<bootstrap set id>/         the whole bootstrap set, merged into one tree
    .<name>.lock                    exclusive while the layer is made or removed;
                                    shared while a build stacks it
    .tmp-*                          an unpack in progress (or killed: reaped later)

The bootstrap set is merged into one layer because overlayfs takes its lower layers
in one mount option of at most a page (about 60 paths of this length), and a set has
over a hundred members.  A layer is made under a ``.tmp-`` name and renamed into
place, under a lock, so two builds needing the same package unpack it once and no
build sees half a layer.  A build holds its layers' locks shared until it ends
(:func:`held_layers`), so ``guestpkg cache clean`` (exclusive, non-blocking) never
removes a layer in use; it removes the layers no cached package or current bootstrap
set has any more (:func:`stale_layers`), as it does the build-dependency layers.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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


def _lock_path(config: Config, name: str) -> Path:
    return layers_dir(config) / f".{name}.lock"


def _digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def package_layer(config: Config, package: Path, sha256: str) -> Path:
    """The unpacked tree of *package*, whose file must have digest *sha256*."""
    layer = layers_dir(config) / f"pkg-{sha256}"
    if layer.is_dir():
        return layer
    with fsutil.locked(_lock_path(config, layer.name)):
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
    with fsutil.locked(_lock_path(config, layer.name)):
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


@contextlib.contextmanager
def held_layers(config: Config, inputs: Sequence[tuple[Path, str]],
                bootstrap: BootstrapSet) -> Iterator[list[Path]]:
    """The lower layers of a build, top first: the unpacked *inputs* ((dcfpkg, sha256),
    the last on top) above the bootstrap set's layer, each made if missing and held in
    use (a shared lock) until the context ends."""
    with contextlib.ExitStack() as stack:
        layers = [_hold(stack, config, f"pkg-{sha256}",
                        functools.partial(package_layer, config, path, sha256))
                  for path, sha256 in reversed(inputs)]
        layers.append(_hold(stack, config, f"set-{bootstrap.id}",
                            functools.partial(set_layer, config, bootstrap)))
        yield layers


def _hold(stack: contextlib.ExitStack, config: Config, name: str,
          make: Callable[[], Path]) -> Path:
    """Layer *name* under a shared lock kept on *stack*; made (exclusively, lock
    released) when missing, and looked for again: ``cache clean`` may win between."""
    layer = layers_dir(config) / name
    while True:
        with contextlib.ExitStack() as attempt:
            attempt.enter_context(fsutil.locked(_lock_path(config, name), shared=True))
            if layer.is_dir():
                stack.enter_context(attempt.pop_all())
                return layer
        make()


@dataclass(frozen=True)
class RecipeLayer:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name


_LAYER_NAME = re.compile(r"(pkg|set)-[0-9a-f]{64}")


def list_recipe_layers(config: Config) -> list[RecipeLayer]:
    top = layers_dir(config)
    if not top.is_dir():
        return []
    return [RecipeLayer(entry) for entry in sorted(top.iterdir())
            if _LAYER_NAME.fullmatch(entry.name) and entry.is_dir()]


def stale_layers(config: Config, live: set[str]) -> list[RecipeLayer]:
    """The layers whose name is not in *live* (:func:`live_layer_names`)."""
    return [layer for layer in list_recipe_layers(config) if layer.name not in live]


def live_layer_names(results: Sequence[Path], sets: Sequence[str]) -> set[str]:
    """The layers a build can still use: of the cached *results* (dcfpkg files, by
    digest: a result rebuilt in place leaves its old layer stale) and of the current
    bootstrap *sets* (ids)."""
    return {f"pkg-{_digest(path)}" for path in results} | {f"set-{id_}" for id_ in sets}


def remove_recipe_layer(config: Config, layer: RecipeLayer) -> bool:
    """Remove *layer* unless a build holds it; True if it was removed."""
    with fsutil.locked(_lock_path(config, layer.name), blocking=False) as free:
        if not free:
            return False
        if layer.path.is_dir():
            doomed = layer.path.with_name(f"{fsutil.TMP_PREFIX}{layer.name}.removing")
            layer.path.rename(doomed)
            fsutil.remove_tree(doomed)
    return True  # the lock file stays (see guestpkg.build.layers.remove_layer)


def reap(config: Config) -> int:
    """Remove the ``.tmp-`` leftovers of killed unpacks and removals (their layer's
    lock is free); returns how many."""
    top = layers_dir(config)
    reaped = 0
    for entry in sorted(top.iterdir()) if top.is_dir() else ():
        name = entry.name[len(fsutil.TMP_PREFIX):].split(".", 1)[0]
        if entry.name.startswith(fsutil.TMP_PREFIX) and _LAYER_NAME.fullmatch(name):
            with fsutil.locked(_lock_path(config, name), blocking=False) as free:
                if free:
                    fsutil.remove_tree(entry)
                    reaped += 1
    return reaped
