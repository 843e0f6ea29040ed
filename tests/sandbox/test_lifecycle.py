# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox's life: exit statuses, the wall-clock limit, failures that say how to
replay them, binds, and what is left behind (nothing: no mount, no process, no change
to the lower layers), also when guestpkg is SIGKILLed in the middle of a command."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from guestpkg.errors import CommandFailed, SandboxSetupFailed
from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed

from .conftest import BUILD_UID, PROBE_ENV, ProbeRun, snapshot


def mountinfo() -> list[str]:
    # Mount ids and the order aside, the same mounts must be there.
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    return sorted(" ".join(line.split()[3:]) for line in lines)


def all_mountinfo_text() -> str:
    text = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                text.append((entry / "mountinfo").read_text())
    return "\n".join(text)


def processes_with(token: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if token in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 60) -> None:
    """Poll for *condition*; the limit is generous, only a hang should reach it."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for: {what}")
        time.sleep(0.05)


def test_exit_status_is_the_commands(sandbox: Callable[..., ProbeRun]) -> None:
    assert sandbox("exit:3").status == 3
    assert sandbox("exit:0").status == 0


def test_killed_by_a_signal(sandbox: Callable[..., ProbeRun]) -> None:
    # kill(0, SIGTERM): the probe's own process group (its own session)
    assert sandbox("kill:0:15").status == 128 + signal.SIGTERM


def test_missing_command(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox(argv=("/no/such/command",))
    assert run.status == 127
    assert "cannot run /no/such/command" in run.output


def test_wall_clock_limit(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("sleep:600", timeout_s=0.5)
    assert run.status == 124
    assert "wall-clock limit" in run.output


def test_environment_is_exactly_the_specs(sandbox: Callable[..., ProbeRun]) -> None:
    os.environ["GUESTPKG_TEST_LEAK"] = "leaked"
    try:
        run = sandbox("env", env={"ONLY": "this", "PATH": "/bin"})
    finally:
        del os.environ["GUESTPKG_TEST_LEAK"]
    assert [line for line in run.lines if line.startswith("env ") and "=" in line] == \
        ["env ONLY=this", "env PATH=/bin"], run.output


def test_rlimits_and_umask(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("cat:/proc/self/limits", "umask", rlimits={"NOFILE": 64, "CORE": 0},
                  umask=0o027)
    # proc(5): "%-25s %-20s %-20s %-10s" per line (after our "cat " prefix)
    limits = {line[4:30].strip(): line[30:].split()[:2] for line in run.lines
              if line.startswith("cat Max")}
    assert limits["Max open files"] == ["64", "64"], run.output
    assert limits["Max core file size"] == ["0", "0"], run.output
    assert "umask 027" in run.lines


def test_only_stdio_is_open(sandbox: Callable[..., ProbeRun], tmp_path: Path) -> None:
    leaky = os.open(tmp_path / "leaky", os.O_CREAT | os.O_RDWR)
    os.set_inheritable(leaky, True)
    try:
        run = sandbox("fds")
    finally:
        os.close(leaky)
    assert [line for line in run.lines if line.startswith("fd ")] == \
        ["fd 0", "fd 1", "fd 2"], run.output


def test_tee_shows_and_logs(tiny_root: Path, probe: Path, tmp_path: Path,
                            capfd: pytest.CaptureFixture[str]) -> None:
    spec = SandboxSpec(argv=("/probe", "echo:teed"), lowerdirs=(tiny_root,), env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),))
    log = tmp_path / "log"
    assert run_sandboxed(spec, log_path=log, tee=True) == 0
    assert "echo teed" in capfd.readouterr().err
    assert "echo teed" in log.read_text()


def test_stdin_is_not_the_callers(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("read:/dev/stdin")
    assert run.results["read"] == "ENODATA", run.output  # /dev/null: empty


def test_failure_raises_with_a_replay_hint(tiny_root: Path, probe: Path,
                                           tmp_path: Path, repo: Path) -> None:
    spec = SandboxSpec(argv=("/probe", "exit:7"), lowerdirs=(tiny_root,), uid=BUILD_UID,
                       gid=BUILD_UID, env=PROBE_ENV, binds=(Bind(probe, "/probe"),))
    log = tmp_path / "build.log"
    with pytest.raises(CommandFailed) as caught:
        run_sandboxed(spec, log_path=log)
    error = caught.value
    assert error.returncode == 7
    kept = log.with_name("build.log.sandbox.json")
    assert kept.is_file() and str(kept) in (error.hint or "")
    assert "python3" in (error.hint or "") and "guestpkg.sandbox" in (error.hint or "")
    replay = subprocess.run(["/usr/bin/python3", "-m", "guestpkg.sandbox", str(kept)],
                            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, cwd="/")
    assert replay.returncode == 7, replay.stderr
    assert "exit OK" not in replay.stdout  # exit() never returns to print


def test_no_mount_leaks_and_lower_unchanged(sandbox: Callable[..., ProbeRun],
                                            tiny_root: Path) -> None:
    before_mounts, before_tree = mountinfo(), snapshot(tiny_root)
    run = sandbox("write:/etc/hostname:x", "write:/new:x", "mknod:/tmp/n", uid=0, gid=0)
    assert run.status == 0
    assert mountinfo() == before_mounts
    assert snapshot(tiny_root) == before_tree


def test_persistent_upper_and_root_mode(tiny_root: Path, probe: Path, tmp_path: Path,
                                       id_mapping: str) -> None:
    upper, work = tmp_path / "upper", tmp_path / "work"
    upper.mkdir()
    work.mkdir()
    spec = SandboxSpec(argv=("/probe", "write:/data/new:hello"), lowerdirs=(tiny_root,),
                       upperdir=upper, workdir=work, env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),), id_mapping=id_mapping)
    assert run_sandboxed(spec) == 0
    assert (upper / "data" / "new").read_text() == "hello"
    assert not (tiny_root / "data" / "new").exists()

    tree = tmp_path / "tree"
    (tree / "tmp").mkdir(parents=True)
    spec = SandboxSpec(argv=("/probe", "write:/tmp/out:hi"), root=tree, env=PROBE_ENV,
                       binds=(Bind(probe, "/probe"),), id_mapping=id_mapping)
    assert run_sandboxed(spec) == 0
    assert (tree / "tmp" / "out").read_text() == "hi"
    # root inside wrote it: on disk that is uid 0 in both modes (an idmapped mount)
    assert (tree / "tmp" / "out").stat().st_uid == 0


def test_binds(sandbox: Callable[..., ProbeRun], tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    os.chown(rw, BUILD_UID, BUILD_UID)
    (ro / "in").write_text("data")
    run = sandbox("read:/in/in", "write:/in/x:x", "write:/out/x:y",
                  binds=(Bind(ro, "/in"), Bind(rw, "/out", readonly=False)))
    assert [line for line in run.lines if line.startswith(("read ", "write "))] == \
        ["read OK", "write EROFS", "write OK"], run.output
    assert (rw / "x").read_text() == "y"
    assert not (ro / "x").exists()


def test_bind_target_through_a_symlink_is_refused(sandbox: Callable[..., ProbeRun],
                                                  tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "escape").symlink_to("/etc")
    with pytest.raises(SandboxSetupFailed) as raised:
        sandbox("echo:x", lowerdirs=(tree,), binds=(Bind(tmp_path, "/escape/x"),))
    assert raised.value.returncode == 125
    assert raised.value.step == "mount the binds"
    assert "symlink" in raised.value.reason


def test_setup_failure_names_the_step_and_the_os_error(tiny_root: Path, tmp_path: Path,
                                                        probe: Path) -> None:
    """Status 125 alone says nothing: the error names the step and errno (issue 9).
    overlayfs refuses an upper and a work directory on different file systems."""
    upper, work = tmp_path / "upper", Path("/dev/shm") / f"guestpkg-test-{os.getpid()}"
    upper.mkdir()
    work.mkdir()
    try:
        spec = SandboxSpec(argv=("/probe", "echo:x"), lowerdirs=(tiny_root,),
                           upperdir=upper, workdir=work, env=PROBE_ENV,
                           binds=(Bind(probe, "/probe"),))
        log = tmp_path / "log"
        with pytest.raises(SandboxSetupFailed) as raised:
            run_sandboxed(spec, log_path=log, check=False)
    finally:
        work.rmdir()
    error = raised.value
    assert error.step == "mount the root (overlay)"
    assert error.reason.startswith("EXDEV: ") or error.reason.startswith("EINVAL: "), \
        error.reason
    assert "mount the root (overlay)" in error.message and error.reason in error.message
    assert f"mount the root (overlay): {error.reason}" in log.read_text()
    assert "replay:" in (error.hint or "")


def test_setup_failure_in_the_command_process_is_reported(tiny_root: Path, tmp_path: Path,
                                                          probe: Path) -> None:
    """The last steps run in the command's own process, after init forked it."""
    spec = SandboxSpec(argv=("/probe", "echo:x"), lowerdirs=(tiny_root,), env=PROBE_ENV,
                       cwd="/no/such/dir", binds=(Bind(probe, "/probe"),))
    with pytest.raises(SandboxSetupFailed) as raised:
        run_sandboxed(spec, log_path=tmp_path / "log")
    assert raised.value.step == "change to the working directory /no/such/dir"
    assert raised.value.reason.startswith("ENOENT: No such file or directory"), \
        raised.value.reason


