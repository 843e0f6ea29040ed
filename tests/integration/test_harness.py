# SPDX-License-Identifier: GPL-2.0-or-later
"""The end-to-end harness itself works: system roots reach the mirror and 127.0.0.1,
run real apt, dpkg and debconf, let detached jobs outlive a command, allow nested
namespaces and overlays, leak no mount, and never modify their cached base; the local
upstream serves and misbehaves on demand."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.sysroot import (
    LOCAL_REPO,
    OUTER_VARDIR,
    SNAPSHOT_EXCLUDED,
    SystemRoot,
    SystemRootError,
    compare_trees,
    new_workdir,
)
from tests.support.upstream import Behaviour, LocalUpstream

pytestmark = pytest.mark.integration


def make_deb(directory: Path, name: str, version: str = "1.0",
             with_question: bool = False, depends: str = "debconf",
             architecture: str = "all") -> Path:
    """A tiny architecture-independent .deb; with a debconf question whose answer its
    postinst writes to /var/lib/<name>.answer."""
    tree = directory / f"{name}-{version}"
    control = tree / "DEBIAN"
    control.mkdir(parents=True)
    (control / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: {architecture}\n"
        "Maintainer: guestpkg tests <tests@localhost>\n"
        f"Depends: {depends}\nDescription: harness test package {name}\n")
    (tree / "usr/share" / name).mkdir(parents=True)
    (tree / "usr/share" / name / "marker").write_text(f"{name} {version}\n")
    if with_question:
        (control / "templates").write_text(
            f"Template: {name}/consent\nType: boolean\nDefault: false\n"
            "Description: Do you agree?\n A harness test question.\n")
        script = ("#!/bin/sh\nset -e\n. /usr/share/debconf/confmodule\n"
                  f"db_input high {name}/consent || true\ndb_go || true\n")
        (control / "config").write_text(script)
        (control / "postinst").write_text(
            script + f'db_get {name}/consent\necho "$RET" > /var/lib/{name}.answer\n')
        (control / "postrm").write_text(
            "#!/bin/sh\nset -e\nif [ \"$1\" = purge ] && [ -e /usr/share/debconf/confmodule ]"
            "; then\n. /usr/share/debconf/confmodule\ndb_purge\nfi\n")
        for script_name in ("config", "postinst", "postrm"):
            (control / script_name).chmod(0o755)
    deb = directory / f"{name}_{version}_{architecture}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(deb)],
                   check=True, capture_output=True)
    return deb


def tree_state(path: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under *path* with its full lstat metadata, times included."""
    state: dict[str, tuple[Any, ...]] = {}
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(top, name)
            st = os.lstat(full)
            state[full] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                           st.st_ctime_ns, st.st_ino)
    return state


def test_apt_inside_reaches_the_mirror(sysroot: SystemRoot) -> None:
    assert sysroot.dpkg_status("tree") is None
    sysroot.apt_install("--no-install-recommends", "tree")
    assert sysroot.dpkg_status("tree") == "install ok installed"
    assert sysroot.installed_version("tree")
    assert "tree v" in sysroot.run(["tree", "--version"]).stdout


def test_local_repository_and_preseeded_debconf(sysroot: SystemRoot, tmp_path: Path) -> None:
    sysroot.add_debs([make_deb(tmp_path, "harness-asks", with_question=True),
                      make_deb(tmp_path, "harness-plain")])
    sysroot.apt_install("harness-asks", "harness-plain",
                        preseed="harness-asks harness-asks/consent boolean true")
    assert sysroot.read_file("/var/lib/harness-asks.answer").strip() == "true"
    assert sysroot.installed_version("harness-plain") == "1.0"

    # Without a preseed, the noninteractive frontend keeps the default (false).
    sysroot.apt("purge", "harness-asks")
    assert sysroot.dpkg_status("harness-asks") is None
    sysroot.run(["rm", "-f", "/var/lib/harness-asks.answer"])
    sysroot.apt_install("harness-asks")
    assert sysroot.read_file("/var/lib/harness-asks.answer").strip() == "false"

    sysroot.add_debs([make_deb(tmp_path / "v2", "harness-plain", "2.0")])
    sysroot.apt_install("harness-plain")
    assert sysroot.installed_version("harness-plain") == "2.0"


