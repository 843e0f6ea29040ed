# SPDX-License-Identifier: GPL-2.0-or-later
"""The build environment of host packages: the default buildroot, made and kept
current by the lifecycle itself, so that a host installed on a fresh machine gives its
guest with nothing prepared by hand.

- :func:`check_build_needs`: before anything is downloaded, what the build needs and
  is missing (mmdebstrap to make the buildroot, a Debian source of this system's suite
  in its apt sources, disk space), said in one line with the command that fixes it;
- :func:`ensure_buildroot`: the buildroot, created the first time it is needed (once,
  under a lock that every waiting host shares: the second waits and finds it), with a
  line on the console before and after and the whole mmdebstrap log under
  ``<logdir>/buildroot/``; and updated first when it is stale;
- :func:`lists_stale`: a buildroot is stale when this system's apt lists of the same
  source are newer (apt's daily job or the user's ``apt update`` fetched a newer
  ``InRelease``): the mirror has moved on and the buildroot's frozen lists name
  versions that it may no longer serve (apt-get: 404 Not Found);
- :func:`missing_package_failure`: whether a failed build-dependency install failed
  because the buildroot's lists are too old (a 404, or a package or version that the
  lists don't have), so that the caller updates the buildroot and tries once more.

A buildroot's lists and the system's come from the same sources (the buildroot takes
the system's, :mod:`guestpkg.buildroot.sources`), so apt names their files the same:
``<vardir>/buildroots/<name>/gen-*/var/lib/apt/lists/<site>_<path>_dists_<suite>_InRelease``
beside ``/var/lib/apt/lists/<the same name>``.  Only the ``Date:`` field is compared
(the Release file format, https://wiki.debian.org/DebianRepository/Format#Date).
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from guestpkg import fsutil
from guestpkg.buildroot.roots import (
    METADATA,
    BaseRoot,
    create_base_root,
    host_suite,
    open_base_root,
    root_dir,
    update_base_root,
)
from guestpkg.buildroot.sources import read_host_sources, select_sources
from guestpkg.config import Config
from guestpkg.errors import CommandFailed, GuestpkgError, NetworkError, SystemStateError
from guestpkg.run import read_log_tail

log = logging.getLogger(__name__)

#: What a buildd buildroot of bookworm amd64 costs, measured by tools/run-example (133 MB
#: of .debs for the buildroot and hello's 40 build dependencies; 494 MB on disk):
#: downloaded from the apt sources, and on disk once made.
BUILDROOT_DOWNLOAD_MB = 100
BUILDROOT_DISK_MB = 500
#: Free space asked for before a buildroot is made (its tree, a build and a layer).
NEEDED_FREE_MB = 1200

#: The system's apt lists (apt.conf(5) Dir::State::lists).
SYSTEM_LISTS = Path("/var/lib/apt/lists")

Say = Callable[[str], None]


def _say(message: str) -> None:
    """A progress line: on the console (in apt's output, the hook shows the
    guestpkg.host loggers), in guestpkg's log and in the host's log."""
    log.warning("%s", message)


def buildroot_exists(config: Config) -> bool:
    return (root_dir(config, config.buildroot) / METADATA).is_file()


def generation_token(config: Config) -> str:
    """What identifies the default buildroot now: its generation, or "none".  A
    failure records it; a different token later means the user (or a job) created or
    updated the buildroot since."""
    try:
        return open_base_root(config).generation
    except (SystemStateError, FileNotFoundError, KeyError):
        return "none"


# --- what the build needs ------------------------------------------------------------

def check_build_needs(config: Config) -> None:
    """Raise SystemStateError naming what is missing, before anything is downloaded."""
    if buildroot_exists(config):
        return
    if shutil.which("mmdebstrap", path=os.environ.get("PATH") or os.defpath) is None \
            and not Path("/usr/bin/mmdebstrap").exists():
        raise SystemStateError("the build environment can't be made: mmdebstrap is not "
                               "installed", hint="apt-get install mmdebstrap")

    suite = config.suite or host_suite()
    sources = select_sources(read_host_sources(), suite, config.mirror)
    if not sources:
        raise SystemStateError(f"no Debian apt source for {suite} in /etc/apt/sources.list "
                               "or sources.list.d/", hint="add one (sources.list(5)), or "
                               "set mirror in /etc/guestpkg/guestpkg.conf")
    top = config.vardir
    top.mkdir(parents=True, exist_ok=True)
    free_mb = shutil.disk_usage(top).free // (1024 * 1024)
    if free_mb < NEEDED_FREE_MB:
        raise SystemStateError(f"only {free_mb} MB free in {top}; the build environment "
                               f"needs about {NEEDED_FREE_MB} MB",
                               hint=f"free some space in {top}")


# --- making and updating ---------------------------------------------------------------

def _creation_lock(config: Config) -> Path:
    # Beside the buildroots directory, not in it: that may be read-only (a buildroot
    # shared into a container), and the lock is ours, not the buildroot's.
    return config.vardir / f"buildroot-{config.buildroot}.lock"


def ensure_buildroot(config: Config, say: Say = _say) -> BaseRoot:
    """The default buildroot, made now if there is none, updated first if stale."""
    lock = _creation_lock(config)
    config.vardir.mkdir(parents=True, exist_ok=True)
    # Blocking: a second host (or job) waiting here finds the root made by the first.
    with fsutil.locked(lock):
        if not buildroot_exists(config):
            return _create(config, say)
        base = open_base_root(config)
        stale = lists_stale(base.path / "var" / "lib" / "apt" / "lists", SYSTEM_LISTS)
        if not stale:
            return base
        say(f"the build environment (buildroot {base.name!r}) has package lists older "
            f"than this system's ({stale}): updating it")
        try:
            return update(config, say)
        except (GuestpkgError, OSError) as e:
            # A stale root still builds most guests; a build-dependency install that
            # fails for its lists updates it again (guestpkg.host.build).
            message = e.message_and_hint if isinstance(e, GuestpkgError) else str(e)
            say(f"updating the build environment failed, building with the current one: "
                f"{message}")
            return base


def _create(config: Config, say: Say) -> BaseRoot:
    name = config.buildroot
    log_path = config.logdir / "buildroot" / f"create-{name}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    say(f"making the build environment (buildroot {name!r}), once: about "
        f"{BUILDROOT_DOWNLOAD_MB} MB from this system's apt sources, "
        f"{BUILDROOT_DISK_MB} MB on disk; this takes a few minutes (log: {log_path})")
    started = time.monotonic()
    try:
        with progress(log_path, say, started):
            base = create_base_root(config, name, log_path=log_path)
    except CommandFailed as e:
        raise _as_network_error(e, log_path) from e
    say(f"made the build environment in {time.monotonic() - started:.0f} s")
    return base


#: How often a progress line is shown while mmdebstrap works.
PROGRESS_EVERY_S = 30.0


@contextlib.contextmanager
def progress(log_path: Path, say: Say, started: float) -> Iterator[None]:
    """Every PROGRESS_EVERY_S, a line with mmdebstrap's latest step (its ``I:`` lines,
    e.g. "I: extracting archives..."), so a few minutes of silence in apt's output
    don't look like a hang."""
    done = threading.Event()

    def report() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            say(f"still making the build environment ({time.monotonic() - started:.0f} s): "
                f"{_last_step(log_path) or 'starting'}")

    thread = threading.Thread(target=report, name="buildroot-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _last_step(log_path: Path) -> str:
    steps = [line[3:].strip() for line in read_log_tail(log_path, 200).splitlines()
             if line.startswith("I: ")]
    # Our own text: mmdebstrap's progress words, escaped of anything unprintable.
    return "".join(c if c.isprintable() else "?" for c in steps[-1][:120]) if steps else ""


#: mmdebstrap's and apt's words for a mirror that could not be reached.
_UNREACHABLE = ("Could not resolve", "Temporary failure resolving", "Failed to fetch",
                "Could not connect", "Connection refused", "Network is unreachable",
                "Connection timed out")


def _as_network_error(error: CommandFailed, log_path: Path) -> GuestpkgError:
    """mmdebstrap failed: a NetworkError naming the mirror when it could not reach it
    (so that the failure is retried once the mirror is reachable), else as it was."""
    text = error.output_tail or ""
    if not any(word in text for word in _UNREACHABLE):
        return error

    try:
        mirror = select_sources(read_host_sources(), host_suite())[0].uri
    except (GuestpkgError, IndexError, OSError):
        mirror = "the Debian mirror"
    return NetworkError(f"{mirror}: could not download the build environment",
                        hint=f"check the network and this system's apt sources; "
                        f"mmdebstrap's log is {log_path}; then: guestpkg status")


def update(config: Config, say: Say = _say) -> BaseRoot:
    name = config.buildroot
    log_path = config.logdir / "buildroot" / f"update-{name}-{time.strftime('%Y%m%dT%H%M%S')}.log"
    say(f"updating the build environment (buildroot {name!r}; log: {log_path})")
    started = time.monotonic()
    base = update_base_root(config, name, log_path=log_path)
    say(f"updated the build environment in {time.monotonic() - started:.0f} s")
    return base


def update_if_stale(config: Config, say: Say = _say) -> BaseRoot | None:
    """The daily job's part: update the default buildroot if it exists and is stale."""
    if not buildroot_exists(config):
        return None
    with fsutil.locked(_creation_lock(config)):
        base = open_base_root(config)
        stale = lists_stale(base.path / "var" / "lib" / "apt" / "lists", SYSTEM_LISTS)
        if not stale:
            log.info("buildroot %s is current", base.name)
            return base
        say(f"buildroot {base.name!r}: package lists older than this system's ({stale})")
        return update(config, say)


# --- staleness ----------------------------------------------------------------------

def release_date(path: Path) -> float | None:
    """The ``Date:`` of a Release or InRelease file (RFC 2822), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024).decode("utf-8", "replace")
    except OSError:
        return None
    if head.startswith("-----BEGIN PGP SIGNED MESSAGE-----"):
        # InRelease: the armor header lines end at the first empty line (RFC 4880 7).
        head = head.partition("\n\n")[2]
    for line in head.splitlines():
        if line.startswith("Date:"):
            try:
                return email.utils.parsedate_to_datetime(line[5:].strip()).timestamp()
            except (TypeError, ValueError):
                return None
        if not line.strip():
            break  # the end of the first stanza: Date is in it or nowhere
    return None


def lists_stale(root_lists: Path, system_lists: Path) -> str:
    """Why the lists in *root_lists* are older than *system_lists* ("" if they are
    not): the first source whose Release the system has with a later Date."""
    try:
        names = sorted(p.name for p in root_lists.iterdir()
                       if p.name.endswith(("_InRelease", "_Release")))
    except OSError:
        return ""
    for name in names:
        ours, theirs = release_date(root_lists / name), release_date(system_lists / name)
        if ours is not None and theirs is not None and theirs > ours:
            return (f"{name.rsplit('_', 1)[0].replace('_', '/')}: "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(ours))} < "
                    f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime(theirs))} UTC")
    return ""


#: apt's words for "the lists name something the mirror no longer has"
#: (apt-pkg/acquire-item.cc, apt-private/private-install.cc).
_MISSING_MARKERS = ("404  Not Found", "404 Not Found", "Unable to fetch some archives",
                    "has no installation candidate", "Unable to locate package",
                    "is not installable", "but it is not going to be installed")


def missing_package_failure(log_text: str) -> bool:
    """Whether a failed build-dependency install failed for a package or version that
    the buildroot's lists promise but the mirror lacks, or the other way round."""
    return any(marker in log_text for marker in _MISSING_MARKERS)
