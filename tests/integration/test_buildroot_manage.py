# SPDX-License-Identifier: GPL-2.0-or-later
"""Updating and removing base roots, and the ``guestpkg buildroot`` command.

The shared ``base_root`` is never updated or removed here (other tests hold it): these
tests work on a copy of it in a vardir of their own.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from guestpkg.buildroot import (
    BaseRoot,
    fork,
    list_base_roots,
    open_base_root,
    reap_buildroots,
    remove_base_root,
    update_base_root,
)
from guestpkg.buildroot.roots import (
    GENERATION_PREFIX,
    RootMetadata,
    generations,
    new_generation_id,
    root_dir,
    write_metadata,
)
from guestpkg.config import Config
from guestpkg.errors import NetworkError, SystemStateError
from guestpkg.fsutil import remove_tree
from guestpkg.sandbox import run_sandboxed

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def config(test_config: Config, tmp_path: Path) -> Config:
    # Forks on disk: in-process tmpfs forks would move the test process into a
    # private mount namespace (see test_buildroot_fork.py).
    return test_config.replace(vardir=tmp_path / "vardir", logdir=tmp_path / "log",
                               fork_upper="disk")


def clone_root(config: Config, base: BaseRoot, name: str) -> BaseRoot:
    """A root *name* in *config*'s vardir with a copy of *base*'s tree.

    The copy is hard links (cp -al, as cowbuilder does): seconds faster than a real
    copy, and safe because nothing here writes into a generation in place: forks
    write to their upper dir, update copies before it upgrades, remove unlinks."""
    directory = root_dir(config, name)
    generation = new_generation_id()
    directory.mkdir(parents=True)
    subprocess.run(["cp", "-al", str(base.path),
                    str(directory / (GENERATION_PREFIX + generation))], check=True)
    write_metadata(directory, RootMetadata(
        suite=base.suite, arch=base.arch, generation=generation, mirror=base.mirror,
        sources=base.sources, created=base.created, updated=base.updated,
        build_user=base.build_user, build_uid=base.build_uid))
    return open_base_root(config, name)


@pytest.fixture
def copy(config: Config, base_root: BaseRoot) -> Iterator[BaseRoot]:
    yield clone_root(config, base_root, "copy")
    # Not left for pytest's tmp_path retention: an updated copy is 500 MB of real data.
    remove_tree(config.vardir / "buildroots")


def test_update_makes_a_new_generation_and_keeps_the_one_in_use(
        config: Config, copy: BaseRoot) -> None:
    old = copy
    with fork(config, old) as f:
        new = update_base_root(config, "copy")
        assert new.generation != old.generation and new.path.is_dir()
        assert open_base_root(config, "copy") == new
        # The running fork keeps its generation, and can still run in it.
        assert old.path.is_dir()
        run_sandboxed(f.spec(["/bin/true"]))
    # The package lists were refreshed in the new generation, and are still there.
    assert list((new.path / "var/lib/apt/lists").glob("*_Packages"))
    assert not list((new.path / "var/cache/apt/archives").glob("*.deb"))
    # apt's binary caches of the new lists: builds' apt runs don't parse the lists
    assert {p.name for p in (new.path / "var/cache/apt").glob("*.bin")} == {
        "pkgcache.bin", "srcpkgcache.bin"}
    # The last fork of the old generation removed it when it ended.
    assert generations(new.directory) == [new.path]
    assert not old.path.exists()
    reap_buildroots(config)
    assert generations(new.directory) == [new.path]
    assert not [p for p in new.directory.iterdir() if p.name.startswith(".tmp-")]


class RefusingProxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy that records each request line and answers 502 Bad Gateway."""

    seen: list[str] = []

    def do_GET(self) -> None:
        self.seen.append(self.requestline)
        self.send_error(502)

    do_HEAD = do_CONNECT = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_update_goes_through_the_proxy_of_the_environment(
        config: Config, copy: BaseRoot, monkeypatch: pytest.MonkeyPatch) -> None:
    # buildroot update used to run apt without the proxy settings that create passes
    # to mmdebstrap: behind a proxy, create worked and update went around it.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingProxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    for name in ("http_proxy", "https_proxy"):
        monkeypatch.setenv(name, proxy)
    RefusingProxy.seen = []
    try:
        # The proxy refuses: the lists can't be fetched, and the update says so.
        with pytest.raises(NetworkError, match="apt-get update could not fetch"):
            update_base_root(config, "copy")
    finally:
        server.shutdown()
        server.server_close()
    mirror = urllib.parse.urlsplit(copy.mirror).hostname
    assert mirror and any(mirror in line for line in RefusingProxy.seen), RefusingProxy.seen


