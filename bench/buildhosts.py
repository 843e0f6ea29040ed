#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Time ``guestpkg recipe build --buildhosts``: one buildhost against three.

A synthetic graph WIDTH wide and two deep (WIDTH leaves, each needed by one of WIDTH
users) is built four times from an empty result cache:

  (a) locally, -j1;
  (b) on one buildhost (one slot), -j0;
  (c) on three buildhosts (one slot each), -j0;
  (d) on three buildhosts with leaves that each wait SLEEP seconds, as a build that
      waits on its own CPU or I/O would (this machine has two cores shared by many, so
      a CPU-bound build can't show what three machines would give; a waiting one can).

It prints the scheduling overhead per job, ((b) - (a)) / jobs: what a buildhost adds to
a build (blobs in and out, signatures, polling), and where it goes, from the timing line
the coordinator writes into each remote build's log (sending the job; waiting for a host
to take it and for its result; the host fetching, building, and signing and sending;
accepting here), each the mean over (b)'s jobs; the speed-up (b)/(c) on trivial jobs
(bounded by that overhead); and the speed-up of (d) against the same graph on one host
(goal: at least 2x on three hosts for a graph wide enough).  Results of every run are
compared byte for byte with (a).

The broker is a redis-server on 127.0.0.1 with an ACL user and password; the
buildhosts are ``guestpkg buildhost serve`` processes on this machine sharing its
bootstrap set (made first when missing) and its state directory (so its unpacked
layers: a host's first unpack of the bootstrap set is not scheduling overhead).

Run as root, from the repository:  /usr/bin/python3 bench/buildhosts.py [WIDTH] [SLEEP]
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.recipetree import write_recipe  # noqa: E402

ARCH = "x86_64"
PASSWORD = "bench-buildhosts-password"


def sh(script: str) -> bytes:
    return b"#!/bin/sh\nset -eu\n" + script.encode()


def tree(root: Path, width: int, sleep: int) -> Path:
    for n in range(width):
        write_recipe(root, f"leaf{n}/1/1", arch="x86_64\n", build=sh(f"""
sleep {sleep}
mkdir -p "$DESTDIR/usr/share/leaf{n}" && echo {n} > "$DESTDIR/usr/share/leaf{n}/n"
"""))
        write_recipe(root, f"user{n}/1/1", arch="x86_64\n", builddeps=f"leaf{n}\n",
                     build=sh(f"""
mkdir -p "$DESTDIR/usr/share/user{n}"
cat /usr/share/leaf{n}/n > "$DESTDIR/usr/share/user{n}/n"
"""))
    return root


def guestpkg(env: dict[str, str], *args: str) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "guestpkg", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.monotonic() - start


PHASES = ("send", "wait", "fetch", "build", "return", "accept")


def phases(logs: Path) -> dict[str, float]:
    """The mean of each phase of the remote jobs whose logs are in *logs*."""
    sums = dict.fromkeys(PHASES, 0.0)
    count = 0
    for log in logs.glob("*.log"):
        for line in log.read_text().splitlines():
            if line.startswith("guestpkg: remote job timing (s): "):
                words = line.split(": ", 2)[2].split()
                for name, value in zip(words[::2], words[1::2], strict=True):
                    sums[name] += float(value)
                count += 1
    return {name: total / max(1, count) for name, total in sums.items()}


def digests(cache: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((cache / "dcfpkg").glob("*.dcfpkg"))}


def main() -> int:
    width = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    sleep = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    base = {**os.environ, "PYTHONPATH": str(REPO)}
    cachedir = Path(base.get("GUESTPKG_CACHEDIR", "/var/cache/guestpkg"))
    subprocess.run([sys.executable, "-m", "guestpkg", "recipe", "bootstrap", "--arch", ARCH],
                   env=base, check=True, stdout=subprocess.DEVNULL)
    sets = cachedir / "dcfpkg" / "bootstrap"
    with tempfile.TemporaryDirectory(prefix="guestpkg-bench-bh-", dir="/var/tmp") as scratch:
        top = Path(scratch)
        etc = top / "etc"
        etc.mkdir()
        (etc / "pw").write_text(PASSWORD + "\n")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        (top / "redis.conf").write_text(
            f"bind 127.0.0.1\nport {port}\nsave \"\"\nappendonly no\ndir {top}\n"
            f"user default off\nuser guestpkg on >{PASSWORD} ~* &* +@all\n")
        redis = subprocess.Popen(["redis-server", str(top / "redis.conf")],
                                 stdout=subprocess.DEVNULL, start_new_session=True)
        env = {**base, "GUESTPKG_CONFDIR": str(etc), "GUESTPKG_TRUSTDIR": str(etc / "trust"),
               "GUESTPKG_BROKER": f"redis://127.0.0.1:{port}/0",
               "GUESTPKG_BROKER_PASSWORD_FILE": str(etc / "pw"),
               "GUESTPKG_BUILDHOSTS": str(etc / "buildhosts")}
        stanzas = []
        for name in ("b1", "b2", "b3"):
            subprocess.run([sys.executable, "-m", "guestpkg", "trust", "keygen",
                            str(etc / name)], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([sys.executable, "-m", "guestpkg", "trust", "add-key",
                            str(etc / f"{name}.pub"), "trusted"], env=env, check=True,
                           stdout=subprocess.DEVNULL)
            stanzas.append(f"Name: {name}\nArchitectures: {ARCH}\nSlots: 1\n"
                           f"Public-Key: {name}.pub\n")
        (etc / "buildhosts").write_text("\n".join(stanzas))
        hosts: list[subprocess.Popen[bytes]] = []

        def start(name: str) -> None:
            hosts.append(subprocess.Popen(
                    [sys.executable, "-m", "guestpkg", "buildhost", "serve"],
                    env={**env, "GUESTPKG_CACHEDIR": str(cachedir),
                         "GUESTPKG_LOGDIR": str(top / name / "log"),
                         "GUESTPKG_BUILDHOST_NAME": name,
                         "GUESTPKG_BUILDHOST_KEY": str(etc / f"{name}.key")},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True))

        times: dict[str, float] = {}
        results: dict[str, dict[str, str]] = {}
        spent: dict[str, dict[str, float]] = {}
        remote = ["--buildhosts", "-j", "0"]
        # (label, seconds a leaf waits, arguments, hosts to start before the run)
        runs = [("local -j1", 0, ["-j", "1"], ()),
                ("1 buildhost", 0, remote, ("b1",)),
                (f"1 buildhost, {sleep} s leaves", sleep, remote, ()),
                ("3 buildhosts", 0, remote, ("b2", "b3")),
                (f"3 buildhosts, {sleep} s leaves", sleep, remote, ())]
        try:
            for label, wait, args, starting in runs:
                for name in starting:
                    start(name)
                if starting:
                    time.sleep(8)   # the workers start
                run_dir = top / label.replace(" ", "_").replace(",", "")
                recipes = tree(run_dir / "tree", width, wait)
                cache = run_dir / "cache"
                (cache / "dcfpkg").mkdir(parents=True)
                (cache / "dcfpkg" / "bootstrap").symlink_to(sets)
                run_env = {**env, "GUESTPKG_RECIPES": str(recipes),
                           "GUESTPKG_CACHEDIR": str(cache),
                           "GUESTPKG_LOGDIR": str(run_dir / "log")}
                times[label] = guestpkg(run_env, "recipe", "build", "--arch", ARCH, *args)
                results[label] = digests(cache)
                spent[label] = phases(run_dir / "log" / "recipes")
                print(f"{label:28} {times[label]:7.1f} s", flush=True)
        finally:
            for proc in [*hosts, redis]:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    jobs = 2 * width
    quick = [label for label, wait, _, _ in runs if wait == 0]
    assert all(results[label] == results[quick[0]] for label in quick), \
        "a buildhost's results differ from the local build"
    print(f"jobs per run: {jobs}")
    local, one = times["local -j1"] / jobs, times["1 buildhost"] / jobs
    print(f"scheduling overhead per job on a buildhost: {one - local:.2f} s "
          f"({one:.2f} s a job on 1 buildhost, {local:.2f} s locally)")
    mean = spent["1 buildhost"]
    print("  where a job's time goes on 1 buildhost (mean s): "
          + ", ".join(f"{name} {mean[name]:.2f}" for name in PHASES))
    print(f"  building there against a whole local job: {mean['build'] - local:+.2f} s; "
          "the rest besides the build: "
          f"{sum(mean[n] for n in PHASES if n != 'build'):.2f} s; not in a job "
          "(the coordinator's start, planning): "
          f"{one - sum(mean.values()):.2f} s")
    print(f"speed-up of 3 buildhosts over 1, trivial jobs: "
          f"{times['1 buildhost'] / times['3 buildhosts']:.2f}x")
    slow1, slow3 = times[runs[2][0]], times[runs[4][0]]
    print(f"speed-up of 3 buildhosts over 1, {sleep} s leaves: {slow1 / slow3:.2f}x "
          "(goal: at least 2x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
