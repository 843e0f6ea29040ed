# SPDX-License-Identifier: GPL-2.0-or-later
"""What every step of a build sees: :class:`BuildContext`, the one way a step makes
its sandbox (:meth:`BuildContext.spec`), and the build's work directory
(:func:`build_directory`).

mkosi's ``build_image`` reads as a list of named steps because each step takes one
``Context``; :mod:`guestpkg.build.deb` does the same.  The context carries what is fixed
for the build (the settings, the base root, the options, the work directory, the log,
the ids the source is staged for) and what the steps found so far (the staged tree and
its :class:`~guestpkg.build.source.SourceInfo`, the dependency layer, the fork).  A step
that needs something an earlier step finds asks for it through a property, which says
which step is missing if the order is ever wrong.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guestpkg import fsutil
from guestpkg.build.extras import Extras, ExtraSources
from guestpkg.build.inspect import DebReport
from guestpkg.build.layers import Layer
from guestpkg.build.source import SourceInfo
from guestpkg.build.versioning import VersionChange
from guestpkg.buildroot import BaseRoot, Fork
from guestpkg.config import Config
from guestpkg.debian.control import BuildMode
from guestpkg.errors import BuildFailed, CommandFailed, SystemStateError, UsageError
from guestpkg.sandbox import SandboxSpec, run_sandboxed

log = logging.getLogger(__name__)

#: The hostname of every build sandbox (reprotest varies it: a build must not see ours).
HOSTNAME = "guestpkg"


class Preserve(enum.StrEnum):
    """What is kept of a build's work directory (``--preserve-build``)."""

    NEVER = "never"
    ON_ERROR = "on-error"
    ALWAYS = "always"

    @classmethod
    def parse(cls, text: str) -> Preserve:
        try:
            return cls(text)
        except ValueError:
            raise UsageError(f"preserve must be never, on-error or always, not {text!r}"
                             ) from None


@dataclass(frozen=True)
class BuildOptions:
    """How to build, beyond the settings in :class:`~guestpkg.config.Config`."""

    mode: BuildMode = BuildMode.BINARY
    #: never, on-error, always (:class:`Preserve`); None: the config's preserve_build
    preserve: str | None = None
    #: added to (and overriding) the build environment, e.g. DEB_BUILD_OPTIONS
    environment: Mapping[str, str] = field(default_factory=dict)
    #: build profiles (DEB_BUILD_PROFILES, dpkg-buildpackage -P)
    profiles: tuple[str, ...] = ()
    #: run on the staged source tree before anything reads it (host lifecycle)
    prepare_source: Callable[[Path], None] | None = None
    #: show the log on the console while building
    tee: bool = True
    #: refuse .debs with findings (guestpkg.build.inspect); None: the config's
    #: refuse_setuid (guestpkg build warns by default)
    refuse_findings: bool | None = None
    #: absolute paths whose setuid/setgid bits, owner or mode are declared (a host's
    #: manifest Setuid: list)
    declared: frozenset[str] = frozenset()
    #: a new changelog entry: --append-to-version, --binNMU (guestpkg.build.versioning)
    version_change: VersionChange = field(default_factory=VersionChange)
    #: --ccache: ccache in the layer, its cache kept per buildroot and source package
    ccache: bool = False
    #: --extra-package, --extra-repository, --extra-repository-key (guestpkg.build.extras)
    extras: ExtraSources = field(default_factory=ExtraSources)
    #: --host-arch: cross-build for this architecture ("": the base root's)
    host_arch: str = ""
    #: --shell-on-failure: an interactive shell in the failed build's fork
    shell_on_failure: bool = False
    #: --run-lintian, --run-autopkgtest: checks after the build (guestpkg.build.postbuild)
    checks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class BuildResult:
    artifacts: list[Path]           # in OUTPUT_DIR, the .changes and .build included
    log_path: Path                  # the .build log in OUTPUT_DIR
    changes: Path | None            # the .changes in OUTPUT_DIR
    source: str = ""
    version: str = ""
    layer_key: str | None = None    # the build-dependency layer stacked, if any
    layer_cached: bool = False      # True: no apt ran
    reports: tuple[DebReport, ...] = ()  # what each .deb would install, checked
    arch: str = ""                  # the build architecture (the base root's)


class BuildLog:
    """The ``.build`` log: our own notes and every sandboxed command's output, shown
    on the console while written (tee)."""

    def __init__(self, path: Path, tee: bool) -> None:
        self.path = path
        self.tee = tee
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()

    def note(self, text: str) -> None:
        line = f"guestpkg: {text}\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
        if self.tee:
            sys.stderr.write(line)
            sys.stderr.flush()
        log.info("%s", text)

    def warn(self, text: str) -> None:
        """A note that reaches the console even when the log is not shown."""
        self.note(text)
        if not self.tee:
            log.warning("%s", text)

    def step(self, title: str) -> None:
        self.note(f"== {title} ({time.strftime('%H:%M:%S')})")


