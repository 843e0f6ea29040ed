# SPDX-License-Identifier: GPL-2.0-or-later
"""Forks of a real base root under the real sandbox: they persist across commands, never
change the base root, leave no mount in the host, go away on exit, error and Ctrl-C,
and what a SIGKILLed guestpkg left is reaped by the next run.

Fork work runs in a child process (:func:`in_child`): with ``fork_upper = tmpfs`` a fork
moves its process into a private mount namespace, and the test process should stay in
the host's, where it compares the host's mount table before and after.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guestpkg.buildroot import BaseRoot, fork, forks_dir, reap_forks
from guestpkg.config import Config
from guestpkg.errors import CommandFailed, UsageError
from guestpkg.sandbox import run_sandboxed

REPO = Path(__file__).resolve().parents[2]

#: Files whose content a fork's command changes or deletes; the base must keep them.
WATCHED = ("etc/passwd", "etc/apt/sources.list", "usr/bin/dpkg", "bin/ls", "etc/hostname")

#: Writes everywhere a root can: replace, append, delete, chmod, new files and dirs.
VANDAL = ("echo evil >> /etc/passwd; rm -rf /etc/apt /usr/share/doc; "
          "echo x > /usr/bin/dpkg; chmod 000 /bin/ls; rm -f /etc/hostname; "
          "mkdir -p /opt/new/deep; touch /usr/bin/new-tool; ln -s /x /lib/new-link; "
          "mv /var/lib/dpkg/status /var/lib/dpkg/status.moved")


def tree_fingerprint(tree: Path) -> str:
    """Hash of every path with its mode and size, and of the watched files' content."""
    digest = hashlib.sha256()
    for directory, dirs, files in os.walk(tree):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            digest.update(f"{os.path.relpath(path, tree)} {st.st_mode:o} {st.st_size} "
                          f"{st.st_mtime_ns}\n".encode())
    for rel in WATCHED:
        digest.update((tree / rel).read_bytes())
    return digest.hexdigest()


#: Where a leak of ours would show: the test areas, and the directories on which the
#: sandbox stages its root (guestpkg.sandbox.mounts.STAGING_CANDIDATES).
WATCHED_MOUNT_POINTS = ("/var/tmp", "/tmp", "/mnt", "/media", "/srv", "/opt", "/boot",
                        "/home")


def _relevant(mount_point: str, fstype: str) -> bool:
    return fstype in ("overlay", "tmpfs") and any(
        mount_point == d or mount_point.startswith(d + "/") for d in WATCHED_MOUNT_POINTS)


def host_mounts() -> list[str]:
    """The host's mount table (pid 1's view: ours may be a private copy).

    Every line, except that tmpfs and overlay mounts count only where ours could leak
    (WATCHED_MOUNT_POINTS): other test sessions running at the same time may mount
    elsewhere, and that must not fail this test."""
    lines = []
    for line in Path("/proc/1/mountinfo").read_text().splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        if fstype not in ("overlay", "tmpfs") or _relevant(fields[4], fstype):
            lines.append(line)
    return lines


def findmnt() -> list[str]:
    """The same from findmnt(8), the way an administrator would look."""
    out = subprocess.run(["findmnt", "--task", "1", "--list", "-n", "-o",
                          "TARGET,SOURCE,FSTYPE"], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines()
            if line.split()[-1] not in ("overlay", "tmpfs")
            or _relevant(line.split()[0], line.split()[-1])]


def in_child(work: Callable[[], None]) -> None:
    """Run *work* in a forked child process and fail if it fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            work()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed (traceback above)"


@pytest.fixture(params=["tmpfs", "disk", "disk-root-ids"])
def config(request: pytest.FixtureRequest, test_config: Config, tmp_path: Path) -> Config:
    """The test config with forks in a vardir of this test's own (the base root lives
    in the shared test vardir; other sessions' forks don't mix with ours); forks on a
    tmpfs and on disk in a user namespace, and on disk with the host's ids."""
    upper, _, ids = request.param.partition("-")
    return test_config.replace(fork_upper=upper, vardir=tmp_path / "vardir",
                               id_mapping="root" if ids else "userns")


