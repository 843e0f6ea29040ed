# SPDX-License-Identifier: GPL-2.0-or-later
"""The build-dependency layer cache: installed build dependencies kept as overlay
layers, so that a build whose dependencies were installed before runs no apt at all.

Installing hello's 40-odd build dependencies takes 7-13 s; stacking the same files as
an overlayfs lower layer takes a few milliseconds (docs/REFERENCE: measured).  A layer
is the upper directory of a fork of a base root in which apt installed them, kept
on disk.  Its identity is what went into it::

    key = sha256(base root generation, the exact set of packages apt installed/removed,
                 the extra sources' identity if any: guestpkg.build.extras)

The set is known before anything is installed: ``apt-get -s install`` of the dummy
package that carries the request (apt-get(8); guestpkg.build.deb)
prints the ``Inst``/``Remv`` actions with versions, and the same apt over the same
package lists with the same request and options installs exactly those.  That
simulation is itself cached, keyed by the generation and the reduced request, because
a generation never changes: its package lists are frozen in it (the buildroot keeps
them, ``--skip=cleanup/apt/lists``).  So a repeated build computes two hashes, finds
two files, and stacks the layer.  ``guestpkg buildroot update`` makes a new generation:
old layers are never stacked on it, and ``guestpkg cache clean`` removes them.

A new layer is made on the cached layer of the same generation whose package set is
the largest proper subset of its own (:func:`closest_subset`), when apt, simulating
over it, installs exactly the rest: its tree is then the difference, stacked over that
layer's chain (``parent`` in ``layer.json``; at most :data:`MAX_CHAIN` deep), and apt
downloads and unpacks only the difference.  The .debs come from the shared download
cache (:mod:`guestpkg.build.debcache`).

On disk, under ``<vardir>/layers/``::

    <key>/tree/            the layer (an overlay upper dir: whiteouts and opaque dirs)
    <key>/layer.json       base root, generation, packages, request, creation time,
                           the layer it was made on
    <key>.lock             shared flock while a build stacks the layer; exclusive
                           while it is created or removed
    resolved/<hash>.json   cached simulations: generation + request -> actions
    .tmp-<key>.*/          a layer being created (reaped when no lock is held)

Concurrent builds share layers safely: the creator holds the key's lock exclusively,
so a second build with the same key waits and then finds the layer; users hold it
shared, so ``cache clean`` (exclusive, non-blocking) never removes a layer in use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guestpkg import fsutil
from guestpkg.config import Config
from guestpkg.debian.control import DUMMY_PACKAGE
from guestpkg.errors import BuildFailed

log = logging.getLogger(__name__)

#: Bump when the way layers are made changes, so old layers stop matching.  2: made
#: from the shared download cache, with dpkg's force-unsafe-io and without manual
#: pages (guestpkg.build.depends.create_layer).
LAYER_FORMAT = 2

#: Formats of layers still read, so that ``cache list`` shows them and ``cache clean``
#: removes them (as stale: no key of this guestpkg names them).
READABLE_FORMATS = (1, 2)

#: Options of both the simulation and the installation: they must be identical, or
#: the simulation would not predict the installation.
APT_OPTIONS = ("--no-install-recommends", "-o", "APT::Install-Suggests=false",
               "-o", "Acquire::Languages=none")


# --- apt's output --------------------------------------------------------------

# apt-get -s prints, per package (apt-pkg/algorithms.cc pkgSimulate):
#   Inst name [oldversion] (newversion release [arch]) [...]
#   Remv name [version]
_INST = re.compile(r"^Inst (\S+)(?: \[[^\]]*\])? \((\S+) .*\[(\S+)\]\)")
_REMV = re.compile(r"^Remv (\S+)")


def parse_simulation(text: str) -> list[str]:
    """The actions of an ``apt-get -s`` run, sorted: ``name:arch=version`` for an
    installation, ``-name`` for a removal (apt names a package of a foreign
    architecture ``name:arch``, so its action is ``name:arch:arch=version``)."""
    actions = set()
    for line in text.splitlines():
        if m := _INST.match(line):
            action = f"{m.group(1)}:{m.group(3)}={m.group(2)}"
        elif m := _REMV.match(line):
            action = f"-{m.group(1)}"
        else:
            continue
        if not is_dummy(action):    # the request itself, purged after the installation
            actions.add(action)
    return sorted(actions)


def is_dummy(action: str) -> bool:
    """Whether *action* is the dummy package's (``guestpkg-build-deps:arm64`` in a
    cross build: resolutions cached before it was recognised keep it, and so do the
    keys of their layers)."""
    return action.lstrip("-").split("=")[0].split(":")[0] == DUMMY_PACKAGE


def packages_of(actions: Iterable[str]) -> set[str]:
    """The layer's packages among *actions*: the dummy's entry left out."""
    return {action for action in actions if not is_dummy(action)}


@dataclass(frozen=True)
class Unmet:
    """One unmet dependency apt reported: *package* could not be had, and why."""

    package: str          # the relation apt could not satisfy, e.g. "debhelper (>= 99)"
    reason: str           # e.g. "it is not installable", "13.11.4 is to be installed"
    needed_by: str        # "build-dependencies" or the package that needs it


# " guestpkg-build-deps : Depends: foo (>= 1) but it is not installable"
# "                        Depends: bar but 1.0 is to be installed"
_UNMET = re.compile(r"^\s*(?:(\S+)\s+:\s+)?(Depends|PreDepends|Pre-Depends|Conflicts|Breaks):"
                    r"\s+(.+?)(?:\s+but\s+(.+))?$")


def parse_unmet(text: str) -> list[Unmet]:
    """The unmet dependencies in apt's "The following packages have unmet
    dependencies:" block."""
    found: list[Unmet] = []
    in_block = False
    owner = ""
    for line in text.splitlines():
        if "have unmet dependencies:" in line:
            in_block = True
            continue
        if not in_block:
            continue
        if line.startswith(("E:", "W:")) or not line.strip():
            in_block = False
            continue
        m = _UNMET.match(line)
        if not m:
            continue
        if m.group(1):
            owner = m.group(1)
        needed_by = ("build-dependencies"
                     if owner == DUMMY_PACKAGE or owner.startswith("satisfy:") else owner)
        kind, relation, reason = m.group(2), m.group(3), m.group(4) or "it is not installable"
        if kind in ("Conflicts", "Breaks"):
            reason = f"{kind.lower()} with it; {reason}"
        found.append(Unmet(relation.strip(), reason.strip(), needed_by))
    return found


