#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How long it takes to get a fresh root and run ``/bin/true`` in it, three ways, in
the same run and taken in turn (so the page cache and the CPU treat them alike):

1. **guestpkg**: :func:`guestpkg.sandbox.run_sandboxed` with the full sandbox, in a
   fresh fork (an overlay over the base root with a new tmpfs upper), as a build user;
   this includes starting ``python3 -m guestpkg.sandbox``.
2. **bare unshare**: ``unshare --mount --pid --net --fork chroot ROOT /bin/true``: the
   namespaces alone, no overlay, no /proc or /dev, no privilege dropping, no seccomp.
3. **tarball**: ``tar -C TMPDIR -xf root.tar``, what sbuild and pbuilder do per build
   to get a fresh root (the time to delete it afterwards is shown apart).

The root is a real buildd root: ``--root DIR``, or by default a tree made once with
``mmdebstrap --variant=buildd`` of this system's suite under
/var/tmp/guestpkg-bench (reused by later runs).  The tarball and its unpacked copies
live in /var/tmp too, i.e. on the disk file system, as sbuild's and pbuilder's do.

Usage (as root): ``/usr/bin/python3 bench/sandbox.py [--runs N] [--root DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guestpkg.sandbox import SandboxSpec, run_sandboxed

CACHE = Path("/var/tmp/guestpkg-bench")
GOAL = 20.0


def host_suite() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    return "bookworm"


def default_root() -> Path:
    root = CACHE / f"{host_suite()}-buildd"
    if not root.is_dir():
        tmp = CACHE / f".tmp-{root.name}"
        shutil.rmtree(tmp, ignore_errors=True)
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"making {root} with mmdebstrap (once)...", file=sys.stderr)
        subprocess.run(["mmdebstrap", "--variant=buildd", "--mode=root", "--quiet",
                        host_suite(), str(tmp)], check=True)
        tmp.rename(root)
    return root


def tarball_of(root: Path) -> Path:
    tarball = CACHE / f"{root.name}.tar"
    if not tarball.exists() or tarball.stat().st_mtime < root.stat().st_mtime:
        tmp = tarball.with_name(".tmp-" + tarball.name)
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tmp), "."],
                       check=True)
        tmp.rename(tarball)
    return tarball


def timed(action: Callable[..., object], *args: object) -> float:
    start = time.perf_counter()
    action(*args)
    return time.perf_counter() - start


def run_guestpkg(root: Path) -> None:
    spec = SandboxSpec(argv=("/bin/true",), lowerdirs=(root,), uid=65534, gid=65534,
                       env={"PATH": "/usr/bin:/bin"})
    run_sandboxed(spec)


def run_bare(root: Path) -> None:
    subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "chroot", str(root),
                    "/bin/true"], check=True)


def unpack(tarball: Path, target: Path) -> None:
    subprocess.run(["tar", "-C", str(target), "--numeric-owner", "-xf", str(tarball)],
                   check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each (default 10)")
    parser.add_argument("--root", type=Path, help="a buildd root (default: see above)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root")
    root = args.root or default_root()
    tarball = tarball_of(root)
    entries = sum(len(d) + len(f) for _, d, f in os.walk(root))
    print(f"root: {root} ({entries} entries), tarball {tarball.stat().st_size >> 20} MiB")

    times: dict[str, list[float]] = {"guestpkg": [], "bare": [], "tarball": [],
                                     "tarball delete": []}
    run_guestpkg(root)  # warm the page cache for every method alike
    run_bare(root)
    for _ in range(args.runs):
        times["guestpkg"].append(timed(run_guestpkg, root))
        times["bare"].append(timed(run_bare, root))
        target = Path(tempfile.mkdtemp(prefix="unpack-", dir=CACHE))
        times["tarball"].append(timed(unpack, tarball, target))
        times["tarball delete"].append(timed(shutil.rmtree, target))

    median = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'method':<16}{'median ms':>12}{'min ms':>10}{'max ms':>10}   ({args.runs} runs)")
    for name, values in times.items():
        print(f"{name:<16}{median[name] * 1000:>12.1f}{min(values) * 1000:>10.1f}"
              f"{max(values) * 1000:>10.1f}")
    vs_tar = median["tarball"] / median["guestpkg"]
    print(f"\nguestpkg sandbox vs bare unshare+chroot: {median['guestpkg'] / median['bare']:.1f}x"
          " the time")
    print(f"tarball unpack vs guestpkg sandbox:      {vs_tar:.1f}x faster "
          f"(goal: at least {GOAL:g}x) -> {'MET' if vs_tar >= GOAL else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
