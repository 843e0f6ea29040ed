# SPDX-License-Identifier: GPL-2.0-or-later
"""A private test network: a hub namespace holding a bridge, and one namespace per
machine joined to it by a veth pair, all made with pyroute2 (in the design's
dependency list).  Nothing is created in the machine's own network namespace: the
veth pairs are made inside the hub and one end is moved into the machine's
namespace, so the traffic stays in namespaces this test made and removes.

Each namespace is held by a process of its own (``unshare --net sleep``), and named
by its ``/proc/PID/ns/net``, not by a file under ``/run/netns`` as ip-netns(8) does:
those files are nsfs mounts under a shared mount, and another test on this machine
that bind-mounts ``/run`` recursively and unmounts its copy unmounts them too (the
unmount propagates to the peers), after which entering the namespace fails with
EINVAL (seen while other engineers' tests ran).  A process can't be unmounted."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from pyroute2 import NetNS

#: A private subnet (RFC 1918) only used inside the lab's namespaces.
SUBNET = "10.213.47"


@dataclass
class Lab:
    holders: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)   # name -> address

    @property
    def hub_address(self) -> str:
        return f"{SUBNET}.1"

    def netns_of(self, name: str) -> str:
        """The path that names machine *name*'s network namespace ("hub": the hub's)."""
        return f"/proc/{self.holders[name].pid}/ns/net"

    def _hold(self, name: str) -> str:
        holder = subprocess.Popen(["unshare", "--net", "--", "sleep", "infinity"],
                                  start_new_session=True)
        self.holders[name] = holder
        own = os.stat("/proc/self/ns/net").st_ino
        for _ in range(500):    # until unshare has made the namespace and exec'd sleep
            if holder.poll() is not None:
                raise RuntimeError(f"unshare --net failed for {name}")
            with contextlib.suppress(FileNotFoundError):
                if os.stat(self.netns_of(name)).st_ino != own:
                    return self.netns_of(name)
            time.sleep(0.01)
        raise RuntimeError(f"unshare --net did not make a namespace for {name}")

    def add(self, name: str) -> str:
        """A namespace for machine *name*, wired to the bridge; returns its address."""
        address = f"{SUBNET}.{10 + len(self.machines)}"
        path = self._hold(name)
        outer, inner = f"v{os.urandom(3).hex()}", f"i{os.urandom(3).hex()}"
        with NetNS(self.netns_of("hub")) as hub:
            hub.link("add", ifname=outer, kind="veth", peer=inner)
            hub.link("set", index=hub.link_lookup(ifname=inner)[0], net_ns_fd=path)
            hub.link("set", index=hub.link_lookup(ifname=outer)[0],
                     master=hub.link_lookup(ifname="br0")[0], state="up")
        with NetNS(path) as ns:
            ns.link("set", index=ns.link_lookup(ifname="lo")[0], state="up")
            index = ns.link_lookup(ifname=inner)[0]
            ns.link("set", index=index, ifname="eth0")
            ns.addr("add", index=index, address=address, prefixlen=24)
            ns.link("set", index=index, state="up")
        self.machines[name] = address
        return address

    def command(self, name: str, argv: Sequence[str]) -> list[str]:
        """*argv* run inside machine *name*'s network namespace (nsenter(1) execs it)."""
        return ["nsenter", f"--net={self.netns_of(name)}", "--", *argv]

    @contextlib.contextmanager
    def inside(self, name: str) -> Iterator[None]:
        """The calling thread in machine *name*'s network namespace for the block: a
        socket made there stays there (a server thread started there serves there)."""
        from guestpkg.sandbox.syscalls import CLONE_NEWNET, setns

        fd = os.open(self.netns_of(name), os.O_RDONLY)
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
    """The hub (a bridge with :attr:`Lab.hub_address`); machines are added with
    :meth:`Lab.add`.  The namespaces go when their holders are stopped, at the end
    (processes the test started in them must have been stopped first)."""
    the_lab = Lab()
    try:
        with NetNS(the_lab._hold("hub")) as hub:
            hub.link("set", index=hub.link_lookup(ifname="lo")[0], state="up")
            hub.link("add", ifname="br0", kind="bridge")
            index = hub.link_lookup(ifname="br0")[0]
            hub.addr("add", index=index, address=the_lab.hub_address, prefixlen=24)
            hub.link("set", index=index, state="up")
        yield the_lab
    finally:
        for holder in the_lab.holders.values():
            if holder.poll() is None:
                os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
