# SPDX-License-Identifier: GPL-2.0-or-later
"""The host/guest lifecycle: from the host's postinst to an installed guest, and back.

Who calls what (guestpkg-host(7) has the user's view):

``note_configured``
    the host's postinst (``guestpkg hook postinst``): reads consent and the manifest,
    records them, and when there is work starts the detached job (:mod:`.job`), since
    nothing can be installed while dpkg runs the postinst.
``process_pending`` in :attr:`Mode.POST_INVOKE`
    apt's ``DPkg::Post-Invoke`` (apt-hooks/apt-post-invoke): builds, and installs with
    ``dpkg -i`` when the guest's dependencies are satisfied; apt still holds dpkg's
    frontend lock there, but dpkg's own lock is free (docs/reference.md).
``process_pending`` in :attr:`Mode.DETACHED`
    the detached job, once apt has exited: builds if needed and installs with
    ``apt-get install``, which resolves the guest's dependencies.  This is how the
    first install completes when guestpkg came in the same apt run as the host (apt
    read its configuration, without our hook, before guestpkg was unpacked).
``process_host`` in :attr:`Mode.COMMAND`
    ``guestpkg rebuild <host>``: like the job, in the foreground.
``note_removed`` / ``note_purged``
    the host's postrm.

Every step records its outcome in the host's state before going on, so a crash or
SIGKILL at any point leaves a state that the next run continues from: an interrupted
build leaves no half .debs (they are swapped into ``<srcdir>/<host>/`` as a whole) and
is simply built again.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from guestpkg.config import Config
from guestpkg.errors import GuestpkgError, UsageError
from guestpkg.fsutil import atomic_directory, locked, private_directory, remove_tree
from guestpkg.host import state as st
from guestpkg.host import system
from guestpkg.host.build import build_guest
from guestpkg.host.layout import HostPaths, host_paths
from guestpkg.host.manifest import Manifest, read_manifest
from guestpkg.host.plan import Decision, Reason, Step, decide, describe, observe
from guestpkg.host.recovery import cause_gone, record_cause
from guestpkg.host.source import binary_packages
from guestpkg.host.system import DpkgState, check_system, package_state, version_compare
from guestpkg.host.versions import local_version
from guestpkg.run import run
from guestpkg.text import one_line

log = logging.getLogger(__name__)


class Mode(enum.Enum):
    POST_INVOKE = "post-invoke"
    DETACHED = "detached"
    COMMAND = "command"


@dataclass(frozen=True)
class Outcome:
    host: str
    decision: Decision
    message: str
    #: nothing failed (a failure is recorded in the state and said in *message*)
    ok: bool = True
    #: the install has to wait for the detached job (unmet dependencies in the hook)
    deferred: bool = False


def say(message: str) -> None:
    """A line for the user: in apt's output when we run from the hook or a postinst.
    One line, control characters escaped: the message may carry an upstream's URL or
    reason phrase, or a build's output (:mod:`guestpkg.text`)."""
    print(f"guestpkg: {one_line(message)}", file=sys.stderr, flush=True)


