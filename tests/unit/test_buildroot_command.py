# SPDX-License-Identifier: GPL-2.0-or-later
"""The pure parts of ``guestpkg buildroot``: its arguments and its listing's units."""

from __future__ import annotations

import pytest

from guestpkg.cli import build_parser
from guestpkg.commands.buildroot import human_age, human_size


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (1023, "1023B"), (1024, "1.0K"), (520_000_000, "495.9M"), (3 << 30, "3.0G"),
    (5 << 40, "5.0T")])
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (59.9, "59s"), (60, "1m"), (7200, "2h"), (3 * 86400 + 5, "3d")])
def test_human_age(seconds: float, text: str) -> None:
    assert human_age(seconds) == text


def test_arguments_and_settings() -> None:
    argv = ["buildroot", "create", "sid-root", "--suite", "sid", "--arch", "arm64",
            "--mirror", "http://m/debian", "--include", "eatmydata,ccache", "--include", "git"]
    args = build_parser(argv).parse_args(argv)
    assert (args.action, args.name, args.suite, args.arch, args.mirror) == (
        "create", "sid-root", "sid", "arm64", "http://m/debian")
    assert args.include == ["eatmydata,ccache", "git"]


def test_unknown_action_is_a_usage_error() -> None:
    argv = ["buildroot", "destroy"]
    with pytest.raises(SystemExit) as info:
        build_parser(argv).parse_args(argv)
    assert info.value.code == 2
