# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg as a normal user: no root, no sudo, no setuid helper of ours (newuidmap and
newgidmap from uidmap map the ids; guestpkg.sandbox.userrange).

A throwaway user (tests/support/testuser.py, a range of subordinate ids of its own)
with an empty scratch ``HOME`` (no guestpkg state, no XDG directories: the defaults,
``~/.local/state/guestpkg`` and ``~/.cache/guestpkg``, are what is tested) runs guestpkg
from this checkout: ``buildroot create`` (mmdebstrap; Debian's .debs through the tests'
caching proxy, tests/support/debcache.py, which the user's apt configuration names as a
user's would), ``build hello_2.10-3.dsc`` (a new build-dependency layer), and
``shell`` with the sandbox escape probe.  The .debs must be byte for byte those of the
root builds of the same run (the session fixture ``hello``).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from guestpkg.build.deb import BuildResult
from tests.support import debsrc
from tests.support.debcache import DebCache, apt_proxy_conf
from tests.support.paths import TEST_AREA, TEST_CACHE
from tests.support.testuser import NormalUser, as_user, ensure_test_user

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: What the escape probe tries in the user's sandbox; each must fail with EPERM.
DENIED = ("mount", "unshare-user", "ptrace-traceme", "keyctl", "bpf", "mknod:/tmp/null")


@dataclass
class UserRun:
    user: NormalUser
    home: Path
    create: subprocess.CompletedProcess[str]
    build: subprocess.CompletedProcess[str]
    shell: subprocess.CompletedProcess[str]
    shell_root: subprocess.CompletedProcess[str]
    out: Path
    env: dict[str, str]

    @property
    def state(self) -> Path:
        return self.home / ".local" / "state" / "guestpkg"


def _check(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, (
        f"{what} as a normal user failed ({result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


@pytest.fixture(scope="module")
def user_run() -> Iterator[UserRun]:
    user = ensure_test_user()
    home = scratch_home(user)
    src, out = home / "src", home / "out"
    dsc = debsrc.dsc_path("hello")
    try:
        src.mkdir()
        for path in dsc.parent.glob("hello_2.10*"):
            shutil.copy(path, src / path.name)
        probe = home / "probe"
        subprocess.run(["gcc", "-static", "-O1", "-o", str(probe),
                        str(REPO / "tests" / "sandbox" / "probe.c")], check=True)
        lib = installed_copy(home)
        for path in (src, *src.iterdir(), probe):
            os.chown(path, user.uid, user.gid)
        mirror = urllib.parse.urlsplit(debsrc.host_mirror()).hostname or "deb.debian.org"
        with DebCache(TEST_CACHE / "debs", {mirror, "deb.debian.org"}) as cache:
            apt_conf = home / "apt.conf"
            apt_conf.write_text(apt_proxy_conf(cache))
            # Exactly what a user's login would have, and nothing of the tests'
            # GUESTPKG_* settings: the defaults are under test.
            env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8",
                   "PYTHONPATH": str(lib), "APT_CONFIG": str(apt_conf),
                   "GUESTPKG_CONFDIR": str(home / "no-system-config")}
            guestpkg = ["/usr/bin/python3", "-m", "guestpkg"]
            create = as_user(user, [*guestpkg, "buildroot", "create"], env, home)
            _check(create, "guestpkg buildroot create")
            build = as_user(user, [*guestpkg, "build", "--quiet-build",
                                   str(src / dsc.name), str(out)], env, home)
            _check(build, "guestpkg build")
        probes = ["/probe", "status", "cat:/proc/self/uid_map", *DENIED]
        shell = as_user(user, [*guestpkg, "shell", "--bind", f"{probe}:/probe", "--",
                               *probes], env, home)
        shell_root = as_user(user, [*guestpkg, "shell", "--as-root", "--bind",
                                    f"{probe}:/probe", "--", *probes], env, home)
        yield UserRun(user, home, create, build, shell, shell_root, out, env)
    finally:
        shutil.rmtree(home)  # as root: the user's subordinate ids are no obstacle


def installed_copy(home: Path) -> Path:
    """guestpkg as the user would have it installed: a copy it can read wherever the
    checkout is (a CI's may be in root's 0700 home); the directory for PYTHONPATH."""
    lib = home / "lib"
    shutil.copytree(REPO / "guestpkg", lib / "guestpkg",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return lib


def scratch_home(owner: NormalUser) -> Path:
    """An empty HOME the user can reach (pytest's tmp_path is root's, 0700)."""
    top = TEST_AREA / "user-mode"
    top.mkdir(mode=0o755, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="home-", dir=top))
    os.chown(home, owner.uid, owner.gid)
    return home


def test_a_user_without_subordinate_ids_is_told_how_to_get_them() -> None:
    """nobody has no range in /etc/subuid: one line naming the fix, exit status 5 (the
    system is not in a usable state), and no buildroot started."""
    nobody = NormalUser("nobody", 65534, 65534, 0, 0)
    home = scratch_home(nobody)
    try:
        _refused(nobody, home)
    finally:
        shutil.rmtree(home)


def _refused(nobody: NormalUser, home: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PYTHONPATH": str(installed_copy(home)),
           "GUESTPKG_CONFDIR": str(home / "no-system-config")}
    result = as_user(nobody, ["/usr/bin/python3", "-m", "guestpkg", "buildroot", "create"],
                     env, home)
    assert result.returncode == 5, result.stderr
    assert "/etc/subuid gives nobody no range of 65536 subordinate ids" in result.stderr
    assert "usermod --add-subuids N-M --add-subgids N-M nobody" in result.stderr
    assert not (home / ".local" / "state" / "guestpkg" / "buildroots").exists()


def debs(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.deb"))}


def build_depends(buildinfo: Path) -> str:
    text = buildinfo.read_text()
    return text[text.index("Installed-Build-Depends:"):].split("\nEnvironment:")[0]


def test_build_as_a_normal_user_gives_the_root_builds_debs(
        user_run: UserRun, hello: tuple[BuildResult, BuildResult, bool]) -> None:
    in_userns, real_root, _ = hello
    name = "hello_2.10-3_amd64.buildinfo"
    assert in_userns.changes is not None
    # Same packages in both build environments, or the comparison says nothing: a
    # mismatch means the tests' shared base root is older than the mirror (run
    # guestpkg buildroot update on it) rather than a fault of the user's build.
    assert build_depends(user_run.out / name) == build_depends(in_userns.changes.parent / name)
    mine = debs(user_run.out)
    assert sorted(mine) == ["hello-dbgsym_2.10-3_amd64.deb", "hello_2.10-3_amd64.deb"]
    assert in_userns.changes is not None and real_root.changes is not None
    assert mine == debs(in_userns.changes.parent) == debs(real_root.changes.parent)
    assert "built hello 2.10-3: 5 files" in user_run.build.stdout


def test_state_is_in_the_users_xdg_directories_and_private(user_run: UserRun) -> None:
    user, state = user_run.user, user_run.state
    for directory in (state / "buildroots", state / "layers", state / "builds",
                      state / "forks"):
        st = directory.lstat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.uid, 0o700), directory
    assert (user_run.home / ".cache" / "guestpkg" / "debs").is_dir()
    assert list((state / "log" / "build").glob("hello_2.10-3_amd64-*.build"))
    # Nothing of killed or finished builds is left.
    assert list((state / "builds").iterdir()) == []
    assert list((state / "forks").iterdir()) == []


def _owners(tree: Path) -> set[tuple[int, int]]:
    found = {(tree.lstat().st_uid, tree.lstat().st_gid)}
    for directory, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(directory, name))
            found.add((st.st_uid, st.st_gid))
    return found


def _world_writable(tree: Path) -> list[str]:
    """Entries others may write, but for sticky directories (/tmp, /var/tmp)."""
    found = []
    for directory, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(directory, name))
            if stat.S_ISLNK(st.st_mode) or not st.st_mode & stat.S_IWOTH:
                continue
            if not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
                found.append(os.path.join(directory, name))
    return found