@dataclass
class BuildContext:
    """One build.  The first block is fixed when the build starts; the second is
    filled in by the steps, in order."""

    config: Config
    base: BaseRoot
    work: Path                          # <vardir>/builds/<id>: this build's work area
    log: BuildLog
    options: BuildOptions = field(default_factory=BuildOptions)
    source: Path = Path()               # the tree or .dsc to build
    output_dir: Path = Path()
    preserve: Preserve = Preserve.NEVER
    ids: tuple[int, int] = (0, 0)       # uid, gid the source is staged for

    staged: Path | None = None          # stage_source: the tree at build_dir/<dir>
    found_info: SourceInfo | None = None    # read_source_info
    layer: Layer | None = None          # install_build_deps: the layer stacked
    layer_cached: bool = False          # ... and whether it came from the cache
    extras: Extras | None = None        # stack_build_deps: what apt sees besides the root
    extras_pending: bool = False        # ... and whether its lists are still to fetch
    found_fork: Fork | None = None      # the fork the build runs in
    seconds: dict[str, float] = field(default_factory=dict)  # per step, for the summary
    post_build: dict[str, str] = field(default_factory=dict)  # Lintian: pass, ...
    failed_stage: str = ""              # the Summary's Fail-Stage, if not build/install-deps
    started: float = 0.0                # time.time() at the start, for the log's header

    @property
    def build_dir(self) -> Path:
        """Bound at :data:`guestpkg.build.source.BUILD_MOUNT` in the sandbox."""
        return self.work / "build"

    @property
    def host_arch(self) -> str:
        """The architecture the packages are built for (``--host-arch``)."""
        return self.options.host_arch or self.base.arch

    @property
    def cross(self) -> bool:
        return self.host_arch != self.base.arch

    @property
    def profiles(self) -> tuple[str, ...]:
        """The build profiles: the options', or sbuild's ``cross nocheck`` when
        cross-building without any."""
        if self.cross and not self.options.profiles:
            return ("cross", "nocheck")
        return self.options.profiles

    @property
    def info(self) -> SourceInfo:
        if self.found_info is None:
            raise RuntimeError("the source has not been read yet (read_source_info)")
        return self.found_info

    @property
    def fork(self) -> Fork:
        if self.found_fork is None:
            raise RuntimeError("no fork yet (enter_fork)")
        return self.found_fork

    def spec(self, argv: Sequence[str], *, in_fork: bool = True, fork: Fork | None = None,
             **fields: Any) -> SandboxSpec:
        """The sandbox of a build step: in the build's fork (*in_fork*), or directly
        over the base root (read-only, writes thrown away) before there is one; with
        the build's hostname, time limit, id mapping (a fork has its own slice of
        ids, :mod:`guestpkg.sandbox.idmap`) and resource limits (the fork's, or the
        settings': :mod:`guestpkg.sandbox.cgroups`).  *fields* are the spec's other fields:
        env, uid, binds and the relaxations, which the sandbox logs."""
        fields = {"hostname": HOSTNAME, "timeout_s": self.config.timeout_s, **fields}
        if fork is not None:  # a fork of its own (the layer being made)
            return fork.spec(argv, **fields)
        if in_fork:
            return self.fork.spec(argv, **fields)
        return SandboxSpec(argv=tuple(argv), lowerdirs=(self.base.path,),
                           id_mapping=self.config.id_mapping,
                           **_with_limits(self.config, fields))

    def run(self, spec: SandboxSpec, what: str) -> None:
        """Run a step's sandbox into the log; a failure is a :class:`BuildFailed`
        that says *what* failed and names the log."""
        try:
            run_sandboxed(spec, log_path=self.log.path, tee=self.log.tee)
        except CommandFailed as e:
            raise BuildFailed(f"{what} ({e.status_text})", self.log.path,
                              e.output_tail) from e


def _with_limits(config: Config, fields: dict[str, Any]) -> dict[str, Any]:
    """*fields* with the settings' resource limits where they set none."""
    limits: dict[str, Any] = dict(config.sandbox_limits)
    return limits | fields


def check_free_space(directory: Path, needed_bytes: int) -> None:
    """Refuse to start a build on a file system that has less than *needed_bytes*
    free (the build tree and a disk upper grow there): a clear error now rather than
    ENOSPC in the middle of a build, and no state file system filled to the last
    block."""
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    if needed_bytes and free < needed_bytes:
        raise SystemStateError(
            f"only {free >> 20} MiB free on the file system of {directory}; a build needs "
            f"at least {needed_bytes >> 20} MiB (setting min_free_space)",
            hint="free some space (guestpkg cache clean removes unused layers), or "
            "lower --min-free-space")


@contextlib.contextmanager
def build_directory(config: Config, preserve: str) -> Iterator[Path]:
    """``<vardir>/builds/<id>``: this build's work area, locked while it lives.

    Removed at the end unless preserved; directories of killed builds (lock free) are
    reaped first."""
    top = fsutil.private_directory(config.vardir / "builds")
    reap_build_directories(top)
    check_free_space(top, config.min_free_space)
    build_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)
    directory = top / build_id
    lock = top / f"{build_id}.lock"
    failed = True
    # The lock goes in every case, also when the build raised (the error propagates
    # through here) and when the directory is kept: the reaper skips kept ones.
    try:
        with fsutil.locked(lock):
            directory.mkdir(mode=0o700)
            (directory / "build").mkdir(mode=0o755)
            try:
                yield directory
                failed = False
            finally:
                keep = preserve == Preserve.ALWAYS or (preserve == Preserve.ON_ERROR and failed)
                if keep:
                    log.warning("kept the build directory %s (--preserve-build=%s)",
                                directory, preserve)
                    (directory / ".preserved").touch()
                else:
                    fsutil.remove_tree(directory)
    finally:
        lock.unlink(missing_ok=True)


def reap_build_directories(top: Path) -> None:
    for entry in top.iterdir():
        if not entry.is_dir() or (entry / ".preserved").exists():
            continue
        lock = top / f"{entry.name}.lock"
        with fsutil.locked(lock, blocking=False) as free:
            if free:
                fsutil.remove_tree(entry)
                lock.unlink(missing_ok=True)
