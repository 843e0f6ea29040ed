# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg buildhost list|serve|status``, and ``recipe build --buildhosts``."""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path

from guestpkg.config import Config
from guestpkg.errors import BuildFailed, UsageError
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.graph import Graph, Node

DESCRIPTION = """\
Buildhosts are the machines a recipe build is spread over (guestpkg recipe build
--buildhosts).  They are listed in the buildhosts file (setting buildhosts, default
/etc/guestpkg/buildhosts), one deb822 stanza per host:

    Name: builder1
    Architectures: x86_64 i586
    Slots: 2
    Public-Key: /etc/guestpkg/buildhosts.d/builder1.pub

They meet through a Redis broker (settings broker, broker-user, broker-password-file,
broker-ca): see docs/buildhosts.md.

  list                     each host: its architectures, slots and key id
  serve                    be the buildhost named buildhost-name (default: the host
                           name): build the jobs of its architectures, Slots at a time,
                           in the same sandbox as a local build, each result signed
                           with buildhost-key; runs until stopped (SIGTERM)
  status                   each host: its architectures, slots in use, current jobs,
                           last seen
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the buildhosts file")
    sub.add_parser("serve", help="build jobs for a coordinator")
    sub.add_parser("status", help="show what each buildhost does")


def run(config: Config, args: argparse.Namespace) -> int:
    if args.action == "serve":
        from guestpkg.buildhost.worker import serve

        return serve(config)
    if args.action == "status":
        return status(config)
    from guestpkg.buildhost.hosts import read_buildhosts
    from guestpkg.dcfpkg.keys import read_public_key

    for host in read_buildhosts(config.buildhosts):
        key = read_public_key(host.public_key)
        print(f"{host.name:20} {' '.join(host.architectures):14} slots {host.slots:<3} "
              f"key {key.key_id} ({host.public_key})")
    return 0


def status(config: Config) -> int:
    from guestpkg.buildhost.broker import broker, client, retrying
    from guestpkg.buildhost.hosts import read_buildhosts
    from guestpkg.buildhost.worker import host_key
    from guestpkg.text import printable

    hosts = read_buildhosts(config.buildhosts)
    b = broker(config)
    r = client(b)
    now = time.time()
    for host in hosts:
        name = host_key(host.name)
        beat = retrying(b, "reading the heartbeats", r.hgetall, name)
        fields = {k.decode(): v.decode("utf-8", "replace") for k, v in beat.items()}
        jobs: list[str] = []
        with contextlib.suppress(ValueError, TypeError):
            jobs = [str(j) for j in json.loads(fields.get("jobs", "[]"))]
        if "last_seen" in fields:
            # A heartbeat written after `now` was read would show as "-0 s ago".
            age = max(0.0, now - float(fields["last_seen"]))
            seen = f"last seen {age:.0f} s ago"
        else:
            seen = "never seen"
        print(f"{host.name:20} {' '.join(host.architectures):14} slots "
              f"{len(jobs)}/{host.slots}  {seen}")
        for job in jobs:
            print(f"    {printable(job)}")
    return 0


def build_on_buildhosts(config: Config, graph: Graph, bootstrap: BootstrapSet,
                        local_slots: int, keep_going: bool, sign_key: Path | None,
                        sign: Callable[[Config, Path, list[Path]], None]) -> int:
    """``recipe build --buildhosts``: the graph over local slots and the buildhosts."""
    from guestpkg.build.schedule import FAILED, build_graph
    from guestpkg.buildhost.coordinator import Coordinator

    if local_slots < 0:
        raise UsageError("-j needs a number of local slots, 0 or more")
    coordinator = Coordinator(config, local_slots)
    alive = coordinator.serving(graph.arch)
    remote = sum(h.slots for h in alive)   # a host not serving gets no jobs queued
    if not alive and local_slots == 0:
        raise UsageError(f"no buildhost for {graph.arch} is serving and -j 0 allows no "
                         "local build",
                         hint="start guestpkg buildhost serve on a host of "
                         f"{graph.arch} (see guestpkg buildhost status), or give -j 1")
    print(f"building for {graph.arch} on {local_slots} local slots and {remote} slots of "
          f"{', '.join(h.name for h in alive) or 'no buildhost'} (serving now; "
          f"{coordinator.remote_slots(graph.arch)} listed)", flush=True)

    def progress(node: Node, state: str, detail: str) -> None:
        print(f"{state:8} {node.recipe.id} ({node.arch}): {detail}", flush=True)

    with coordinator.cancel_on_signals():
        outcomes = build_graph(config, graph, bootstrap, jobs=local_slots + remote,
                               keep_going=keep_going, progress=progress,
                               build_jobs=max(1, config.build_jobs // max(1, local_slots)),
                               execute=coordinator.execute)
    if coordinator.lost is not None:
        raise coordinator.lost
    counts = {state: sum(o.state == state for o in outcomes)
              for state in ("built", "cached", "failed", "skipped")}
    print(", ".join(f"{state} {count}" for state, count in counts.items()))
    failed = [o for o in outcomes if o.state == FAILED]
    if failed:
        raise BuildFailed(f"{len(failed)} recipe(s) failed; first: {failed[0].detail}", None)
    if sign_key is not None:
        sign(config, sign_key, [o.result.path for o in outcomes if o.result is not None])
    return 0