def test_roots_and_layers_belong_to_the_users_range(user_run: UserRun) -> None:
    user = user_run.user
    [root] = [p for p in (user_run.state / "buildroots" / "default").glob("gen-*")
              if p.is_dir()]
    [layer] = [p for p in (user_run.state / "layers").iterdir()
               if p.is_dir() and len(p.name) == 32]
    for tree in (root, layer / "tree"):
        owners = _owners(tree)
        assert all(user.subuid <= uid < user.subuid + 65536 and
                   user.subgid <= gid < user.subgid + 65536 for uid, gid in owners), \
            (tree, sorted(owners)[:5])
        assert (user.subuid, user.subgid) in owners  # root inside
        assert _world_writable(tree) == [], tree
    passwd = (root / "etc" / "passwd").read_text()
    assert "build:x:1234:1234:" in passwd
    assert (root / "home" / "build").lstat().st_uid == user.subuid + 1234


def test_log_says_which_ids_ran_and_that_there_are_no_cgroups(user_run: UserRun) -> None:
    [log] = (user_run.state / "log" / "build").glob("hello_2.10-3_amd64-*.build")
    text = log.read_text()
    assert (f"guestpkg: sandbox ids: user namespace of user {user_run.user.name}, uid "
            f"0-65535 inside = host uid {user_run.user.subuid}-") in text
    assert "(guestpkg runs as a normal user, who may not make cgroups): the sandbox " \
        "runs without" in user_run.build.stderr


