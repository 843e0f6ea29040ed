#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""How fast is a fresh fork?  Time to get a fresh root and run /bin/true in it, three ways:

1. **guestpkg fork**: ``with fork(config, base) as f: run_sandboxed(f.spec(["/bin/true"]))``
   under the full sandbox (namespaces, overlay, /proc, /dev, caps, seccomp), with the
   fork's upper dir on tmpfs and on disk;
2. **bare unshare**: ``unshare --mount --pid --net --fork chroot ROOT /bin/true`` on the
   base root itself (no overlay, no sandbox: the floor of what namespaces cost);
3. **tarball**: what sbuild and pbuilder do for every build: unpack the base root from
   a tarball (``tar --zstd``), run /bin/true in it, delete it.

Medians of N runs, taken in turn so that a slow moment of the machine hits all three
alike.  Run as root: ``sudo /usr/bin/python3 bench/fork.py [--runs N] [--vardir DIR]``;
the base root is ``--buildroot`` (default ``default``) of the vardir (the test suite
makes one in /var/tmp/guestpkg-tests/vardir).  Goal: a fork at least 20 times faster
than unpacking the tarball.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from guestpkg import config as settings
from guestpkg.buildroot import BaseRoot, fork, open_base_root
from guestpkg.sandbox import run_sandboxed

GOAL = 20.0


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def fork_and_true(config: settings.Config, base: BaseRoot) -> None:
    with fork(config, base) as f:
        run_sandboxed(f.spec(["/bin/true"], uid=base.build_uid, gid=base.build_uid))


def fork_only(config: settings.Config, base: BaseRoot) -> None:
    with fork(config, base):
        pass


def bare_unshare(base: BaseRoot) -> None:
    subprocess.run(["unshare", "--mount", "--pid", "--net", "--fork", "chroot",
                    str(base.path), "/bin/true"], check=True)


def make_tarball(base: BaseRoot, workdir: Path) -> Path:
    """The base root as sbuild keeps it (a tarball), made once per generation."""
    tarball = workdir / f"base-{base.generation}.tar.zst"
    if not tarball.exists():
        print(f"making {tarball} (once) ...", file=sys.stderr)
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "--zstd", "-C", str(base.path), "--numeric-owner", "-cpf",
                        str(partial), "."], check=True)
        partial.rename(tarball)
    return tarball


def tarball_phases(tarball: Path, workdir: Path) -> tuple[float, float, float]:
    """Seconds to unpack, to run /bin/true in the unpacked tree, and to delete it."""
    target = Path(tempfile.mkdtemp(prefix="unpacked-", dir=workdir))
    unpack = timed(lambda: subprocess.run(
        ["tar", "--zstd", "-C", str(target), "--numeric-owner", "-xpf", str(tarball)],
        check=True))
    true = timed(lambda: subprocess.run(
        ["unshare", "--mount", "--pid", "--net", "--fork", "chroot", str(target),
         "/bin/true"], check=True))
    delete = timed(lambda: shutil.rmtree(target))
    return unpack, true, delete


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of the fast paths")
    parser.add_argument("--tar-runs", type=int, default=3, help="runs of the tarball path")
    parser.add_argument("--vardir", type=Path, help="guestpkg's state directory")
    parser.add_argument("--buildroot", default=None, help="the base root's name")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/guestpkg-bench"),
                        help="where the tarball is kept and unpacked")
    args = parser.parse_args()
    config = settings.load({"vardir": args.vardir, "buildroot": args.buildroot})
    base = open_base_root(config)
    args.workdir.mkdir(parents=True, exist_ok=True)
    tarball = make_tarball(base, args.workdir)
    tmpfs, disk = config.replace(fork_upper="tmpfs"), config.replace(fork_upper="disk")

    samples: dict[str, list[float]] = {k: [] for k in (
        "fork (tmpfs upper) + /bin/true, full sandbox",
        "fork (disk upper) + /bin/true, full sandbox",
        "fork alone (tmpfs upper, no command)",
        "bare unshare + chroot /bin/true",
        "tarball: unpack", "tarball: unpack + /bin/true + delete")}
    names = list(samples)
    fork_and_true(tmpfs, base)  # warm the page cache and Python's imports once
    for run in range(max(args.runs, args.tar_runs)):
        if run < args.runs:
            samples[names[0]].append(timed(lambda: fork_and_true(tmpfs, base)))
            samples[names[1]].append(timed(lambda: fork_and_true(disk, base)))
            samples[names[2]].append(timed(lambda: fork_only(tmpfs, base)))
            samples[names[3]].append(timed(lambda: bare_unshare(base)))
        if run < args.tar_runs:
            unpack, true, delete = tarball_phases(tarball, args.workdir)
            samples[names[4]].append(unpack)
            samples[names[5]].append(unpack + true + delete)
    return report(base, samples, names)


def report(base: BaseRoot, samples: dict[str, list[float]], names: list[str]) -> int:
    medians = {k: statistics.median(v) for k, v in samples.items()}
    print(f"base root {base.name} ({base.suite} {base.arch}), generation {base.generation}")
    for name in names:
        print(f"  {name:48s} {medians[name] * 1000:9.1f} ms  (median of "
              f"{len(samples[name])})")
    fork_s = medians[names[0]]
    print(f"  full sandbox fork vs bare unshare: {fork_s / medians[names[3]]:6.1f}x slower")
    ratio = medians[names[4]] / fork_s
    print(f"  fork vs tarball unpack:            {ratio:6.1f}x faster")
    print(f"  fork vs tarball unpack+run+delete: {medians[names[5]] / fork_s:6.1f}x faster")
    print(f"  goal (>= {GOAL:.0f}x faster than unpacking): "
          f"{'met' if ratio >= GOAL else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
