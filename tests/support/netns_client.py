# SPDX-License-Identifier: GPL-2.0-or-later
"""The client side of :mod:`tests.support.netns`: runs in the client's namespaces,
starts the local service, runs each case and prints one JSON line of results."""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from guestpkg.config import Config
from guestpkg.errors import GuestpkgError

LOCAL_PORT = 8080


class LocalService:
    """Port 8080 on every address of the client: counts connections, answers each
    with a tiny HTTP response (what a blind request would read)."""

    def __init__(self) -> None:
        self.connections = 0
        self.listener = socket.create_server(("::", LOCAL_PORT), family=socket.AF_INET6,
                                             dualstack_ipv6=True)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            self.connections += 1
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(4096)
                    connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nsecret")
                except OSError:
                    pass


def wait_for_upstream() -> None:
    for _ in range(500):
        try:
            socket.create_connection(("192.0.2.2", 80), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("the upstream namespace never came up")


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    work = Path(spec["work"])
    local = LocalService()
    wait_for_upstream()
    results: dict[str, Any] = {}
    for name, code in spec["cases"].items():
        before = local.connections
        config = Config.defaults(cachedir=work / name / "cache", logdir=work / name / "log",
                                 download_timeout=5.0, download_retries=0)
        scope: dict[str, Any] = {"config": config, "work": work / name, "Path": Path}
        error = None
        try:
            exec("from guestpkg.fetch import *\n"  # the test's own snippets
                 "from guestpkg.fetch.transport import get_page\n" + code, scope)
        except GuestpkgError as e:
            error = [type(e).__name__, e.message]
        except Exception as e:  # reported to the test, which then fails
            error = ["unexpected " + type(e).__name__, str(e)]
        time.sleep(0.05)  # let the local service count a connection in flight
        results[name] = {"error": error, "local_connections": local.connections - before,
                         "value": scope.get("value")}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
