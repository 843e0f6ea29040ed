#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""The user-namespace sandbox against the real-root one, in the same run, taken in turn.

1. **start**: ``/bin/true`` in a fresh fork of the buildroot (overlay, tmpfs upper,
   cgroup) as the build user, with ``id_mapping = userns`` and ``= root``: what the
   user namespace, its slice and the idmapped lower layer cost per sandboxed command.
2. **build**: ``guestpkg build`` of hello's .dsc with its layer cached (no apt), both
   ways: the whole build, five sandboxed commands.
3. **sbuild --chroot-mode=unshare** on the same .dsc, ``--runs`` times after a warm-up,
   as sbuild's unshare mode runs: as a normal user with subordinate ids.  The bench
   installs sbuild and mmdebstrap when missing, makes that user (``guestpkg-bench``,
   with a range in /etc/subuid and /etc/subgid) and, as that user, its chroot tarball
   ``~/.cache/sbuild/<suite>-<arch>.tar.zst`` from the host's Debian mirror, once
   (bench/peers.py; not timed).  sbuild downloads the build dependencies in every run
   (it keeps no apt cache); the guestpkg builds have their layer cached.

Goal: the user namespace no slower than real root (ratio <= 1.05, the noise of a busy
machine).  The settings come from the environment like guestpkg's (GUESTPKG_VARDIR,
...); the buildroot must exist.

Run as root, from the repository:  /usr/bin/python3 bench/idmap.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guestpkg import config as settings  # noqa: E402
from guestpkg.build.deb import BuildOptions, build_package  # noqa: E402
from guestpkg.buildroot import fork, open_base_root  # noqa: E402
from guestpkg.sandbox import run_sandboxed  # noqa: E402
from tests.support import debsrc  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import peers  # noqa: E402

GOAL = 1.05
MODES = ("userns", "root")


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def start_sandbox(cfg: settings.Config) -> None:
    base = open_base_root(cfg)
    with fork(cfg, base) as f:
        run_sandboxed(f.spec(["/bin/true"], uid=base.build_uid, gid=base.build_uid))


def build_hello(cfg: settings.Config, dsc: Path, out: Path) -> None:
    build_package(cfg, dsc, out, BuildOptions(tee=False))


def report(title: str, times: dict[str, list[float]], unit: str, scale: float) -> float:
    median = {mode: statistics.median(values) for mode, values in times.items()}
    print(f"\n{title}")
    print(f"{'id mapping':<12}{'median ' + unit:>14}{'min':>10}{'max':>10}")
    for mode, values in times.items():
        print(f"{mode:<12}{median[mode] * scale:>14.1f}{min(values) * scale:>10.1f}"
              f"{max(values) * scale:>10.1f}")
    ratio = median["userns"] / median["root"]
    print(f"userns / root: {ratio:.3f} (goal <= {GOAL}) -> {'MET' if ratio <= GOAL else 'NOT MET'}")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="builds of each (default 3)")
    parser.add_argument("--starts", type=int, default=20,
                        help="sandbox starts of each (default 20)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root")
    cfg = settings.load()
    configs = {mode: cfg.replace(id_mapping=mode) for mode in MODES}
    for mode in MODES:  # warm the page cache alike
        start_sandbox(configs[mode])
    starts: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.starts):
        for mode in MODES:
            starts[mode].append(timed(lambda m=mode: start_sandbox(configs[m])))  # type: ignore[misc]
    report(f"sandbox start: /bin/true in a fresh fork ({args.starts} runs)", starts, "ms",
           1000)

    dsc = debsrc.dsc_path("hello")
    builds: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-idmap-") as work:
        build_hello(configs["userns"], dsc, Path(work) / "warm")  # the layer, once
        for run in range(args.runs):
            for mode in MODES:
                out = Path(work) / f"{mode}-{run}"
                builds[mode].append(timed(lambda m=mode, o=out: build_hello(  # type: ignore[misc]
                    configs[m], dsc, o)))
                print(f"bench: hello, {mode}: {builds[mode][-1]:.1f} s", flush=True)
        report(f"guestpkg build hello_2.10-3.dsc, layer cached ({args.runs} runs)", builds,
               "s", 1)
        sbuild = peers.time_sbuild(dsc, Path(work), debsrc.host_codename(),
                                   debsrc.host_mirror(), args.runs)
        if sbuild:
            seconds = statistics.median(sbuild)
            print(f"\nsbuild --chroot-mode=unshare ({args.runs} runs): median {seconds:.1f} s"
                  f", min {min(sbuild):.1f}, max {max(sbuild):.1f}")
            for mode in MODES:
                print(f"guestpkg {mode} / sbuild unshare: "
                      f"{statistics.median(builds[mode]) / seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
