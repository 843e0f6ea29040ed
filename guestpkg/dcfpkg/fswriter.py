# SPDX-License-Identifier: GPL-2.0-or-later
"""The file system side of an extraction, on a thread of its own.

Creating a file costs the kernel tens of microseconds (ext4 journals every create);
decompressing and hashing cost the CPU.  The reader decompresses on the calling thread
and hands every file system operation, *in manifest order*, to one
:class:`OrderedWriter` thread, which also hashes what it writes, so the work runs on
two cores at once: ``zstd -d | tar -x`` gets the same overlap from being two
processes.  One thread, FIFO: a directory is made before what is in it, a hard link
after its target, exactly as if it were sequential.  Both sides release the GIL in
their slow parts (system calls, zstd, SHA256 of large buffers).

The writer decides nothing: what it is given was checked by the reader, and each
file's digest is checked by a callback of the reader before the file gets its mode.
After an error it skips every later operation (so the reader never blocks on a full
queue) and :meth:`OrderedWriter.close` re-raises it; fds left open are closed.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

#: Bounds the memory in flight: at most this many chunks (each at most 1 MiB) queued.
QUEUE_DEPTH = 64


class OrderedWriter:
    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.Queue(maxsize=QUEUE_DEPTH)
        self._error: BaseException | None = None
        self._fds: dict[int, int] = {}
        self._digests: dict[int, Any] = {}
        self._thread = threading.Thread(target=self._run, name="dcfpkg-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                function, args = item
                try:
                    function(*args)
                except BaseException as e:  # handed to the caller by close()
                    self._error = e

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((function, args))

    # Files: opened, written and closed by key (the manifest line number).

    def open(self, key: int, path: bytes) -> None:
        self.submit(self._open, key, path)

    def _open(self, key: int, path: bytes) -> None:
        self._digests[key] = hashlib.sha256()
        self._fds[key] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600)

    def write(self, key: int, data: bytes | memoryview) -> None:
        self.submit(self._write, key, data)

    def _write(self, key: int, data: bytes | memoryview) -> None:
        self._digests[key].update(data)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fds[key], view):]

    def finish_file(self, key: int, owner: tuple[int, int] | None, mode: int,
                    mtime: int, check: Callable[[str], None]) -> None:
        """Close file *key*; *check* gets the SHA256 of what was written and raises if
        it is wrong, before the file gets its mode."""
        self.submit(self._finish_file, key, owner, mode, mtime, check)

    def _finish_file(self, key: int, owner: tuple[int, int] | None, mode: int,
                     mtime: int, check: Callable[[str], None]) -> None:
        fd = self._fds.pop(key)
        try:
            check(self._digests.pop(key).hexdigest())
            if owner is not None:
                os.fchown(fd, *owner)
            # chmod after chown: chown clears the setuid and setgid bits (chown(2)).
            os.fchmod(fd, mode)
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)

    def write_file(self, path: bytes, data: bytes, owner: tuple[int, int] | None, mode: int,
                   mtime: int, check: Callable[[str], None]) -> None:
        """A whole small file in one operation."""
        self.submit(self._write_file, path, data, owner, mode, mtime, check)

    def _write_file(self, path: bytes, data: bytes, owner: tuple[int, int] | None, mode: int,
                    mtime: int, check: Callable[[str], None]) -> None:
        self._open(-1, path)
        self._write(-1, data)
        self._finish_file(-1, owner, mode, mtime, check)

    def close(self, *, raise_error: bool = True) -> None:
        """Wait for every queued operation; re-raise the first error (unless the caller
        is already handling one of its own)."""
        self._queue.put(None)
        self._thread.join()
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._error is not None and raise_error:
            raise self._error
