# SPDX-License-Identifier: GPL-2.0-or-later
"""Issue 9: a failure records its cause, and the next run retries at once when the
cause is gone (a buildroot made or updated since, a server reachable again) instead
of waiting out the backoff; a buildroot whose lists are older than the system's is
stale.  Real files and a real socket on 127.0.0.1, no root."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from guestpkg import config as cfg
from guestpkg.errors import NetworkError, SystemStateError
from guestpkg.host import buildenv, recovery
from guestpkg.host import state as st
from guestpkg.host.lifecycle import retry_if_cause_gone

HOUR = 3600.0


def make_config(tmp_path: Path) -> cfg.Config:
    return cfg.load(environ={"GUESTPKG_VARDIR": str(tmp_path / "var"),
                             "GUESTPKG_LOGDIR": str(tmp_path / "log"),
                             "GUESTPKG_CONFDIR": str(tmp_path / "etc")})


def make_buildroot(config: cfg.Config, generation: str) -> None:
    directory = config.vardir / "buildroots" / config.buildroot
    (directory / f"gen-{generation}").mkdir(parents=True, exist_ok=True)
    (directory / "root.json").write_text(json.dumps({
        "format": 1, "suite": "bookworm", "arch": "amd64", "generation": generation}))


def failing(host: str, **cause: str) -> st.HostState:
    state = st.HostState(host, consent=True, bundled_version="1.0-1")
    state.record_failure("boom", time.time(), HOUR, 3 * 86400.0, **cause)
    return state


def test_a_buildroot_made_since_the_failure_retries_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    state = failing("foo-installer", **recovery.record_cause(
        config, SystemStateError("there is no buildroot 'default'")))
    assert state.failure.buildroot == "none"
    assert retry_if_cause_gone(config, state) == ""
    assert state.failure.next_retry_at > time.time() + HOUR / 2  # still backing off
    make_buildroot(config, "20261130T000000Z-aaaa")
    assert "buildroot" in retry_if_cause_gone(config, state)
    assert state.failure.next_retry_at == 0.0 and state.failure.count == 1


def test_an_updated_buildroot_retries_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    make_buildroot(config, "20261130T000000Z-aaaa")
    state = failing("foo-installer", **recovery.record_cause(
        config, SystemStateError("installing the build dependencies failed")))
    assert state.failure.buildroot == "20261130T000000Z-aaaa"
    assert retry_if_cause_gone(config, state) == ""
    make_buildroot(config, "20261201T000000Z-bbbb")
    assert retry_if_cause_gone(config, state)


def test_a_permanent_failure_is_retried_when_its_cause_is_gone(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    state = failing("foo-installer", buildroot="none")
    state.failure.permanent = True
    make_buildroot(config, "20261130T000000Z-aaaa")
    assert retry_if_cause_gone(config, state)
    assert not state.failure.permanent


def test_a_server_back_online_retries_at_once(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # the server is down: connections are refused
    error = NetworkError(f"http://127.0.0.1:{port}/hello-2.10.tar.gz: connection refused")
    cause = recovery.record_cause(config, error)
    assert cause == {"unreachable": f"http://127.0.0.1:{port}"}
    state = failing("foo-installer", **cause)
    assert retry_if_cause_gone(config, state) == ""
    with socket.create_server(("127.0.0.1", port)):
        assert "reachable again" in retry_if_cause_gone(config, state)
    assert state.failure.next_retry_at == 0.0


@pytest.mark.parametrize("message", [
    "no URL in this message", "ftp://[broken", "http://host:99999999/x"])
def test_unreachable_server_only_takes_a_url(message: str) -> None:
    server = recovery.unreachable_server(NetworkError(message))
    assert not server or not recovery.server_reachable(server, timeout_s=0.2)


def release(date: str) -> str:
    return (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: Debian\n"
            f"Suite: stable\nCodename: bookworm\nDate: {date}\nValid-Until: x\n"
            "SHA256:\n 0123 1 main/binary-amd64/Packages\n")


def test_lists_older_than_the_systems_are_stale(tmp_path: Path) -> None:
    ours, system = tmp_path / "root-lists", tmp_path / "system-lists"
    ours.mkdir()
    system.mkdir()
    name = "deb.debian.org_debian_dists_bookworm_InRelease"
    (ours / name).write_text(release("Sat, 10 May 2025 09:10:52 UTC"))
    (system / name).write_text(release("Sat, 10 May 2025 09:10:52 UTC"))
    assert buildenv.lists_stale(ours, system) == ""
    (system / name).write_text(release("Sat, 17 May 2025 08:59:01 UTC"))
    why = buildenv.lists_stale(ours, system)
    assert why.startswith("deb.debian.org/debian/dists/bookworm: 2025-05-10 09:10 < "
                          "2025-05-17 08:59"), why
    # A source the system does not have, or an unreadable date, is not a reason.
    (ours / name).write_text(release("not a date"))
    assert buildenv.lists_stale(ours, system) == ""
    assert buildenv.lists_stale(tmp_path / "missing", system) == ""


def test_missing_package_failures_are_recognised() -> None:
    assert buildenv.missing_package_failure(
        "Err:1 http://deb.debian.org/debian bookworm/main amd64 gettext amd64 0.21-12\n"
        "  404  Not Found [IP: 151.101.2.132 80]\n"
        "E: Unable to fetch some archives, maybe run apt-get update or try with "
        "--fix-missing?\n")
    assert not buildenv.missing_package_failure("E: Sub-process /usr/bin/dpkg returned "
                                                "an error code (1)\n")


def test_state_keeps_the_cause(tmp_path: Path) -> None:
    state = failing("foo-installer", unreachable="http://127.0.0.1:8")
    st.save(tmp_path, state, pending=True)
    assert st.load(tmp_path, "foo-installer").failure.unreachable == "http://127.0.0.1:8"


def test_progress_shows_mmdebstraps_latest_step(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "create.log"
    log.write_text("+ mmdebstrap ...\nI: automatically chose mode: root\n"
                   "Get:1 http://deb.debian.org/debian bookworm InRelease\n"
                   "I: extracting archives...\x1b[31m\n")
    said: list[str] = []
    monkeypatch.setattr(buildenv, "PROGRESS_EVERY_S", 0.05)
    with buildenv.progress(log, said.append, time.monotonic()):
        time.sleep(0.3)
    assert said and said[-1].startswith("still making the build environment (")
    assert said[-1].endswith("): extracting archives...?[31m"), said[-1]
