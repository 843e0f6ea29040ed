# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg cache list|clean``: show and prune the build-dependency layer cache, the
download cache of .debs the layers were made from, and the recipe cache (results,
bootstrap sets and their unpacked layers)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from guestpkg.build import debcache, layers
from guestpkg.buildroot import list_base_roots
from guestpkg.config import Config
from guestpkg.fsutil import disk_usage_bytes
from guestpkg.recipe import cache as recipe_cache
from guestpkg.recipe import layers as recipe_layers
from guestpkg.recipe import workdirs

DESCRIPTION = """\
guestpkg build keeps the build dependencies it installed as overlay layers under
VARDIR/layers, keyed by the base buildroot's generation and the exact set of packages
apt resolved.  A layer whose generation is no longer the current one of any buildroot
(after guestpkg buildroot update or remove), or that an older guestpkg made, can
never be used again.  The .debs apt downloaded for them are kept in CACHEDIR/debs, so
that a new layer of the same packages downloads nothing.

guestpkg recipe build keeps its results (dcfpkgs) and the bootstrap sets in
CACHEDIR/dcfpkg, and unpacks each package it builds on once, into a layer under
VARDIR/recipes/layers.  A layer whose package is no longer a cached result (rebuilt
in place) or whose bootstrap set is no longer current (after guestpkg recipe
bootstrap --update) can never be used again, nor can a replaced bootstrap set.  A
recipe build or check killed mid-way (SIGKILL, a power cut) leaves its work directory
under VARDIR/recipes/builds or VARDIR/recipes/check (and perhaps a result being
written in CACHEDIR/dcfpkg, or one a coordinator of recipe build --buildhosts was
receiving); the next recipe build or check removes its own kind's when it starts.

  list            key, buildroot, state (current or stale), packages, size and age;
                  the number and size of the cached .debs; the recipe layers (state,
                  size, age), the work directories of recipe builds and the
                  results being written or received (running or leftover), results
                  and bootstrap sets
  clean           remove the stale layers, the cached .debs no current layer has, the
                  stale recipe layers, the replaced bootstrap sets and what killed
                  recipe builds left
  clean --all     remove every layer, every cached .deb and every recipe result (the
                  current bootstrap sets stay: guestpkg recipe bootstrap --update
                  replaces them)

Layers in use by a running build, and its work directory, are never removed; they
are skipped and reported, as is the download cache while a build downloads or
installs from it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "clean"), help="what to do")
    parser.add_argument("--all", action="store_true",
                        help="clean: remove every layer, not only the stale ones")


def live_generations(config: Config) -> set[str]:
    return {root.generation for root in list_base_roots(config)}


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def is_current(layer: layers.Layer, live: set[str]) -> bool:
    return layer.generation in live and layer.current_format


def run(config: Config, args: argparse.Namespace) -> int:
    live = live_generations(config)
    found = layers.list_layers(config)
    if args.action == "list":
        list_layers(found, live, config)
        debs = debcache.list_debs(config)
        size_mib = sum(deb.size_bytes for deb in debs) / (1 << 20)
        print(f"download cache {debcache.debs_dir(config)}: {len(debs)} .debs, "
              f"{size_mib:.1f}M")
        list_recipe_cache(config)
        return 0
    removed = busy = 0
    kept: list[layers.Layer] = []
    for layer in found:
        if not args.all and is_current(layer, live):
            kept.append(layer)
            continue
        if layers.remove_layer(config, layer):
            removed += 1
        else:
            busy += 1
            kept.append(layer)
            print(f"layer {layer.key} is in use by a build; kept")
    pruned = layers.prune_resolutions(config, None if args.all else live)
    wanted = None if args.all else {name for layer in kept for name in
                                    map(debcache.deb_file_name, layer.packages) if name}
    cleaned = debcache.clean_debs(config, wanted)
    print(f"removed {removed} layer(s)" + (f", {busy} in use" if busy else "") +
          f", {pruned} cached resolution(s), " +
          ("no .debs (a build is using the download cache)" if cleaned is None
           else f"{cleaned} cached .deb(s)"))
    reaped = workdirs.reap(config)
    print(f"removed {reaped.removed} leftover(s) of killed recipe builds"
          + (f", {reaped.running} of running builds kept" if reaped.running else ""))
    recipes = recipe_cache.clean(config, args.all)
    print(f"removed {recipes.layers} recipe layer(s)"
          + (f", {recipes.busy} in use" if recipes.busy else "")
          + f", {recipes.sets} replaced bootstrap set(s), {recipes.results} recipe result(s)")
    return 0


def list_recipe_cache(config: Config) -> None:
    sets = recipe_cache.bootstrap_sets(config)
    results = recipe_cache.results(config)
    live = recipe_layers.live_layer_names(results, [s.id for s in sets if s.current])
    print_table(
        f"no recipe layers in {recipe_layers.layers_dir(config)}",
        f"{'RECIPE LAYER':20}  {'STATE':7}",
        [(f"{layer.name[:20]:20}  {'current' if layer.name in live else 'stale':7}",
          layer.path, layer.path.stat().st_mtime)
         for layer in recipe_layers.list_recipe_layers(config)])
    now = time.time()
    for work in workdirs.list_workdirs(config):
        size_mib = disk_usage_bytes(work.path) / (1 << 20)
        print(f"recipe work directory {work.path.name} {work.state} {size_mib:.1f}M "
              f"{_age(now - work.path.lstat().st_mtime)} ({work.path.parent})")
    size_mib = sum(path.stat().st_size for path in results) / (1 << 20)
    print(f"recipe results {recipe_cache.results_dir(config)}: {len(results)} .dcfpkg, "
          f"{size_mib:.1f}M")
    for found_set in sets:
        size_mib = disk_usage_bytes(found_set.path) / (1 << 20)
        print(f"bootstrap set {found_set.arch} {found_set.id[:16]} "
              f"{'current' if found_set.current else 'replaced'} {size_mib:.1f}M")


def list_layers(found: list[layers.Layer], live: set[str], config: Config) -> None:
    print_table(
        f"no build-dependency layers in {layers.layers_dir(config)}",
        f"{'KEY':32}  {'BUILDROOT':12} {'STATE':7} {'PKGS':>5}",
        [(f"{layer.key:32}  {layer.metadata.base:12} "
          f"{'current' if is_current(layer, live) else 'stale':7} {len(layer.packages):5}",
          layer.tree, layer.metadata.created)
         for layer in found])


def print_table(empty: str, header: str, rows: list[tuple[str, Path, float]]) -> None:
    """Print one listing of trees: ``header`` and each row's leading columns, then the
    tree's size and age, the two columns every cache listing ends with; ``empty`` alone
    when there are no rows.  A row is (leading columns, tree, creation time)."""
    if not rows:
        print(empty)
        return
    print(f"{header} {'SIZE':>9}  AGE")
    now = time.time()
    for columns, tree, created in rows:
        size_mib = disk_usage_bytes(tree) / (1 << 20)
        print(f"{columns} {size_mib:8.1f}M  {_age(now - created)}")
