# SPDX-License-Identifier: GPL-2.0-or-later
"""A throwaway Debian SYSTEM root: the user's machine in miniature, for end-to-end tests.

The expensive part, a base tree made with mmdebstrap that already holds debconf, python3
and guestpkg's runtime dependencies (but not guestpkg), is made once and cached under
``/var/tmp/guestpkg-tests/sysroots/`` keyed by its package list, suite, mirror and the
ISO week (override the top directory with ``GUESTPKG_TEST_AREA``).  The base is never written to:
each :class:`SystemRoot` is an overlayfs copy whose upper layer is thrown away.

A running SystemRoot is a small container: a holder process (``unshare --mount
--propagation private --pid --uts --fork``) mounts the overlay, a fresh /proc, /dev
(rbind), a read-only sysfs, tmpfs /run and /tmp and the test's bind mounts, then waits as
the pid namespace's init.  :meth:`SystemRoot.run` enters its namespaces with nsenter and
chroots, so a job detached inside (the APT hook's waiter) outlives the command that
started it.  The host network is shared, so the Debian mirror and servers on 127.0.0.1
are reachable.  Every mount lives in the private mount namespace only: when the holder
dies (also when pytest is SIGKILLed: parent-death signals chain from pytest to the
holder), the kernel tears everything down and the host's mount table never changes.
The root runs as real root without seccomp, so guestpkg inside can make its own
namespaces and overlays.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tests.support import debsrc
from tests.support.paths import TEST_AREA
from tests.support.snapshot import SNAPSHOT_EXCLUDED as SNAPSHOT_EXCLUDED
from tests.support.snapshot import SNAPSHOT_SCRIPT, Snapshot
from tests.support.snapshot import TreeDiff as TreeDiff
from tests.support.snapshot import compare_trees as compare_trees

TEST_ROOT = TEST_AREA

#: What the base has besides mmdebstrap's minbase variant (Essential and Priority
#: required: apt, mount, debconf...): python3 and guestpkg's runtime dependencies and
#: recommendations (debian/control), so that installing guestpkg's .deb inside is quick.
BASE_PACKAGES: tuple[str, ...] = (
    "debconf", "python3", "python3-apt", "python3-debian", "python3-requests",
    "python3-pyroute2", "python3-prctl", "python3-cryptography", "python3-zstandard",
    "python3-debconf", "python3-seccomp", "dpkg-dev", "fakeroot", "zstd", "mmdebstrap",
    "iproute2", "faketime",
)
BASE_VARIANT = "minbase"

#: A second cached base for roots that build packages (host packages, test packages):
#: what ``apt-get build-dep`` of a debhelper package needs, installed up front.
BUILDER_PACKAGES: tuple[str, ...] = (*BASE_PACKAGES, "build-essential", "debhelper")

#: Bumped when the way the base is made changes, so old caches are not reused.
BASE_FORMAT = 1

#: Where the per-test apt repository is bind-mounted inside the root.
LOCAL_REPO = "/srv/guestpkg-test-repo"
LOCAL_REPO_LIST = "/etc/apt/sources.list.d/guestpkg-test-repo.list"

DEFAULT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LC_ALL": "C.UTF-8",
    "HOME": "/root",
    "TERM": "dumb",
}

# Python run inside the root as pid 1 of its pid namespace: it reaps orphans (detached
# jobs end up as its children) and exits on SIGTERM.
_REAPER = """
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM})
sys.stdout.write("ready\\n"); sys.stdout.flush(); os.close(1)
while True:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass
    info = signal.sigtimedwait({signal.SIGCHLD, signal.SIGTERM}, 1.0)
    if info is not None and info.si_signo == signal.SIGTERM:
        sys.exit(0)
