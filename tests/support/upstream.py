# SPDX-License-Identifier: GPL-2.0-or-later
"""A local upstream web server for tests: a real ``ThreadingHTTPServer`` on 127.0.0.1.

It serves a directory the way an upstream's download area looks (an HTML index with one
link per file, like https://ftp.gnu.org/gnu/hello/), keeps a log of the requests, and can
misbehave on demand: go offline (the port refuses connections, the URL stays the same
when it comes back), serve corrupted bytes (same length, different content), truncate
a download (the full Content-Length is announced, then the connection is cut), or answer
with an HTTP error.
"""

from __future__ import annotations

import contextlib
import enum
import html
import http.server
import shutil
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class Behaviour(enum.Enum):
    NORMAL = "normal"
    CORRUPT = "corrupt"      # every file's content altered, same length
    TRUNCATE = "truncate"    # the full length is announced, half is sent
    ERROR = "error"          # every request gets a 500
    HOSTILE = "hostile"      # every file gets a 404 whose reason phrase holds escapes


#: What a hostile server puts in a reason phrase: retitle the terminal, clear it.
HOSTILE_REASON = "Not Found\x1b]0;owned\x07\x1b[2J"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int


class LocalUpstream:
    """Serve *directory* on ``http://127.0.0.1:PORT/``; :meth:`start` and :meth:`stop`
    (offline) can alternate, and the port stays the same."""

    def __init__(self, directory: Path, port: int = 0) -> None:
        self.directory = directory
        self.port = port
        self.behaviour = Behaviour.NORMAL
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, ending with a slash."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def online(self) -> bool:
        return self._server is not None

    def __enter__(self) -> LocalUpstream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start serving (again, on the same port once one was chosen)."""
        if self._server is not None:
            return
        server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="local-upstream",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Go offline: close the listening socket, so connections are refused."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def add_file(self, source: Path, name: str | None = None) -> str:
        """Copy *source* into the served directory (as *name*); returns its URL."""
        target = self.directory / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return urllib.parse.urljoin(self.url, urllib.parse.quote(str(target.relative_to(
            self.directory))))

    def downloads(self, name: str) -> int:
        """How many GET requests asked for the file *name*."""
        with self._lock:
            return sum(1 for r in self.requests
                       if r.method == "GET" and r.path.rsplit("/", 1)[-1] == name)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append(Request(method, path, status))

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        upstream = self

        class Handler(http.server.BaseHTTPRequestHandler):
            server_version = "guestpkg-test-upstream/1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the request log is upstream.requests

            def do_HEAD(self) -> None:
                self._answer(head=True)

            def do_GET(self) -> None:
                self._answer(head=False)

            def _answer(self, head: bool) -> None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                reply = upstream._reply(path)
                # Logged before answering: a client that got its answer finds it logged.
                upstream._record(self.command, path, reply.status)
                _send(self, reply, head)
                if reply.truncated:
                    self.close_connection = True

        return Handler

    def _reply(self, path: str) -> _Reply:
        if self.behaviour is Behaviour.ERROR:
            return _Reply(500, b"internal error\n", "text/plain")
        target = (self.directory / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.directory.resolve()) or not target.exists():
            return _Reply(404, b"not found\n", "text/plain")
        if target.is_dir():
            return _Reply(200, _index(target, path).encode(), "text/html")
        if self.behaviour is Behaviour.HOSTILE:
            return _Reply(404, b"", "text/plain", reason=HOSTILE_REASON)
        data = target.read_bytes()
        if self.behaviour is Behaviour.CORRUPT:
            data = bytes(b ^ 0x5A for b in data[:4096]) + data[4096:]
        if self.behaviour is Behaviour.TRUNCATE:
            return _Reply(200, data[: len(data) // 2], "application/octet-stream",
                          length=len(data))
        return _Reply(200, data, "application/octet-stream")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes
    content_type: str
    length: int | None = None   # announced Content-Length, if not len(body)
    reason: str | None = None   # the status line's reason phrase, if not the usual

    @property
    def truncated(self) -> bool:
        return self.length is not None and self.length != len(self.body)


def _send(handler: http.server.BaseHTTPRequestHandler, reply: _Reply, head: bool) -> None:
    handler.send_response(reply.status, reply.reason)
    handler.send_header("Content-Type", reply.content_type)
    length = len(reply.body) if reply.length is None else reply.length
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    if not head:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            handler.wfile.write(reply.body)


def _index(directory: Path, url_path: str) -> str:
    """An index page like Apache's: one ``<a href>`` per entry."""
    title = html.escape(url_path if url_path.endswith("/") else url_path + "/")
    rows = []
    for entry in sorted(directory.iterdir()):
        name = entry.name + ("/" if entry.is_dir() else "")
        rows.append(f'<a href="{urllib.parse.quote(name)}">{html.escape(name)}</a>')
    body = "\n".join(rows)
    return (f"<!DOCTYPE html>\n<html><head><title>Index of {title}</title></head>\n"
            f"<body><h1>Index of {title}</h1>\n<pre>\n{body}\n</pre></body></html>\n")
