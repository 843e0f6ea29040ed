# SPDX-License-Identifier: GPL-2.0-or-later
"""A caching HTTP proxy on 127.0.0.1 for the Debian mirror: what a second cold run
downloads again is only package lists.

A throwaway system that starts from nothing (no guestpkg state) downloads a buildroot
(mmdebstrap) and build dependencies (apt) from the Debian mirror.  With
``Acquire::http::Proxy`` pointing here, in the system's apt.conf.d, guestpkg inside
passes the proxy on to mmdebstrap and into the buildroot (as it does for a user behind
a proxy), and every request goes through this proxy:

- files that never change under their URL, ``pool/...*.deb`` and ``by-hash/`` index
  files, are kept in ``<cache>/`` and served from there the next time;
- everything else (``InRelease``, ``Release``) is passed through, so apt sees the
  mirror as it is now.

Only GETs of ``http://`` URLs on the mirror's host are served; anything else gets 403.
A download goes to a temporary name and is renamed into place when complete, so an
interrupted run leaves no partial file at a final path.  Nothing of guestpkg is cached
here: only Debian's own files.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

CHUNK = 1024 * 1024


def cacheable(path: str) -> bool:
    return path.endswith(".deb") or "/by-hash/" in path


class DebCache:
    """``with DebCache(directory, {"deb.debian.org"}) as cache:`` ... ``cache.url``."""

    def __init__(self, directory: Path, hosts: set[str]) -> None:
        self.directory = directory
        self.hosts = hosts
        self.hits = 0
        self.misses = 0
        #: package names whose next .deb request gets 404 Not Found, once: what apt
        #: meets when the mirror has moved on and dropped the version its lists name
        self.gone_once: set[str] = set()
        #: the .deb file names answered with 404 that way
        self.refused: list[str] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> DebCache:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="debcache", daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def cache_path(self, url: str) -> Path:
        parts = urllib.parse.urlsplit(url)
        name = os.path.basename(parts.path)
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        return self.directory / f"{digest}-{name}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        cache = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                cache._serve(self)

        return Handler

    def _serve(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        url = handler.path
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in self.hosts or ".." in parts.path:
            handler.send_error(403, "not a Debian mirror URL this proxy serves")
            return
        name = os.path.basename(parts.path)
        if name.endswith(".deb") and name.split("_", 1)[0] in self.gone_once:
            self.gone_once.discard(name.split("_", 1)[0])
            self.refused.append(name)
            handler.send_error(404, "Not Found")
            return
        path = self.cache_path(url)
        if cacheable(parts.path) and path.is_file():
            self.hits += 1
            self._send_file(handler, path)
            return
        try:
            upstream = self._opener.open(url, timeout=120)
        except urllib.error.HTTPError as e:
            handler.send_error(e.code, str(e.reason))
            return
        except OSError as e:
            handler.send_error(502, str(e))
            return
        with upstream:
            if not cacheable(parts.path):
                data = upstream.read()
                handler.send_response(200)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)
                return
            self.misses += 1
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=self.directory)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(upstream, out, CHUNK)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        self._send_file(handler, path)

    @staticmethod
    def _send_file(handler: http.server.BaseHTTPRequestHandler, path: Path) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(path.stat().st_size))
        handler.end_headers()
        with open(path, "rb") as f:
            shutil.copyfileobj(f, handler.wfile, CHUNK)


def apt_proxy_conf(cache: DebCache) -> str:
    """The apt.conf.d snippet that sends the system's apt through *cache*."""
    return f'Acquire::http::Proxy "{cache.url}";\n'
