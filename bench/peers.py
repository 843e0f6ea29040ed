# SPDX-License-Identifier: GPL-2.0-or-later
"""The peers bench/build.py compares guestpkg build with: cowbuilder, pbuilder and
sbuild (unshare mode), installed from the system's apt sources when missing, their
chroots made here (under ``--peers-dir``, default /var/tmp/guestpkg-bench-peers), never
in their default places, so that the machine's own pbuilder or sbuild set-up is left
alone.

Each peer is timed on its *first build with warm downloads*, the case guestpkg's cold
layer is compared with: the peer builds hello once untimed (its apt cache fills), then
once timed.  cowbuilder and pbuilder keep downloaded .debs in their aptcache
(``--aptcache``); sbuild's unshare mode has none, so its timed build downloads again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

PACKAGES = ("cowbuilder", "pbuilder", "sbuild", "mmdebstrap")


def ensure_installed() -> None:
    missing = [p for p in PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True
    ).stdout != "install ok installed"]
    if missing:
        print(f"bench: installing the peers: {' '.join(missing)}", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends",
                        *missing], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _quiet(argv: list[str], log: Path, **kwargs: object) -> None:
    with open(log, "ab") as f:
        subprocess.run(argv, check=True, stdout=f, stderr=subprocess.STDOUT,
                       **kwargs)  # type: ignore[call-overload]


def prepare(top: Path, suite: str, mirror: str) -> None:
    """The peers' chroots, made once (not timed)."""
    top.mkdir(parents=True, exist_ok=True)
    for cache in ("aptcache-cow", "aptcache-pbuilder"):
        (top / cache).mkdir(exist_ok=True)
    log = top / "setup.log"
    if not (top / "base.cow" / "etc").is_dir():
        print("bench: making cowbuilder's chroot (once, not timed)", flush=True)
        _quiet(["cowbuilder", "--create", "--basepath", str(top / "base.cow"),
                "--distribution", suite, "--mirror", mirror,
                "--aptcache", str(top / "aptcache-cow")], log)
    if not (top / "base.tgz").is_file():
        print("bench: making pbuilder's base.tgz (once, not timed)", flush=True)
        _quiet(["pbuilder", "create", "--basetgz", str(top / "base.tgz"),
                "--distribution", suite, "--mirror", mirror,
                "--aptcache", str(top / "aptcache-pbuilder")], log)
    tarball = top / f"{suite}-sbuild.tar"
    if not tarball.is_file():
        print("bench: making sbuild's chroot tarball (once, not timed)", flush=True)
        _quiet(["mmdebstrap", "--variant=buildd", "--mode=unshare" if os.geteuid() else
                "--mode=root", suite, str(tarball), mirror], log)


def _cowbuilder(top: Path, dsc: Path, out: Path) -> list[str]:
    return ["cowbuilder", "--build", "--basepath", str(top / "base.cow"),
            "--aptcache", str(top / "aptcache-cow"), "--buildresult", str(out), str(dsc)]


def _pbuilder(top: Path, dsc: Path, out: Path) -> list[str]:
    return ["pbuilder", "build", "--basetgz", str(top / "base.tgz"),
            "--aptcache", str(top / "aptcache-pbuilder"), "--buildresult", str(out),
            str(dsc)]


def _sbuild(top: Path, dsc: Path, out: Path, suite: str) -> list[str]:
    return ["sbuild", "--chroot-mode=unshare", "-d", suite,
            f"--chroot={top / f'{suite}-sbuild.tar'}", "--no-run-lintian",
            "--no-run-piuparts", "--no-run-autopkgtest", "--no-apt-update",
            "--no-apt-upgrade", "--no-apt-distupgrade", f"--build-dir={out}", str(dsc)]


def time_peers(top: Path, dsc: Path, work: Path, suite: str, runs: int
               ) -> dict[str, list[float]]:
    """Seconds of each peer's build of *dsc*, *runs* times after one untimed warm-up;
    a peer that fails is reported and left out."""
    found: dict[str, list[float]] = {}
    commands = {"cowbuilder": lambda out: _cowbuilder(top, dsc, out),
                "pbuilder": lambda out: _pbuilder(top, dsc, out),
                "sbuild unshare": lambda out: _sbuild(top, dsc, out, suite)}
    for name, argv_for in commands.items():
        log = work / f"{name.replace(' ', '-')}.log"
        samples = []
        try:
            for run in range(runs + 1):
                out = work / f"{name.replace(' ', '-')}-{run}"
                out.mkdir()
                start = time.monotonic()
                _quiet(argv_for(out), log, cwd=out)
                elapsed = time.monotonic() - start
                print(f"bench: (d) {name}, run {run}{' (warm-up)' if run == 0 else ''}: "
                      f"{elapsed:.1f} s", flush=True)
                if run:
                    samples.append(elapsed)
        except (subprocess.CalledProcessError, OSError) as e:
            kept = work.parent / f"bench-{name.replace(' ', '-')}.log"
            shutil.copy(log, kept)
            print(f"bench: (d) {name} failed ({e}); its log: {kept}", flush=True)
            continue
        found[name] = samples
    return found
