# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg cache list|clean``: show and prune the build-dependency layer cache."""

from __future__ import annotations

import argparse
import time

from guestpkg.build import layers
from guestpkg.buildroot import list_base_roots
from guestpkg.config import Config
from guestpkg.fsutil import disk_usage_bytes

DESCRIPTION = """\
guestpkg build keeps the build dependencies it installed as overlay layers under
VARDIR/layers, keyed by the base buildroot's generation and the exact set of packages
apt resolved.  A layer whose generation is no longer the current one of any buildroot
(after guestpkg buildroot update or remove) can never be used again.

  list            key, buildroot, state (current or stale), packages, size and age
  clean           remove the stale layers
  clean --all     remove every layer

Layers in use by a running build are never removed; they are skipped and reported.
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


def run(config: Config, args: argparse.Namespace) -> int:
    live = live_generations(config)
    found = layers.list_layers(config)
    if args.action == "list":
        if not found:
            print(f"no build-dependency layers in {layers.layers_dir(config)}")
            return 0
        print(f"{'KEY':32}  {'BUILDROOT':12} {'STATE':7} {'PKGS':>5} {'SIZE':>9}  AGE")
        now = time.time()
        for layer in found:
            state = "current" if layer.generation in live else "stale"
            size_mib = disk_usage_bytes(layer.tree) / (1 << 20)
            print(f"{layer.key:32}  {layer.metadata.base:12} {state:7} "
                  f"{len(layer.packages):5} {size_mib:8.1f}M  "
                  f"{_age(now - layer.metadata.created)}")
        return 0
    removed = busy = 0
    for layer in found:
        if not args.all and layer.generation in live:
            continue
        if layers.remove_layer(config, layer):
            removed += 1
        else:
            busy += 1
            print(f"layer {layer.key} is in use by a build; kept")
    pruned = layers.prune_resolutions(config, None if args.all else live)
    print(f"removed {removed} layer(s)" + (f", {busy} in use" if busy else "") +
          f", {pruned} cached resolution(s)")
    return 0
