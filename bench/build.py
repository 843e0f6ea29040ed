#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Time guestpkg build on hello against the floor and the peers.

One run (``--runs N``: N of (b) and (c), alternating, medians compared) of:

  (a) a first build of hello with a cold cache (its layer and cached resolution are
      removed first, so apt resolves, downloads and installs);
  (b) the same build again: the layer cache is warm, no apt runs;
  (c) the floor: plain ``dpkg-buildpackage -us -uc -b`` on the host, in a fresh
      unpacked tree, with hello's build dependencies already installed on the host
      (``--install-host-deps`` installs them: debhelper, help2man, texinfo);
  (a') with ``--peers``: (a) again, its layer removed again but the .debs in the
      download cache (guestpkg.build.debcache): a first build as it is once the
      download cache has the packages;
  (d) ``sbuild --chroot-mode=unshare`` and ``pbuilder build`` on the same .dsc, only
      when they are installed and set up (the bench user's chroot tarball / base.tgz);
      with ``--peers`` instead: cowbuilder, pbuilder and sbuild installed when missing
      and their chroots made under ``--peers-dir`` (bench/peers.py), each timed
      ``--runs`` times after an untimed warm-up that fills its apt cache.  sbuild's
      unshare mode runs as a normal user with subordinate ids, which the bench makes
      (``guestpkg-bench``, bench/peers.py).

and prints (b)/(c) (goal: at most 1.05), (a')/(cowbuilder) (goal: at most 1.0) and
(b)/(d).  (a), (b) and (c) build the same
unpacked tree with the same DEB_BUILD_OPTIONS, so they compare like with like.

Run as root, from the repository:  /usr/bin/python3 bench/build.py [--install-host-deps]
The settings come from the environment like guestpkg's (GUESTPKG_VARDIR, ...); the
buildroot is created first when missing.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import peers  # noqa: E402
from guestpkg import config as settings  # noqa: E402
from guestpkg.build import layers  # noqa: E402
from guestpkg.build.deb import (  # noqa: E402
    BuildOptions,
    BuildResult,
    build_package,
    extra_build_packages,
)
from guestpkg.build.source import read_source  # noqa: E402
from guestpkg.buildroot import create_base_root, open_base_root  # noqa: E402
from guestpkg.debian.control import BuildMode, build_relations  # noqa: E402
from guestpkg.errors import SystemStateError  # noqa: E402
from tests.support import debsrc  # noqa: E402

#: CPU seconds of the last :func:`timed` call (:func:`peers.cpu_s`).
LAST_CPU: list[float] = [0.0]


def timed(what: str, func: object) -> float:
    assert callable(func)
    print(f"bench: {what} ...", flush=True)
    start, start_cpu = time.monotonic(), peers.cpu_s()
    func()
    elapsed = time.monotonic() - start
    LAST_CPU[0] = peers.cpu_s() - start_cpu
    print(f"bench: {what}: {elapsed:.1f} s (cpu {LAST_CPU[0]:.1f} s)", flush=True)
    return elapsed


def make_cold(cfg: settings.Config, tree: Path) -> bool:
    """Remove hello's layer and cached resolution; False if a build is using it.

    The request is computed from the unpacked tree as guestpkg build does: a .dsc
    does not carry Rules-Requires-Root (dsc(5))."""
    base = open_base_root(cfg)
    info = read_source(tree)
    relations = build_relations(info.control, BuildMode.BINARY, base.arch, (),
                                extra_build_packages(info, cfg))
    request = relations.canonical()
    actions = layers.cached_resolution(cfg, base.generation, request)
    resolved = layers.layers_dir(cfg) / "resolved" / \
        f"{layers.resolution_key(base.generation, request)}.json"
    resolved.unlink(missing_ok=True)
    if actions:
        layer = layers.read_layer(cfg, layers.layer_key(base.generation, actions))
        if layer is not None and not layers.remove_layer(cfg, layer):
            return False
    return True


def unpack(dsc: Path, parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-source", "--no-check", "-x", str(dsc), str(parent / "hello-2.10")],
                   check=True, stdout=subprocess.DEVNULL)
    return parent / "hello-2.10"


def host_deps_ok(tree: Path) -> bool:
    return subprocess.run(["dpkg-checkbuilddeps"], cwd=tree, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


def floor_build(tree: Path, jobs: int, epoch: str) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/nonexistent", "TZ": "UTC",
           "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "SOURCE_DATE_EPOCH": epoch,
           "DEB_BUILD_OPTIONS": f"parallel={jobs}"}
    subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def peer_builds(dsc: Path, work: Path) -> dict[str, float]:
    found: dict[str, float] = {}
    suite = debsrc.host_codename()
    user = peers.bench_user()
    if shutil.which("sbuild") and user and peers.sbuild_tarball(user, suite).is_file():
        samples = peers.time_sbuild(dsc, work, suite, debsrc.host_mirror(), 1)
        if samples:
            found["sbuild unshare"] = samples[0]
    else:
        print("bench: (d) sbuild: not installed or no unshare chroot tarball of the bench "
              "user: skipped (--peers makes both)")
    if shutil.which("pbuilder") and Path("/var/cache/pbuilder/base.tgz").exists():
        out = work / "pbuilder"
        out.mkdir()
        found["pbuilder"] = timed("(d) pbuilder build", lambda: subprocess.run(
            ["pbuilder", "build", "--buildresult", str(out), str(dsc)], check=True,
            stdout=subprocess.DEVNULL))
    else:
        print("bench: (d) pbuilder: not installed or no base.tgz: skipped")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install-host-deps", action="store_true",
                        help="apt-get install hello's build dependencies on the host for (c)")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of (b) and (c), alternating; the medians are compared")
    parser.add_argument("--peers", action="store_true",
                        help="install cowbuilder, pbuilder and sbuild when missing, make "
                             "their chroots and time them; time (a')")
    parser.add_argument("--peers-dir", type=Path,
                        default=Path("/var/tmp/guestpkg-bench-peers"),
                        help="where the peers' chroots and apt caches are kept")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: run as root", file=sys.stderr)
        return 2
    cfg = settings.load()
    try:
        open_base_root(cfg)
    except SystemStateError:
        timed("creating the buildroot (not part of the figures)",
              lambda: create_base_root(cfg))
    dsc = debsrc.dsc_path("hello")
    jobs = cfg.build_jobs
    runs = max(1, args.runs)
    a = 0.0
    b: list[float] = []
    c: list[float] = []
    print(f"bench: load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="guestpkg-bench.") as tmp:
        work = Path(tmp)
        tree = unpack(dsc, work / "src")
        if not make_cold(cfg, tree):
            print("bench: hello's layer is in use by another build; (a) is not cold")
        quiet = BuildOptions(tee=False)
        first: list[BuildResult] = []
        a = timed("(a) guestpkg build, cold cache",
                  lambda: first.append(build_package(cfg, tree, work / "a", quiet)))
        print(f"bench: (a) installed its build dependencies: {not first[0].layer_cached}")
        a_warm: float | None = None
        a_warm_cpu = 0.0
        peer_cpu: dict[str, list[float]] = {}
        if args.peers:
            if not make_cold(cfg, tree):
                print("bench: hello's layer is in use by another build; (a') is not cold")
            warm: list[BuildResult] = []
            a_warm = timed("(a') guestpkg build, cold layer, .debs in the download cache",
                           lambda: warm.append(build_package(cfg, tree, work / "a2", quiet)))
            a_warm_cpu = LAST_CPU[0]
            text = warm[0].log_path.read_text()
            over = " on layer " in text and "into new layer" in text
            print(f"bench: (a') made its layer on a cached subset layer: {over}")
        if not host_deps_ok(tree) and args.install_host_deps:
            subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                            "debhelper", "help2man", "texinfo"], check=True,
                           stdout=subprocess.DEVNULL)
        floor = host_deps_ok(tree)
        if not floor:
            print("bench: (c) skipped: hello's build dependencies are not installed on the "
                  "host (use --install-host-deps)")
        # (b) and (c) alternate, so that a change of load on the machine hits both.
        for run in range(runs):
            out = work / f"b{run}"
            b.append(timed(f"(b) guestpkg build, cached layer, run {run + 1}",
                           lambda out=out: build_package(cfg, tree, out, quiet)))
            same = all((work / "a" / p.name).read_bytes() == p.read_bytes()
                       for p in out.glob("*.deb"))
            print(f"bench: .debs identical to (a)'s: {same}")
            if floor:
                floor_tree = unpack(dsc, work / f"floor{run}")
                epoch = subprocess.run(["dpkg-parsechangelog", "-STimestamp"],
                                       cwd=floor_tree, check=True, capture_output=True,
                                       text=True).stdout.strip()
                c.append(timed(f"(c) plain dpkg-buildpackage on the host, run {run + 1}",
                               lambda t=floor_tree, e=epoch: floor_build(t, jobs, e)))
        if args.peers:
            suite = debsrc.host_codename()
            peers.ensure_installed()
            peers.prepare(args.peers_dir, suite, debsrc.host_mirror())
            peer_samples = peers.time_peers(args.peers_dir, dsc, work, suite, runs, peer_cpu)
            found = {name: statistics.median(s) for name, s in peer_samples.items() if s}
        else:
            found = peer_builds(dsc, work)
    print(f"bench: load average at the end: {os.getloadavg()[0]:.2f}")
    print()
    print(f"hello 2.10-3, {jobs} jobs; (b) and (c): median of {runs} run(s) (seconds)")
    print(f"  (a) guestpkg build, cold cache        {a:7.1f}")
    if a_warm is not None:
        print(f"  (a') cold layer, warm download cache  {a_warm:7.1f}")
    mb = statistics.median(b)
    print(f"  (b) guestpkg build, cached layer      {mb:7.1f}   {fmt(b)}")
    if c:
        mc = statistics.median(c)
        print(f"  (c) dpkg-buildpackage on the host     {mc:7.1f}   {fmt(c)}")
        print(f"  (b)/(c) = {mb / mc:.2f}   (goal: <= 1.05)")
    for name, seconds in found.items():
        print(f"  (d) {name:33} {seconds:7.1f}")
        print(f"  (b)/(d {name}) = {mb / seconds:.2f}")
        if a_warm is not None:
            print(f"  (a')/(d {name}) = {a_warm / seconds:.2f}" +
                  ("   (goal: <= 1.0)" if name == "cowbuilder" else ""))
            if peer_cpu.get(name):
                used = statistics.median(peer_cpu[name])
                print(f"  (a')/(d {name}) in CPU seconds = {a_warm_cpu:.1f}/{used:.1f} = "
                      f"{a_warm_cpu / used:.2f}")
    return 0


def fmt(samples: list[float]) -> str:
    return "[" + ", ".join(f"{x:.1f}" for x in samples) + "]"

if __name__ == "__main__":
    sys.exit(main())