def test_local_upstream_is_reachable_from_inside(sysroot: SystemRoot,
                                                 local_upstream: LocalUpstream,
                                                 tmp_path: Path) -> None:
    payload = tmp_path / "demo-1.0.tar.gz"
    payload.write_bytes(os.urandom(100_000))
    url = local_upstream.add_file(payload)
    script = ("import hashlib, sys, urllib.request\n"
              "print(hashlib.sha256(urllib.request.urlopen(sys.argv[1]).read()).hexdigest())")
    inside = sysroot.run(["python3", "-c", script, url]).stdout.strip()
    assert inside == hashlib.sha256(payload.read_bytes()).hexdigest()
    index = sysroot.run(["python3", "-c", "import sys, urllib.request\n"
                         "print(urllib.request.urlopen(sys.argv[1]).read().decode())",
                         local_upstream.url]).stdout
    assert '<a href="demo-1.0.tar.gz">' in index
    assert local_upstream.downloads("demo-1.0.tar.gz") == 1


def test_local_upstream_misbehaves_on_demand(local_upstream: LocalUpstream,
                                             tmp_path: Path) -> None:
    payload = tmp_path / "demo-1.0.tar.gz"
    data = os.urandom(50_000)
    payload.write_bytes(data)
    url = local_upstream.add_file(payload)
    assert urllib.request.urlopen(url).read() == data

    local_upstream.behaviour = Behaviour.CORRUPT
    corrupt = urllib.request.urlopen(url).read()
    assert len(corrupt) == len(data) and corrupt != data

    local_upstream.behaviour = Behaviour.TRUNCATE
    with pytest.raises(Exception) as truncated:  # http.client.IncompleteRead
        urllib.request.urlopen(url).read()
    assert "IncompleteRead" in type(truncated.value).__name__

    local_upstream.behaviour = Behaviour.ERROR
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url)

    local_upstream.behaviour = Behaviour.NORMAL
    local_upstream.stop()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)
    local_upstream.start()
    assert urllib.request.urlopen(url).read() == data
    assert [r.status for r in local_upstream.requests] == [200, 200, 200, 500, 200]


def test_a_detached_job_outlives_its_command(sysroot: SystemRoot) -> None:
    sysroot.run(["sh", "-c", "setsid sh -c 'sleep 1; touch /run/detached-done' "
                 "</dev/null >/dev/null 2>&1 &"])
    assert sysroot.background_processes()
    sysroot.wait_idle(timeout_s=60)
    assert sysroot.exists("/run/detached-done")


def test_nested_namespaces_overlay_and_pivot_root(sysroot: SystemRoot) -> None:
    # What guestpkg's sandbox does inside: new namespaces, an overlay over a tree of
    # the root, loopback in a new netns, pivot_root.
    script = """
mkdir -p /srv/nest/lower /srv/nest/top
echo base > /srv/nest/lower/file
unshare --mount --propagation private --pid --net --uts --ipc --fork sh -euc '
    mount -t tmpfs tmpfs /srv/nest/top
    mkdir /srv/nest/top/upper /srv/nest/top/work /srv/nest/top/merged
    cd /srv/nest/top
    mount -t overlay overlay -o lowerdir=/srv/nest/lower,upperdir=upper,workdir=work merged
    echo changed > /srv/nest/top/merged/file
    ip link set lo up
    ip -brief link | grep -c . > /srv/nest/top/merged/links
    cd /srv/nest/top/merged && mkdir old && pivot_root . old
    read -r content < /file; read -r links < /links; echo "$content" "$links"
'
cat /srv/nest/lower/file
"""
    assert sysroot.shell(script).stdout.split() == ["changed", "1", "base"]


