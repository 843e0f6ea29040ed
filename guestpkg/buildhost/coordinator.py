# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg recipe build --buildhosts``: the coordinator's side.

The graph is walked by the local scheduler (:func:`guestpkg.build.schedule.build_graph`,
inputs first, a cached key builds nothing); :class:`Coordinator.execute` is its
*execute*: a ready recipe builds here while a local slot (``-j``) is free, else it is
sent to its architecture's queue, where a buildhost of that architecture takes it.

A remote job is the recipe's files and its inputs, by SHA256 (:mod:`.blobs`), and the
cache key the coordinator computed.  What comes back is accepted only when (in order):
the message is well-formed; it comes from a host in the buildhosts file and is signed
by *that host's* listed key; the file received has the size and SHA256 that were
signed and the signature verifies; the trust policy accepts the key (it must be in the
trust store, ``guestpkg trust add-key``); the dcfpkg passes the safe reader and was
built for the job's cache key; and no other host built that key into different bytes
(a reproducibility failure: neither is accepted).  Only then is it renamed into the
cache, so a result accepted before a failure stays there.

A host that dies mid-build loses its lease (worker.py); the job is then sent again,
once per loss, up to :data:`MAX_REDELIVERIES` times.  On SIGINT or SIGTERM every job
not yet taken is revoked and marked cancelled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from guestpkg import fsutil
from guestpkg.build.recipe import RecipeBuild, build_recipe
from guestpkg.buildhost import blobs
from guestpkg.buildhost.broker import (
    PREFIX,
    TASK,
    broker,
    client,
    make_app,
    queue,
    retrying,
)
from guestpkg.buildhost.hosts import Buildhost, read_buildhosts
from guestpkg.buildhost.jobs import Job, JobFile, JobInput, JobResult, result_from_json
from guestpkg.buildhost.worker import cancel_key, done_key, host_key, lease_key
from guestpkg.config import Config
from guestpkg.dcfpkg.keys import PublicKey, b64decode, key_id, read_public_key
from guestpkg.dcfpkg.reader import read_metadata, verify
from guestpkg.dcfpkg.sigdb import Signature
from guestpkg.dcfpkg.trust import Policy, TrustSettings, TrustStore
from guestpkg.errors import (
    BuildFailed,
    GuestpkgError,
    Interrupted,
    NetworkError,
    SystemStateError,
    TrustError,
)
from guestpkg.recipe import cache, workdirs
from guestpkg.recipe.layers import policy as reader_policy

log = logging.getLogger(__name__)

MAX_REDELIVERIES = 3
MAX_LOG = 64 << 20
POLL_S = 0.1
#: A host whose heartbeat is older than this is not counted as serving.
ALIVE_S = 30.0
#: How often a job nobody took checks that some host of its arch is serving.
CHECK_S = 5.0


def timing_line(res: JobResult, times: tuple[float, float, float], accepted: float) -> str:
    """Where a remote job's time went (seconds, for bench/buildhosts.py and users):
    uploading its files and queueing it; waiting for a host to take it, then for its
    result to be seen (the queue, the worker's pick-up, the polls); the host fetching
    its files and inputs, building, and signing and sending; receiving, verifying and
    accepting the result here."""
    started, sent, seen = times
    fetch, build, back = res.phases
    waited = max(0.0, seen - sent - res.seconds)
    return (f"guestpkg: remote job timing (s): send {sent - started:.3f} wait {waited:.3f} "
            f"fetch {fetch:.3f} build {build:.3f} return {back:.3f} "
            f"accept {accepted - seen:.3f}\n")


def built_key(cache_key: str) -> str:
    return f"{PREFIX}built:{cache_key}"