def test_update_from_an_unreachable_mirror_fails_in_one_line(
        config: Config, copy: BaseRoot) -> None:
    # The copy's sources name a port on 127.0.0.1 that a socket holds without
    # listening: apt's connection is refused.  The copy is hard links to the shared
    # root: its sources.list is replaced (a new inode), never written in place.
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{held.getsockname()[1]}/debian"
        lines = [f"deb {mirror} {copy.suite} main"]
        apt = copy.path / "etc/apt"
        for old in [apt / "sources.list", *(apt / "sources.list.d").iterdir()]:
            old.unlink()
        new = apt / "sources.list.new"
        new.write_text("\n".join(lines) + "\n")
        new.rename(apt / "sources.list")
        write_metadata(copy.directory, RootMetadata(
            suite=copy.suite, arch=copy.arch, generation=copy.generation, mirror=mirror,
            sources=tuple(lines), created=copy.created, updated=copy.updated,
            build_user=copy.build_user, build_uid=copy.build_uid))
        before = open_base_root(config, "copy")
        result = guestpkg(config, "update", "copy")
    assert result.returncode == NetworkError.exit_code
    error, hint = result.stderr.splitlines()[-2:]
    assert error.startswith("guestpkg: error: buildroot 'copy' was not updated: apt-get "
                            f"update could not fetch its package lists from {mirror} (E: Failed "
                            f"to fetch "
                            f"{mirror}/dists/{copy.suite}/InRelease"), result.stderr
    assert hint == ("guestpkg: hint: check this machine's network and the buildroot's "
                    f"sources ({lines[0]}), then run guestpkg buildroot update copy")
    assert "Traceback" not in result.stderr and "updated buildroot" not in result.stdout
    # The current generation stays, and nothing of the failed one is left.
    assert open_base_root(config, "copy") == before
    assert generations(copy.directory) == [copy.path]
    assert not [p for p in copy.directory.iterdir() if p.name.startswith(".tmp-")]


def test_remove_is_refused_while_a_fork_uses_the_root(config: Config, copy: BaseRoot) -> None:
    with fork(config, copy):
        with pytest.raises(SystemStateError, match="in use"):
            remove_base_root(config, "copy")
        assert open_base_root(config, "copy") == copy
    remove_base_root(config, "copy")
    assert not copy.directory.exists()
    assert list_base_roots(config) == []
    with pytest.raises(SystemStateError) as info:
        open_base_root(config, "copy")
    assert info.value.hint == "run guestpkg buildroot create --buildroot copy"


def guestpkg(config: Config, *args: str, user: str | None = None
             ) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", "--regid=65534", "--clear-groups"] if user \
        else []
    return subprocess.run(
        [*prefix, "/usr/bin/python3", "-m", "guestpkg", "buildroot", *args,
         "--vardir", str(config.vardir)],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "GUESTPKG_LOGDIR": str(config.logdir)})


