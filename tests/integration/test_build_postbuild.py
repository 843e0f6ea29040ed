# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg build --run-lintian --run-piuparts --run-autopkgtest: hello 2.10-3 from
its bookworm .dsc, one build with the three checks (the session's ``hello``
fixture; each check in a fork of its own over a cached layer of the tool), their
sections and results in the .build log as sbuild writes them and as
buildlog-consultant reads them; the tiny package with a failing, hostile
autopkgtest: "Autopkgtest: fail", its output escaped on the console, and the
post_build_fail setting deciding whether the build fails; and a tiny package
whose postinst leaves a file behind after its purge, with a dependency the base
root lacks and one on an --extra-package: "Piuparts: fail", and the build failed by
post_build_fail."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from buildlog_consultant.sbuild import SbuildLog, worker_failure_from_sbuild_log

from guestpkg.build import layers
from guestpkg.build.deb import BuildResult
from guestpkg.buildroot import BaseRoot
from guestpkg.config import Config
from tests.integration.test_build_extra import make_extra_deb
from tests.integration.test_build_failures import REPO, make_tiny

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_lintian_and_autopkgtest_on_hello(hello: tuple[BuildResult, BuildResult, bool]
                                          ) -> None:
    """The session's first build of hello (tests/integration/conftest.py) ran both."""
    result = hello[0]
    log = result.log_path.read_text()
    post = log.split("| Post Build ")[1].split("| Summary ")[0]
    assert "\nlintian\n-------\n" in post and "\nautopkgtest\n-----------\n" in post
    assert "\npiuparts\n--------\n" in post
    lintian = post.split("\nautopkgtest\n")[0]
    assert "running lintian /build/hello_2.10-3_amd64.changes /build/hello_2.10-3.dsc\n" \
        in lintian
    # autopkgtest ran hello's two tests on the built .debs in its null testbed
    assert re.search(r"^command1\s+PASS", post, re.M), post[-3000:]
    assert re.search(r"^upstream-tests\s+PASS", post, re.M), post[-3000:]
    summary = log.split("| Summary ")[1]
    assert re.search(r"^Lintian: (pass|info|warn)$", summary, re.M), summary
    assert "\nAutopkgtest: pass\n" in summary and "\nStatus: successful\n" in summary
    assert "\nPiuparts: pass\n" in summary
    # the log as Debian's sbuild log parser reads it
    parsed = SbuildLog.parse(io.BytesIO(result.log_path.read_bytes()))
    assert parsed.section_titles() == [None, "Install package build dependencies", "Build",
                                       "Post Build", "Build environment", "Summary"]
    header = parsed.get_section_lines(None)
    assert "Package: hello\n" in header and "Build Type: binary\n" in header
    assert any(line.startswith("Toolchain versions: guestpkg_") and " dpkg_" in line
               for line in header)
    assert any(re.fullmatch(r"  texinfo_\S+_amd64\n", line)
               for line in parsed.get_section_lines("Install package build dependencies"))
    assert parsed.get_failed_stage() is None


TESTS_CONTROL = """\
Test-Command: printf 'hostile \\033]0;retitled\\007 output\\n'; false
Depends: @
"""


