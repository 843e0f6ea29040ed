# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.build.piuparts's pure parts: piuparts's verdict from its exit status and
log, and the dependencies read from the built packages' (hostile) control fields."""

from __future__ import annotations

import pytest

from guestpkg.build.extras import IndexedDeb
from guestpkg.build.piuparts import dependencies, piuparts_result
from guestpkg.debian.deb822 import format_stanza
from guestpkg.errors import ParseError


@pytest.mark.parametrize(("status", "output", "result"), [
    (0, "0m38.7s INFO: PASS: All tests.\n", "pass"),
    (1, "0m40.1s ERROR: FAIL: Package purging left files on system:\n"
        "  /var/lib/tiny/\t not owned\n", "fail"),
    (1, "0m19.0s ERROR: Command failed (status=100): ['chroot', '/tmp/x', 'apt-get']\n",
     "error"),
    (125, "guestpkg-sandbox: cannot set up the sandbox\n", "error"),
    # a FAIL: that is not piuparts's own error line (a package's output) counts not
    (1, "  echo ERROR: FAIL: from a maintainer script\n", "error"),
    (1, "0m1.0s INFO: FAIL: All tests. Package cannot be tested\n", "error"),
])
def test_piuparts_verdict(status: int, output: str, result: str) -> None:
    assert piuparts_result(status, output) == result


def deb(package: str, **fields: str) -> IndexedDeb:
    stanza = format_stanza({"Package": package, "Version": "1.0", "Architecture": "amd64",
                            **{name.replace("_", "-"): value for name, value in fields.items()}})
    return IndexedDeb(package, "1.0", "amd64", f"{package}_1.0_amd64.deb", stanza)


def test_dependencies_of_the_built_packages() -> None:
    debs = [deb("foo", Pre_Depends="dpkg (>= 1.17)",
                Depends="libc6 (>= 2.34), foo-data (= 1.0), tree | mc, bar [i386]"),
            deb("foo-data", Depends="libc6 (>= 2.34), python3:any")]
    # what a built package satisfies by name is served by the repository itself;
    # alternatives stay, architecture restrictions apply, each relation once
    assert dependencies(debs, "amd64") == ["dpkg (>= 1.17)", "libc6 (>= 2.34)",
                                           "tree | mc", "python3:any"]


@pytest.mark.parametrize("depends", [
    "foo; rm -rf /", "foo (>> $(id))", "-o APT::Get::Foo=1", "foo\n bar",
])
def test_hostile_depends_of_a_built_package_are_refused(depends: str) -> None:
    with pytest.raises(ParseError):
        dependencies([deb("foo", Depends=depends)], "amd64")