class Coordinator:
    """Executes planned recipe builds here or on buildhosts; thread-safe."""

    def __init__(self, config: Config, local_slots: int) -> None:
        self.config = config
        self.hosts = read_buildhosts(config.buildhosts)
        self.keys: dict[str, PublicKey] = {h.name: read_public_key(h.public_key)
                                           for h in self.hosts}
        self.broker = broker(config)
        self.app = make_app(self.broker)
        self.redis = client(self.broker)
        self.local = threading.Semaphore(local_slots)
        self.cancelled = threading.Event()
        self.lost: NetworkError | None = None
        self.pending: dict[str, str] = {}       # job id -> recipe, not yet finished
        self.lock = threading.Lock()
        self.store = TrustStore(config.trustdir, TrustSettings(
            policy=Policy.parse(config.trust_policy), promotion_s=config.trust_promotion_time,
            max_archive_bytes=config.trust_max_archive_size,
            max_entries=config.trust_max_entries))

    def remote_slots(self, arch: str) -> int:
        return sum(h.slots for h in self.hosts if arch in h.architectures)

    def serving(self, arch: str) -> list[Buildhost]:
        """The hosts of *arch* whose worker has been seen lately."""
        now = time.time()
        alive = []
        for host in self.hosts:
            if arch not in host.architectures:
                continue
            name = host_key(host.name)
            seen = retrying(self.broker, "reading the buildhosts' heartbeats",
                            self.redis.hget, name, "last_seen")
            if seen is not None and now - float(seen) < ALIVE_S:
                alive.append(host)
        return alive

    # the scheduler's execute ---------------------------------------------------------

    def execute(self, ctx: RecipeBuild) -> cache.Result:
        if self.cancelled.is_set():
            raise Interrupted("cancelled")
        if self.local.acquire(blocking=False):
            try:
                return build_recipe(ctx)
            finally:
                self.local.release()
        return self.remote(ctx)

    def remote(self, ctx: RecipeBuild) -> cache.Result:
        try:
            return self._remote(ctx)
        except NetworkError as e:     # the broker is gone: the whole run stops
            self.lost = self.lost or e
            self.cancelled.set()
            raise

    def _remote(self, ctx: RecipeBuild) -> cache.Result:
        started = time.monotonic()
        job = self.send(ctx)
        try:
            sent = time.monotonic()
            data = self.wait(job, ctx)
            if "failed" in data:
                self.receive_log(data.get("log_sha256"), ctx, f"{data.get('host')}")
                raise BuildFailed(f"{ctx.recipe.id} ({ctx.arch}): {data['failed']}"[:2000],
                                  ctx.log)
            return self.accept(job, ctx, data, (started, sent, time.monotonic()))
        finally:
            with self.lock:
                self.pending.pop(job.job_id, None)

    def send(self, ctx: RecipeBuild) -> Job:
        """Upload what the job needs, then queue it."""
        files = []
        for entry in ctx.recipe.files:
            if entry.is_dir:
                files.append(JobFile(entry.path, "d", 0, ""))
                continue
            digest = self.upload(ctx.recipe.directory / entry.path, entry.sha256)
            if digest != entry.sha256:
                raise BuildFailed(f"{ctx.recipe.id}: {entry.path} changed since the recipe "
                                  "was read", None)
            files.append(JobFile(entry.path, "x" if entry.executable else "f", entry.size,
                                 entry.sha256))
        inputs = []
        for i in ctx.inputs:
            if self.upload(i.path, i.sha256) != i.sha256:
                raise BuildFailed(f"{i.path} changed since it was verified", None)
            inputs.append(JobInput(i.recipe_id, i.sha256, i.in_key))
        job = Job(secrets.token_hex(16), ctx.recipe.name, ctx.recipe.version,
                  ctx.recipe.release, ctx.arch, ctx.key, ctx.key_text, ctx.bootstrap.id,
                  tuple(files), tuple(inputs), ctx.jobs, self.config.recipe_repository)
        with self.lock:
            self.pending[job.job_id] = ctx.recipe.id
        self.queue(job)
        return job

    def upload(self, path: Path, sha256: str) -> str:
        """Put *path* on the broker unless a blob of its digest is there."""
        if retrying(self.broker, "checking a blob",
                    lambda: self.redis.exists(f"guestpkg:blob:{sha256}")):
            return sha256
        return retrying(self.broker, f"sending {path.name}",
                        lambda: blobs.put(self.redis, path))[0]

    def queue(self, job: Job) -> None:
        def send() -> None:
            self.app.send_task(TASK, args=[job.to_json()], queue=queue(job.arch),
                               task_id=job.job_id)

        retrying(self.broker, f"queueing {job.recipe_id}", send)

    def wait(self, job: Job, ctx: RecipeBuild) -> dict[str, Any]:
        """The job's result message, sending the job again when its host is lost."""
        holder: str | None = None
        redelivered = 0
        waiting = f"waiting for {job.recipe_id}"
        next_check = time.monotonic() + CHECK_S
        while True:
            if self.cancelled.is_set():
                raise Interrupted("cancelled")
            if holder is None and time.monotonic() > next_check:
                next_check = time.monotonic() + CHECK_S
                if not self.serving(job.arch):
                    raise BuildFailed(f"{job.recipe_id} ({job.arch}): no buildhost of "
                                      f"{job.arch} has been seen for {ALIVE_S:.0f} s to take "
                                      "it (guestpkg buildhost status)", None)
            done = retrying(self.broker, waiting, self.redis.get, done_key(job.job_id))
            if done is not None:
                try:
                    value: Any = json.loads(done)
                except ValueError:
                    value = None
                if not isinstance(value, dict):
                    raise TrustError(f"{job.recipe_id} ({job.arch}): a buildhost's answer "
                                     "is not a JSON object")
                return value
            lease = retrying(self.broker, waiting, self.redis.get, lease_key(job.job_id))
            if lease is not None:
                holder = lease.decode("ascii", "replace")
            elif holder is not None and not retrying(self.broker, waiting, self.redis.exists,
                                                     done_key(job.job_id)):
                redelivered += 1
                if redelivered > MAX_REDELIVERIES:
                    raise BuildFailed(f"{job.recipe_id} ({job.arch}): its buildhost was lost "
                                      f"{redelivered} times", None)
                log.warning("%s (%s): buildhost %s was lost mid-build; sending the job "
                            "again", job.recipe_id, job.arch, holder)
                print(f"lost     {job.recipe_id} ({job.arch}) on {holder}: sent again",
                      flush=True)
                holder = None
                self.queue(job)
            time.sleep(POLL_S)

    # accepting a result --------------------------------------------------------------

    def accept(self, job: Job, ctx: RecipeBuild, data: dict[str, Any],
               times: tuple[float, float, float] | None = None) -> cache.Result:
        """Verify the result *data* of *job* and rename it into the cache.  *times*
        (monotonic: job started, queued, result seen) gives the log a line saying
        where a remote build's time went besides building."""
        res = result_from_json(data)
        what = f"the result of {job.recipe_id} ({job.arch}) from {res.host}"
        if res.job_id != job.job_id:
            raise TrustError(f"{what}: answers another job ({res.job_id})")
        listed = self.keys.get(res.host)
        if listed is None:
            raise TrustError(f"{what}: {res.host} is not in {self.config.buildhosts}")
        try:
            public = b64decode(res.public_key, 32, "public key")
            signature = b64decode(res.signature, 64, "signature")
        except ValueError as e:
            raise TrustError(f"{what}: {e}") from None
        if public != listed.public_key:
            raise TrustError(f"{what}: signed by key {key_id(public)}, not by the key "
                             f"{listed.key_id} that {self.config.buildhosts} lists for "
                             f"{res.host}; refused")
        directory = ctx.result.parent
        # held as a build's result being written: one killed mid-receive leaves a file
        # that cache clean (and the next recipe build) reaps, never a running one's
        with workdirs.receiving(self.config, ctx.recipe.name) as received:
            retrying(self.broker, f"receiving {job.recipe_id}", lambda: blobs.fetch(
                self.redis, res.sha256, received, min(res.size, self.config.dcfpkg_max_size),
                what, in_place=True))
            size = received.stat().st_size
            with open(received, "rb") as f:   # the header only: the signature first
                meta = read_metadata(f, what)
            sig = Signature(meta.package, meta.full_version, meta.architecture, size,
                            res.sha256, meta.payload_sha256, public, signature, res.expires)
            if not sig.is_valid(job.repository, 0):
                raise TrustError(f"{what}: the signature does not verify over the file "
                                 f"received (SHA256 {res.sha256}); refused")
            verify(received, reader_policy(self.config))   # then the whole package
            if meta.recipe_key != job.key:
                raise TrustError(f"{what}: built for cache key {meta.recipe_key[:16]}, not "
                                 f"the job's {job.key[:16]}; refused")
            self.store.accept_signatures([sig], job.repository, meta.package,
                                         int(time.time()), what)
            self.check_reproducible(job, res.host, res.sha256)
            self.receive_log(res.log_sha256, ctx, res.host)
            with open(ctx.log, "a") as f:
                f.write(f"guestpkg: built on buildhost {res.host} in {res.seconds:.1f} s, "
                        f"signed by its key {listed.key_id}; received and verified, "
                        f"sha256 {res.sha256}\n")
                if times is not None:
                    f.write(timing_line(res, times, time.monotonic()))
            os.replace(received, ctx.result)
        fsutil.fsync_dir(directory)
        accepted = cache.cached(ctx.result, ctx.key)
        if accepted is None or accepted.sha256 != res.sha256:
            raise SystemStateError(f"{ctx.result} changed while it was accepted")
        return accepted

    def check_reproducible(self, job: Job, host: str, sha256: str) -> None:
        """Record *host*'s digest for the job's key; another host's other digest for the
        same key is a reproducibility failure, and neither result is accepted."""
        name = built_key(job.key)
        retrying(self.broker, "recording a result",
                 lambda: self.redis.hset(name, host, sha256))
        built = retrying(self.broker, "reading results", lambda: self.redis.hgetall(name))
        others = {k.decode(): v.decode() for k, v in built.items()
                  if v.decode() != sha256}
        if others:
            shown = ", ".join(f"{h}: {d}" for h, d in sorted(others.items()))
            raise BuildFailed(f"reproducibility failure: {job.recipe_id} ({job.arch}) with "
                              f"cache key {job.key[:16]} was built by {host} as {sha256} and "
                              f"differently by {shown}; neither is accepted", None)

    def receive_log(self, log_sha256: Any, ctx: RecipeBuild, host: str) -> None:
        """The host's build log, verified, as this machine's log of the build."""
        if not isinstance(log_sha256, str) or not log_sha256:
            return
        ctx.log.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(GuestpkgError, OSError):  # the log is not the result
            retrying(self.broker, "receiving a log", lambda: blobs.fetch(
                self.redis, log_sha256, ctx.log, MAX_LOG, f"the log of {ctx.recipe.id} "
                f"from {host}"))

    # cancelling ----------------------------------------------------------------------

    def cancel(self) -> None:
        """Revoke every job not finished; the builds that run finish unused."""
        self.cancelled.set()
        with self.lock:
            pending = list(self.pending)
        for job_id in pending:
            with contextlib.suppress(Exception):
                self.redis.set(cancel_key(job_id), "1", ex=86400)
        if pending:
            with contextlib.suppress(Exception):
                self.app.control.revoke(pending)

    @contextlib.contextmanager
    def cancel_on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM revoke what is queued, then end the run."""
        def handler(signum: int, frame: FrameType | None) -> None:
            self.cancel()
            raise KeyboardInterrupt

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)