@pytest.fixture
def no_leftovers(config: Config, base_root: BaseRoot) -> Iterator[None]:
    """The base root, the host's mounts and the forks directory are as before."""
    before = tree_fingerprint(base_root.path)
    mounts = host_mounts()
    yield
    assert tree_fingerprint(base_root.path) == before
    assert host_mounts() == mounts
    top = forks_dir(config)
    assert not top.is_dir() or not list(top.iterdir())


def test_fork_persists_across_commands_and_never_changes_the_base(
        config: Config, base_root: BaseRoot, no_leftovers: None) -> None:
    def work() -> None:
        with fork(config, base_root) as f:
            assert f.spec(["true"]).lowerdirs == (base_root.path,)
            run_sandboxed(f.spec(["/bin/sh", "-c", VANDAL]))
            run_sandboxed(f.spec(["/bin/sh", "-c",
                                  "grep -q evil /etc/passwd && test ! -e /etc/apt && "
                                  "test -d /opt/new/deep && test ! -e /etc/hostname"]))
            assert (f.upperdir / "usr/bin/new-tool").exists()
            # The build user reads the tree, its writes land in the upper dir too.
            run_sandboxed(f.spec(["/bin/sh", "-c", "echo hi > /tmp/by-user"],
                                 uid=base_root.build_uid, gid=base_root.build_uid))
            # In the upper dir it has the host uid the fork maps the build user to.
            host_uid = base_root.build_uid + (f.slice.uid_base if f.slice else 0)
            assert (f.upperdir / "tmp/by-user").stat().st_uid == host_uid
            fork_dir = f.directory
        assert not fork_dir.exists()
        assert not fork_dir.with_name(fork_dir.name + ".lock").exists()
    in_child(work)


def test_fork_is_destroyed_on_error_and_on_ctrl_c(
        config: Config, base_root: BaseRoot, no_leftovers: None) -> None:
    def work() -> None:
        seen = []
        for exception in (CommandFailed, KeyboardInterrupt):
            with pytest.raises(exception):
                with fork(config, base_root) as f:
                    seen.append(f.directory)
                    run_sandboxed(f.spec(["/bin/sh", "-c", "touch /etc/x"]))
                    if exception is KeyboardInterrupt:
                        raise KeyboardInterrupt
                    run_sandboxed(f.spec(["/bin/sh", "-c", "exit 3"]))
        assert len(seen) == 2 and not any(p.exists() for p in seen)
    in_child(work)


def test_keep_upper_makes_a_layer(config: Config, base_root: BaseRoot, tmp_path: Path,
                                  no_leftovers: None) -> None:
    layer = tmp_path / "layers" / "deps"

    def work() -> None:
        with fork(config, base_root) as f:
            run_sandboxed(f.spec(["/bin/sh", "-c",
                                  "mkdir -m 1777 /opt/dep && echo 1 > /opt/dep/v && rm -r /etc/apt "
                                  "&& rm /etc/hostname"]))
            run_sandboxed(f.spec(["/bin/sh", "-c", "echo u > /opt/dep/by-user"],
                                 uid=base_root.build_uid, gid=base_root.build_uid))
            f.keep_upper(layer)
            with pytest.raises(UsageError):
                f.spec(["true"])
        with fork(config, base_root, layers=(layer,)) as f:
            assert f.spec(["true"]).lowerdirs == (layer, base_root.path)
            # Whiteouts survived the move: deleted things stay deleted in the new fork.
            run_sandboxed(f.spec(["/bin/sh", "-c",
                                  "test \"$(cat /opt/dep/v)\" = 1 && test ! -e /etc/apt "
                                  "&& test ! -e /etc/hostname && echo 2 > /opt/dep/v"]))
        assert (layer / "opt/dep/v").read_text() == "1\n"
    in_child(work)
    # A layer on disk has the ids of inside, whatever the fork's mapping was.
    assert (layer / "opt/dep/v").stat().st_uid == 0
    assert (layer / "opt/dep/by-user").stat().st_uid == base_root.build_uid
    assert (layer / "opt/dep/by-user").stat().st_gid == base_root.build_uid