"""


class SystemRootError(RuntimeError):
    """A command inside a SystemRoot failed, or the root could not be set up."""


@dataclass(frozen=True)
class Bind:
    """A host path mounted at *target* inside the root."""

    source: Path
    target: str
    readonly: bool = True


# --- the cached base ----------------------------------------------------------------

def base_key(packages: Sequence[str], suite: str, mirror: str, variant: str) -> str:
    text = json.dumps([BASE_FORMAT, sorted(set(packages)), suite, mirror, variant])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def base_system(packages: Sequence[str] = BASE_PACKAGES, *,
                variant: str = BASE_VARIANT) -> Path:
    """The cached base tree for *packages*, made with mmdebstrap on first use.

    Concurrent callers wait on a lock; the tree appears at its final path only when
    complete (it is built under a temporary name and renamed).  A base is made again
    each ISO week, so its package lists never lag far behind the mirror (which drops
    superseded .debs after a point release); older bases go once no SystemRoot uses
    them (each holds a shared lock on ``<base>.lock``)."""
    suite, mirror = debsrc.host_codename(), debsrc.host_mirror()
    top = TEST_ROOT / "sysroots"
    week = time.strftime("%GW%V", time.gmtime())
    path = top / f"base-{suite}-{base_key(packages, suite, mirror, variant)}-{week}"
    top.mkdir(parents=True, exist_ok=True)
    with open(top / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_dir():
            _make_base(path, packages, suite, mirror, variant)
        _prune_bases(top, week)
    return path


def _prune_bases(top: Path, week: str) -> None:
    """Remove the bases of earlier weeks that no running SystemRoot uses."""
    for old in top.glob("base-*"):
        if not old.is_dir() or old.name.endswith(f"-{week}"):
            continue
        with open(old.with_name(old.name + ".lock"), "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            _remove(old)
            old.with_name(old.name + ".log").unlink(missing_ok=True)
            old.with_name(old.name + ".lock").unlink()


def _make_base(path: Path, packages: Sequence[str], suite: str, mirror: str,
               variant: str) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    if tmp.exists():
        _remove(tmp)
    hooks = [
        # No daemons may start inside (there is no init; this is a test root).
        'printf "#!/bin/sh\\nexit 101\\n" > "$1/usr/sbin/policy-rc.d"; '
        'chmod 755 "$1/usr/sbin/policy-rc.d"',
        f'mkdir -p "$1{LOCAL_REPO}" && : > "$1{LOCAL_REPO}/Packages"',
        f'echo "deb [trusted=yes] file:{LOCAL_REPO} ./" > "$1{LOCAL_REPO_LIST}"',
        'echo sysroot > "$1/etc/hostname"; : > "$1/etc/resolv.conf"',
    ]
    argv = ["mmdebstrap", "--mode=root", f"--variant={variant}", "--skip=cleanup/apt/lists",
            "--aptopt=Acquire::Languages \"none\"", f"--include={','.join(packages)}",
            *[f"--customize-hook={h}" for h in hooks],
            suite, str(tmp), f"deb {mirror} {suite} main"]
    log = path.with_name(path.name + ".log")
    # Debian's .debs through the caching proxy of tools/run-example (an environment
    # variable, not --aptopt, which mmdebstrap would leave in the base's apt.conf.d).
    from tests.support.debcache import DebCache
    from tests.support.paths import TEST_CACHE

    hosts = {urllib.parse.urlsplit(mirror).hostname or "deb.debian.org"}
    with open(log, "w") as out, DebCache(TEST_CACHE / "debs", hosts) as cache:
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "http_proxy": cache.url})
    if result.returncode != 0:
        _remove(tmp)
        raise SystemRootError(f"mmdebstrap failed ({result.returncode}); see {log}")
    os.rename(tmp, path)


def _remove(path: Path) -> None:
    """Remove a tree, also overlay work dirs that have mode 000."""
    subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=True)


# --- a running system root -----------------------------------------------------------

class SystemRoot:
    """An overlay copy of a cached base, running in its own mount, pid and uts
    namespaces until :meth:`close`.  Use as a context manager."""

    def __init__(self, base: Path, workdir: Path, binds: Sequence[Bind] = (), *,
                 copy: bool = False) -> None:
        self.base = base
        self.workdir = workdir
        self.binds = tuple(binds)
        #: a full copy of the base instead of an overlay: the root is then a plain
        #: directory on the host's disk, as a user's machine is, so that guestpkg inside
        #: can put its own overlay upper directories (build-dependency layers) under
        #: /var/lib/guestpkg (overlayfs(5) can't be the upper of another overlay)
        self.copy = copy
        self.upper = workdir / "upper"
        self.merged = workdir / "merged"
        self.repo = workdir / "repo"
        self._holder: subprocess.Popen[bytes] | None = None
        self._lock: IO[str] | None = None
        self._base_lock: IO[str] | None = None
        self.init_pid = 0

    # lifecycle

    def __enter__(self) -> SystemRoot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Mount the copy and start the root's init.  The root dies with the *thread*
        that calls this (parent-death signals follow the creating thread): call it from
        a thread that outlives the root, as pytest's fixtures do."""
        for d in (self.upper, self.workdir / "work", self.merged, self.repo):
            d.mkdir(parents=True, exist_ok=True)
        # Held while we live: new_workdir() reaps only copies whose lock is free.  It
        # is locked before it gets its name, so nobody ever sees it unlocked.
        self._lock = open(self.workdir / ".lock.new", "w")  # noqa: SIM115
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        os.rename(self.workdir / ".lock.new", self.workdir / ".lock")
        # Keeps _prune_bases() from deleting our lower layer.
        self._base_lock = open(self.base.with_name(self.base.name + ".lock"), "a")  # noqa: SIM115
        fcntl.flock(self._base_lock, fcntl.LOCK_SH)
        if not self.base.is_dir():
            raise SystemRootError(f"the base {self.base} is gone (a newer week's base "
                                  "replaced it): start the test session again")
        (self.repo / "Packages").touch()
        os.chmod(self.repo, 0o755)
        if self.copy:
            subprocess.run(["cp", "-a", "--reflink=auto", f"{self.base}/.", str(self.merged)],
                           check=True)
        # setpriv --pdeathsig: unshare dies with us; --kill-child: the namespace's init
        # dies with unshare; the kernel then kills everything in the pid namespace.
        argv = ["setpriv", "--pdeathsig", "KILL", "unshare", "--mount",
                "--propagation", "private", "--pid", "--uts", "--fork",
                "--kill-child=KILL", "sh", "-euc", self._setup_script()]
        self._holder = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline()
        if line != b"ready\n":
            self._holder.wait()
            error = self._holder.stderr.read().decode(errors="replace") \
                if self._holder.stderr else ""
            self._holder = None
            raise SystemRootError(f"system root set-up failed: {error.strip()}")
        self.init_pid = self._find_init(self._holder.pid)

    def _setup_script(self) -> str:
        m = shlex.quote(str(self.merged))
        root = f"mount --bind {m} {m}" if self.copy else (
            f"mount -t overlay overlay -o lowerdir={shlex.quote(str(self.base))},"
            f"upperdir={shlex.quote(str(self.upper))},"
            f"workdir={shlex.quote(str(self.workdir / 'work'))},index=off {m}")
        lines = [
            root,
            f"mount -t proc proc {m}/proc",
            f"mount --rbind /dev {m}/dev",
            f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {m}/dev/shm",
            f"mount -t sysfs -o ro,nosuid,nodev,noexec sysfs {m}/sys",
            f"mount -t tmpfs -o mode=755,nosuid,nodev tmpfs {m}/run",
            f"mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs {m}/tmp",
            f"mount --bind -o ro /etc/resolv.conf {m}/etc/resolv.conf",
            "hostname sysroot",
        ]
        for bind in (Bind(self.repo, LOCAL_REPO), *self.binds):
            target = f"{m}{shlex.quote(bind.target)}"
            kind = "-d" if bind.source.is_dir() else "-f"
            make = f"mkdir -p {target}" if kind == "-d" else \
                f"mkdir -p $(dirname {target}); touch {target}"
            lines.append(f"[ {kind} {target} ] || {{ {make}; }}")
            lines.append(f"mount --bind {shlex.quote(str(bind.source))} {target}")
            if bind.readonly:
                lines.append(f"mount -o remount,bind,ro {target}")
        lines.append(f"exec {shlex.quote(sys.executable)} -c {shlex.quote(_REAPER)}")
        return "\n".join(lines)

    @staticmethod
    def _find_init(unshare_pid: int) -> int:
        children = Path(f"/proc/{unshare_pid}/task/{unshare_pid}/children").read_text().split()
        if len(children) != 1:
            raise SystemRootError(f"cannot find the init of the system root: {children}")
        return int(children[0])

    def close(self) -> None:
        """Kill everything inside, let the kernel drop the mounts, delete the copy."""
        if self._holder is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.init_pid, signal.SIGKILL)
            self._holder.wait()
            for stream in (self._holder.stdout, self._holder.stderr):
                if stream is not None:
                    stream.close()
            self._holder = None
        if self.workdir.exists():
            _remove(self.workdir)
        for lock in (self._lock, self._base_lock):
            if lock is not None:
                lock.close()
        self._lock = self._base_lock = None

    # running things inside

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        input: str | bytes | None = None,
        check: bool = True,
        *,
        cwd: str = "/",
        capture: bool = True,
        timeout_s: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* inside as root with exactly *env* (default :data:`DEFAULT_ENV`).

        Output is captured as text unless *capture* is off (then it goes to our
        stdout/stderr, for progress shown to a person)."""
        outer = self.enter_argv(argv, env, cwd)
        data = input.encode() if isinstance(input, str) else input
        pipe = subprocess.PIPE if capture else None
        result = subprocess.run(outer, input=data, stdout=pipe, stderr=pipe,
                                stdin=None if data is not None else subprocess.DEVNULL,
                                timeout=timeout_s, env={"PATH": DEFAULT_ENV["PATH"]})
        done = subprocess.CompletedProcess(
            list(argv), result.returncode,
            (result.stdout or b"").decode(errors="replace"),
            (result.stderr or b"").decode(errors="replace"))
        if check and done.returncode != 0:
            raise SystemRootError(
                f"inside the system root, {shlex.join(argv)} exited {done.returncode}\n"
                f"--- stdout (tail)\n{_tail(done.stdout)}\n--- stderr (tail)\n"
                f"{_tail(done.stderr)}")
        return done

    def enter_argv(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
                   cwd: str = "/") -> list[str]:
        """The host command line that runs *argv* inside (what :meth:`run` runs):
        for callers that need their own :mod:`subprocess` handling."""
        if self._holder is None:
            raise SystemRootError("the system root is not running")
        environment = dict(DEFAULT_ENV if env is None else env)
        return ["nsenter", f"--target={self.init_pid}", "--mount", "--pid", "--uts",
                "--", "chroot", str(self.merged), "/usr/bin/env", "-i", f"--chdir={cwd}",
                *[f"{k}={v}" for k, v in environment.items()], *argv]

    def shell(self, script: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        """Run a ``sh -euc`` *script* inside (same keywords as :meth:`run`)."""
        return self.run(["sh", "-euc", script], **kwargs)  # type: ignore[arg-type]

    def background_processes(self) -> list[str]:
        """Command lines of the processes inside other than its init."""
        ns = os.readlink(f"/proc/{self.init_pid}/ns/pid")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.init_pid:
                continue
            try:
                if os.readlink(entry / "ns" / "pid") == ns:
                    cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
                    found.append(f"{entry.name}: {cmdline.decode(errors='replace').strip()}")
            except OSError:
                continue
        return found

    def wait_idle(self, timeout_s: float = 600.0) -> None:
        """Wait until nothing runs inside any more (a detached job has finished)."""
        deadline = time.monotonic() + timeout_s
        while processes := self.background_processes():
            if time.monotonic() > deadline:
                raise SystemRootError("still running inside after "
                                      f"{timeout_s:.0f} s:\n" + "\n".join(processes))
            time.sleep(0.2)

    # files

    def write_file(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        self.run(["sh", "-euc", 'mkdir -p "$(dirname "$1")"; cat > "$1"; chmod "$2" "$1"',
                  "sh", path, f"{mode:o}"], input=data)

    def read_file(self, path: str) -> str:
        return self.run(["cat", "--", path]).stdout

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def copy_in(self, source: Path, target_dir: str) -> str:
        """Copy a host file or directory into *target_dir* inside; returns its path."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(source, arcname=source.name)
        self.run(["sh", "-euc", 'mkdir -p "$1" && tar -x -C "$1" --no-same-owner',
                  "sh", target_dir], input=buffer.getvalue())
        return f"{target_dir.rstrip('/')}/{source.name}"

    def copy_out(self, paths: Sequence[str], target_dir: Path) -> list[Path]:
        """Copy files or directories from inside into *target_dir* on the host."""
        argv = self.enter_argv(["tar", "-c", "-f", "-", "--", *paths], cwd="/")
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                                env={"PATH": DEFAULT_ENV["PATH"]})
        if result.returncode != 0:
            raise SystemRootError(f"copying {paths} out failed: "
                                  f"{result.stderr.decode(errors='replace')}")
        target_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(result.stdout)) as tar:
            # Our own tar of our own root: members are the paths we asked for.
            tar.extractall(target_dir)
        return [target_dir / p.lstrip("/") for p in paths]

    def build_debs(self, source: Path, target_dir: Path) -> list[Path]:
        """Build the binary packages of the source tree *source* (a host directory)
        inside: its build dependencies from the mirror and the local repository, then
        ``dpkg-buildpackage -b -uc -us``; the .debs are copied to *target_dir*."""
        inner = self.copy_in(source, "/build")
        self.apt("build-dep", "--no-install-recommends", inner)
        self.run(["dpkg-buildpackage", "-b", "-uc", "-us"], cwd=inner)
        names = self.run(["sh", "-c", "ls /build/*.deb"]).stdout.split()
        copied = self.copy_out(names, target_dir / ".copy")
        debs = []
        for path in copied:
            final = target_dir / path.name
            os.replace(path, final)
            debs.append(final)
        _remove(target_dir / ".copy")
        return debs

    # apt, dpkg, debconf

    def apt(self, *args: str, check: bool = True, capture: bool = True,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """``apt-get -y -q ARGS`` inside, noninteractive."""
        environment = {**DEFAULT_ENV, "DEBIAN_FRONTEND": "noninteractive", **(env or {})}
        return self.run(["apt-get", "-y", "-q", "-o", "Dpkg::Use-Pty=0", *args],
                        env=environment, check=check, capture=capture)

    def apt_install(self, *args: str, preseed: str | None = None, check: bool = True,
                    capture: bool = True) -> subprocess.CompletedProcess[str]:
        """Preseed debconf (``debconf-set-selections`` lines), then ``apt-get install``."""
        if preseed is not None:
            self.debconf_set_selections(preseed)
        return self.apt("install", *args, check=check, capture=capture)

    def debconf_set_selections(self, selections: str) -> None:
        self.run(["debconf-set-selections"], input=selections.rstrip("\n") + "\n")

    def hide_archive_packages(self, *packages: str) -> None:
        """Pin *packages* of the Debian mirror away (Pin-Priority -1), so that this
        system behaves as if the archive did not have them: a real guest is not in the
        archive, but the example's hello is, and apt would otherwise replace a removed
        host's ``hello 2.10-3~local`` with the archive's 2.10-3 instead of removing it."""
        origin = urllib.parse.urlsplit(debsrc.host_mirror()).hostname
        stanzas = [f"Package: {p}\nPin: origin {origin}\nPin-Priority: -1\n"
                   for p in packages]
        self.write_file("/etc/apt/preferences.d/guestpkg-tests-hidden", "\n".join(stanzas))

    def dpkg_status(self, package: str) -> str | None:
        """dpkg's Status of *package* (``install ok installed``, ``deinstall ok
        config-files``...), or None if dpkg does not know it."""
        result = self.run(["dpkg-query", "-W", "-f=${Status}", package], check=False)
        status = result.stdout.strip()
        if result.returncode != 0 or not status or status.endswith(" not-installed"):
            return None
        return status

    def installed_version(self, package: str) -> str | None:
        """The version of *package* if it is installed (``ii``), else None."""
        result = self.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", package],
                          check=False)
        abbrev, _, version = result.stdout.partition(" ")
        return version.strip() if result.returncode == 0 and abbrev.strip() == "ii" else None

    def add_debs(self, paths: Sequence[Path]) -> None:
        """Put .debs into the root's local apt repository and make apt see them (an
        update of that repository only: no network)."""
        for path in paths:
            shutil.copy2(path, self.repo / path.name)
        self._index_repo()

    def remove_debs(self, names: Sequence[str]) -> None:
        """Take .debs (file names) out of the local repository again."""
        for name in names:
            (self.repo / name).unlink()
        self._index_repo()

    def _index_repo(self) -> None:
        packages = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"],
                                  cwd=self.repo, check=True, capture_output=True).stdout
        (self.repo / "Packages").write_bytes(packages)
        digest = hashlib.sha256(packages).hexdigest()
        (self.repo / "Release").write_text(
            "Origin: guestpkg-tests\nLabel: guestpkg-tests\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S UTC', time.gmtime())}\n"
            f"SHA256:\n {digest} {len(packages)} Packages\n")
        for path in self.repo.iterdir():
            os.chmod(path, 0o644)
        self.apt("update", "-o", f"Dir::Etc::SourceList={LOCAL_REPO_LIST}",
                 "-o", "Dir::Etc::SourceParts=-", "-o", "APT::Get::List-Cleanup=0")

    # piuparts-like checks

    def tree_snapshot(self, *, contents: bool = False,
                      excluded: Sequence[str] = SNAPSHOT_EXCLUDED) -> Snapshot:
        """Every path in the root (not following links, leaving out *excluded*) with
        its type and mode, owner, size or link target, and SHA256 if *contents*."""
        result = self.run(["python3", "-c", SNAPSHOT_SCRIPT, json.dumps(list(excluded)),
                           "1" if contents else "0"])
        snapshot: Snapshot = json.loads(result.stdout)
        return snapshot


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