class UnsatisfiableBuildDepends(BuildFailed):
    """apt cannot satisfy the build dependencies; the message names them."""

    def __init__(self, unmet: Sequence[Unmet], errors: Sequence[str],
                 log_path: Path | None) -> None:
        what = describe_unmet(unmet) or "; ".join(errors) or "apt gave no reason"
        super().__init__(f"unsatisfiable build dependencies: {what}", log_path)
        self.unmet = list(unmet)
        self.hint = ("check the names and versions against the buildroot's suite "
                     "(guestpkg shell, apt-cache policy PACKAGE); "
                     f"the full log is {log_path}")


def describe_unmet(unmet: Sequence[Unmet]) -> str:
    return "; ".join(
        f"{u.package}: {u.reason}" + ("" if u.needed_by == "build-dependencies"
                                       else f" (needed by {u.needed_by})")
        for u in unmet)


def apt_errors(text: str) -> list[str]:
    return [line[2:].strip() for line in text.splitlines() if line.startswith("E:")]


# --- keys ----------------------------------------------------------------------

def resolution_key(generation: str, request: str) -> str:
    """The simulation cache key: the same request on the same generation."""
    text = f"guestpkg-resolution {LAYER_FORMAT}\n{generation}\n{' '.join(APT_OPTIONS)}\n{request}"
    return hashlib.sha256(text.encode()).hexdigest()


def layer_key(generation: str, actions: Sequence[str], variant: str = "") -> str:
    """The layer cache key: the same packages on the same generation, with the same
    extra sources and host architecture (*variant*: :attr:`guestpkg.build.extras.
    Extras.identity`, "" for none) (32 hex digits, 128 bits, short enough for
    overlayfs's option page)."""
    text = f"guestpkg-layer {LAYER_FORMAT}\n{generation}\n" + "\n".join(sorted(actions))
    if variant:
        text += f"\nvariant {variant}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- the cache on disk ------------------------------------------------------------

