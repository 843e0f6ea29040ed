# SPDX-License-Identifier: GPL-2.0-or-later
"""What a sandbox's ids are on the host, and what a host process with those ids can do.

The attack from issue 11: with real host ids the build user is host uid 4242 (1234 in
real builds), which some host account may have; a host process running as that uid
reads and writes the running build's tree through ``/proc/<pid>/root`` and could change
what the build produces.  With the user-namespace sandbox the build's ids are a slice of
guestpkg's subordinate range that no account has, every sandbox has its own slice, and
a host process, even one with exactly the build's ids, is in another user namespace:
the kernel refuses it access to the build's processes (commoncap's ptrace check needs
CAP_SYS_PTRACE in the build's namespace, which only root has).  The upper directory on
disk sits in a directory only root may enter."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from guestpkg.sandbox import Bind, SandboxSpec
from guestpkg.sandbox.runner import helper_argv, helper_env
from guestpkg.sandbox.spec import to_json
from guestpkg.sandbox.subids import SLICE_SIZE

from .conftest import BUILD_UID, PROBE_ENV


@dataclass
class Running:
    pid: int            # the probe's pid on the host
    upper: Path         # the overlay's upper directory on the host
    uid_map: tuple[int, int, int]
    gid_map: tuple[int, int, int]


def _cmdline(pid: str) -> bytes:
    try:
        return (Path("/proc") / pid / "cmdline").read_bytes()
    except OSError:
        return b""


def _map(path: Path) -> tuple[int, int, int]:
    inside, outside, count = path.read_text().split()
    return int(inside), int(outside), int(count)


@contextlib.contextmanager
def running(tiny_root: Path, probe: Path, area: Path, id_mapping: str) -> Iterator[Running]:
    """A sandbox whose build user wrote /tmp/secret and now sleeps, with its upper
    directory on disk below a directory of root's (0700) as a fork's is."""
    token = f"sleep:{300 + int.from_bytes(os.urandom(2), 'big') % 9000}"  # to find it by
    forks = area / "forks"
    upper, work = forks / "upper", forks / "work"
    for directory in (upper, work):
        directory.mkdir(parents=True)
    forks.chmod(0o700)
    spec = SandboxSpec(argv=("/probe", "write:/tmp/secret:build output", "echo:ready", token),
                       lowerdirs=(tiny_root,), upperdir=upper, workdir=work,
                       uid=BUILD_UID, gid=BUILD_UID, env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),), id_mapping=id_mapping)
    spec_path = area / "spec.json"
    spec_path.write_text(to_json(spec))
    log = area / "log"
    with open(log, "w") as out:
        helper = subprocess.Popen(helper_argv(str(spec_path)), env=helper_env(), cwd="/",
                                  stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while "echo ready" not in log.read_text():
            assert helper.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.05)
        pid = next(int(p) for p in os.listdir("/proc") if p.isdigit()
                   and _cmdline(p).startswith(b"/probe\0")
                   and token.encode() in _cmdline(p))
        yield Running(pid, upper, _map(Path(f"/proc/{pid}/uid_map")),
                      _map(Path(f"/proc/{pid}/gid_map")))
    finally:
        helper.kill()
        helper.wait()


def attempt_as(uid: int, gid: int, paths: list[Path]) -> list[str]:
    """From a host process with *uid* and *gid*: read, then append to each path."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            results = []
            for path in paths:
                for mode in ("r", "a"):
                    try:
                        with open(path, mode) as f:
                            f.read() if mode == "r" else f.write("changed by the host")
                        results.append("OK")
                    except OSError as e:
                        results.append(os.strerror(e.errno or 0))
            os.write(write_end, "\n".join(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        text = f.read()
    os.waitpid(child, 0)
    return text.splitlines()


def host_visible_ids(run: Running) -> list[tuple[int, int]]:
    """The host ids of root inside and of the build user."""
    _, uid_base, _ = run.uid_map
    _, gid_base, _ = run.gid_map
    return [(uid_base, gid_base), (uid_base + BUILD_UID, gid_base + BUILD_UID)]


def test_host_process_with_the_builds_ids_cannot_reach_its_files(
        tiny_root: Path, probe: Path, tmp_path: Path) -> None:
    with running(tiny_root, probe, tmp_path, "userns") as run:
        targets = [Path(f"/proc/{run.pid}/root/tmp/secret"), run.upper / "tmp" / "secret"]
        assert (run.upper / "tmp" / "secret").read_text() == "build output"
        for uid, gid in host_visible_ids(run):
            assert attempt_as(uid, gid, targets) == ["Permission denied"] * 4, (uid, gid)
        assert (run.upper / "tmp" / "secret").read_text() == "build output"


def test_with_real_host_ids_the_same_attack_works(tiny_root: Path, probe: Path,
                                                  tmp_path: Path) -> None:
    """The control: what issue 11 found, and why ``id_mapping = root`` is no default."""
    with running(tiny_root, probe, tmp_path, "root") as run:
        assert run.uid_map == (0, 0, 4294967295)  # no user namespace
        results = attempt_as(BUILD_UID, BUILD_UID, [Path(f"/proc/{run.pid}/root/tmp/secret")])
        assert results == ["OK", "OK"]


def test_ids_inside_map_to_no_host_account(tiny_root: Path, probe: Path,
                                           tmp_path: Path) -> None:
    with running(tiny_root, probe, tmp_path, "userns") as run:
        inside, uid_base, count = run.uid_map
        assert inside == 0 and count == SLICE_SIZE
        status = Path(f"/proc/{run.pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1:] == [str(uid_base + BUILD_UID)] * 4
        host_ids = range(uid_base, uid_base + count)
        assert not [p.pw_name for p in pwd.getpwall() if p.pw_uid in host_ids]
        _, gid_base, gid_count = run.gid_map
        assert not [g.gr_name for g in grp.getgrall()
                    if g.gr_gid in range(gid_base, gid_base + gid_count)]
        assert not [p.pw_name for p in pwd.getpwall()
                    if p.pw_gid in range(gid_base, gid_base + gid_count)]


def test_concurrent_sandboxes_have_disjoint_ids_and_cannot_reach_each_other(
        tiny_root: Path, probe: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running(tiny_root, probe, tmp_path / "a", "userns") as a, \
            running(tiny_root, probe, tmp_path / "b", "userns") as b:
        a_ids = range(a.uid_map[1], a.uid_map[1] + a.uid_map[2])
        b_ids = range(b.uid_map[1], b.uid_map[1] + b.uid_map[2])
        assert not set(a_ids) & set(b_ids)
        # b's ids, were b to get out onto the host, open nothing of a's, and back.
        for one, other in ((a, b), (b, a)):
            targets = [Path(f"/proc/{one.pid}/root/tmp/secret"), one.upper / "tmp" / "secret"]
            for uid, gid in host_visible_ids(other):
                assert attempt_as(uid, gid, targets) == ["Permission denied"] * 4
