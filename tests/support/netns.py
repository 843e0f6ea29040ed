# SPDX-License-Identifier: GPL-2.0-or-later
"""Two machines on a private link, for tests that need an upstream that is *not* on
the loopback: a redirect from a real upstream to the client's 127.0.0.1 can't be
played on one host, where every address is the host's own.

Both "machines" are anonymous network namespaces made with unshare(1), joined by a
veth pair (TEST-NET-1, RFC 5737): nothing is added to the machine's own network
namespace, and everything goes away with the two processes.

- **upstream** (192.0.2.2): :mod:`tests.support.upstream_server` on port 80, serving
  a directory (with its ``/redirect-to?<url>`` route);
- **client** (192.0.2.1): a private mount namespace whose ``/etc/hosts`` names
  ``upstream.test`` (192.0.2.2) and ``rebind.test`` (127.0.0.1, a name whose DNS
  answer is the loopback), and a *local service* on port 8080 of all its addresses,
  which counts the connections it gets: what a blind request from a root process to
  the machine's own services would hit.  :func:`run_cases` runs Python snippets there
  and returns what each raised and how many connections the local service saw.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HOSTS = """\
127.0.0.1 localhost
::1 localhost
192.0.2.2 upstream.test
127.0.0.1 rebind.test
"""

SERVER = """\
import socket, subprocess, sys, time
from pathlib import Path
from tests.support.upstream_server import serve
# (not /sys/class/net: that shows the namespace sysfs was mounted in)
while "vb" not in [name for _, name in socket.if_nameindex()]:
    time.sleep(0.02)
for argv in (["ip", "addr", "add", "192.0.2.2/24", "dev", "vb"],
             ["ip", "link", "set", "vb", "up"], ["ip", "link", "set", "lo", "up"]):
    subprocess.run(argv, check=True)
with serve(Path(sys.argv[1]), host="0.0.0.0", port=80):
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""

CLIENT_SETUP = """\
set -e
mount --bind "$1" /etc/hosts
ip link add va type veth peer name vb netns "$2"
ip addr add 192.0.2.1/24 dev va
ip link set va up
ip link set lo up
exec /usr/bin/python3 -m tests.support.netns_client "$3"
"""


def run_cases(tmp_path: Path, www: Path, cases: dict[str, str]) -> dict[str, Any]:
    """Run each snippet of *cases* (name -> Python code, with ``config``, ``work`` and
    guestpkg's fetch API in scope) on the client while *www* is served upstream."""
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO),
           "LC_ALL": "C.UTF-8"}
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps({"work": str(tmp_path / "client"), "cases": cases}))
    server = subprocess.Popen(["unshare", "--net", "--", "/usr/bin/python3", "-c", SERVER,
                               str(www)], cwd=REPO, env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        client = subprocess.run(
            ["unshare", "--net", "--mount", "--", "/bin/sh", "-c", CLIENT_SETUP, "sh",
             str(hosts), str(server.pid), str(spec)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert client.returncode == 0, client.stderr
        result: dict[str, Any] = json.loads(client.stdout.strip().splitlines()[-1])
        return result
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(server.pid, 9)
            server.wait()