@dataclass(frozen=True)
class LayerMetadata:
    """``layer.json``: what a layer was made of."""

    key: str
    base: str                 # the base root's name
    generation: str           # the generation it was made on (and only fits)
    packages: tuple[str, ...]   # apt's Inst/Remv actions
    request: str              # the build relations, canonical
    created: float            # seconds since the epoch
    format: int = LAYER_FORMAT  # how it was made; only LAYER_FORMAT is ever stacked
    parent: str = ""          # the layer it was made on (its tree is a diff over it)
    variant: str = ""         # extra sources and host architecture (layer_key)

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "packages": list(self.packages)}

    @classmethod
    def from_json(cls, data: object) -> LayerMetadata | None:
        """None for anything this guestpkg did not write: such a layer is not used."""
        if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
            return None
        try:
            return cls(key=str(data["key"]), base=str(data["base"]),
                       generation=str(data["generation"]),
                       packages=tuple(map(str, data["packages"])),
                       request=str(data["request"]), created=float(data["created"]),
                       format=int(data["format"]), parent=str(data.get("parent", "")),
                       variant=str(data.get("variant", "")))
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True)
class Layer:
    key: str
    path: Path                # <vardir>/layers/<key>
    metadata: LayerMetadata
    parents: tuple[Layer, ...] = ()   # the chain it was made on, nearest first

    @property
    def tree(self) -> Path:
        return self.path / "tree"

    @property
    def trees(self) -> list[Path]:
        """The overlay lower layers that make this layer, topmost first."""
        return [self.tree, *(parent.tree for parent in self.parents)]

    @property
    def generation(self) -> str:
        return self.metadata.generation

    @property
    def packages(self) -> list[str]:
        return list(self.metadata.packages)

    @property
    def current_format(self) -> bool:
        return self.metadata.format == LAYER_FORMAT


def layers_dir(config: Config) -> Path:
    return config.vardir / "layers"


def _lock_path(config: Config, key: str) -> Path:
    return layers_dir(config) / f"{key}.lock"


def read_layer(config: Config, key: str) -> Layer | None:
    path = layers_dir(config) / key
    try:
        metadata = LayerMetadata.from_json(json.loads((path / "layer.json").read_text()))
    except (OSError, ValueError):
        return None
    if metadata is None or not (path / "tree").is_dir():
        return None
    return Layer(key, path, metadata)


def list_layers(config: Config) -> list[Layer]:
    top = layers_dir(config)
    if not top.is_dir():
        return []
    layers = []
    for entry in sorted(top.iterdir()):
        if entry.is_dir() and re.fullmatch(r"[0-9a-f]{32}", entry.name):
            layer = read_layer(config, entry.name)
            if layer is not None:
                layers.append(layer)
    return layers


def cached_resolution(config: Config, generation: str, request: str) -> list[str] | None:
    path = layers_dir(config) / "resolved" / f"{resolution_key(generation, request)}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("generation") != generation or data.get("request") != request:
        return None
    return [str(a) for a in data.get("actions", [])]


def store_resolution(config: Config, generation: str, request: str,
                     actions: Sequence[str]) -> None:
    path = layers_dir(config) / "resolved" / f"{resolution_key(generation, request)}.json"
    fsutil.atomic_write(path, json.dumps({
        "generation": generation, "request": request, "actions": list(actions),
        "created": time.time()}, indent=1) + "\n")


#: The longest chain of layers made over layers: overlayfs stacks up to 500 lower
#: layers, but each costs a lookup on every path a build opens.
MAX_CHAIN = 4


@contextlib.contextmanager
def use_layer(config: Config, key: str) -> Iterator[Layer | None]:
    """Hold the layer *key* and the layers it was made on in use (shared locks) for
    the duration; yields None when one of them does not exist, and then holds
    nothing."""
    fsutil.private_directory(layers_dir(config))  # an older guestpkg left it open
    with contextlib.ExitStack() as stack:
        chain: list[Layer] = []
        next_key = key
        while next_key and len(chain) <= MAX_CHAIN:
            stack.enter_context(fsutil.locked(_lock_path(config, next_key), shared=True))
            layer = read_layer(config, next_key)
            if layer is None or not layer.current_format or \
                    (chain and layer.generation != chain[0].generation):
                break
            chain.append(layer)
            next_key = layer.metadata.parent
        else:
            if not next_key:
                yield dataclasses.replace(chain[0], parents=tuple(chain[1:]))
                return
    yield None


def closest_subset(config: Config, generation: str, actions: Sequence[str],
                   variant: str = "", base_variant: str | None = None,
                   excluded_names: frozenset[str] = frozenset()) -> Layer | None:
    """The current layer of *generation* and *variant* with the most packages whose
    set is a proper subset of *actions*, and whose chain is short enough to grow: the
    best one to make the layer of *actions* on (apt then installs only the
    difference).

    With *base_variant* (a build's extra packages: :attr:`guestpkg.build.extras.
    Extras.base_identity`), a layer of that variant counts too, unless it holds a
    package named in *excluded_names* (the extra packages' names: apt, seeing them,
    could have installed the extra one instead)."""
    wanted = packages_of(actions)

    def allowed(layer: Layer) -> bool:
        if layer.metadata.variant == variant:
            return True
        return layer.metadata.variant == base_variant and not any(
            name.lstrip("-").split(":")[0] in excluded_names for name in layer.packages)

    found = {layer.key: layer for layer in list_layers(config)
             if layer.generation == generation and layer.current_format and allowed(layer)}

    def depth(layer: Layer) -> int:
        n = 1
        while layer.metadata.parent and n <= MAX_CHAIN:
            parent = found.get(layer.metadata.parent)
            if parent is None:
                return MAX_CHAIN + 1      # broken chain: never used
            layer, n = parent, n + 1
        return n

    candidates = [layer for layer in found.values()
                  if packages_of(layer.packages) < wanted and depth(layer) < MAX_CHAIN]
    if not candidates:
        return None
    return max(candidates, key=lambda layer: (len(layer.packages), layer.key))


