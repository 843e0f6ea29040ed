# SPDX-License-Identifier: GPL-2.0-or-later
"""A real anonymous FTP server on 127.0.0.1 (python3-pyftpdlib) serving a directory,
for the watch files that name ftp:// upstreams."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import ThreadedFTPServer


@contextmanager
def serve_ftp(root: Path) -> Iterator[str]:
    """Serve *root* read-only to anonymous users; yields ``ftp://127.0.0.1:PORT``."""
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    authorizer.add_anonymous(str(root), perm="elr")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer,
                                              "passive_ports": None})
    server = ThreadedFTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2},
                              daemon=True)
    thread.start()
    try:
        yield f"ftp://127.0.0.1:{port}"
    finally:
        server.close_all()
        thread.join(timeout=10)
