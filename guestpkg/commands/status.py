# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg status``: each host package's consent, versions, state and last error.

It reads guestpkg's state (``<vardir>/hosts/*.json``) and the hosts installed under
``hostsdir``, and asks dpkg which guest version is installed now, so it also notices a
guest the user removed.  It changes nothing, except with ``--wait``, which first waits
for running detached jobs to finish.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
import sys
import time
from typing import Any

from guestpkg.config import Config
from guestpkg.host import state as st
from guestpkg.host.job import spawn_job, wait_for_jobs
from guestpkg.host.layout import check_host_name, host_paths, installed_hosts
from guestpkg.host.lifecycle import (
    format_time,
    guest_main_package,
    observe_guest,
    retry_if_cause_gone,
    retry_now,
)
from guestpkg.text import printable

DESCRIPTION = """\
Show, for each host package (or the HOSTs named), whether the user consented to
building its guest, the guest version the host carries, the version built and kept in
/usr/src/HOST/, the version installed, and the state: installed, pending (waiting for
the hook or the detached job), waiting to retry after a failure (with the last error),
failed permanently (guestpkg rebuild HOST or dpkg-reconfigure HOST tries again), or
removed by the user (not reinstalled until one of those).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hosts", nargs="*", metavar="HOST")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--wait", action="store_true",
                        help="first wait until detached jobs have finished")


def describe(config: Config, host: str) -> dict[str, Any]:
    paths = host_paths(config, host)
    state = st.load(config.vardir, host)
    package = guest_main_package(state, paths)
    installed = observe_guest(state, paths)
    pending = st.pending_path(config.vardir, host).exists()
    recovered = ""
    if paths.manifest.is_file() and (state.failure.permanent or (
            state.failing and time.time() < state.failure.next_retry_at)):
        recovered = retry_if_cause_gone(config, state)
    return {
        "recovered": recovered or None,
        "host": host,
        "host_installed": paths.manifest.is_file(),
        "consent": state.consent,
        "host_version": state.host_version,
        "bundled_version": state.bundled_version,
        "built_version": state.built_version,
        "guest_package": package,
        "installed_version": installed,
        "state": _state_word(state, installed, pending),
        "in_progress": state.in_progress,
        "failures": state.failure.count,
        "last_error": state.failure.last_error or None,
        "next_retry": format_time(state.failure.next_retry_at) if state.failing else None,
        "debs": str(paths.debs),
    }


class Word(enum.StrEnum):
    """A host's state in one word (the ``state`` of ``--json``)."""

    NO_CONSENT = "no consent"
    REMOVED = "removed by user"
    FAILED = "failed permanently"
    WAITING = "waiting to retry"
    DUE = "pending retry"
    PENDING = "pending"
    INSTALLED = "installed"
    NOT_INSTALLED = "not installed"
    CAN_RETRY = "can retry now"       # the failure's cause is gone; not root
    RETRYING = "retrying now"         # the failure's cause is gone; the job started


def _state_word(state: st.HostState, installed: str | None, pending: bool) -> Word:
    if not state.consent:
        return Word.NO_CONSENT
    if state.user_removed:
        return Word.REMOVED
    if state.failure.permanent:
        return Word.FAILED
    if state.failing and pending:
        return Word.WAITING if time.time() < state.failure.next_retry_at else Word.DUE
    if pending:
        return Word.PENDING
    return Word.INSTALLED if installed else Word.NOT_INSTALLED


def run(config: Config, args: argparse.Namespace) -> int:
    if args.wait:
        wait_for_jobs(config)
    hosts = [check_host_name(h) for h in args.hosts] or sorted(
        set(installed_hosts(config)) | set(st.known_hosts(config.vardir)))
    rows = [describe(config, h) for h in hosts]
    retry_recovered(config, rows)
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no host packages")
    for row in rows:
        _print_row(row)
    return 0


def retry_recovered(config: Config, rows: list[dict[str, Any]]) -> None:
    """Hosts whose last failure's cause is gone are retried now (as root: marked due
    and the detached job started), instead of after the backoff."""
    recovered = [row for row in rows if row["recovered"]]
    if not recovered:
        return
    if os.geteuid() != 0:
        for row in recovered:
            row["state"] = Word.CAN_RETRY
            row["next_retry"] = f"now ({row['recovered']}): sudo guestpkg rebuild {row['host']}"
        return
    retry_now(config, [row["host"] for row in recovered])
    for row in recovered:
        row["state"] = Word.RETRYING
        row["next_retry"] = f"now ({row['recovered']})"
    spawn_job(config)


def _print_row(row: dict[str, Any]) -> None:
    consent = {True: "yes", False: "no", None: "not asked"}[row["consent"]]
    _show(f"{row['host']}: {row['state']}")
    _show(f"  consent: {consent}")
    _show(f"  guest: {row['guest_package'] or '?'} {row['bundled_version'] or '?'} "
          f"(built: {row['built_version'] or '-'}, installed: {row['installed_version'] or '-'})")
    if row["in_progress"]:
        _show(f"  {row['in_progress']} (or interrupted; the next run starts it again)")
    if row["last_error"]:
        _show(f"  last error ({row['failures']} failures): {row['last_error']}")
        if row["next_retry"] and row["state"] != Word.FAILED:
            _show(f"  next retry: {row['next_retry']}")
    if row["state"] in (Word.FAILED, Word.REMOVED, Word.WAITING):
        _show(f"  to try again: guestpkg rebuild {row['host']}")


def _show(line: str) -> None:
    """A line of the status: versions and the last error come from dpkg, the state
    and the guest, so control characters are escaped (:mod:`guestpkg.text`)."""
    print(printable(line))
