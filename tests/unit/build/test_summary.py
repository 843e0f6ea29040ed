# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.summary: sbuild's section boxes and Summary lines."""

from __future__ import annotations

from guestpkg.build import summary


def test_section_box_is_sbuilds() -> None:
    text = summary.section("Summary")
    rule = "+" + "-" * 78 + "+"
    assert text == f"\n{rule}\n| Summary{' ' * 69} |\n{rule}\n\n"
    assert all(len(line) == 80 for line in text.splitlines() if line)


def test_summary_and_environment() -> None:
    text = summary.summary({"Status": "successful", "Build-Time": "12"})
    assert text.endswith("\nBuild-Time: 12\nStatus: successful\n")
    env = summary.build_environment(["texinfo:amd64=6.8-6+b1", "-foo", "automake:all=1:1.16.5-1.3"])
    assert "\nremoved: foo\nautomake_1:1.16.5-1.3_all\ntexinfo_6.8-6+b1_amd64\n" in env


def test_banner_is_sbuilds() -> None:
    """sbuild's open_build_log: source, version and arch left, the date right, in a
    box of ``=`` 80 columns wide."""
    text = summary.banner("hello 2.10-3 (amd64) ", "Tue, 01 Dec 2026 01:30:00 +0000")
    lines = text.strip("\n").splitlines()
    assert lines[0] == lines[2] == "+" + "=" * 78 + "+"
    assert lines[1].startswith("| hello 2.10-3 (amd64) ") and len(lines[1]) == 80
    assert lines[1].endswith(" Tue, 01 Dec 2026 01:30:00 +0000 |")


def shaped_log(status: str, fail_stage: str | None) -> str:
    fields = {"Package": "hello", "Version": "2.10-3", "Source Version": "2.10-3",
              "Distribution": "unstable", "Machine Architecture": "amd64",
              "Host Architecture": "amd64", "Build Architecture": "amd64",
              "Build Type": "binary"}
    text = summary.header("guestpkg 0.1.0 on host", fields, 1764552600.0,
                          {"Kernel": "Linux 6.1.0 #1 SMP x86_64"})
    text += "guestpkg: == build dependencies (01:30:00)\n"
    text += summary.section("Install package build dependencies")
    text += summary.build_dependencies(["debhelper-compat (= 13)", "texinfo"], [],
                                       ["texinfo:amd64=6.8-6+b1"], ", layer 1234")
    text += summary.section("Build")
    text += "dpkg-buildpackage -us -uc -b\nmake: *** [debian/rules:8: build] Error 1\n"
    if status == "successful":
        text += summary.section("Post Build") + summary.subsubsection("lintian")
        text += "W: hello: some-tag\n"
    summary_fields = {"Status": status, "Package": "hello", "Version": "2.10-3"}
    if fail_stage:
        summary_fields["Fail-Stage"] = fail_stage
    text += summary.build_environment(["texinfo:amd64=6.8-6+b1"])
    text += summary.summary(summary_fields) + summary.tail(62.4, 1234, 1764552700.0)
    return text


def test_the_shaped_log_is_read_by_buildlog_consultant() -> None:
    """Debian's sbuild log parser (python3-buildlog-consultant, as Janitor and
    debian-janitor read buildd logs) finds sbuild's sections, the failed stage and
    the build's error in guestpkg's log."""
    import io

    from buildlog_consultant.sbuild import SbuildLog, worker_failure_from_sbuild_log

    failed = SbuildLog.parse(io.BytesIO(shaped_log("failed", "build").encode()))
    assert failed.section_titles() == [None, "Install package build dependencies", "Build",
                                       "Build environment", "Summary"]
    assert "Package: hello\n" in failed.get_section_lines(None)
    assert "Merged Build-Depends: debhelper-compat (= 13), texinfo\n" in \
        failed.get_section_lines("Install package build dependencies")
    assert failed.get_failed_stage() == "build"
    failure = worker_failure_from_sbuild_log(failed)
    assert failure.stage == "build" and failure.section is not None
    assert failure.section.title == "Build"

    ok = SbuildLog.parse(io.BytesIO(shaped_log("successful", None).encode()))
    assert ok.get_failed_stage() is None
    assert "lintian\n" in ok.get_section_lines("Post Build")
    assert "Status: successful\n" in ok.get_section_lines("Summary")
    assert "Build needed 00:01:02, 1234k disk space\n" in ok.get_section_lines("Summary")