def test_command_lists_and_removes(config: Config, copy: BaseRoot) -> None:
    listed = guestpkg(config, "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "SUITE", "ARCH", "GENERATION", "SIZE", "AGE"]
    assert row.split()[:4] == ["copy", copy.suite, copy.arch, copy.generation]
    assert row.split()[4].endswith("M")
    removed = guestpkg(config, "remove", "copy")
    assert removed.returncode == 0, removed.stderr
    assert not copy.directory.exists()
    missing = guestpkg(config, "remove", "copy")
    assert missing.returncode == 5 and "there is no buildroot 'copy'" in missing.stderr


def test_failed_create_names_its_log_and_leaves_no_root(config: Config) -> None:
    # Port 9 (discard) on loopback: nothing listens, apt fails at once.
    result = guestpkg(config, "create", "broken", "--mirror", "http://127.0.0.1:9/debian")
    assert result.returncode == 1, result.stderr
    logs = list((config.logdir / "buildroot").glob("create-broken-*.log"))
    assert len(logs) == 1
    assert f"its full log is {logs[0]}" in result.stderr
    assert "127.0.0.1:9" in logs[0].read_text()
    top = config.vardir / "buildroots"
    assert [p.name for p in top.iterdir()] == ["broken.lock"]


def test_existing_root_is_not_created_again(config: Config, copy: BaseRoot) -> None:
    result = guestpkg(config, "create", "copy")
    assert result.returncode == 2 and "already exists" in result.stderr


def test_a_user_without_subordinate_ids_is_a_clear_error(config: Config, tmp_path: Path) -> None:
    """A normal user may manage their own buildroots (docs/buildroots.md), but only with a
    subordinate id range; nobody has none, and each command says how to get one."""
    os.chmod(tmp_path, 0o755)
    for args in (("create", "x"), ("update", "x"), ("remove", "x")):
        result = guestpkg(config, *args, user="nobody")
        assert result.returncode == 5, result.stderr
        assert "gives nobody no range of" in result.stderr, result.stderr
        assert "usermod --add-subuids" in result.stderr and "Traceback" not in result.stderr


def _lock_is_free(path: Path) -> bool:
    import fcntl

    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


def test_killed_create_leaves_no_root_and_no_mount(config: Config) -> None:
    import signal
    import time

    top = config.vardir / "buildroots"
    mounts = Path("/proc/1/mountinfo").read_text()
    child = subprocess.Popen(
        ["/usr/bin/python3", "-m", "guestpkg", "buildroot", "create", "killed",
         "--vardir", str(config.vardir)], cwd=REPO, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO), "GUESTPKG_LOGDIR": str(config.logdir)})
    # Wait (generous deadline, polled) until mmdebstrap has started to fill the tree.
    deadline = time.monotonic() + 120
    while not list(top.glob(".tmp-killed.*/gen-*/var")):
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    # mmdebstrap outlives guestpkg for a moment and holds the root's lock meanwhile: a
    # reaper must not pull the tree from under it.  Nothing looks like a root.
    assert list_base_roots(config) == []
    reap_buildroots(config)
    assert list(top.glob(".tmp-killed.*"))
    os.killpg(child.pid, signal.SIGKILL)
    while not _lock_is_free(top / "killed.lock"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    reap_buildroots(config)
    assert sorted(p.name for p in top.iterdir()) == ["killed.lock"]
    assert Path("/proc/1/mountinfo").read_text() == mounts


def test_a_root_being_changed_is_not_changed_twice(config: Config, copy: BaseRoot) -> None:
    from guestpkg.buildroot.roots import changing_root

    with changing_root(config, "copy"):
        for change in (update_base_root, remove_base_root):
            with pytest.raises(SystemStateError, match="another guestpkg is changing"):
                change(config, "copy")
    assert open_base_root(config, "copy") == copy


def test_unreadable_vardir_is_a_clear_error(config: Config, copy: BaseRoot) -> None:
    # pytest's tmp_path lies in a 0700 directory: nobody can't read the roots there.
    result = guestpkg(config, "list", user="nobody")
    assert result.returncode == 5, result.stderr
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr
