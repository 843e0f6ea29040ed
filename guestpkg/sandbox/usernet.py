# SPDX-License-Identifier: GPL-2.0-or-later
"""User-mode networking for a sandbox: its own network namespace, served by
slirp4netns(1), with the host's loopback unreachable.

A source recipe fetches its upstream files, so it needs the network, but never the
host's: not the host's interfaces, not services listening on the host's 127.0.0.1
(a database, a CUPS, a local proxy), not the host's routing.  slirp4netns gives a
network namespace a ``tap0`` whose traffic is carried by an unprivileged process in
the host's namespace as ordinary sockets (NAT, as QEMU's user networking does):

- ``--disable-host-loopback``: 10.0.2.2, slirp's name for the host, does not reach the
  host's 127.0.0.1, and the namespace's own 127.0.0.1 is its own ``lo``;
- ``--enable-sandbox`` and ``--enable-seccomp``: slirp4netns itself runs in a new
  mount namespace without capabilities and under its own seccomp filter;
- DNS is 10.0.2.3 (slirp forwards it to the host's resolver).

The namespace is held by ``unshare --net sleep`` (util-linux); the sandbox joins it
(:attr:`SandboxSpec.join_netns`) instead of making an empty one.  Both helpers are
stopped when the block ends.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
from collections.abc import Iterator

from guestpkg.errors import SystemStateError
from guestpkg.run import start

#: What the namespace's resolv.conf must say (slirp4netns(1): the built-in DNS).
NAMESERVER = "10.0.2.3"
READY_TIMEOUT_S = 10.0


@contextlib.contextmanager
def user_network() -> Iterator[str]:
    """A network namespace served by slirp4netns; yields its ``/proc/PID/ns/net``."""
    if shutil.which("slirp4netns", path="/usr/bin:/bin") is None:
        raise SystemStateError("source recipes need slirp4netns (user-mode networking)",
                               hint="apt-get install slirp4netns")
    holder = start(["unshare", "--net", "--", "sleep", "infinity"])
    slirp: subprocess.Popen[bytes] | None = None
    ready_read, ready_write = os.pipe()
    try:
        netns = f"/proc/{holder.pid}/ns/net"
        _wait_for_namespace(holder, netns)
        slirp = start(["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                       "--enable-sandbox", "--enable-seccomp", f"--ready-fd={ready_write}",
                       str(holder.pid), "tap0"], pass_fds=(ready_write,))
        os.close(ready_write)
        ready_write = -1
        readable, _, _ = select.select([ready_read], [], [], READY_TIMEOUT_S)
        if not readable or os.read(ready_read, 1) != b"1":
            raise SystemStateError("slirp4netns did not start (user-mode networking)",
                                   hint="run slirp4netns --version; is /dev/net/tun there?")
        yield netns
    finally:
        os.close(ready_read)
        if ready_write >= 0:
            os.close(ready_write)
        for process in (slirp, holder):
            if process is not None:
                process.kill()
                process.wait()


def _wait_for_namespace(holder: subprocess.Popen[bytes], netns: str) -> None:
    """unshare(1) has moved into its namespace once its netns differs from ours."""
    ours = os.stat("/proc/self/ns/net").st_ino
    for _ in range(1000):
        if holder.poll() is not None:
            raise SystemStateError("unshare --net failed (user-mode networking)")
        with contextlib.suppress(FileNotFoundError):
            if os.stat(netns).st_ino != ours:
                return
        select.select([], [], [], 0.005)
    raise SystemStateError("unshare --net did not make a network namespace in time")