#: Where guestpkg keeps its state inside a system root (its default vardir).
INNER_VARDIR = "/var/lib/guestpkg"
#: Where a test vardir's buildroots and layers are mounted inside a system root.
OUTER_VARDIR = "/srv/guestpkg-test-vardir"


def buildroot_binds(buildroots: Path) -> list[Bind]:
    """Bind mounts that give guestpkg inside a system root the buildroots of a test
    vardir (``<vardir>/buildroots``, see :mod:`guestpkg.buildroot.roots`), under
    :data:`OUTER_VARDIR`: ``buildroots`` read-only, with its lock files (``<name>.lock``,
    ``<name>/gen-<id>.lock``) read-write on top: a fork takes a shared flock(2) on its
    generation's, guestpkg's reaper tries each name's; the locks work across the bind,
    so the host's ``update`` does not collect a generation in use inside either.  The
    ``layers`` cache is read-write, and so is ``builds``: the user-namespace sandbox
    makes idmapped mounts of a build's directory, which the system root's own overlayfs
    can't carry (mount_setattr(2): EINVAL), as a machine's /var/lib (ext4) can.

    :func:`link_buildroots` then points ``/var/lib/guestpkg/{buildroots,layers,builds,forks}``
    at them with symlinks, not mounts, so that purging guestpkg inside (its postrm does
    ``rm -rf /var/lib/guestpkg``) removes symlinks instead of failing on a mount
    point or emptying the host's layer cache."""
    layers = buildroots.parent / "layers"
    layers.mkdir(parents=True, exist_ok=True)
    inner = f"{OUTER_VARDIR}/buildroots"
    binds = [Bind(buildroots, inner, readonly=True)]
    for root in sorted(buildroots.glob("*/root.json")):
        root.parent.with_name(root.parent.name + ".lock").touch()  # <name>.lock
        for generation in root.parent.glob("gen-*"):
            if generation.is_dir():
                generation.with_name(generation.name + ".lock").touch()
    for lock in sorted([*buildroots.glob("*.lock"), *buildroots.glob("*/*.lock")]):
        binds.append(Bind(lock, f"{inner}/{lock.relative_to(buildroots)}", readonly=False))
    binds.append(Bind(layers, f"{OUTER_VARDIR}/layers", readonly=False))
    builds = buildroots.parent / "builds"
    builds.mkdir(mode=0o700, exist_ok=True)
    binds.append(Bind(builds, f"{OUTER_VARDIR}/builds", readonly=False))
    # And forks: a layer is made in a fork whose upper directory is on disk, which
    # overlayfs(5) refuses on the root's own overlay (EINVAL: issue 9's status 125).
    forks = buildroots.parent / "forks"
    forks.mkdir(mode=0o700, exist_ok=True)
    binds.append(Bind(forks, f"{OUTER_VARDIR}/forks", readonly=False))
    return binds