def test_stale_forks_are_reaped_live_ones_are_not(config: Config, base_root: BaseRoot,
                                                  no_leftovers: None) -> None:
    top = forks_dir(config)
    top.mkdir(parents=True, exist_ok=True)
    stale = top / "deadbeefdeadbeef"
    (stale / "upper" / "etc").mkdir(parents=True)
    (top / "deadbeefdeadbeef.lock").touch()
    # A live fork: its lock is held by another process (a child that waits for us).
    read_end, write_end = os.pipe()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl,os,sys; f=open(sys.argv[1],'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); os.read(0, 1)",
         str(top / "cafecafecafecafe.lock")], stdin=read_end, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"locked\n"
        (top / "cafecafecafecafe" / "upper").mkdir(parents=True)
        reaped = reap_forks(config)
        assert stale in reaped and not stale.exists()
        assert not (top / "deadbeefdeadbeef.lock").exists()
        assert (top / "cafecafecafecafe" / "upper").is_dir()
    finally:
        os.close(write_end)
        holder.wait()
        os.close(read_end)
    assert top / "cafecafecafecafe" in reap_forks(config)


#: The child of the crash test: `guestpkg shell -- CMD` in a few lines.
CRASH_CHILD = """
import sys
from pathlib import Path
from guestpkg.buildroot import fork, open_base_root
from guestpkg.config import Config
from guestpkg.sandbox import run_sandboxed
area, vardir = Path(sys.argv[1]), Path(sys.argv[2])
config = Config.defaults(vardir=area / "vardir", logdir=area / "log",
                         cachedir=area / "cache", fork_upper=sys.argv[3])
base = open_base_root(config, "default")
with fork(config.replace(vardir=vardir), base) as f:
    print(f.id, flush=True)
    run_sandboxed(f.spec(["/bin/sh", "-c", sys.argv[4]]))
"""


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _wait_until(condition: Callable[[], bool], limit_s: float = 30.0) -> bool:
    # Not a timing assertion: a generous deadline for the kernel to tear down what a
    # SIGKILL ended, polled so that the test is as fast as the machine.
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _crash_child(how: str, config: Config, base_root: BaseRoot, command: str) -> list[str]:
    if how == "library":
        area = base_root.directory.parent.parent.parent
        return ["/usr/bin/python3", "-c", CRASH_CHILD, str(area), str(config.vardir),
                config.fork_upper, command]
    # The real command, in a vardir of its own whose buildroots are the shared ones.
    config.vardir.mkdir(parents=True)
    (config.vardir / "buildroots").symlink_to(base_root.directory.parent)
    return ["/usr/bin/python3", "-m", "guestpkg", "shell", "--vardir", str(config.vardir),
            "--fork-upper", config.fork_upper, "--as-root", "--", "/bin/sh", "-c",
            command]


@pytest.mark.parametrize("how", ["library", "guestpkg shell"])
def test_sigkill_mid_command_leaves_nothing_behind(how: str, config: Config,
                                                   base_root: BaseRoot,
                                                   no_leftovers: None) -> None:
    marker = f"98765{os.getpid()}"
    command = f"{VANDAL}; echo started; exec sleep {marker}"
    mounts = host_mounts()
    findmnt_before = findmnt()
    child = subprocess.Popen(_crash_child(how, config, base_root, command),
                             stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                             cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout is not None
    if how == "library":
        assert child.stdout.readline().strip()  # the fork's id
    assert child.stdout.readline().strip() == "started"
    assert _processes_with(marker)
    fork_ids = [p.name for p in forks_dir(config).iterdir() if p.is_dir()]
    assert len(fork_ids) == 1
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert _wait_until(lambda: not _processes_with(marker)), "sandboxed processes survived"
    assert host_mounts() == mounts
    assert findmnt() == findmnt_before
    # The dead run's fork is still there (its writes on disk, or an empty mount point
    # for tmpfs); the next guestpkg run reaps it.
    fork_dir = forks_dir(config) / fork_ids[0]
    assert fork_dir.is_dir()
    subprocess.run(["/usr/bin/python3", "-m", "guestpkg", "buildroot", "list",
                    "--vardir", str(config.vardir)], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert not fork_dir.exists()
    assert not fork_dir.with_name(fork_dir.name + ".lock").exists()