def _results(run: subprocess.CompletedProcess[str]) -> dict[str, str]:
    results: dict[str, str] = {}
    for line in run.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name == "status" and ":" in value:
            key, _, field = value.partition(":")
            results[key.strip()] = field.strip()
        else:
            results.setdefault(name, value)
    return results


@pytest.mark.parametrize("as_root", [False, True], ids=["build-user", "root-inside"])
def test_shell_as_a_normal_user_keeps_the_sandbox_guarantees(user_run: UserRun,
                                                             as_root: bool) -> None:
    run = user_run.shell_root if as_root else user_run.shell
    _check(run, "guestpkg shell")
    results = _results(run)
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(results[field], 16) == 0, (field, run.stdout)
    assert results["NoNewPrivs"] == "1" and results["Seccomp"] == "2"
    assert results["Uid"].split() == ["0" if as_root else "1234"] * 4
    # Not the initial user namespace: its ids are the user's subordinate ones.
    assert results["cat"].split() == ["0", str(user_run.user.subuid), "65536"]
    for name in DENIED:
        assert results[name.split(":")[0]] == "EPERM", (name, run.stdout)


def _descendants(pid: int) -> set[int]:
    """*pid*'s processes and theirs (other sessions of the tests use the same user)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat_line = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat_line.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        for child in children.get(current, []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pids: set[int]) -> list[str]:
    """Those of *pids* still running (zombies are dead), with their command lines."""
    left = []
    for pid in sorted(pids):
        try:
            state = (Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()[:100]
        except OSError:
            continue
        if state != "Z":
            left.append(f"{pid} {state} {cmdline!r}")
    return left


def test_sigkill_of_a_users_guestpkg_leaves_nothing_and_the_next_run_reaps(
        user_run: UserRun) -> None:
    """The sandbox dies with guestpkg (pid namespace, parent-death signals); the fork
    left on disk, owned by the user's subordinate ids, goes with the next command."""
    user, forks = user_run.user, user_run.state / "forks"
    guestpkg = ["/usr/bin/python3", "-m", "guestpkg"]
    proc = subprocess.Popen(
        ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--",
         *guestpkg, "shell", "--as-root", "--", "sh", "-c", "echo x > /root/mark; sleep 600"],
        env=user_run.env, cwd=user_run.home, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    sandbox: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while not any(forks.glob("*/upper/root/mark")):
            assert time.monotonic() < deadline and proc.poll() is None, "the shell never ran"
            time.sleep(0.1)
        sandbox = _descendants(proc.pid)
    finally:
        proc.kill()
        proc.wait()
    assert len(sandbox) >= 4  # helper, init, sh, sleep
    deadline = time.monotonic() + 10
    while left := _alive(sandbox):
        assert time.monotonic() < deadline, f"sandbox processes outlived guestpkg: {left}"
        time.sleep(0.1)
    assert [p for p in forks.iterdir() if p.is_dir()]  # left behind, owned by subuids
    _check(as_user(user, [*guestpkg, "shell", "--", "true"], user_run.env, user_run.home),
           "guestpkg shell")
    assert list(forks.iterdir()) == []
