# SPDX-License-Identifier: GPL-2.0-or-later
"""The sandbox's pure parts: the spec (validation, JSON), the seccomp filter's rules,
the choice of the staging directory and bind targets.  No root needed."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from guestpkg.errors import UsageError
from guestpkg.sandbox import APT_CAPABILITIES, Bind, SandboxSpec, runner
from guestpkg.sandbox.idmap import RealRoot, UserNamespace, get_mapping, kernel_version
from guestpkg.sandbox.mounts import _is_within, choose_staging, resolve_inside
from guestpkg.sandbox.seccomp_filter import build_filter
from guestpkg.sandbox.spec import CHROOT_MOUNT_CAPABILITIES, from_json, to_json

BASE = Path("/var/lib/guestpkg/buildroots/default/gen-1")


def test_json_round_trip() -> None:
    spec = SandboxSpec(argv=("dpkg-buildpackage", "-b"), lowerdirs=(Path("/l/deps"), BASE),
                       upperdir=Path("/f/upper"), workdir=Path("/f/work"),
                       env={"HOME": "/build", "PATH": "/usr/bin"}, cwd="/build/src",
                       uid=1000, gid=1000, binds=(Bind(Path("/src"), "/build/src", False),),
                       timeout_s=60.0, rlimits={"CORE": 0, "NOFILE": 1024},
                       upper_size_bytes=1 << 30, host_ids=(1879048192, 1879113728),
                       shm_size_bytes=1 << 29, memory_max_bytes=1 << 32, pids_max=999,
                       cpu_weight=50)
    again = from_json(to_json(spec))
    assert again == spec
    assert to_json(again) == to_json(spec)


def test_root_mode_round_trip() -> None:
    spec = SandboxSpec(argv=("apt-get", "install"), root=Path("/tree"),
                       capabilities=APT_CAPABILITIES, network=True, allow_setuid=True)
    assert from_json(to_json(spec)) == spec


@pytest.mark.parametrize("fields, message", [
    ({"argv": ()}, "argv"),
    ({"lowerdirs": ()}, "exactly one"),
    ({"root": Path("/t")}, "exactly one"),
    ({"upperdir": Path("/u")}, "go together"),
    ({"lowerdirs": (Path("/a,b"),)}, "paths must be"),
    ({"lowerdirs": (Path("relative"),)}, "paths must be"),
    ({"uid": 1000, "capabilities": frozenset({"CAP_CHOWN"})}, "only be kept for uid 0"),
    ({"capabilities": frozenset({"CAP_NO_SUCH"})}, "unknown capabilities"),
    ({"hostname": "bad name"}, "hostname"),
    ({"cwd": "relative"}, "cwd"),
    ({"binds": (Bind(Path("/x"), "relative"),)}, "must be absolute"),
    ({"binds": (Bind(Path("/x"), "/a/../etc"),)}, "must be absolute"),
    ({"binds": (Bind(Path("/x"), "/proc/sys"),)}, "not under /proc"),
    ({"binds": (Bind(Path("/x"), "/"),)}, "not /"),
    ({"rlimits": {"NOSUCH": 1}}, "rlimits"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"id_mapping": "none"}, "unknown id mapping"),
    ({"id_mapping": "root", "host_ids": (100000, 100000)}, "host_ids"),
    ({"host_ids": (0, 100000)}, "host_ids"),
    ({"pids_max": 0}, "pids_max"),
    ({"memory_max_bytes": -1}, "memory_max_bytes"),
    ({"cpu_weight": 0}, "cpu_weight"),
    ({"cpu_weight": 10001}, "cpu_weight"),
    # chroot and mount only as uid 0 of a user namespace on a slice of guestpkg's ids
    ({"allow_chroot_mount": True, "id_mapping": "root",
      "capabilities": CHROOT_MOUNT_CAPABILITIES}, "allow_chroot_mount needs id_mapping userns"),
    ({"allow_chroot_mount": True, "id_mapping": "user"}, "allow_chroot_mount needs"),
    ({"allow_chroot_mount": True, "uid": 1000, "gid": 1000}, "allow_chroot_mount needs"),
    ({"allow_chroot_mount": True, "binds": (Bind(Path("/log"), "/log", readonly=False),)},
     "allow_chroot_mount takes no writable bind"),
    ({"capabilities": frozenset({"CAP_SYS_ADMIN"})}, "only with allow_chroot_mount"),
    ({"capabilities": frozenset({"CAP_SYS_CHROOT"}), "id_mapping": "root"},
     "only with allow_chroot_mount"),
])
def test_invalid_specs_are_refused(fields: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"argv": ("true",), "lowerdirs": (BASE,)}
    values.update(fields)
    with pytest.raises(UsageError, match=message):
        SandboxSpec(**values)  # type: ignore[arg-type]


def test_json_with_unknown_keys_is_refused() -> None:
    text = to_json(SandboxSpec(argv=("true",), lowerdirs=(BASE,)))
    with pytest.raises(UsageError, match="unknown keys"):
        from_json(text.replace('"cwd"', '"surprise": 1, "cwd"'))
    with pytest.raises(UsageError, match="version"):
        from_json('{"version": 99}')
    with pytest.raises(UsageError, match="not JSON"):
        from_json("{")


def test_defaults_are_the_safe_choice() -> None:
    spec = SandboxSpec(argv=("true",), lowerdirs=(BASE,), uid=1000, gid=1000)
    assert not spec.network and not spec.capabilities and not spec.allow_setuid
    assert spec.id_mapping == "userns"
    assert spec.relaxations == []
    assert any("real host ids" in r for r in SandboxSpec(
        argv=("true",), lowerdirs=(BASE,), uid=1000, gid=1000, id_mapping="root").relaxations)
    assert spec.rlimits == {"CORE": 0}


def test_relaxations_are_named() -> None:
    spec = SandboxSpec(argv=("apt-get",), lowerdirs=(BASE,), network=True,
                       capabilities=APT_CAPABILITIES, allow_setuid=True,
                       binds=(Bind(Path("/out"), "/out", readonly=False),))
    text = "\n".join(spec.relaxations)
    for word in ("network", "CAP_CHOWN", "setuid", "uid 0", "/out"):
        assert word in text


def test_apt_capabilities_leave_out_the_dangerous_ones() -> None:
    assert {"CAP_SYS_ADMIN", "CAP_MKNOD", "CAP_NET_ADMIN", "CAP_SYS_PTRACE",
            "CAP_SYS_MODULE", "CAP_SETFCAP", "CAP_SYS_CHROOT"}.isdisjoint(APT_CAPABILITIES)


def test_the_chroot_mount_relaxation_is_named_and_kept_in_json() -> None:
    spec = SandboxSpec(argv=("piuparts",), lowerdirs=(BASE,), allow_chroot_mount=True,
                       capabilities=CHROOT_MOUNT_CAPABILITIES)
    assert any("chroot and mount" in r for r in spec.relaxations)
    assert from_json(to_json(spec)) == spec
    assert {"CAP_MKNOD", "CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_SYS_MODULE",
            "CAP_SETFCAP"}.isdisjoint(CHROOT_MOUNT_CAPABILITIES)


def test_a_normal_users_sandbox_refuses_the_chroot_mount_relaxation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec says ``userns``; for a normal user the runner resolves that to the user's
    own range (``user``), whose namespace owns the sandbox's own mounts, which the
    command could then unmount or make writable.  The resolved spec is validated
    again: refused before anything starts."""
    spec = SandboxSpec(argv=("piuparts",), lowerdirs=(BASE,), allow_chroot_mount=True,
                       capabilities=CHROOT_MOUNT_CAPABILITIES)
    started: list[object] = []
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(runner, "_run_helper", lambda *args: started.append(args))
    with pytest.raises(UsageError, match="allow_chroot_mount needs id_mapping userns"):
        runner.run_sandboxed(spec)
    assert started == []


