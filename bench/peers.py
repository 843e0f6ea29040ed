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

sbuild's unshare mode refuses to run as root: it is the mode for a normal user with a
range of subordinate ids.  :func:`ensure_bench_user` makes such a user once
(``guestpkg-bench``, home in /var/tmp/guestpkg-bench-home, a range of 65536 ids in
/etc/subuid and /etc/subgid as useradd(8) gives a new user), and
:func:`ensure_sbuild_tarball` its chroot tarball, as sbuild(1) documents it:
``mmdebstrap --variant=buildd --mode=unshare SUITE ~/.cache/sbuild/SUITE-ARCH.tar.zst``
run as that user, from the host's Debian mirror.  Both are idempotent; the bench never
removes them (``userdel -r guestpkg-bench`` does).
"""

from __future__ import annotations

import os
import pwd
import resource
import shutil
import subprocess
import time
from pathlib import Path

from debian.deb822 import Dsc

PACKAGES = ("cowbuilder", "pbuilder", "sbuild", "mmdebstrap", "uidmap")

BENCH_USER = "guestpkg-bench"
BENCH_HOME = Path("/var/tmp/guestpkg-bench-home")
#: How many subordinate ids the bench user gets (login.defs' SUB_UID_COUNT default).
SUBID_COUNT = 65536


def ensure_installed(packages: tuple[str, ...] = PACKAGES) -> None:
    missing = [p for p in packages if subprocess.run(
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
    ensure_sbuild_tarball(ensure_bench_user(), suite, mirror, log)


def _ranges(path: Path) -> list[tuple[str, int, int]]:
    """(name, first, count) of every well-formed line of a subuid(5)/subgid(5) file."""
    found = []
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.strip().split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                found.append((fields[0], int(fields[1]), int(fields[2])))
    return found


def _free_start(taken: list[tuple[str, int, int]]) -> int:
    """The lowest start >= 100000 (login.defs' SUB_UID_MIN) of SUBID_COUNT ids that
    overlap no range in *taken*."""
    start = 100000
    moved = True
    while moved:
        moved = False
        for _, first, count in taken:
            if start < first + count and first < start + SUBID_COUNT:
                start, moved = first + count, True
    return start


def bench_user() -> pwd.struct_passwd | None:
    """The bench user, if it was made already."""
    try:
        return pwd.getpwnam(BENCH_USER)
    except KeyError:
        return None


def ensure_bench_user() -> pwd.struct_passwd:
    """The normal user sbuild's unshare mode runs as, with its own range of
    subordinate uids and gids (made once; idempotent)."""
    try:
        user = pwd.getpwnam(BENCH_USER)
    except KeyError:
        print(f"bench: adding the user {BENCH_USER} for sbuild's unshare mode (once)",
              flush=True)
        subprocess.run(["useradd", "--create-home", "--home-dir", str(BENCH_HOME),
                        "--shell", "/bin/sh", "--comment", "guestpkg bench (sbuild unshare)",
                        BENCH_USER], check=True)
        user = pwd.getpwnam(BENCH_USER)
    for path, option in ((Path("/etc/subuid"), "--add-subuids"),
                         (Path("/etc/subgid"), "--add-subgids")):
        taken = _ranges(path)
        if not any(name in (BENCH_USER, str(user.pw_uid)) for name, _, _ in taken):
            start = _free_start(taken)
            subprocess.run(["usermod", option, f"{start}-{start + SUBID_COUNT - 1}",
                            BENCH_USER], check=True)
    return user


def as_bench_user(user: pwd.struct_passwd, argv: list[str]) -> list[str]:
    """*argv* run as the bench user with a clean environment of its own."""
    return ["runuser", "-u", user.pw_name, "--", "env", "-i", f"HOME={user.pw_dir}",
            f"USER={user.pw_name}", f"LOGNAME={user.pw_name}", "LC_ALL=C.UTF-8",
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", *argv]


def sbuild_tarball(user: pwd.struct_passwd, suite: str) -> Path:
    arch = subprocess.run(["dpkg", "--print-architecture"], check=True,
                          capture_output=True, text=True).stdout.strip()
    return Path(user.pw_dir) / ".cache" / "sbuild" / f"{suite}-{arch}.tar.zst"


def ensure_sbuild_tarball(user: pwd.struct_passwd, suite: str, mirror: str,
                          log: Path) -> Path:
    """sbuild's unshare chroot in the bench user's ~/.cache/sbuild (made once, by that
    user, in a user namespace: mmdebstrap's unshare mode), renamed into place when
    complete."""
    tarball = sbuild_tarball(user, suite)
    if tarball.is_file():
        return tarball
    print(f"bench: making sbuild's unshare chroot {tarball} as {user.pw_name} (once, not "
          "timed)", flush=True)
    partial = tarball.with_name(f"partial-{tarball.name}")
    _quiet(as_bench_user(user, ["mkdir", "-p", str(tarball.parent)]), log)
    _quiet(as_bench_user(user, ["mmdebstrap", "--variant=buildd", "--mode=unshare", suite,
                                str(partial), mirror]), log, cwd=user.pw_dir)
    partial.rename(tarball)
    return tarball


def stage_for_bench_user(user: pwd.struct_passwd, dsc: Path, work: Path) -> Path:
    """A copy of *dsc* and its files in a directory of the bench user's."""
    directory = work / "sbuild-source"
    directory.mkdir(exist_ok=True)
    with open(dsc, encoding="utf-8") as f:
        names = [dsc.name, *(entry["name"] for entry in Dsc(f)["Files"])]
    for name in names:
        shutil.copy(dsc.parent / name, directory / name)
    for path in (work, directory, *(directory / n for n in names)):
        os.chown(path, user.pw_uid, user.pw_gid)
    return directory / dsc.name


def sbuild_unshare_argv(user: pwd.struct_passwd, dsc: Path, out: Path, suite: str
                        ) -> list[str]:
    """``sbuild --chroot-mode=unshare`` of *dsc* as the bench user, into *out* (made
    and given to that user here)."""
    out.mkdir(exist_ok=True)
    os.chown(out, user.pw_uid, user.pw_gid)
    return as_bench_user(user, [
        "sbuild", "--chroot-mode=unshare", "-d", suite, "--no-run-lintian",
        "--no-run-piuparts", "--no-run-autopkgtest", "--no-apt-upgrade",
        "--no-apt-distupgrade", f"--build-dir={out}", str(dsc)])


def time_sbuild(dsc: Path, work: Path, suite: str, mirror: str, runs: int) -> list[float]:
    """Seconds of ``sbuild --chroot-mode=unshare`` of *dsc* as the bench user, *runs*
    times after an untimed warm-up (the page cache; sbuild's unshare mode keeps no
    apt cache, each run downloads the build dependencies again); the user and its
    chroot tarball are made first when missing (not timed).  Empty if sbuild fails:
    its log is kept and named."""
    ensure_installed(("sbuild", "mmdebstrap", "uidmap"))
    user = ensure_bench_user()
    log = work / "sbuild-unshare.log"
    ensure_sbuild_tarball(user, suite, mirror, log)
    user_dsc = stage_for_bench_user(user, dsc, work)
    samples = []
    for run in range(runs + 1):
        out = work / f"sbuild-unshare-{run}"
        try:
            argv = sbuild_unshare_argv(user, user_dsc, out, suite)
            start = time.monotonic()
            _quiet(argv, log, cwd=out)
        except (subprocess.CalledProcessError, OSError) as e:
            kept = work.parent / "bench-sbuild-unshare.log"
            shutil.copy(log, kept)
            print(f"bench: sbuild --chroot-mode=unshare failed ({e}); its log: {kept}",
                  flush=True)
            return []
        elapsed = time.monotonic() - start
        print(f"bench: sbuild --chroot-mode=unshare as {user.pw_name}, run {run}"
              f"{' (warm-up)' if run == 0 else ''}: {elapsed:.1f} s", flush=True)
        if run:
            samples.append(elapsed)
    return samples


def _cowbuilder(top: Path, dsc: Path, out: Path) -> list[str]:
    return ["cowbuilder", "--build", "--basepath", str(top / "base.cow"),
            "--aptcache", str(top / "aptcache-cow"), "--buildresult", str(out), str(dsc)]


def _pbuilder(top: Path, dsc: Path, out: Path) -> list[str]:
    return ["pbuilder", "build", "--basetgz", str(top / "base.tgz"),
            "--aptcache", str(top / "aptcache-pbuilder"), "--buildresult", str(out),
            str(dsc)]


def cpu_s() -> float:
    """CPU seconds (user and system) of this process and of its children that ended:
    on a machine others load, a fairer measure of work than wall time, which depends
    on how the scheduler shares the CPUs (a sandbox's cgroup weight, the peers'
    none)."""
    return sum(usage.ru_utime + usage.ru_stime for usage in (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN)))


def time_peers(top: Path, dsc: Path, work: Path, suite: str, runs: int,
               cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Seconds of each peer's build of *dsc*, *runs* times after one untimed warm-up;
    a peer that fails is reported and left out.  *cpu* gets each timed run's CPU
    seconds (:func:`cpu_s`)."""
    found: dict[str, list[float]] = {}
    user = ensure_bench_user()
    user_dsc = stage_for_bench_user(user, dsc, work)
    commands = {"cowbuilder": lambda out: _cowbuilder(top, dsc, out),
                "pbuilder": lambda out: _pbuilder(top, dsc, out),
                "sbuild unshare": lambda out: sbuild_unshare_argv(user, user_dsc, out, suite)}
    for name, argv_for in commands.items():
        log = work / f"{name.replace(' ', '-')}.log"
        samples, cpu_samples = [], []
        try:
            for run in range(runs + 1):
                out = work / f"{name.replace(' ', '-')}-{run}"
                out.mkdir()
                start, start_cpu = time.monotonic(), cpu_s()
                _quiet(argv_for(out), log, cwd=out)
                elapsed, used = time.monotonic() - start, cpu_s() - start_cpu
                print(f"bench: (d) {name}, run {run}{' (warm-up)' if run == 0 else ''}: "
                      f"{elapsed:.1f} s (cpu {used:.1f} s)", flush=True)
                if run:
                    samples.append(elapsed)
                    cpu_samples.append(used)
        except (subprocess.CalledProcessError, OSError) as e:
            kept = work.parent / f"bench-{name.replace(' ', '-')}.log"
            shutil.copy(log, kept)
            print(f"bench: (d) {name} failed ({e}); its log: {kept}", flush=True)
            continue
        found[name] = samples
        if cpu is not None:
            cpu[name] = cpu_samples
    return found