def test_a_command_exiting_125_is_not_a_setup_failure(sandbox: Callable[..., ProbeRun]) -> None:
    run = sandbox("exit:125")
    assert run.status == 125


def test_sigkill_of_guestpkg_leaves_nothing_behind(tiny_root: Path, probe: Path,
                                                   tmp_path: Path, repo: Path,
                                                   id_mapping: str) -> None:
    before_mounts, before_tree = mountinfo(), snapshot(tiny_root)
    token = f"sleep:{600 + os.getpid() % 1000}"  # unique argv to find our processes
    log = tmp_path / "log"
    script = f"""
from pathlib import Path
from guestpkg.sandbox import Bind, SandboxSpec, run_sandboxed
spec = SandboxSpec(argv=("/probe", "write:/etc/hostname:x", "echo:started", "{token}"),
                   lowerdirs=(Path("{tiny_root}"),), uid=0, id_mapping="{id_mapping}",
                   binds=(Bind(Path("{probe}"), "/probe"),))
run_sandboxed(spec, log_path=Path("{log}"))
"""
    guestpkg = subprocess.Popen(["/usr/bin/python3", "-c", script],
                                env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    try:
        wait_until(lambda: log.exists() and "echo started" in log.read_text(),
                   "the sandboxed command to start")
        commands = processes_with(token)
        assert commands, "the sandboxed command is not running"
        # the overlay exists, but only inside the sandbox's mount namespace (with a
        # user namespace its lower layer is an idmapped mount of tiny_root, which
        # went with the old root: the overlay names it by its staging path)
        shown = str(tiny_root) if id_mapping == "root" else "lowerdir=/"
        probe_pid = next(p for p in commands
                         if Path(f"/proc/{p}/cmdline").read_bytes().startswith(b"/probe"))
        overlay = [line for line in Path(f"/proc/{probe_pid}/mountinfo").read_text()
                   .splitlines() if " / / " in line and " - overlay " in line]
        assert overlay and shown in overlay[0], overlay
        assert str(tiny_root) not in "\n".join(mountinfo())
    finally:
        guestpkg.send_signal(signal.SIGKILL)
        guestpkg.wait()
    wait_until(lambda: not processes_with(token), "the sandboxed command to die")
    wait_until(lambda: str(tiny_root) not in all_mountinfo_text(),
               "the sandbox's mounts to go away")
    assert mountinfo() == before_mounts
    assert snapshot(tiny_root) == before_tree


def test_the_command_cannot_forge_a_setup_report(sandbox: Callable[..., ProbeRun]) -> None:
    """The report descriptor is close-on-exec: a hostile build can't write a made-up
    "could not be set up" into it (nor anything else of guestpkg's)."""
    # As uid 0 inside, which owns the pipe (the build user could not reopen it anyway).
    run = sandbox(*[f"write:/proc/self/fd/{fd}:{{}}" for fd in range(3, 40)], uid=0, gid=0)
    assert run.status == 0, run.output
    writes = [line for line in run.lines if line.startswith("write ")]
    assert len(writes) == 37 and "write OK" not in writes, writes
