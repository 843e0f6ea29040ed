# SPDX-License-Identifier: GPL-2.0-or-later
"""The lifecycle rules (docs/design.md) as decisions, and the state file they live in."""

from __future__ import annotations

import json
import time
from pathlib import Path

import apt_pkg
import pytest

from guestpkg.errors import InputError
from guestpkg.host import state as st
from guestpkg.host.plan import Step, decide, observe

apt_pkg.init_system()
HOUR = 3600.0
DAY = 86400.0


def consented(**kw: object) -> st.HostState:
    s = st.HostState("hello-installer", consent=True, bundled_version="2.10-3")
    for k, value in kw.items():
        setattr(s, k, value)
    return s


def step(s: st.HostState, installed: str | None = None, built: bool = False,
         now: float = 1000.0) -> Step:
    return decide(s, installed, built, now, apt_pkg.version_compare).step


def test_consent_defaults_to_no() -> None:
    s = st.HostState("h", bundled_version="1-1")
    assert s.consent is None
    assert step(s) is Step.NOTHING
    s.consent = False
    assert step(s) is Step.NOTHING


def test_consent_builds() -> None:
    assert step(consented()) is Step.BUILD


def test_built_debs_are_installed_without_rebuilding() -> None:
    s = consented(built_version="2.10-3~local")
    assert step(s, built=True) is Step.INSTALL
    assert step(s, built=False) is Step.BUILD


def test_a_guest_removed_by_the_user_is_not_reinstalled() -> None:
    s = consented(installed_version="2.10-3~local")
    observe(s, None)
    assert s.user_removed
    assert s.installed_version is None
    assert step(s) is Step.NOTHING


def test_observe_keeps_an_installed_guest() -> None:
    s = consented(installed_version="2.10-3~local")
    observe(s, "2.10-3~local")
    assert not s.user_removed


def test_host_only_bump_does_not_rebuild() -> None:
    s = consented(installed_version="2.10-3~local", host_version="2.10-3-2")
    assert step(s, installed="2.10-3~local") is Step.NOTHING


def test_bumped_guest_revision_rebuilds() -> None:
    s = consented(installed_version="2.10-3~local", built_version="2.10-3~local",
                  bundled_version="2.10-4")
    assert step(s, installed="2.10-3~local", built=True) is Step.BUILD


def test_an_archive_build_supersedes_the_local_one() -> None:
    assert step(consented(), installed="2.10-3") is Step.NOTHING


def test_failures_back_off_then_become_permanent() -> None:
    s = consented()
    s.record_failure("offline", 0.0, HOUR, 3 * DAY)
    assert s.failure.next_retry_at == HOUR
    assert step(s, now=HOUR / 2) is Step.WAIT
    assert step(s, now=HOUR) is Step.BUILD
    s.record_failure("offline", HOUR, HOUR, 3 * DAY)
    assert s.failure.next_retry_at == HOUR + 2 * HOUR
    assert not s.failure.permanent
    s.record_failure("offline", 3 * DAY, HOUR, 3 * DAY)
    assert s.failure.permanent
    assert step(s, now=10 * DAY) is Step.NOTHING
    s.clear_failure()
    assert step(s, now=10 * DAY) is Step.BUILD


def test_backoff_is_capped_at_a_day() -> None:
    assert st.backoff_s(0, HOUR) == 0
    assert st.backoff_s(3, HOUR) == 4 * HOUR
    assert st.backoff_s(50, HOUR) == DAY


def test_state_round_trips_atomically(tmp_path: Path) -> None:
    s = consented(built_packages=["hello"])
    s.record_failure("boom", 5.0, HOUR, DAY)
    st.save(tmp_path, s, pending=True)
    assert st.load(tmp_path, "hello-installer") == s
    assert st.pending_hosts(tmp_path) == ["hello-installer"]
    assert st.known_hosts(tmp_path) == ["hello-installer"]
    assert not [p for p in (tmp_path / "hosts").iterdir() if p.name.startswith(".tmp-")]
    st.save(tmp_path, s, pending=False)
    assert st.pending_hosts(tmp_path) == []
    st.remove(tmp_path, "hello-installer")
    assert st.load(tmp_path, "hello-installer") == st.HostState("hello-installer")


def test_bad_state_names_the_way_out(tmp_path: Path) -> None:
    path = st.state_path(tmp_path, "h")
    path.parent.mkdir()
    path.write_text("{")
    with pytest.raises(InputError) as e:
        st.load(tmp_path, "h")
    assert e.value.hint is not None and "guestpkg forget h" in e.value.hint
    path.write_text(json.dumps({"format": 99}))
    with pytest.raises(InputError, match="unknown state format"):
        st.load(tmp_path, "h")


def test_status_words() -> None:
    from guestpkg.commands.status import _state_word

    assert _state_word(st.HostState("h"), None, False) == "no consent"
    s = consented()
    assert _state_word(s, None, True) == "pending"
    assert _state_word(s, "2.10-3~local", False) == "installed"
    s.record_failure("x", time.time(), HOUR, DAY)
    assert _state_word(s, None, True) == "waiting to retry"
    s.failure.permanent = True
    assert _state_word(s, None, True) == "failed permanently"
    s.user_removed = True
    assert _state_word(s, None, False) == "removed by user"


def test_decisions_carry_a_reason_and_are_worded_apart() -> None:
    from guestpkg.host.plan import Reason, describe

    s = consented()
    installed = decide(s, "2.10-3~local", False, 0.0, apt_pkg.version_compare)
    assert (installed.reason, installed.version) == (Reason.INSTALLED, "2.10-3~local")
    assert describe(installed, "h") == "guest 2.10-3~local is installed"
    build = decide(s, None, False, 0.0, apt_pkg.version_compare)
    assert (build.step, build.reason, build.version) == (Step.BUILD, Reason.NOT_BUILT,
                                                         "2.10-3~local")
    s.record_failure("x", 0.0, HOUR, DAY)
    wait = decide(s, None, False, 1.0, apt_pkg.version_compare)
    assert (wait.step, wait.reason) == (Step.WAIT, Reason.RETRY_LATER)
    refused = decide(st.HostState("h"), None, False, 0.0, apt_pkg.version_compare)
    assert refused.reason is Reason.NO_CONSENT
    assert "dpkg-reconfigure h" in describe(refused, "h")
    # every reason has words
    assert all(describe(type(build)(Step.NOTHING, r, "1"), "h") for r in Reason)