def link_buildroots(root: SystemRoot) -> None:
    """``/var/lib/guestpkg/buildroots``, ``layers``, ``builds`` and ``forks`` inside, as
    symlinks to the bind mounts that :func:`buildroot_binds` made."""
    root.shell(f"mkdir -p {INNER_VARDIR}\n"
               f"ln -sfn {OUTER_VARDIR}/buildroots {INNER_VARDIR}/buildroots\n"
               f"ln -sfn {OUTER_VARDIR}/layers {INNER_VARDIR}/layers\n"
               f"ln -sfn {OUTER_VARDIR}/builds {INNER_VARDIR}/builds\n"
               f"ln -sfn {OUTER_VARDIR}/forks {INNER_VARDIR}/forks")


#: A copy made by new_workdir() but never started is left alone this long.
UNSTARTED_GRACE_S = 86400.0


def new_workdir() -> Path:
    """A fresh directory for one SystemRoot under ``TEST_ROOT/sysroot-runs``; copies
    that a killed test run left behind (their lock is free) are removed first."""
    runs = TEST_ROOT / "sysroot-runs"
    runs.mkdir(parents=True, exist_ok=True)
    for stale in runs.glob("root-*"):
        try:
            lock = open(stale / ".lock")  # noqa: SIM115
        except FileNotFoundError:
            # Not started yet (or killed before it started): only reaped when old.
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > UNSTARTED_GRACE_S:
                    _remove(stale)
            continue
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live SystemRoot, maybe of another test session
            _remove(stale)
    return Path(tempfile.mkdtemp(prefix="root-", dir=runs))


@contextlib.contextmanager
def system_root(binds: Sequence[Bind] = (), *, packages: Sequence[str] = BASE_PACKAGES,
                workdir: Path | None = None) -> Iterator[SystemRoot]:
    """A running :class:`SystemRoot` over the cached base, destroyed on exit."""
    with SystemRoot(base_system(packages), workdir or new_workdir(), binds) as root:
        yield root
