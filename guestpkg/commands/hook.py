# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg hook``: the entry points that APT and host maintainer scripts call.

None of them is meant to be typed by a person; guestpkg-host(7) describes who calls
which.  Those called from apt and dpkg never make the caller fail for a guest's sake:
``post-invoke`` always exits 0 (a failing Post-Invoke command makes apt exit 100 and
skips the later hooks, docs/reference.md), and failures are recorded for ``guestpkg
status`` and retried later instead.
"""

from __future__ import annotations

import argparse
import logging

from guestpkg.config import Config
from guestpkg.errors import GuestpkgError, UsageError
from guestpkg.host import consent, job
from guestpkg.host.buildenv import update_if_stale
from guestpkg.host.layout import check_host_name
from guestpkg.host.lifecycle import (
    Mode,
    note_configured,
    note_purged,
    note_removed,
    process_pending,
    say,
)
from guestpkg.host.plan import Reason, Step, describe
from guestpkg.host.system import package_state

log = logging.getLogger(__name__)

DESCRIPTION = """\
Entry points for APT's DPkg::Post-Invoke hook and for the maintainer scripts that
dh_guestpkg generates for host packages.  Not for interactive use; see guestpkg-host(7).

  postinst HOST       record consent and the bundled guest; start the detached job
  postrm HOST ACTION  ACTION remove: the guest went with the host; purge: delete the
                      generated .debs and the state
  post-invoke         build and install pending guests (from apt; always exits 0)
  job                 the detached job: wait for apt to exit, then build and install
  daily               the daily timer: update the build environment if its package
                      lists are older than the system's, then what the job does
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="entry", metavar="ENTRY", required=True)
    p = sub.add_parser("postinst", help="from a host's postinst")
    p.add_argument("host")
    p.add_argument("--consent", choices=("true", "false"),
                   help="the answer, when not run under a debconf frontend")
    p.add_argument("--no-job", action="store_true", help="do not start the detached job")
    p = sub.add_parser("postrm", help="from a host's postrm")
    p.add_argument("host")
    p.add_argument("action")
    sub.add_parser("post-invoke", help="from apt's DPkg::Post-Invoke")
    p = sub.add_parser("job", help="the detached job")
    p.add_argument("--lock-fd", type=int, default=None, help=argparse.SUPPRESS)
    sub.add_parser("daily", help="from guestpkg-retry.timer")


def run(config: Config, args: argparse.Namespace) -> int:
    match args.entry:
        case "postinst":
            return postinst(config, check_host_name(args.host), args.consent, args.no_job)
        case "postrm":
            return postrm(config, check_host_name(args.host), args.action)
        case "post-invoke":
            return post_invoke(config)
        case "job":
            if args.lock_fd is None:
                job.hold_job_lock(config)
            job.run_job(config)
            return 0
        case "daily":
            return daily(config)
    raise UsageError(f"unknown entry point {args.entry}")


def _host_version(host: str) -> str | None:
    # While its postinst runs, the host is half-configured: take the version anyway.
    return package_state(host)[1]


def postinst(config: Config, host: str, answer: str | None, no_job: bool) -> int:
    if consent.under_frontend():
        given = consent.read_consent(host)
    elif answer is not None:
        given = answer == "true"
    else:
        raise UsageError("no debconf frontend and no --consent",
                         hint="this runs from the host's postinst after sourcing "
                         "/usr/share/debconf/confmodule")
    decision = note_configured(config, host, given, _host_version(host),
                               consent.is_reconfigure())
    reason = describe(decision, host)
    if decision.step in (Step.BUILD, Step.INSTALL):
        say(f"{host}: {reason} after this package run")
        if not no_job:
            job.spawn_job(config)
    elif decision.step is Step.WAIT:
        say(f"{host}: {reason} (see guestpkg status)")
    elif decision.reason is Reason.INSTALLED:
        log.info("%s: %s", host, reason)  # nothing worth saying
    else:
        say(f"{host}: {reason}")  # why nothing happens, and how to change it
    return 0


def daily(config: Config) -> int:
    """As apt's daily job keeps the system's lists current, this keeps the build
    environment's: updated when the system's lists are newer, then pending hosts are
    retried (a failure whose buildroot changed is retried at once)."""
    job.hold_job_lock(config)
    try:
        update_if_stale(config)
    except GuestpkgError as e:
        log.error("updating the build environment failed: %s", e.message_and_hint)
    job.run_job(config)
    return 0


def postrm(config: Config, host: str, action: str) -> int:
    if action == "remove":
        note_removed(config, host)
    elif action == "purge":
        note_purged(config, host)
    return 0


def quiet_console() -> None:
    """In apt's output, only our own lines and errors: the build's notes (sandbox
    relaxations and the like) still go to the log file."""
    def ours(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or record.name.startswith(
            ("guestpkg.host", "guestpkg.commands"))

    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:
            handler.addFilter(ours)


def post_invoke(config: Config) -> int:
    """Never fails: errors are shown in apt's output and recorded."""
    quiet_console()
    try:
        outcomes = process_pending(config, Mode.POST_INVOKE)
    except GuestpkgError as e:
        say(f"error: {e.message_and_hint}")
        return 0
    except Exception:  # a bug must not fail the user's apt run either
        log.exception("the APT hook failed")
        say("the APT hook failed (a bug); details in guestpkg's log")
        return 0
    deferred = False
    for outcome in outcomes:
        if outcome.decision.step is not Step.NOTHING:
            say(outcome.message)
        deferred |= outcome.deferred
    if deferred:
        job.spawn_job(config)
    return 0
