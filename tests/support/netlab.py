# SPDX-License-Identifier: GPL-2.0-or-later
"""A private test network: a hub namespace holding a bridge, and one namespace per
machine joined to it by a veth pair, all made with pyroute2 (in the design's
dependency list).  Nothing is created in the machine's own network namespace: the
veth pairs are made inside the hub and one end is moved into the machine's
namespace, so the traffic stays in namespaces this test made and removes."""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pyroute2 import NetNS, netns

#: A private subnet (RFC 1918) only used inside the lab's namespaces.
SUBNET = "10.213.47"


@dataclass
class Lab:
    hub: str
    prefix: str
    machines: dict[str, str] = field(default_factory=dict)   # name -> address

    @property
    def hub_address(self) -> str:
        return f"{SUBNET}.1"

    def netns_of(self, name: str) -> str:
        return self.hub if name == "hub" else f"{self.prefix}-{name}"

    def add(self, name: str) -> str:
        """A namespace for machine *name*, wired to the bridge; returns its address."""
        address = f"{SUBNET}.{10 + len(self.machines)}"
        ns_name = self.netns_of(name)
        netns.create(ns_name)
        outer, inner = f"v{secrets.token_hex(3)}", f"i{secrets.token_hex(3)}"
        with NetNS(self.hub) as hub:
            hub.link("add", ifname=outer, kind="veth", peer=inner)
            hub.link("set", index=hub.link_lookup(ifname=inner)[0], net_ns_fd=ns_name)
            hub.link("set", index=hub.link_lookup(ifname=outer)[0],
                     master=hub.link_lookup(ifname="br0")[0], state="up")
        with NetNS(ns_name) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            index = ns.link_lookup(ifname=inner)[0]
            ns.link("set", index=index, ifname="eth0")
            ns.addr("add", index=index, address=address, prefixlen=24)
            ns.link("set", index=index, state="up")
        self.machines[name] = address
        return address

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        """*argv* run inside machine *name*'s namespace (ip-netns(8))."""
        return ["ip", "netns", "exec", self.netns_of(name), *argv]

    @contextlib.contextmanager
    def inside(self, name: str) -> Iterator[None]:
        """The calling thread in machine *name*'s network namespace for the block: a
        socket made there stays there (a server thread started there serves there)."""
        from guestpkg.sandbox.syscalls import CLONE_NEWNET, setns

        fd = os.open(f"/run/netns/{self.netns_of(name)}", os.O_RDONLY)
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            setns(fd, CLONE_NEWNET)
            try:
                yield
            finally:
                setns(own, CLONE_NEWNET)
        finally:
            os.close(fd)
            os.close(own)

    def popen(self, name: str, argv: Sequence[str], **kwargs: object
              ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(name, argv), start_new_session=True,
                                **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def lab() -> Iterator[Lab]:
    prefix = f"gpbh{os.getpid()}{secrets.token_hex(2)}"
    the_lab = Lab(f"{prefix}-hub", prefix)
    # The first ip-netns(8) "add" on a machine bind-mounts /run/netns on itself (to make
    # it shared); done after our namespaces exist, that would hide their mounts, and
    # entering one fails with EINVAL.  So let ip make that mount first.
    subprocess.run(["ip", "netns", "add", f"{prefix}-init"], check=True)
    subprocess.run(["ip", "netns", "delete", f"{prefix}-init"], check=True)
    netns.create(the_lab.hub)
    try:
        with NetNS(the_lab.hub) as hub:
            hub.link("set", index=hub.link_lookup(ifname="lo")[0], state="up")
            hub.link("add", ifname="br0", kind="bridge")
            index = hub.link_lookup(ifname="br0")[0]
            hub.addr("add", index=index, address=the_lab.hub_address, prefixlen=24)
            hub.link("set", index=index, state="up")
        yield the_lab
    finally:
        for name in list(the_lab.machines):
            with contextlib.suppress(OSError):
                netns.remove(the_lab.netns_of(name))
        with contextlib.suppress(OSError):
            netns.remove(the_lab.hub)
