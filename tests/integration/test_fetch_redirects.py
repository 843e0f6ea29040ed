# SPDX-License-Identifier: GPL-2.0-or-later
"""Where an upstream can send a fetch (issue 10, finding 3): a redirect, a link on a
page or a DNS answer must not lead guestpkg, as root, to the machine's own services.

The upstream is a real server on another "machine" (192.0.2.2, a network namespace
joined by a veth pair, :mod:`tests.support.netns`), so its redirects to the client's
127.0.0.1 are the real attack; the client's local service counts the connections it
gets, which must stay at zero.  Every refusal has a positive control beside it."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.support.netns import run_cases
from tests.support.upstreams import tarball

TARBALL = tarball("foo-1.0.tar.gz", "gz")
PAGE = ('<html><a href="foo-0.9.tar.gz">old</a>'
        '<a href="http://{host}/dl/foo-1.0.tar.gz">new</a></html>\n')

UP = "http://upstream.test"
CASES = {
    # positive controls: an upstream that is not local, a local host the watch names
    "upstream": f"value = get_page(config, '{UP}/foo-1.0.tar.gz').final_url",
    "named-loopback": "value = get_page(config, 'http://127.0.0.1:8080/').text",
    # redirects from the upstream to this machine
    "to-loopback": f"get_page(config, '{UP}/redirect-to?http://127.0.0.1:8080/secret')",
    "to-loopback-2": f"get_page(config, '{UP}/redirect-to?http://127.1.2.3:8080/secret')",
    "to-ipv6-loopback": f"get_page(config, '{UP}/redirect-to?http://[::1]:8080/secret')",
    "to-own-address": f"get_page(config, '{UP}/redirect-to?http://192.0.2.1:8080/secret')",
    "to-localhost": f"get_page(config, '{UP}/redirect-to?http://localhost:8080/secret')",
    "to-link-local": f"get_page(config, '{UP}/redirect-to?http://169.254.169.254/latest')",
    "to-rebinding-name":
        f"get_page(config, '{UP}/redirect-to?http://rebind.test:8080/secret')",
    # a name in the watch file whose DNS answer is the loopback: checked at connect
    "rebinding-name": "get_page(config, 'http://rebind.test:8080/secret')",
    "rebinding-name-ftp": ("fetch_verified(config, 'ftp://rebind.test:8080/foo.tar.gz', "
                           "'0' * 64)"),
    # a download URL taken from the upstream's page: to this machine, and a control
    "link-to-loopback": "value = [p.name for p in fetch(work, 'page.html')]",
    "link-to-upstream": "value = str(fetch(work, 'page2.html')[0].name)",
}
PREAMBLE = f"""\
def fetch(work, page):
    tree = work / page / "foo-1.0"
    (tree / "debian").mkdir(parents=True)
    (tree / "debian" / "changelog").write_text(
        "foo (1.0-1) unstable; urgency=medium\\n\\n  * Test.\\n\\n"
        " -- Test <test@example.org>  Sat, 21 Nov 2026 12:00:00 +0000\\n")
    (tree / "debian" / "watch").write_text(
        "version=4\\n{UP}/" + page + " .*/foo-(\\\\d\\\\S+)\\\\.tar\\\\.gz\\n")
    return fetch_upstream(config, tree, work / page, ["{hashlib.sha256(TARBALL).hexdigest()}"])
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp_path = tmp_path_factory.mktemp("netns")
    www = tmp_path / "www"
    (www / "dl").mkdir(parents=True)
    (www / "foo-1.0.tar.gz").write_bytes(TARBALL)
    (www / "dl" / "foo-1.0.tar.gz").write_bytes(TARBALL)
    (www / "page.html").write_text(PAGE.format(host="127.0.0.1:8080"))
    (www / "page2.html").write_text(PAGE.format(host="upstream.test"))
    return run_cases(tmp_path, www, {name: PREAMBLE + code for name, code in CASES.items()})


def test_positive_controls(results: dict[str, Any]) -> None:
    assert results["upstream"]["error"] is None, results["upstream"]
    assert results["upstream"]["value"] == "http://upstream.test/foo-1.0.tar.gz"
    assert results["named-loopback"]["error"] is None, results["named-loopback"]
    assert results["named-loopback"]["value"] == "secret"
    assert results["named-loopback"]["local_connections"] == 1
    assert results["link-to-upstream"]["error"] is None, results["link-to-upstream"]
    assert results["link-to-upstream"]["value"] == "foo_1.0.orig.tar.gz"


@pytest.mark.parametrize("case", ["to-loopback", "to-loopback-2", "to-ipv6-loopback",
                                  "to-own-address", "to-localhost", "to-link-local",
                                  "to-rebinding-name", "rebinding-name",
                                  "rebinding-name-ftp", "link-to-loopback"])
def test_refused_without_touching_the_local_service(results: dict[str, Any],
                                                    case: str) -> None:
    result = results[case]
    assert result["local_connections"] == 0, result
    assert result["error"] is not None, result
    kind, message = result["error"]
    assert kind == "NetworkError", result
    assert message.startswith("refusing to "), result
    assert "the watch file does not name" in message, result
    assert "\n" not in message