def filter_text(allow_setuid: bool = False, allow_chroot_mount: bool = False) -> str:
    out = io.StringIO()
    # export_pfc wants a real file
    import tempfile
    with tempfile.TemporaryFile("w+") as f:
        build_filter(allow_setuid=allow_setuid,
                     allow_chroot_mount=allow_chroot_mount).export_pfc(f)
        f.seek(0)
        out.write(f.read())
    return out.getvalue()


def test_filter_covers_the_compat_architectures() -> None:
    text = filter_text()
    for arch in ("x86_64", "x86", "x32"):
        assert f"filter for arch {arch} " in text


@pytest.mark.parametrize("syscall", ["keyctl", "userfaultfd", "perf_event_open", "ptrace",
                                     "bpf", "mount", "setns", "unshare", "clone3", "fsopen",
                                     "open_by_handle_at", "kexec_load", "ioctl", "chmod",
                                     "personality", "clone"])
def test_filter_has_a_rule_for(syscall: str) -> None:
    assert f'syscall "{syscall}"' in filter_text()


def test_setuid_chmod_rules_go_with_allow_setuid() -> None:
    assert 'syscall "fchmodat"' in filter_text()
    assert 'syscall "fchmodat"' not in filter_text(allow_setuid=True)


def test_chroot_and_mount_rules_go_with_allow_chroot_mount() -> None:
    relaxed = filter_text(allow_chroot_mount=True)
    for syscall in ("mount", "umount2", "chroot"):
        assert f'syscall "{syscall}"' in filter_text()
        assert f'syscall "{syscall}"' not in relaxed
    for syscall in ("pivot_root", "setns", "unshare", "keyctl", "bpf", "ptrace",
                    "init_module", "kexec_load", "open_tree", "fsopen"):
        assert f'syscall "{syscall}"' in relaxed