def format_time(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def lock_path(config: Config) -> Path:
    return config.vardir / "hosts" / ".lock"


def built_debs(paths: HostPaths) -> list[Path]:
    """The .debs of the last complete build, without debug symbols."""
    if not paths.debs.is_dir():
        return []
    return sorted(p for p in paths.debs.glob("*.deb") if not p.name.split("_")[0]
                  .endswith("-dbgsym"))


def guest_main_package(state: st.HostState, paths: HostPaths) -> str | None:
    """The binary package whose installed version stands for the guest."""
    if state.built_packages:
        return state.built_packages[0]
    try:
        packages = binary_packages(paths.debian)
    except (OSError, GuestpkgError):
        return None
    return packages[0] if packages else None


def observe_guest(state: st.HostState, paths: HostPaths) -> str | None:
    """Update *state* with what dpkg says of the guest now; its installed version.

    Gone from dpkg: maybe removed by the user.  Left half-way (an install that was
    interrupted): not removed, and not installed either, so it is installed again."""

    package = guest_main_package(state, paths)
    current, version = package_state(package) if package else (None, None)
    observe(state, version)
    return version if current is DpkgState.INSTALLED else None


def _decide(state: st.HostState, paths: HostPaths) -> Decision:

    installed = observe_guest(state, paths)
    return decide(state, installed, bool(built_debs(paths)), time.time(), version_compare)


# --- called from the host's maintainer scripts ---------------------------------------

def note_configured(config: Config, host: str, consent: bool, host_version: str | None,
                    reconfigure: bool) -> Decision:
    """Record what the host's postinst knows; returns the decision (pending or not)."""
    paths = host_paths(config, host)
    manifest = read_manifest(paths.manifest)
    with locked(lock_path(config)):
        state = st.load(config.vardir, host)
        if reconfigure:
            # dpkg-reconfigure asked again: the user's new answer is the decision, so a
            # removed guest may come back and failures are forgotten.
            state.user_removed = False
            state.clear_failure()
        state.consent = consent
        state.host_version = host_version
        state.bundled_version = manifest.guest_version
        decision = _decide(state, paths)
        st.save(config.vardir, state, pending=decision.pending)
    return decision


def note_removed(config: Config, host: str) -> None:
    """The host was removed (not purged): apt took the guest with it (its Depends)."""
    with locked(lock_path(config)):
        state = st.load(config.vardir, host)
        state.installed_version = None
        state.in_progress = None
        st.save(config.vardir, state, pending=False)


def note_purged(config: Config, host: str) -> None:
    """The host was purged: its generated .debs, work space, log and state go."""
    paths = host_paths(config, host)
    with locked(lock_path(config)):
        remove_tree(paths.debs)
        remove_tree(paths.work)
        paths.log.unlink(missing_ok=True)
        st.remove(config.vardir, host)


# --- called from guestpkg's own commands -------------------------------------------------

def request_rebuild(config: Config, host: str) -> None:
    """``guestpkg rebuild``: the way out of every stopped state.  The failure record
    (also a permanent one) and the user-removed flag are cleared and the host marked
    pending; consent still comes from debconf only."""
    with locked(lock_path(config)):
        state = st.load(config.vardir, host)
        if not state.consent:
            raise UsageError(f"no consent to build the guest of {host}",
                             hint=f"dpkg-reconfigure {host} asks again")
        state.user_removed = False
        state.clear_failure()
        st.save(config.vardir, state, pending=True)


def forget(config: Config, host: str, *, debs: bool) -> None:
    """``guestpkg forget``: drop the host's state, pending marker and work space (and
    with *debs* its generated .debs); dpkg and debconf are not touched."""
    paths = host_paths(config, host)
    with locked(lock_path(config)):
        st.remove(config.vardir, host)
        remove_tree(paths.work)
        if debs:
            remove_tree(paths.debs)


def retry_now(config: Config, hosts: Sequence[str]) -> None:
    """Make *hosts* due at once (their failure's cause is gone, :mod:`.recovery`)."""
    with locked(lock_path(config)):
        for host in hosts:
            state = st.load(config.vardir, host)
            state.retry_now()
            st.save(config.vardir, state, pending=True)


# --- doing the work ----------------------------------------------------------------------

def process_pending(config: Config, mode: Mode,
                    hosts: Sequence[str] | None = None) -> list[Outcome]:
    """Work on every host that has a pending marker; never raises for one host's
    failure (it is recorded, shown and retried later)."""
    outcomes = []
    for host in hosts if hosts is not None else st.pending_hosts(config.vardir):
        try:
            outcomes.append(process_host(config, host, mode))
        except GuestpkgError as e:
            # A broken manifest or state file of one host must not stop the others.
            log.debug("%s failed", host, exc_info=True)
            outcomes.append(Outcome(host, Decision(Step.WAIT, Reason.ERROR),
                                    f"{host}: {e.message_and_hint}", ok=False))
    return outcomes


def process_host(config: Config, host: str, mode: Mode,
                 force_build: bool = False) -> Outcome:
    paths = host_paths(config, host)
    blocking = mode is not Mode.POST_INVOKE
    with locked(lock_path(config), blocking=blocking) as got:
        if not got:
            # A detached job is at work on the hosts; it will see this one too.
            busy = Decision(Step.WAIT, Reason.BUSY)
            return Outcome(host, busy, describe(busy, host))
        if not paths.manifest.is_file():
            st.pending_path(config.vardir, host).unlink(missing_ok=True)
            gone = Decision(Step.NOTHING, Reason.HOST_NOT_INSTALLED)
            return Outcome(host, gone, describe(gone, host))
        with host_log(paths):
            outcome = _process_locked(config, paths, mode, force_build)
            if outcome.decision.step is not Step.NOTHING:
                # The message names its host already ("foo-installer: ...").
                log.warning("%s", outcome.message)
            return outcome


@contextlib.contextmanager
def host_log(paths: HostPaths) -> Iterator[None]:
    """While a host is worked on, guestpkg's own messages (fetch, buildroot, build
    steps, the outcome; not every command's output) also go to its log,
    ``<logdir>/hosts/<host>.log``, which every message about the host points at."""
    try:
        paths.log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(paths.log, encoding="utf-8")
    except OSError as e:  # not root (guestpkg status), or a full disk: no host log
        log.debug("no host log %s: %s", paths.log, e)
        yield
        return
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    handler.addFilter(lambda record: record.name != "guestpkg.run")
    top = logging.getLogger("guestpkg")
    saved = top.level
    if top.getEffectiveLevel() > logging.INFO:
        top.setLevel(logging.INFO)
    top.addHandler(handler)
    try:
        yield
    finally:
        top.removeHandler(handler)
        top.setLevel(saved)
        handler.close()


def _process_locked(config: Config, paths: HostPaths, mode: Mode,
                    force_build: bool) -> Outcome:
    state = st.load(config.vardir, paths.host)
    manifest = read_manifest(paths.manifest)
    state.bundled_version = manifest.guest_version
    if state.in_progress:
        log.warning("%s: an earlier %s was interrupted; starting again", paths.host,
                    state.in_progress)
        state.in_progress = None
    retry_if_cause_gone(config, state)
    decision = _decide(state, paths)
    if force_build and decision.step in (Step.INSTALL, Step.NOTHING, Step.WAIT) \
            and state.consent and not state.user_removed:
        decision = Decision(Step.BUILD, Reason.REBUILD_REQUESTED)
    if decision.step in (Step.NOTHING, Step.WAIT):
        st.save(config.vardir, state, pending=decision.pending)
        message = f"{paths.host}: {describe(decision, paths.host)}"
        if decision.step is Step.WAIT:
            message += (f": {state.failure.last_error}; next try after "
                        f"{format_time(state.failure.next_retry_at)}, or at once when the "
                        f"cause is gone; to retry now: guestpkg rebuild {paths.host}")
        return Outcome(paths.host, decision, message)
    try:
        if decision.step is Step.BUILD:
            _build(config, paths, manifest, state)
        return _install(config, paths, state, mode, decision)
    except GuestpkgError as e:
        return _failed(config, paths, state, decision, e)


def retry_if_cause_gone(config: Config, state: st.HostState) -> str:
    """A failing host whose failure's cause is gone is due at once (returns why)."""

    f = state.failure
    if not state.failing or not state.consent or state.user_removed or \
            (not f.permanent and time.time() >= f.next_retry_at):
        return ""
    why = cause_gone(config, f)
    if why:
        log.warning("%s: %s: retrying now instead of after %s", state.host, why,
                    format_time(f.next_retry_at))
        state.retry_now()
    return why


def _failed(config: Config, paths: HostPaths, state: st.HostState, decision: Decision,
            error: GuestpkgError) -> Outcome:

    text = error.message_and_hint
    state.in_progress = None
    state.record_failure(text, time.time(), config.retry_delay,
                         config.permanent_failure_after, **record_cause(config, error))
    st.save(config.vardir, state, pending=not state.failure.permanent)
    later = (f"no more automatic retries: guestpkg rebuild {paths.host}"
             if state.failure.permanent
             else f"will retry after {format_time(state.failure.next_retry_at)}, or at "
             "once when the cause is gone")
    log.debug("%s failed", paths.host, exc_info=True)
    return Outcome(paths.host, decision,
                   f"{paths.host}: {describe(decision, paths.host)} failed: {text}; {later} "
                   f"(log: {paths.log}; to retry now: guestpkg rebuild {paths.host})",
                   ok=False)


def _build(config: Config, paths: HostPaths, manifest: Manifest, state: st.HostState) -> None:
    check_system()
    state.in_progress = st.Activity.BUILDING
    st.save(config.vardir, state, pending=True)
    target = local_version(manifest.guest_version)
    say(f"building {manifest.guest_source} {target} for {paths.host} (log: {paths.log})")
    remove_tree(paths.work)
    private_directory(paths.work.parent)
    paths.work.mkdir()
    try:
        debs = build_guest(config, paths, manifest, paths.work / "out")
        _keep_debs(paths, debs)
    finally:
        remove_tree(paths.work)
    state.built_version = target
    state.built_packages = sorted({d.name.split("_")[0] for d in built_debs(paths)})
    state.in_progress = None
    st.save(config.vardir, state, pending=True)


def _keep_debs(paths: HostPaths, files: Sequence[Path]) -> None:
    """Put a build's results into <srcdir>/<host>/ as a whole: the new directory is made
    under a temporary name and swapped in, so the directory always holds one complete
    build (docs/style.md, rule 5)."""
    old = paths.debs.with_name(".old-" + paths.debs.name)
    remove_tree(old)
    staged = paths.debs.with_name(".new-" + paths.debs.name)
    remove_tree(staged)
    with atomic_directory(staged) as tmp:
        for f in files:
            shutil.copy2(f, tmp / f.name)
        tmp.chmod(0o755)
    if paths.debs.exists():
        os.rename(paths.debs, old)
    os.rename(staged, paths.debs)
    remove_tree(old)


def _install(config: Config, paths: HostPaths, state: st.HostState, mode: Mode,
             decision: Decision) -> Outcome:

    debs = built_debs(paths)
    if not debs:
        raise GuestpkgError(f"no .debs in {paths.debs}", hint=f"guestpkg rebuild {paths.host}")
    if mode is Mode.POST_INVOKE:
        unmet = system.unmet_dependencies(debs, provided=[paths.host])
        if unmet:
            # dpkg -i would leave the guest unpacked and the system broken; apt-get can
            # resolve them once this apt run is over (docs/reference.md).
            st.save(config.vardir, state, pending=True)
            return Outcome(paths.host, decision, f"{paths.host}: the guest needs "
                           f"{', '.join(unmet)}; installing it with apt-get after this "
                           "apt run", deferred=True)
        argv = ["dpkg", "-i", *map(str, debs)]
    else:
        # Another apt may hold the lock for a moment: wait for it rather than fail.
        argv = ["apt-get", "install", "-y", "-q", "-o", "DPkg::Lock::Timeout=600",
                "-o", "Dpkg::Use-Pty=0", *map(str, debs)]
    state.in_progress = st.Activity.INSTALLING
    st.save(config.vardir, state, pending=True)
    run(argv, env=system.install_env(), log_path=paths.log,
        hint=f"see {paths.log}; guestpkg rebuild {paths.host} tries again")
    state.in_progress = None
    state.installed_version = state.built_version
    state.clear_failure()
    st.save(config.vardir, state, pending=False)
    return Outcome(paths.host, decision,
                   f"installed {', '.join(state.built_packages)} {state.built_version} "
                   f"for {paths.host}")
