# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.postbuild's pure parts: sbuild's lintian reasons, the test
dependencies read from a (hostile) debian/tests/control, the post_build_fail
setting, and what a check that can't run gives (with a stand-in build context)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from guestpkg.build import postbuild
from guestpkg.config import POST_BUILD_CHECKS, parse_post_build_checks
from guestpkg.errors import BuildFailed, GuestpkgError, Interrupted, ParseError, UsageError


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


class _Log:
    def __init__(self, path: Path) -> None:
        self.path, self.warnings = path, list[str]()

    def step(self, text: str) -> None:
        pass

    def warn(self, text: str) -> None:
        self.warnings.append(text)


@pytest.mark.parametrize("error", [
    UsageError("two different .debs are both hello 1.0 amd64"),
    BuildFailed("piuparts could not be installed", Path("build.log")),
    ParseError("bad Depends", "hello.deb (control)"),
])
def test_a_check_that_cannot_run_is_an_error_not_a_failed_build(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: GuestpkgError) -> None:
    # the build itself succeeded: a check our own code refused to run gives "error"
    # (and fails the build only if post_build_fail names it), never an exception that
    # throws the build's results away
    def refuse(ctx: object) -> str:
        raise error

    monkeypatch.setitem(postbuild.RUNNERS, postbuild.Check.PIUPARTS, refuse)
    ctx = SimpleNamespace(
        log=_Log(tmp_path / "build.log"), post_build={},
        options=SimpleNamespace(checks=frozenset({"piuparts"})),
        config=SimpleNamespace(post_build_fail=""))
    postbuild.run_post_build(ctx)  # type: ignore[arg-type]
    assert ctx.post_build == {"Piuparts": "error"}
    assert any(error.message in w for w in ctx.log.warnings)


def test_an_interrupt_during_a_check_is_not_swallowed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(ctx: object) -> str:
        raise Interrupted("interrupted")

    monkeypatch.setitem(postbuild.RUNNERS, postbuild.Check.PIUPARTS, interrupted)
    ctx = SimpleNamespace(
        log=_Log(tmp_path / "build.log"), post_build={},
        options=SimpleNamespace(checks=frozenset({"piuparts"})),
        config=SimpleNamespace(post_build_fail=""))
    with pytest.raises(Interrupted):
        postbuild.run_post_build(ctx)  # type: ignore[arg-type]
