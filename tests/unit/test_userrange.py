# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.sandbox.userrange: what a normal user needs, each missing piece said in one
line with its fix; the user's range read as newuidmap reads it; the user's default
directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guestpkg import config
from guestpkg.errors import SystemStateError
from guestpkg.sandbox import userrange


def test_old_kernel_is_explained() -> None:
    problem = userrange.kernel_problem("5.10.0-28-amd64")
    assert problem is not None
    assert "Linux 5.10.0-28-amd64 has no overlayfs in user namespaces (needs 5.11" in str(problem)
    assert userrange.kernel_problem("5.11.0") is None
    assert userrange.kernel_problem("6.1.0-18-amd64") is None


@pytest.mark.parametrize(("relative", "value", "fix"), [
    ("kernel/unprivileged_userns_clone", "0", "sysctl -w kernel.unprivileged_userns_clone=1"),
    ("user/max_user_namespaces", "0", "sysctl -w user.max_user_namespaces=15000"),
    ("kernel/apparmor_restrict_unprivileged_userns", "1",
     "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"),
])
def test_disabled_user_namespaces_are_explained(tmp_path: Path, relative: str, value: str,
                                                fix: str) -> None:
    assert userrange.sysctl_problem(tmp_path) is None  # none of the files: allowed
    (tmp_path / relative).parent.mkdir(parents=True)
    (tmp_path / relative).write_text(value + "\n")
    problem = userrange.sysctl_problem(tmp_path)
    assert problem is not None
    assert "unprivileged user namespaces are disabled" in str(problem)
    assert problem.hint is not None and problem.hint.startswith(f"as root: {fix}")
    (tmp_path / relative).write_text("1\n" if value == "0" else "0\n")
    assert userrange.sysctl_problem(tmp_path) is None


def test_missing_newuidmap_is_explained(tmp_path: Path) -> None:
    problem = userrange.helper_problem((str(tmp_path / "newuidmap"),))
    assert problem is not None and problem.hint == "as root: apt install uidmap"
    assert userrange.helper_problem(("/bin/sh",)) is None


def test_the_users_range_by_name_or_uid(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    uid = os.getuid()
    subuid.write_text(f"guestpkg:1879048192:4194304\nsomeone:100000:65536\n{uid}:200000:65536\n")
    subgid.write_text(f"{uid}:300000:65536\n")
    found = userrange.find_user_range(uid, subuid, subgid)
    assert (found.uid, found.subuid, found.subgid) == (uid, 200000, 300000)
    assert found.uid_map() == ["0", "200000", "65536", "65536", str(uid), "1"]
    assert found.gid_map() == ["0", "300000", "65536", "65536", str(found.gid), "1"]


def test_no_range_says_which_usermod_to_run(tmp_path: Path) -> None:
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text("guestpkg:1879048192:4194304\n")
    subgid.write_text("")
    with pytest.raises(SystemStateError) as info:
        userrange.find_user_range(os.getuid(), subuid, subgid)
    assert "gives" in str(info.value) and "no range of 65536 subordinate ids" in str(info.value)
    assert "usermod --add-subuids N-M --add-subgids N-M" in (info.value.hint or "")


def test_a_normal_users_directories_follow_xdg(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    assert config._user_dir("XDG_STATE_HOME", ".local/state") == \
        tmp_path / ".local/state/guestpkg"
    monkeypatch.setenv("XDG_STATE_HOME", "/srv/state")
    assert config._user_dir("XDG_STATE_HOME", ".local/state", "log") == \
        Path("/srv/state/guestpkg/log")
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")  # the spec: absolute only
    assert config._user_dir("XDG_STATE_HOME", ".local/state") == \
        tmp_path / ".local/state/guestpkg"