def test_nothing_leaks_and_the_base_is_never_modified(system_base: Path,
                                                      tmp_path: Path) -> None:
    mounts_before = Path("/proc/self/mountinfo").read_text()
    base_before = tree_state(system_base)
    root = SystemRoot(system_base, new_workdir())
    with root:
        root.shell("rm -rf /usr/share/doc /etc/apt/sources.list; echo x >> /etc/passwd; "
                   "touch /usr/bin/new-file; chmod 700 /usr/bin; "
                   "setsid sleep 300 </dev/null >/dev/null 2>&1 &")
        root.add_debs([make_deb(tmp_path, "harness-plain")])
        root.apt_install("harness-plain")
        init_pid = root.init_pid
        assert root.background_processes()
    assert not root.workdir.exists()
    assert not Path(f"/proc/{init_pid}").exists()
    assert Path("/proc/self/mountinfo").read_text() == mounts_before
    assert tree_state(system_base) == base_before


def test_snapshots_show_changes(sysroot: SystemRoot) -> None:
    before = sysroot.tree_snapshot(contents=True)
    sysroot.shell("touch /etc/added; rm /etc/hostname; echo more >> /etc/issue")
    diff = compare_trees(before, sysroot.tree_snapshot(contents=True))
    assert (diff.added, diff.removed, diff.modified) == (["/etc/added"], ["/etc/hostname"],
                                                         ["/etc/issue"])
    assert not compare_trees(before, before)


def test_snapshots_leave_out_the_test_mounts() -> None:
    assert {LOCAL_REPO, OUTER_VARDIR, "/etc/resolv.conf"} <= set(SNAPSHOT_EXCLUDED)


def test_failures_inside_raise_with_output(sysroot: SystemRoot) -> None:
    with pytest.raises(SystemRootError, match="exited 3"):
        sysroot.shell("echo oops >&2; exit 3")
    assert sysroot.run(["false"], check=False).returncode == 1


def test_buildroots_are_bound_read_only(make_sysroot: Callable[..., SystemRoot],
                                        base_root: Any) -> None:
    root = make_sysroot(buildroots=True)
    inner = f"/var/lib/guestpkg/buildroots/{base_root.name}"
    assert root.exists(f"{inner}/root.json")
    assert root.exists(f"{inner}/{base_root.path.name}/usr/bin/dpkg-buildpackage")
    denied = root.run(["touch", f"{inner}/{base_root.path.name}/x"], check=False)
    assert denied.returncode != 0 and "Read-only" in denied.stderr
    # A fork's shared lock on the generation works from inside.
    root.run(["python3", "-c", "import fcntl, sys\n"
              "f = open(sys.argv[1], 'r+'); fcntl.flock(f, fcntl.LOCK_SH)",
              f"{inner}/{base_root.path.name}.lock"])
    root.run(["touch", "/var/lib/guestpkg/layers/.harness-probe"])
    root.run(["rm", "/var/lib/guestpkg/layers/.harness-probe"])
    # What guestpkg's postrm does on purge removes the links, not what they point to.
    root.run(["rm", "-rf", "/var/lib/guestpkg"])
    assert base_root.path.is_dir() and (base_root.path.parent.parent.parent / "layers").is_dir()


def test_build_debs_builds_a_source_tree_inside(builder_sysroot: SystemRoot,
                                                tmp_path: Path) -> None:
    source = tmp_path / "harness-src"
    (source / "debian" / "source").mkdir(parents=True)
    (source / "debian" / "source" / "format").write_text("3.0 (native)\n")
    (source / "debian" / "control").write_text(
        "Source: harness-src\nMaintainer: guestpkg tests <tests@localhost>\n"
        "Build-Depends: debhelper-compat (= 13)\n\n"
        "Package: harness-bin\nArchitecture: all\nDescription: harness build test\n"
        " Built inside a system root.\n")
    (source / "debian" / "changelog").write_text(
        "harness-src (1.0) unstable; urgency=medium\n\n  * Test.\n\n"
        " -- guestpkg tests <tests@localhost>  Sat, 21 Nov 2026 00:00:00 +0000\n")
    (source / "debian" / "rules").write_text("#!/usr/bin/make -f\n%:\n\tdh $@\n")
    (source / "debian" / "rules").chmod(0o755)
    (source / "debian" / "install").write_text("hello.txt usr/share/harness-bin\n")
    (source / "hello.txt").write_text("built\n")
    debs = builder_sysroot.build_debs(source, tmp_path / "out")
    assert [d.name for d in debs] == ["harness-bin_1.0_all.deb"]
    listing = subprocess.run(["dpkg-deb", "-c", str(debs[0])], capture_output=True,
                             text=True, check=True).stdout
    assert "./usr/share/harness-bin/hello.txt" in listing


