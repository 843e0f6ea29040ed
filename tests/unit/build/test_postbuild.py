# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.postbuild's pure parts: sbuild's lintian reasons, the test
dependencies read from a (hostile) debian/tests/control, and the post_build_fail
setting."""

from __future__ import annotations

import pytest

from guestpkg.build import postbuild
from guestpkg.config import POST_BUILD_CHECKS, parse_post_build_checks
from guestpkg.errors import ParseError


@pytest.mark.parametrize(("status", "output", "reason"), [
    (0, "", "pass"), (0, "I: hello: some-info\n", "info"),
    (0, "I: x: a\nW: hello: some-warning\n", "warn"), (2, "E: hello: an-error\n", "fail"),
    (1, "internal error\n", "error"), (137, "", "error"),
    (0, "text W: not at a line start\n", "pass"),
])
def test_lintian_reasons_are_sbuilds(status: int, output: str, reason: str) -> None:
    assert postbuild.lintian_result(status, output) == reason


def test_test_dependencies_leave_the_built_packages_to_autopkgtest() -> None:
    control = ("Tests: a\nDepends: @, python3 (>= 3.11), foo [amd64] | bar\n\n"
               "Test-Command: true\nDepends: @builddeps@, python3, baz [!amd64]\n")
    assert postbuild.test_dependencies(control, "amd64") == ["python3 (>= 3.11)", "foo",
                                                             "python3"]


@pytest.mark.parametrize("depends", [
    "foo\n Package: evil", "foo (>> 1) )", "-o APT::Get::Yes=1", "foo, bar;rm -rf /",
])
def test_hostile_test_dependencies_are_refused(depends: str) -> None:
    with pytest.raises(ParseError):
        postbuild.test_dependencies(f"Tests: a\nDepends: {depends}\n", "amd64")


def test_the_setting_names_the_checks_the_builder_runs() -> None:
    assert tuple(check.value for check in postbuild.Check) == POST_BUILD_CHECKS
    assert parse_post_build_checks(" lintian , autopkgtest") == "lintian,autopkgtest"
    assert parse_post_build_checks("piuparts") == "piuparts"
    with pytest.raises(ValueError,
                       match="'debsums' is not one of lintian, piuparts, autopkgtest"):
        parse_post_build_checks("debsums")