def test_ioctl_compared_under_the_32_bit_mask() -> None:
    text = filter_text()
    assert "& 0xffffffff == 21522" in text  # TIOCSTI


def test_staging_avoids_spec_paths() -> None:
    assert _is_within("/mnt/x", "/mnt") and _is_within("/mnt", "/mnt")
    assert not _is_within("/mntx", "/mnt")
    chosen = choose_staging(["/mnt/layers/base", "/srv/fork"])
    assert chosen not in ("/mnt", "/srv") and os.path.isdir(chosen)


def test_resolve_inside_creates_and_refuses_symlinks(tmp_path: Path) -> None:
    target = resolve_inside(tmp_path, "/build/src", directory=True)
    assert target == tmp_path / "build" / "src" and target.is_dir()
    file_target = resolve_inside(tmp_path, "/etc/resolv.conf", directory=False)
    assert file_target.is_file()
    (tmp_path / "evil").symlink_to("/etc")
    with pytest.raises(UsageError, match="symlink"):
        resolve_inside(tmp_path, "/evil/passwd", directory=False)


def test_id_mappings() -> None:
    assert isinstance(get_mapping("root"), RealRoot)
    assert isinstance(get_mapping("userns"), UserNamespace)
    assert "1879048192-1879113727" in get_mapping("userns", (1879048192, 1)).describe()
    with pytest.raises(UsageError, match="unknown id mapping"):
        get_mapping("nobody")


def test_kernel_version() -> None:
    assert kernel_version("6.1.0-18-amd64") == (6, 1)
    assert kernel_version("5.19rc1") == (5, 19)
    assert kernel_version("6.18.44-fc-v669") == (6, 18)
    assert kernel_version("garbage") == (0, 0)


def _run_sandboxed_as_nobody(id_mapping: str) -> str:
    import subprocess
    import sys

    code = ("from pathlib import Path\n"
            "from guestpkg.errors import SystemStateError\n"
            "from guestpkg.sandbox import SandboxSpec, run_sandboxed\n"
            "try:\n"
            "    run_sandboxed(SandboxSpec(argv=('true',), lowerdirs=(Path('/'),),\n"
            f"                              id_mapping={id_mapping!r}))\n"
            "except SystemStateError as e:\n"
            "    print('refused:', e, '| hint:', e.hint)\n")
    repo = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, cwd="/",
                            env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert result.stdout.startswith("refused:"), result.stderr
    return result.stdout


def test_run_sandboxed_as_a_user_without_subordinate_ids_says_how_to_get_them() -> None:
    """A normal user's sandbox maps the user's own subordinate ids: without a range
    (nobody has none) it refuses up front in one line with the fix."""
    out = _run_sandboxed_as_nobody("userns")
    assert "/etc/subuid gives nobody no range of 65536 subordinate ids" in out
    assert "hint: ask root for one: usermod --add-subuids N-M --add-subgids N-M nobody" in out


def test_run_sandboxed_with_real_root_ids_needs_root() -> None:
    out = _run_sandboxed_as_nobody("root")
    assert "refused: the sandbox needs root" in out


def test_forbid_imports_stops_new_imports() -> None:
    import subprocess

    code = ("import json\n"  # loaded before: still usable
            "from guestpkg.sandbox.init import forbid_imports\n"
            "forbid_imports()\n"
            "import json\n"
            "try:\n"
            "    import wave\n"
            "except ImportError:\n"
            "    print('refused')\n")
    repo = Path(__file__).resolve().parents[2]
    # Debian's python3: guestpkg.sandbox.init needs python3-prctl and python3-seccomp
    result = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True,
                            text=True, env={"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin"})
    assert result.stdout == "refused\n", result.stderr


def test_join_netns_is_a_proc_path_and_a_named_relaxation() -> None:
    spec = SandboxSpec(argv=("/bin/true",), root=Path("/r"), join_netns="/proc/123/ns/net")
    assert from_json(to_json(spec)) == spec
    assert "network: joins /proc/123/ns/net (user-mode networking)" in spec.relaxations
    for bad in ("/proc/self/ns/net", "/proc/1/ns/mnt", "/run/netns/x", "/proc/0/ns/net"):
        with pytest.raises(UsageError, match="join_netns"):
            SandboxSpec(argv=("/bin/true",), root=Path("/r"), join_netns=bad)
    with pytest.raises(UsageError, match="join_netns"):
        SandboxSpec(argv=("/bin/true",), root=Path("/r"), join_netns="/proc/1/ns/net",
                    network=True)
