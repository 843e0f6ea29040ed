# SPDX-License-Identifier: GPL-2.0-or-later
"""The detached job: work that has to wait until the package manager has exited.

A host's postinst can't install anything (dpkg holds its lock), and in two cases the
APT hook can't either: guestpkg was installed in the same apt run as the host (apt read
its configuration, without our ``DPkg::Post-Invoke``, before guestpkg was unpacked), or
the guest needs packages that are not installed (``dpkg -i`` does not resolve them).
So the postinst, and the hook in the second case, start ``guestpkg hook job``:

1. detached (:func:`guestpkg.run.spawn_detached`: new session, /dev/null for stdio,
   every other descriptor closed, debconf's fd 3 included), so the maintainer script
   and apt finish without waiting for it;
2. it waits for dpkg's frontend lock, an fcntl record lock that apt and dpkg hold for
   their whole run (docs/reference.md): once it is free, the apt run that started us has
   exited, and the Post-Invoke hook, if there was one, has had its turn;
3. it works on the hosts that are still pending, installing with ``apt-get install``
   (``-o DPkg::Lock::Timeout`` in case another apt starts meanwhile).

So the first install completes without waiting for another apt run.  Several jobs may
exist at once (one per postinst); they take turns on the hosts' lock and the later ones
find nothing left to do.  Each job holds a shared flock on ``<vardir>/job.lock`` from
the moment it is spawned (the descriptor is inherited), so ``guestpkg status --wait``
can wait for all of them with an exclusive lock, without a race at start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path

from guestpkg.config import Config
from guestpkg.host.lifecycle import Mode, Outcome, process_pending
from guestpkg.host.system import HOOK_GUARD, wait_for_frontend_lock
from guestpkg.run import base_env, spawn_detached

log = logging.getLogger(__name__)

#: How long a job waits for an apt run to end before giving up (the host stays pending
#: and the next apt run's hook picks it up).
FRONTEND_WAIT_S = 6 * 3600.0


def job_lock_path(config: Config) -> Path:
    return config.vardir / "job.lock"


def job_environment() -> dict[str, str]:
    """The job's environment: a clean one, plus the settings we run with (GUESTPKG_*)
    and the Python path, so the job sees the same directories as its parent."""
    extra = {k: v for k, v in os.environ.items()
             if k.startswith("GUESTPKG_") and k != HOOK_GUARD}
    if "PYTHONPATH" in os.environ:
        extra["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return base_env(extra)


def _take_job_lock(config: Config) -> int:
    """Open the job lock and hold it shared; returns the descriptor, which holds it."""
    path = job_lock_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    return fd


def spawn_job(config: Config) -> int:
    """Start a detached job; returns its pid."""
    # Taken here and inherited: the job "exists" for status --wait from now on.
    fd = _take_job_lock(config)
    try:
        argv = [sys.executable, "-m", "guestpkg", "hook", "job", "--lock-fd", str(fd)]
        return spawn_detached(argv, env=job_environment(), pass_fds=[fd])
    finally:
        os.close(fd)


def wait_for_jobs(config: Config) -> None:
    """Block until no job is running (they hold job.lock shared)."""
    path = job_lock_path(config)
    if not path.exists():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)


def hold_job_lock(config: Config) -> None:
    """For a job started without an inherited lock (the daily retry, by hand): take the
    shared job lock for the rest of this process's life, so status --wait sees it."""
    _take_job_lock(config)  # released when the process exits


def run_job(config: Config) -> list[Outcome]:
    """The job's body: wait for apt to be done, then process what is pending."""
    log.info("job %d: waiting for dpkg's frontend lock", os.getpid())
    wait_for_frontend_lock(timeout_s=FRONTEND_WAIT_S)
    # Each outcome is logged by process_host, also into the host's own log.
    return process_pending(config, Mode.DETACHED)
