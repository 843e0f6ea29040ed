#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Pack and unpack throughput of dcfpkg against ``tar --zstd`` on the same real tree.

Both tools take turns on the same tree in the same run (so the page cache, the disk and
the neighbours' load are shared alike), after one untimed warm-up pass, and the medians
are compared.  The goal (issue 5): dcfpkg within 1.2x of tar's time, both ways.  Every
step starts after a sync(2), so none pays for the writeback of the one before it.

What each side does, so the ratio is read fairly:

- pack: dcfpkg reads every file once, hashes it (SHA256) and compresses it with zstd at
  ``--level`` using every CPU, then fsyncs the package; ``tar --zstd`` pipes through
  ``zstd -3`` on one thread and doesn't fsync, so its time here includes an fsync of
  its output;
- unpack: dcfpkg checks the manifest, hashes every file while writing it and checks
  every digest; ``tar -x`` checks nothing.

    /usr/bin/python3 bench/dcfpkg.py [--tree /usr] [--runs 3] [--level 3] [--workdir DIR]
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from guestpkg.dcfpkg import Metadata, ReaderPolicy, extract, write_dcfpkg  # noqa: E402

GOAL = 1.2
META = Metadata(package="bench", version="1", release="1", architecture="amd64",
                build_date=1700000000, source="bench/dcfpkg.py")


def timed(action: Callable[[], object]) -> float:
    # Start every step from a clean page cache: otherwise a step pays for the writeback
    # of the step before it (5 GB of dirty pages for a /usr extraction).
    os.sync()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def tar_pack(tree: Path, out: Path) -> None:
    subprocess.run(["tar", "--zstd", "-cf", str(out), "-C", str(tree), "."], check=True)
    # tar doesn't fsync; dcfpkg does (atomic on disk), so tar's time includes one too.
    fd = os.open(out, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tar_unpack(archive: Path, dest: Path) -> None:
    dest.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(archive), "-C", str(dest)], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path("/usr"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--no-snapshot", dest="snapshot", action="store_false",
                        help="read the tree in place (it must not change during the run)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    prefix = str(tree.relative_to("/"))
    policy = ReaderPolicy(allow_setuid=True, max_installed_bytes=1 << 40)

    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="bench-dcfpkg.") as tmp:
        work = Path(tmp)
        if args.snapshot:
            # A live /usr changes under us (apt runs elsewhere); both tools read one copy.
            print(f"copying {tree} ...", flush=True)
            subprocess.run(["cp", "-a", str(tree), str(work / "snapshot")], check=True)
            tree = work / "snapshot"
        package, archive = work / "tree.dcfpkg", work / "tree.tar.zst"
        print(f"tree {tree}, level {args.level}, {args.runs} runs, work in {work}")
        meta = write_dcfpkg(tree, META, package, level=args.level, prefix=prefix)  # warm-up
        print(f"  {meta.entries} entries, {meta.installed_size / 1e6:.0f} MB")
        times: dict[str, list[float]] = {k: [] for k in ("dcfpkg c", "tar c", "dcfpkg x",
                                                          "tar x")}
        for run in range(args.runs):
            times["dcfpkg c"].append(timed(lambda: write_dcfpkg(
                tree, META, package, level=args.level, prefix=prefix)))
            times["tar c"].append(timed(lambda: tar_pack(tree, archive)))
            dest = work / f"x{run}"
            times["dcfpkg x"].append(timed(lambda: extract(package, dest / "d", policy)))  # noqa: B023
            times["tar x"].append(timed(lambda: tar_unpack(archive, dest / "t")))  # noqa: B023
            shutil.rmtree(dest)
            print(f"  run {run + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()),
                  flush=True)
        med = {k: statistics.median(v) for k, v in times.items()}
        size_ratio = package.stat().st_size / archive.stat().st_size
    mb = meta.installed_size / 1e6
    pack, unpack = med["dcfpkg c"] / med["tar c"], med["dcfpkg x"] / med["tar x"]
    print(f"pack:   dcfpkg {med['dcfpkg c']:.2f}s ({mb / med['dcfpkg c']:.0f} MB/s), "
          f"tar --zstd {med['tar c']:.2f}s ({mb / med['tar c']:.0f} MB/s): ratio {pack:.2f}")
    print(f"unpack: dcfpkg {med['dcfpkg x']:.2f}s ({mb / med['dcfpkg x']:.0f} MB/s), "
          f"tar --zstd {med['tar x']:.2f}s ({mb / med['tar x']:.0f} MB/s): ratio {unpack:.2f}")
    paired = [statistics.median(d / t for d, t in zip(times[f"dcfpkg {s}"], times[f"tar {s}"],
                                                     strict=True)) for s in "cx"]
    print(f"median of the per-run ratios (each pair ran back to back): pack {paired[0]:.2f}, "
          f"unpack {paired[1]:.2f}")
    print(f"size:   dcfpkg / tar.zst = {size_ratio:.3f}")
    verdict = "met" if max(pack, unpack) <= GOAL else "NOT met"
    print(f"goal (both ratios <= {GOAL}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
