# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg buildhost serve``: a Celery worker that builds recipes for a coordinator.

The worker consumes only the queues of the architectures its stanza in the buildhosts
file lists, ``Slots`` jobs at a time (Celery's thread pool: each job is a sandboxed
process watched by a thread, as in a local ``-j N`` build).  A job is run by
:func:`run_job`, which builds with the same code as a local build
(:func:`guestpkg.build.recipe.build_recipe` over the same bootstrap set, cache key
and log):

1. the job is parsed as hostile JSON (:mod:`.jobs`);
2. a *lease* on the job (``guestpkg:lease:<job>``, renewed every
   :data:`HEARTBEAT_S` while it builds, gone :data:`LEASE_S` after its holder died) is
   taken, so a redelivered copy of a running job waits instead of building it twice,
   and a copy of a finished job returns the stored result (the first one stored: a
   host that lost its lease while stopped neither takes it back nor replaces that);
3. the recipe's files and the input dcfpkgs are fetched by SHA256 and verified
   (:mod:`.blobs`); the recipe is read back with the recipe reader and its cache key
   computed here must be the job's, and the job's bootstrap set must be this host's;
4. the build runs; the result is signed with this host's key (a dcfpkg signature,
   :func:`guestpkg.dcfpkg.sigdb.sign`) and sent with its log, both by SHA256.

Nothing of a job is kept in the host's cache: it is built in a ``.tmp-`` directory
under ``<vardir>/buildhost/jobs/`` that goes away with the job (and at start, after a
kill); verified inputs stay under ``<vardir>/buildhost/inputs/<sha256>.dcfpkg``.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guestpkg import fsutil
from guestpkg.build.recipe import Input, RecipeBuild, build_recipe
from guestpkg.buildhost import blobs
from guestpkg.buildhost.broker import PREFIX, TASK, broker, client, make_app, queue
from guestpkg.buildhost.hosts import Buildhost, find_host, read_buildhosts
from guestpkg.buildhost.jobs import Job, JobResult, job_from_json
from guestpkg.config import Config
from guestpkg.dcfpkg.keys import SecretKey, b64encode, read_public_key, read_secret_key
from guestpkg.dcfpkg.sigdb import sign
from guestpkg.errors import ConfigError, GuestpkgError, InputError
from guestpkg.recipe import key as rkey
from guestpkg.recipe import workdirs
from guestpkg.recipe.bootstrap import BootstrapSet, open_set
from guestpkg.recipe.tree import load_tree

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
LEASE_S = 15
DONE_TTL_S = 86400
#: How long a sent result's signature is valid: the coordinator checks it at once.
SIGNATURE_S = 86400


def lease_key(job_id: str) -> str:
    return f"{PREFIX}lease:{job_id}"


def done_key(job_id: str) -> str:
    return f"{PREFIX}done:{job_id}"


def cancel_key(job_id: str) -> str:
    return f"{PREFIX}cancel:{job_id}"


def host_key(name: str) -> str:
    return f"{PREFIX}host:{name}"


@dataclass
class HostState:
    """The serving host: who it is, what it builds, what it is building now."""

    config: Config
    host: Buildhost
    secret: SecretKey
    sets: dict[str, BootstrapSet]
    redis: redis.Redis[bytes]
    jobs: dict[str, str] = field(default_factory=dict)   # job id -> "recipe (arch)"
    lost: set[str] = field(default_factory=set)          # jobs whose lease went to another
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def root(self) -> Path:
        return self.config.vardir / "buildhost"

    def beat(self) -> None:
        """Say we are alive, with our jobs, and keep their leases (only while they are
        ours: a host that was stopped longer than a lease has lost its jobs to others)."""
        with self.lock:
            jobs = dict(self.jobs)
        self.redis.hset(host_key(self.host.name), mapping={
            "architectures": " ".join(self.host.architectures), "slots": self.host.slots,
            "jobs": json.dumps(sorted(jobs.values())), "last_seen": f"{time.time():.3f}"})
        for job_id in jobs:
            if not renew_lease(self.redis, job_id, self.host.name) and job_id not in self.lost:
                self.lost.add(job_id)
                log.warning("job %s: lost its lease (this host was away longer than %d s); "
                            "another host builds it, and this build's result will not be "
                            "used", job_id, LEASE_S)