@contextlib.contextmanager
def creating_layer(config: Config, key: str) -> Iterator[Path | None]:
    """Exclusive right to create layer *key*: yields a fresh ``.tmp-`` directory to
    fill with ``tree/`` (the kept upper) and ``layer.json``, or None if another build
    created the layer while we waited.  On success the directory is renamed to
    ``<key>`` atomically; on any error it is removed."""
    top = fsutil.private_directory(layers_dir(config))
    with fsutil.locked(_lock_path(config, key)):
        if read_layer(config, key) is not None:
            yield None
            return
        reap_layers(config)
        with fsutil.atomic_directory(top / key) as tmp:
            yield tmp
            if not (tmp / "tree").is_dir() or not (tmp / "layer.json").is_file():
                raise RuntimeError(f"layer {key}: tree/ or layer.json was not made")


def write_layer_metadata(tmp: Path, metadata: LayerMetadata) -> None:
    fsutil.atomic_write(tmp / "layer.json",
                        json.dumps(metadata.to_json(), indent=1, sort_keys=True) + "\n")


def reap_layers(config: Config) -> None:
    """Remove ``.tmp-`` directories of layer creations that were killed: their key's
    lock is free (a live creator holds it)."""
    top = layers_dir(config)
    if not top.is_dir():
        return
    for entry in top.iterdir():
        if not entry.name.startswith(fsutil.TMP_PREFIX):
            continue
        key = entry.name[len(fsutil.TMP_PREFIX):].split(".", 1)[0]
        if not re.fullmatch(r"[0-9a-f]{32}", key):
            continue
        lock = _lock_path(config, key)
        # The caller may hold this key's lock itself (creating_layer): flock locks
        # belong to open file descriptions, so a second open would block: skip ours.
        with fsutil.locked(lock, blocking=False) as free:
            if free:
                fsutil.remove_tree(entry)


def remove_layer(config: Config, layer: Layer) -> bool:
    """Remove *layer* unless a build uses it, and first the layers made on it (which
    could never be used without it); True if it was removed."""
    for child in list_layers(config):
        if child.metadata.parent == layer.key and not remove_layer(config, child):
            return False
    with fsutil.locked(_lock_path(config, layer.key), blocking=False) as free:
        if not free:
            return False
        if not layer.path.exists():
            return True         # removed with the layer it was made on
        doomed = layers_dir(config) / f"{fsutil.TMP_PREFIX}{layer.key}.removing"
        layer.path.rename(doomed)
        fsutil.remove_tree(doomed)
    # The lock file stays: unlinking it would let a waiter lock a dead inode while a
    # newcomer locks a fresh one.
    return True


def prune_resolutions(config: Config, live_generations: set[str] | None) -> int:
    """Remove cached simulations of generations not in *live_generations* (all when
    None); returns how many."""
    directory = layers_dir(config) / "resolved"
    removed = 0
    for path in directory.glob("*.json") if directory.is_dir() else []:
        try:
            generation = json.loads(path.read_text()).get("generation")
        except (OSError, ValueError):
            generation = None
        if live_generations is None or generation not in live_generations:
            path.unlink(missing_ok=True)
            removed += 1
    removed += prune_cross_lists(config, live_generations)
    return removed


def prune_cross_lists(config: Config, live_generations: set[str] | None) -> int:
    """Remove the foreign architectures' lists (``lists/<generation>-<arch>/``,
    guestpkg.build.depends.cross_lists) of generations not in *live_generations*."""
    directory = layers_dir(config) / "lists"
    removed = 0
    if not directory.is_dir():
        return 0
    for entry in directory.iterdir():
        generation = "-".join(entry.name.split("-")[:2])   # <time>-<hex>-<arch>
        if entry.is_dir() and not entry.name.startswith(fsutil.TMP_PREFIX) and (
                live_generations is None or generation not in live_generations):
            with fsutil.locked(directory / f"{entry.name}.lock", blocking=False) as free:
                if free:
                    fsutil.remove_tree(entry)
                    removed += 1
    return removed
