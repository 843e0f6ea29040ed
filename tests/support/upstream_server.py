# SPDX-License-Identifier: GPL-2.0-or-later
"""A real upstream on 127.0.0.1 for fetch tests: static files and directory listings
from a directory, plus misbehaving routes.

Routes besides the files under ``root``:

- ``/redirect/N/<path>``: N redirects (302), then ``/<path>``;
- ``/redirect-to?<url>``: one redirect to any URL (``ftp://``, ``file://``...);
- ``/slow/<path>``: headers, then a stall of ``slow_s`` seconds before the body;
- ``/truncated/<path>``: announces the full length, sends half, closes;
- ``/oversized/<path>``: announces ``1 << 40`` bytes;
- ``/chunked/<path>``: no Content-Length, chunked transfer encoding;
- ``/flaky/<path>``: 503 for the first ``flaky_failures`` requests, then the file;
- ``/stall/<path>``: half the body, a stall of ``slow_s`` seconds, then the rest;
- ``/drip/<path>``: the body one byte every ``drip_s`` seconds (within every read
  timeout, far past any sane deadline);
- ``/drip-headers``: the status line, then a header one byte every ``drip_s`` seconds;
- ``/encoded``: ``encoded_body`` as text/html with ``Content-Encoding: encoding``
  (a compression bomb, when the test sets it so);
- ``/reason``: a 404 whose reason phrase is ``reason`` (escape sequences, say);
- ``/location``: a redirect to ``location``, sent as is (escape sequences, say).

``hits`` counts requests per path, so tests can tell a cache hit from a download;
``user_agents`` keeps the last User-Agent per path.  The same handler also answers
proxy requests (``GET http://host/path``): it serves ``/path`` from ``root``.
"""

from __future__ import annotations

import collections
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Upstream:
    root: Path
    port: int = 0
    slow_s: float = 3.0
    flaky_failures: int = 1
    drip_s: float = 0.25
    encoded_body: bytes = b""
    encoding: str = "gzip, gzip"
    reason: str = "Not Found"
    location: str = "/"
    host: str = "127.0.0.1"
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    user_agents: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def count(self, path: str) -> int:
        with self.lock:
            return self.hits[path]


def _handler(upstream: Upstream) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(upstream.root), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            if self.path.startswith("http://"):  # a proxy request: serve it ourselves
                self.path = "/" + self.path.split("/", 3)[3]
                with upstream.lock:
                    upstream.hits["proxied " + self.path] += 1
            with upstream.lock:
                upstream.hits[self.path] += 1
                hits = upstream.hits[self.path]
                upstream.user_agents[self.path] = self.headers.get("User-Agent", "")
            parts = self.path.split("/", 2)
            route = parts[1] if len(parts) > 1 else ""
            if route == "redirect":
                count, _, rest = parts[2].partition("/")
                target = f"/redirect/{int(count) - 1}/{rest}" if int(count) > 1 else "/" + rest
                return self._redirect(target)
            if route.startswith("redirect-to?"):
                return self._redirect(urllib.parse.unquote(self.path.split("?", 1)[1]))
            if route == "location":
                return self._redirect(upstream.location)
            if route in ("drip-headers", "encoded", "reason"):
                return self._hostile(route)
            if route in ("slow", "truncated", "oversized", "chunked", "flaky", "stall",
                         "drip"):
                return self._special(route, "/" + parts[2], hits)
            return super().do_GET()

        def _redirect(self, target: str) -> None:
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _hostile(self, route: str) -> None:
            if route == "reason":
                self.send_response(404, upstream.reason)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif route == "encoded":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Encoding", upstream.encoding)
                self.send_header("Content-Length", str(len(upstream.encoded_body)))
                self.end_headers()
                self.wfile.write(upstream.encoded_body)
            else:
                self.close_connection = True
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self._drip(b"X-Slow: " + b"x" * 1000)

        def _drip(self, data: bytes) -> None:
            for start in range(len(data)):
                try:
                    self.wfile.write(data[start:start + 1])
                    self.wfile.flush()
                except OSError:  # the client gave up: what the tests want
                    return
                time.sleep(upstream.drip_s)

        def _special(self, route: str, path: str, hits: int) -> None:
            data = (upstream.root / path.lstrip("/")).read_bytes()
            if route == "flaky" and hits <= upstream.flaky_failures:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if route == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for start in range(0, len(data), 4096):
                    chunk = data[start:start + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
                return
            length = 1 << 40 if route == "oversized" else len(data)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if route == "slow":
                self.wfile.flush()
                time.sleep(upstream.slow_s)
            if route in ("truncated", "stall"):
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                if route == "truncated":
                    self.close_connection = True
                    return
                time.sleep(upstream.slow_s)
                data = data[len(data) // 2:]
            if route == "oversized":
                self.close_connection = True
                return
            if route == "drip":
                self.close_connection = True
                return self._drip(data)
            self.wfile.write(data)

    return Handler


@contextmanager
def serve(root: Path, **settings: Any) -> Iterator[Upstream]:
    """Serve *root* on 127.0.0.1 (or ``host=``; a free port unless ``port=``) for the
    duration of the block."""
    upstream = Upstream(root, **settings)
    server = ThreadingHTTPServer((upstream.host, upstream.port), _handler(upstream))
    server.daemon_threads = True
    upstream.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield upstream
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