# A lease is renewed or released only by its holder (compare and set, in one step on
# the server): a host resumed after a stop must not take back a lease another host
# holds now, nor end it.
_RENEW = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) and 1
end
return 0"""
_RELEASE = """if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0"""


def renew_lease(r: redis.Redis[bytes], job_id: str, host: str) -> bool:
    return bool(r.eval(_RENEW, 1, lease_key(job_id), host, LEASE_S))  # type: ignore[no-untyped-call]


def release_lease(r: redis.Redis[bytes], job_id: str, host: str) -> bool:
    return bool(r.eval(_RELEASE, 1, lease_key(job_id), host))  # type: ignore[no-untyped-call]


def open_host(config: Config) -> HostState:
    """This machine as its buildhosts stanza says, checked before any job is taken:
    its secret key is the listed one, and it has a bootstrap set for every arch."""
    hosts = read_buildhosts(config.buildhosts)
    name = config.buildhost_name or socket.gethostname().split(".")[0]
    host = find_host(hosts, name, config.buildhosts)
    secret = read_secret_key(config.buildhost_key)
    listed = read_public_key(host.public_key)
    if secret.public_key != listed.public_key:
        raise ConfigError(f"{config.buildhost_key} is key {secret.key_id}, but "
                          f"{config.buildhosts} lists {listed.key_id} for {name}",
                          hint=f"point buildhost-key at the secret half of {host.public_key}")
    sets = {arch: open_set(config, arch) for arch in host.architectures}
    return HostState(config, host, secret, sets, client(broker(config)))


def serve(config: Config) -> int:
    """Run the worker until it is stopped (SIGTERM: warm shutdown, Celery's way)."""
    state = open_host(config)
    app = make_app(broker(config), name=f"guestpkg-{state.host.name}")

    @app.task(name=TASK, acks_late=True, reject_on_worker_lost=True)  # type: ignore[misc]
    def build_task(payload: Any) -> dict[str, Any]:
        return run_job(state, payload)

    wake_often(app)

    jobs_dir = state.root / state.host.name / "jobs"
    if jobs_dir.is_dir():   # what a killed worker left
        for leftover in jobs_dir.iterdir():
            fsutil.remove_tree(leftover)
    workdirs.reap(state.config, ("builds",))   # and its recipe builds' work trees

    def heartbeat() -> None:
        while True:
            try:
                state.beat()
            except Exception as e:  # the broker may be away for a while: keep trying
                log.warning("heartbeat: %s", e)
            time.sleep(HEARTBEAT_S)

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    print(f"buildhost {state.host.name}: serving {' '.join(state.host.architectures)} "
          f"with {state.host.slots} slots, key {state.secret.key_id}", flush=True)
    worker = app.Worker(queues=[queue(a) for a in state.host.architectures],
                        concurrency=state.host.slots, pool="threads",
                        hostname=f"{state.host.name}@guestpkg", loglevel="INFO",
                        without_mingle=True, without_gossip=True, optimization="fair")
    worker.start()
    return int(worker.exitcode or 0)


#: How often the worker's event loop wakes up at least (see :func:`wake_often`).
WAKE_S = 0.1


def wake_often(app: Any) -> None:
    """Wake the worker's event loop every :data:`WAKE_S`, so that it takes its next job
    as soon as it has finished one.

    A job runs in a pool thread, but Celery acknowledges it (``acks_late``) by putting
    the ack on the event loop's ready queue, and the loop sleeps in poll() until its
    next timer is due (kombu: up to 10 s; the Redis transport's own timers are seconds
    apart).  Until the ack is sent the worker's one prefetch slot stays taken and it
    does not ask the broker for another job: bench/buildhosts.py measured 1.4 to 3.7 s
    of waiting in each remote job of a chain, against ~0.1 s with this.  A known,
    still open Celery bug (https://github.com/celery/celery/issues/6941), whose
    reporters wake the loop the same way."""
    from celery import bootsteps

    class Wake(bootsteps.StartStopStep):  # type: ignore[misc]
        requires = {"celery.worker.components:Hub"}

        def start(self, worker: Any) -> None:
            if worker.hub is not None:
                worker.hub.call_repeatedly(WAKE_S, _nothing)

    app.steps["worker"].add(Wake)


def _nothing() -> None:
    """A timer that only ends the event loop's poll()."""


def run_job(state: HostState, payload: Any) -> dict[str, Any]:
    """Build one job; returns the result message (also stored, for redelivered copies)."""
    job = job_from_json(payload)
    if job.arch not in state.host.architectures:
        raise InputError(f"job {job.job_id} is for {job.arch}, which this host does not build")
    r = state.redis
    while True:
        done = r.get(done_key(job.job_id))
        if done is not None:   # a redelivered copy of a finished job
            stored: dict[str, Any] = json.loads(done)
            log.info("job %s: already done on %s; its result stands", job.job_id,
                     stored.get("host"))
            return stored
        if r.exists(cancel_key(job.job_id)):
            return {"format": 1, "job": job.job_id, "host": state.host.name,
                    "failed": "cancelled by the coordinator", "log_sha256": ""}
        if r.set(lease_key(job.job_id), state.host.name, nx=True, ex=LEASE_S):
            break
        time.sleep(HEARTBEAT_S)     # another host builds it: wait for its result
    log.info("job %s: building %s (%s)", job.job_id, job.recipe_id, job.arch)
    with state.lock:
        state.jobs[job.job_id] = f"{job.recipe_id} ({job.arch})"
    work = state.root / state.host.name / "jobs" / f"{fsutil.TMP_PREFIX}{job.job_id}"
    try:
        work.mkdir(parents=True)
        try:
            result = _build(state, job, work)
        except GuestpkgError as e:      # bad input: the coordinator is told, not left waiting
            result = _failed(state, job, None, e.message)
        except Exception as e:  # a bug here must not leave the coordinator waiting either
            log.exception("job %s", job.job_id)
            result = _failed(state, job, None, f"guestpkg bug on the buildhost: {e!r}")
        # the first result stored is the job's: a host that lost its lease while it
        # was stopped and finished later does not replace the one already given
        if not r.set(done_key(job.job_id), json.dumps(result), ex=DONE_TTL_S, nx=True):
            log.warning("job %s: done meanwhile by another host; this result is not used",
                        job.job_id)
            late: dict[str, Any] = json.loads(r.get(done_key(job.job_id)) or b"{}")
            return late
        log.info("job %s: %s", job.job_id, result.get("failed") or f"sent {result['sha256']}")
        return result
    finally:
        with state.lock:
            state.jobs.pop(job.job_id, None)
        state.lost.discard(job.job_id)
        release_lease(r, job.job_id, state.host.name)
        fsutil.remove_tree(work)


def _build(state: HostState, job: Job, work: Path) -> dict[str, Any]:
    config, r = state.config, state.redis
    started = time.monotonic()
    directory = work / "tree" / job.name / job.version / job.release
    directory.mkdir(parents=True)
    for entry in job.files:
        path = directory / entry.path
        if entry.kind == "d":
            path.mkdir(exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        blobs.fetch(r, entry.sha256, path, entry.size, f"{job.recipe_id}/{entry.path}")
        path.chmod(0o755 if entry.kind == "x" else 0o644)
    tree = load_tree(work / "tree")
    if tree.problems:
        raise InputError(f"job {job.job_id}: the recipe does not read back: "
                         + "; ".join(tree.problems))
    recipe = tree.find(job.recipe_id)
    bootstrap = state.sets[job.arch]
    if bootstrap.id != job.bootstrap:
        return _failed(state, job, None, f"{state.host.name} has bootstrap set "
                       f"{bootstrap.id[:16]} for {job.arch}, the coordinator "
                       f"{job.bootstrap[:16]} (run guestpkg recipe bootstrap --update on both)")
    inputs_dir = state.root / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    inputs = []
    for i in job.inputs:
        path = inputs_dir / f"{i.sha256}.dcfpkg"
        if not path.is_file():
            blobs.fetch(r, i.sha256, path, config.dcfpkg_max_size, f"input {i.recipe_id}")
        inputs.append(Input(i.recipe_id, path, i.sha256, i.in_key))
    keyed = {i.recipe_id: i.sha256 for i in inputs if i.in_key}
    computed = rkey.cache_key(recipe, job.arch, keyed, bootstrap.id)
    if computed != job.key:
        return _failed(state, job, None, f"the job's cache key {job.key[:16]} is not the "
                       f"{computed[:16]} that {state.host.name} computes for it")
    ctx = RecipeBuild(config, recipe, job.arch, bootstrap, tuple(inputs), job.key,
                      job.key_text, jobs=job.jobs)
    ctx.result = work / "out" / ctx.result.name
    ctx.result.parent.mkdir()
    fetched = time.monotonic()
    try:
        built = build_recipe(ctx)
    except GuestpkgError as e:
        return _failed(state, job, ctx.log, e.message)
    finished = time.monotonic()
    now = int(time.time())
    signature = sign(state.secret, built.metadata, built.path.stat().st_size, built.sha256,
                     job.repository, 0, now + SIGNATURE_S)
    sha256, size = blobs.put(r, built.path)
    log_sha256, _ = blobs.put(r, ctx.log)
    end = time.monotonic()
    return JobResult(job.job_id, state.host.name, sha256, size,
                     b64encode(signature.public_key), b64encode(signature.signature),
                     signature.expires, log_sha256, end - started,
                     (fetched - started, finished - fetched, end - finished)).to_json()


def _failed(state: HostState, job: Job, log_path: Path | None, message: str) -> dict[str, Any]:
    log_sha256 = blobs.put(state.redis, log_path)[0] if log_path and log_path.is_file() else ""
    return {"format": 1, "job": job.job_id, "host": state.host.name,
            "failed": f"on {state.host.name}: {message}", "log_sha256": log_sha256}


def new_job_id() -> str:
    return secrets.token_hex(16)