def test_a_killed_test_process_leaves_nothing_behind(system_base: Path) -> None:
    """SIGKILL the process that owns a SystemRoot: the kernel takes the root's
    processes and mounts down with it, and the next new_workdir() reaps its copy."""
    mounts_before = Path("/proc/self/mountinfo").read_text()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.support.sysroot import SystemRoot, new_workdir\n"
        "root = SystemRoot(Path(sys.argv[1]), new_workdir())\n"
        "root.start()\n"
        "root.run(['sh', '-c', 'setsid sleep 600 </dev/null >/dev/null 2>&1 &'])\n"
        "print(root.init_pid, root.workdir, flush=True)\n"
        "time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script, str(system_base)],
                             cwd=Path(__file__).resolve().parents[2],
                             stdout=subprocess.PIPE, text=True)
    assert owner.stdout is not None
    init_pid, workdir = owner.stdout.readline().split()
    inside = [p for p in Path("/proc").iterdir() if p.name.isdigit()
              and _pid_namespace(p) == _pid_namespace(Path(f"/proc/{init_pid}"))]
    assert len(inside) == 2  # the init and the detached sleep
    owner.kill()
    owner.wait()
    for process in inside:
        _wait_gone(process)
    assert Path("/proc/self/mountinfo").read_text() == mounts_before
    assert Path(workdir).exists()
    new_workdir().rmdir()
    assert not Path(workdir).exists()


def _pid_namespace(process: Path) -> str:
    try:
        return os.readlink(process / "ns" / "pid")
    except OSError:
        return ""


def _wait_gone(process: Path, timeout_s: float = 60) -> None:
    """Wait until *process* has exited (gone, or a zombie waiting for its parent)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if (process / "stat").read_text(errors="replace").rsplit(")", 1)[1].split()[0] \
                    == "Z":
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        assert time.monotonic() < deadline, f"{process} still alive"
        time.sleep(0.05)


def test_archive_packages_can_be_hidden(sysroot: SystemRoot, tmp_path: Path) -> None:
    # A guest-like hello 2.10-3~local that depends on its host: removing the host
    # would make apt upgrade hello to the archive's 2.10-3; hidden, hello goes too.
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True,
                          text=True, check=True).stdout.strip()
    sysroot.add_debs([make_deb(tmp_path, "harness-host"),
                      make_deb(tmp_path, "hello", "2.10-3~local", depends="harness-host",
                               architecture=arch)])
    assert "Candidate: 2.10-3\n" in sysroot.run(["apt-cache", "policy", "hello"]).stdout
    sysroot.hide_archive_packages("hello")
    assert "Candidate: 2.10-3~local" in sysroot.run(["apt-cache", "policy", "hello"]).stdout
    sysroot.apt_install("hello")
    assert sysroot.installed_version("hello") == "2.10-3~local"
    sysroot.apt("remove", "harness-host")
    assert sysroot.dpkg_status("hello") is None


def test_guestpkg_inside_runs_its_sandbox_on_the_bound_buildroot(
        make_sysroot: Callable[..., SystemRoot], guestpkg_deb: Path) -> None:
    root = make_sysroot(buildroots=True)
    root.add_debs([guestpkg_deb])
    root.apt_install("guestpkg")
    listed = root.run(["guestpkg", "buildroot", "list"]).stdout
    assert "default" in listed
    # The full sandbox (namespaces, overlay fork, pivot_root, seccomp) nested in the root.
    inside = root.run(["guestpkg", "shell", "--", "sh", "-c",
                       "id -u; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"]).stdout
    assert inside.split() == ["1234", "NoNewPrivs:", "1", "Seccomp:", "2"], inside