def test_a_failing_autopkgtest_and_the_post_build_fail_setting(
        test_config: Config, base_root: BaseRoot, tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src")
    (tree / "debian" / "tests").mkdir()
    (tree / "debian" / "tests" / "control").write_text(TESTS_CONTROL)
    env = {"GUESTPKG_VARDIR": str(test_config.vardir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "GUESTPKG_LOGDIR": str(test_config.logdir), "PYTHONPATH": str(REPO)}

    def build(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "guestpkg", "build", *options,
                               "--run-lintian", "--run-autopkgtest", str(tree),
                               str(tmp_path / "out")],
                              env=env, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)

    reported = build()
    assert reported.returncode == 0, reported.stderr[-3000:]
    assert "Autopkgtest: fail" in reported.stderr
    # tiny has no copyright file, among other errors lintian reports
    assert "E: tiny: no-copyright-file" in reported.stderr and "Lintian: fail" in reported.stderr
    # the test's output reached the console escaped, never as a terminal sequence
    assert "\033]0;" not in reported.stderr and "\\x1b]0;retitled\\x07" in reported.stderr
    log = next((tmp_path / "out").glob("tiny_1.0_*.build")).read_text()
    assert "\nAutopkgtest: fail\n" in log and "\nLintian: fail\n" in log
    # autopkgtest's layer is its own: nothing of lintian's resolution (made earlier
    # in the same build's work directory) leaked into it
    section = log.split("\nautopkgtest\n-----------\n")[1]
    key = re.search(r"(?:using cached build-dependency layer|into new layer) ([0-9a-f]{32})",
                    section)
    assert key is not None, section[:2000]
    layer = layers.read_layer(test_config, key.group(1))
    assert layer is not None and any(p.startswith("autopkgtest:") for p in layer.packages)
    assert not any(p.startswith("lintian:") for p in layer.packages)
    assert "\nStatus: successful\n" in log

    refused = build("--post-build-fail", "autopkgtest")
    assert refused.returncode == 1, refused.stderr[-3000:]
    # lintian failed too, but only autopkgtest is named by the setting
    assert "autopkgtest failed after the build of tiny 1.0" in refused.stderr
    failed_log = re.search(r"the full log is (\S+)", refused.stderr)
    assert failed_log is not None, refused.stderr[-2000:]
    summary = Path(failed_log.group(1)).read_text().split("| Summary ")[1]
    assert "\nStatus: failed\n" in summary and "\nFail-Stage: post-build\n" in summary
    failure = worker_failure_from_sbuild_log(io.BytesIO(Path(failed_log.group(1)).read_bytes()))
    assert failure.stage == "post-build" and failure.section is not None
    assert failure.section.title == "Post Build"


def test_piuparts_on_hello(hello: tuple[BuildResult, BuildResult, bool]) -> None:
    """The same build ran piuparts: installed, removed and purged hello in its own
    copy of the buildroot (chroot and mount in the fork's own namespaces); hello
    needs nothing the base root lacks."""
    log = hello[0].log_path.read_text()
    section = log.split("\npiuparts\n--------\n")[1].split("\nautopkgtest\n")[0]
    assert "running piuparts --existing-chroot /guestpkg-piuparts-base" in section
    assert "a local repository of 2 .debs (0 of them dependencies)" in section  # + dbgsym
    assert re.search(r"^\S+ INFO: PASS: Installation and purging test\.$", section, re.M), \
        section[-3000:]
    assert re.search(r"^\S+ INFO: PASS: All tests\.$", section, re.M), section[-3000:]
    assert "hello_2.10-3_amd64.changes" in section
    kept = re.search(r"piuparts's log: (\S+\.piuparts)$", section, re.M)
    assert kept is not None, section[-2000:]
    assert "PASS: All tests." in Path(kept.group(1)).read_text()


LEFTOVER_RULES = """\
#!/usr/bin/make -f
clean:
\trm -rf debian/tmp debian/files
build build-arch build-indep:
binary binary-arch binary-indep:
\trm -rf debian/tmp
\tmkdir -p debian/tmp/DEBIAN debian/tmp/usr/share/tiny
\techo tiny > debian/tmp/usr/share/tiny/data
\tprintf '#!/bin/sh\\nset -e\\nmkdir -p /var/lib/tiny\\n: > /var/lib/tiny/leftover\\n' \\
\t  > debian/tmp/DEBIAN/postinst
\tchmod 755 debian/tmp/DEBIAN/postinst
\tdpkg-gencontrol -ptiny -Pdebian/tmp
\tdpkg-deb --root-owner-group --build debian/tmp ..
"""

LEFTOVER_CONTROL = """\
Source: tiny
Maintainer: guestpkg developers <guestpkg@localhost>
Rules-Requires-Root: no

Package: tiny
Architecture: all
Depends: tree, guestpkg-test-extra
Description: tiny test package that leaves a file behind
 Its postinst makes /var/lib/tiny/leftover, and nothing removes it.
"""


def test_piuparts_finds_a_file_left_after_purge(test_config: Config, base_root: BaseRoot,
                                                tmp_path: Path) -> None:
    tree = make_tiny(tmp_path / "src")
    extra = make_extra_deb(tmp_path, "piuparts")
    (tree / "debian" / "rules").write_text(LEFTOVER_RULES)
    (tree / "debian" / "control").write_text(LEFTOVER_CONTROL)
    env = {"GUESTPKG_VARDIR": str(test_config.vardir), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "GUESTPKG_LOGDIR": str(test_config.logdir), "PYTHONPATH": str(REPO),
           "GUESTPKG_CACHEDIR": str(test_config.cachedir)}

    def build(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "guestpkg", "build", "--run-piuparts",
                               "--extra-package", str(extra), *options, str(tree),
                               str(tmp_path / "out")],
                              env=env, capture_output=True, text=True, check=False,
                              stdin=subprocess.DEVNULL)

    # With the host's own ids the relaxation is refused: no piuparts, an error
    refused = build("--id-mapping", "root", "--quiet-build")
    assert refused.returncode == 0, refused.stderr[-3000:]
    assert "piuparts: needs chroot and mount in a user namespace of its own, which " \
        "id_mapping = root does not give" in refused.stderr
    assert "Piuparts: error" in refused.stderr

    result = build("--post-build-fail", "piuparts")
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Piuparts: fail" in result.stderr
    assert "piuparts failed after the build of tiny 1.0" in result.stderr
    # the dependency the base root lacks and the --extra-package came from the local
    # repository
    assert "a local repository of 3 .debs (1 of them dependencies)" in result.stderr
    assert "Setting up tree " in result.stderr
    assert "Setting up guestpkg-test-extra (1.0) " in result.stderr
    assert re.search(r"^\S+ ERROR: FAIL: Package purging left files on system:$",
                     result.stderr, re.M), result.stderr[-3000:]
    assert "/var/lib/tiny/leftover" in result.stderr
    failed_log = re.search(r"the full log is (\S+)", result.stderr)
    assert failed_log is not None, result.stderr[-2000:]
    summary = Path(failed_log.group(1)).read_text().split("| Summary ")[1]
    assert "\nPiuparts: fail\n" in summary and "\nFail-Stage: post-build\n" in summary
