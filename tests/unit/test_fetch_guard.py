# SPDX-License-Identifier: GPL-2.0-or-later
"""guestpkg.fetch.guard's decisions, pure: which addresses are local, when a watch
file names a local host, and the machine's own addresses from /proc."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from guestpkg.errors import NetworkError
from guestpkg.fetch.guard import (
    check_addresses,
    is_local_address,
    names_local_host,
    own_addresses,
)

OWN = frozenset({ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("2001:db8::1")})


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.255.0.9", "0.0.0.0", "0.1.2.3", "169.254.169.254", "::1", "::",
    "fe80::1", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "192.0.2.1", "2001:db8::1",
])
def test_local_addresses(address: str) -> None:
    assert is_local_address(ipaddress.ip_address(address), OWN)


@pytest.mark.parametrize("address", [
    "192.0.2.2", "10.0.0.1", "198.51.100.7", "2001:db8::2", "::ffff:192.0.2.2",
    "151.101.2.132",
])
def test_upstream_addresses(address: str) -> None:
    assert not is_local_address(ipaddress.ip_address(address), OWN)


@pytest.mark.parametrize(("url", "named"), [
    ("http://127.0.0.1:8080/x", True),
    ("http://[::1]/x", True),
    ("http://localhost/x", True),
    ("http://LocalHost./x", True),
    ("http://a.localhost/x", True),
    ("ftp://192.0.2.1/pub/", True),          # the machine's own address, named
    ("http://rebind.example/x", False),      # a name: its DNS answer is not the watch file
    ("https://deb.debian.org/debian/", False),
    ("http://192.0.2.2/", False),
])
def test_names_local_host(url: str, named: bool) -> None:
    assert names_local_host(url, OWN) is named


def test_check_addresses_refuses_any_local_answer() -> None:
    public, loopback = ipaddress.ip_address("192.0.2.2"), ipaddress.ip_address("127.0.0.1")
    check_addresses("upstream.example", [public], False, OWN)
    with pytest.raises(NetworkError, match=r"refusing to connect to x.example \(127.0.0.1\)"):
        check_addresses("x.example", [public, loopback], False, OWN)
    check_addresses("localhost", [loopback], True, OWN)  # the watch file named one


FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     |-- 192.0.2.0
        /24 link UNICAST
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     |-- 192.0.2.1
        /32 host LOCAL
     |-- 192.0.2.255
        /32 link BROADCAST
"""
IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000001 02 40 00 80     eth0
"""


def test_own_addresses_from_proc(tmp_path: Path) -> None:
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "fib_trie").write_text(FIB_TRIE)
    (tmp_path / "net" / "if_inet6").write_text(IF_INET6)
    assert own_addresses(tmp_path) == {ipaddress.ip_address(a) for a in (
        "127.0.0.1", "192.0.2.1", "::1", "2001:db8::1")}


def test_own_addresses_of_this_machine_include_the_loopback() -> None:
    assert ipaddress.ip_address("127.0.0.1") in own_addresses()
