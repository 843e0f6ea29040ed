# SPDX-License-Identifier: GPL-2.0-or-later
"""Base roots: minimal Debian trees that every build forks from.

A base root is made by mmdebstrap(1) with ``--variant=buildd`` (Essential,
build-essential and apt) and is never modified afterwards.  ``update`` makes a new
*generation* instead, so a build that runs while the root is updated keeps its tree.
On disk, under ``<vardir>/buildroots/``::

    <name>/root.json          metadata: suite, arch, sources, created, generation
    <name>/gen-<id>/          one generation's tree (the one root.json names is current)
    <name>/gen-<id>.lock      forks hold a shared flock(2) here while they use gen-<id>
    <name>.lock               create, update and remove hold it exclusively
    .tmp-<name>.<random>/     a create in progress (or killed: reaped later)

``root.json`` is replaced atomically (write, fsync, rename), so switching to a new
generation is one rename(2).  A create builds the whole ``<name>`` directory under a
``.tmp-`` name and renames it into place: a killed create leaves nothing that looks like
a root.  Old generations go away as soon as no fork holds their lock: a fork takes the
shared lock and then checks that its tree still exists, the collector takes the
exclusive lock without waiting and renames the tree away before deleting it, so neither
can miss the other.

The package lists stay in the root (``--skip=cleanup/apt/lists``), so a build resolves
its build dependencies without an ``apt update``.  mmdebstrap runs in its ``unshare``
mode: as root that is a private mount and pid namespace (no user namespace), so the
/proc, /sys and /dev it mounts while it works die with it, even when it is killed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guestpkg import fsutil
from guestpkg.buildroot.sources import read_host_sources, select_sources
from guestpkg.config import Config
from guestpkg.errors import (
    CommandFailed,
    GuestpkgError,
    NetworkError,
    SystemStateError,
    UsageError,
)
from guestpkg.run import apt_env, as_namespace_root, run
from guestpkg.sandbox import userrange
from guestpkg.sandbox.idmap import resolve

log = logging.getLogger(__name__)

METADATA = "root.json"
GENERATION_PREFIX = "gen-"
FORMAT = 1

#: uid and gid of the unprivileged build user created in every root; pbuilder's
#: BUILDUSERID, so nothing in a buildd root (system ids < 1000) collides with it.
BUILD_UID = 1234

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


@dataclass(frozen=True)
class BaseRoot:
    """One generation of a base root, as read from its ``root.json``."""

    name: str
    path: Path              # the generation's tree
    generation: str         # unique id: build-dependency layers are keyed by it
    suite: str
    arch: str
    mirror: str = ""
    sources: tuple[str, ...] = ()
    created: float = 0.0    # seconds since the epoch, first generation
    updated: float = 0.0    # seconds since the epoch, this generation
    build_user: str = "build"
    build_uid: int = BUILD_UID

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        """The lock forks hold (shared) while they use this generation."""
        return generation_lock(self.path)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise SystemStateError(f"{what} needs root (mounts, namespaces, file ownership)",
                               hint="run guestpkg as root, e.g. with sudo")


def require_mapping(config: Config, what: str) -> str:
    """The id mapping this run uses (:func:`guestpkg.sandbox.idmap.resolve`); a normal
    user has one (``user``) unless the setting asks for real root."""
    mapping = resolve(config.id_mapping)
    if mapping != "user":
        require_root(f"{what} with id_mapping = {mapping}")
    else:
        userrange.check()  # subordinate ids, uidmap, the kernel: one line with the fix
    return mapping


def as_owner(argv: list[str], mapping: str) -> list[str]:
    """*argv* as the owner of the trees on disk: as it is for root, as root of the
    user's namespace for a normal user (guestpkg.sandbox.userrange)."""
    return as_namespace_root(argv) if mapping == "user" else argv


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise UsageError(f"not a buildroot name: {name!r}",
                         hint="use letters, digits and . _ + - (e.g. bookworm-amd64)")
    return name


def buildroots_dir(config: Config) -> Path:
    return config.vardir / "buildroots"


def root_dir(config: Config, name: str) -> Path:
    return buildroots_dir(config) / validate_name(name)


def name_lock(config: Config, name: str) -> Path:
    return buildroots_dir(config) / f"{validate_name(name)}.lock"


def generation_lock(tree: Path) -> Path:
    return tree.with_name(tree.name + ".lock")


def new_generation_id() -> str:
    """Sortable by time, unique by the random tail (two updates in one second)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(4)


def _create_hint(name: str) -> str:
    option = "" if name == "default" else f" --buildroot {name}"
    return f"run guestpkg buildroot create{option}"


@dataclass(frozen=True)
class RootMetadata:
    """``root.json``: how a base root was made, and its current generation."""

    suite: str
    arch: str
    generation: str
    mirror: str = ""
    sources: tuple[str, ...] = ()
    created: float = 0.0    # seconds since the epoch, first generation
    updated: float = 0.0    # seconds since the epoch, current generation
    build_user: str = "build"
    build_uid: int = BUILD_UID
    packages: tuple[str, ...] = ()   # extra packages asked for at create

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {"format": FORMAT, **data, "sources": list(self.sources),
                "packages": list(self.packages)}

    @classmethod
    def from_json(cls, data: object, path: Path) -> RootMetadata:
        """Unknown keys are ignored (a newer guestpkg's additions)."""
        hint = "remove the buildroot and create it again"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise SystemStateError(f"{path}: unknown buildroot metadata format", hint=hint)
        try:
            return cls(suite=str(data["suite"]), arch=str(data["arch"]),
                       generation=str(data["generation"]), mirror=str(data.get("mirror", "")),
                       sources=tuple(map(str, data.get("sources", ()))),
                       created=float(data.get("created", 0)),
                       updated=float(data.get("updated", 0)),
                       build_user=str(data.get("build_user", "build")),
                       build_uid=int(data.get("build_uid", BUILD_UID)),
                       packages=tuple(map(str, data.get("packages", ()))))
        except (KeyError, TypeError, ValueError) as e:
            raise SystemStateError(f"{path}: bad buildroot metadata: {e!r}", hint=hint) from e


def read_metadata(directory: Path) -> RootMetadata:
    path = directory / METADATA
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:
        raise SystemStateError(f"{path}: unreadable buildroot metadata: {e}",
                               hint="remove the buildroot and create it again") from e
    return RootMetadata.from_json(data, path)


def write_metadata(directory: Path, metadata: RootMetadata) -> None:
    fsutil.atomic_write(directory / METADATA,
                        json.dumps(metadata.to_json(), indent=2, sort_keys=True) + "\n")


def _base_root(directory: Path, data: RootMetadata) -> BaseRoot:
    return BaseRoot(
        name=directory.name, path=directory / (GENERATION_PREFIX + data.generation),
        generation=data.generation, suite=data.suite, arch=data.arch, mirror=data.mirror,
        sources=data.sources, created=data.created, updated=data.updated,
        build_user=data.build_user, build_uid=data.build_uid)


def open_base_root(config: Config, name: str | None = None) -> BaseRoot:
    """The current generation of base root *name* (default: ``config.buildroot``)."""
    name = name or config.buildroot
    directory = root_dir(config, name)
    if os.geteuid() == 0 and directory.parent.is_dir():
        fsutil.private_directory(directory.parent)  # an older guestpkg left it open
    try:
        data = read_metadata(directory)
    except FileNotFoundError:
        raise SystemStateError(f"there is no buildroot {name!r} (in {directory.parent})",
                               hint=_create_hint(name)) from None
    root = _base_root(directory, data)
    if not root.path.is_dir():
        raise SystemStateError(f"buildroot {name!r}: generation {root.path} is missing",
                               hint=f"remove it (guestpkg buildroot remove) and "
                               f"{_create_hint(name)}")
    return root


def host_suite() -> str:
    """VERSION_CODENAME of /etc/os-release (os-release(5))."""
    for path in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("VERSION_CODENAME="):
                    value = line.partition("=")[2].strip().strip("\"'")
                    if value:
                        return value
    raise SystemStateError("cannot tell this system's Debian suite from /etc/os-release",
                           hint="give one with --suite")


def host_arch() -> str:
    return run(["dpkg", "--print-architecture"], capture=True).stdout.decode().strip()


def _mmdebstrap_argv(suite: str, arch: str, tree: Path, source_lines: list[str],
                     user: str, packages: tuple[str, ...]) -> list[str]:
    # The build user: a fixed uid, a home, no password (useradd(8)); it exists so that
    # tools which look the builder up (whoami, getpwuid) work inside the sandbox.
    add_user = (f'chroot "$1" useradd --uid {BUILD_UID} --user-group --create-home '
                f"--shell /bin/sh {user}")
    argv = ["mmdebstrap", "--variant=buildd", "--mode=unshare", f"--architectures={arch}",
            "--skip=cleanup/apt/lists", '--aptopt=Acquire::Languages "none"',
            *[f"--aptopt={option}" for option in system_proxy_options()],
            f"--customize-hook={add_user}"]
    if packages:
        argv.append("--include=" + ",".join(packages))
    return [*argv, suite, str(tree), *source_lines]


#: apt's proxy settings (apt.conf(5), apt-transport-http(1)).
PROXY_OPTIONS = ("Acquire::http::Proxy", "Acquire::https::Proxy", "Acquire::ftp::Proxy")


def system_proxy_options() -> list[str]:
    """This system's apt proxy settings as apt.conf lines: the buildroot downloads
    from the system's apt sources, so it goes through the system's proxy too (and
    keeps it: mmdebstrap writes ``--aptopt`` into the root's apt.conf.d, which the
    build-dependency installs read).  Only a plain URL or DIRECT is taken."""
    try:
        import apt_pkg
    except ImportError:
        return []
    apt_pkg.init_config()
    options = []
    for name in PROXY_OPTIONS:
        value = apt_pkg.config.find(name)
        if value and re.fullmatch(r"(DIRECT|(https?|socks5h?)://[A-Za-z0-9._~:@%/\[\]-]+)",
                                  value):
            options.append(f'{name} "{value}"')
    return options


@contextlib.contextmanager
def changing_root(config: Config, name: str) -> Iterator[int]:
    """Hold root *name*'s lock exclusively (create, update, remove); yields its fd so
    that long-running helpers can inherit it."""
    path = name_lock(config, name)
    fsutil.private_directory(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemStateError(f"another guestpkg is changing buildroot {name!r}",
                                   hint="wait for it to finish") from None
        yield fd
    finally:
        os.close(fd)


def create_base_root(
    config: Config,
    name: str | None = None,
    *,
    suite: str | None = None,
    arch: str | None = None,
    mirror: str | None = None,
    packages: tuple[str, ...] = (),
    log_path: Path | None = None,
) -> BaseRoot:
    """Make base root *name* with mmdebstrap; suite, arch and mirror default to the
    config's, which default to this system's."""
    mapping = require_mapping(config, "creating a buildroot")
    name = validate_name(name or config.buildroot)
    suite = suite or config.suite or host_suite()
    arch = arch or config.arch or host_arch()
    sources = select_sources(read_host_sources(), suite, mirror or config.mirror)
    if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", config.user):
        raise UsageError(f"not a user name: {config.user!r}")
    reap_buildroots(config)
    directory = root_dir(config, name)
    with changing_root(config, name) as lock_fd:
        if directory.exists():
            raise UsageError(f"buildroot {name!r} already exists ({directory})",
                             hint="update it with guestpkg buildroot update, or remove it")
        generation = new_generation_id()
        log_path = log_path or config.logdir / "buildroot" / f"create-{name}-{generation}.log"
        with fsutil.atomic_directory(directory) as tmp:
            # mkdtemp(3) makes it 0700, and so it stays: the trees inside hold setuid
            # binaries that no local user may run (fsutil.private_directory).
            tree = tmp / (GENERATION_PREFIX + generation)
            argv = _mmdebstrap_argv(suite, arch, tree, [s.line() for s in sources],
                                    config.user, packages)
            log.warning("creating buildroot %s (%s, %s) with mmdebstrap; log: %s",
                        name, suite, arch, log_path)
            # mmdebstrap inherits the lock: if we are killed, nobody reaps its tree
            # while it still writes there.
            run(as_owner(argv, mapping), env=apt_env(throwaway_root=True), log_path=log_path,
                pass_fds=(lock_fd,),
                hint=f"mmdebstrap failed; its full log is {log_path}")
            _make_apt_caches(config, tree, log_path)
            now = time.time()
            write_metadata(tmp, RootMetadata(
                suite=suite, arch=arch, generation=generation, mirror=sources[0].uri,
                sources=tuple(s.line() for s in sources), created=now, updated=now,
                build_user=config.user, build_uid=BUILD_UID, packages=tuple(packages)))
    return open_base_root(config, name)


def list_base_roots(config: Config) -> list[BaseRoot]:
    """Every complete base root, by name; roots being created are not listed."""
    top = buildroots_dir(config)
    try:
        entries = sorted(top.iterdir())
    except FileNotFoundError:
        return []
    except PermissionError as e:
        raise SystemStateError(f"cannot read {top}: {e.strerror}",
                               hint="run guestpkg as root") from None
    roots = []
    for directory in entries:
        if directory.name.startswith(".") or not (directory / METADATA).is_file():
            continue
        try:
            roots.append(_base_root(directory, read_metadata(directory)))
        except (GuestpkgError, FileNotFoundError) as e:
            log.warning("skipping %s: %s", directory, e)
    return roots


def generations(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob(GENERATION_PREFIX + "*") if p.is_dir())


def collect_generations(directory: Path) -> list[Path]:
    """Remove the generations of the root in *directory* that are neither current nor
    used by a fork; the caller holds the root's name lock.  Returns what was removed."""
    current = read_metadata(directory).generation
    removed = []
    for tree in generations(directory):
        if tree.name == GENERATION_PREFIX + current:
            continue
        with fsutil.locked(generation_lock(tree), blocking=False) as free:
            if not free:
                continue
            # Renamed first: a fork that gets the shared lock after us sees the tree
            # gone and re-reads root.json instead of using a half-deleted tree.
            doomed = directory / (fsutil.TMP_PREFIX + tree.name)
            os.rename(tree, doomed)
            generation_lock(tree).unlink(missing_ok=True)
        fsutil.remove_tree(doomed)
        removed.append(tree)
    for stale in directory.glob(fsutil.TMP_PREFIX + "*"):
        fsutil.remove_tree(stale)
    return removed


def release_generation(base: BaseRoot) -> None:
    """Called by a fork that stopped using *base*: if an update replaced it meanwhile,
    remove it now unless another fork still uses it or the root is being changed."""
    try:
        if read_metadata(base.directory).generation == base.generation:
            return
    except (FileNotFoundError, GuestpkgError):
        return
    lock = base.directory.with_name(base.name + ".lock")
    with fsutil.locked(lock, blocking=False) as free:
        if free:
            collect_generations(base.directory)


def reap_buildroots(config: Config) -> None:
    """Remove what killed creates and updates left, and unused old generations.
    Roots someone is working on (their name lock is held) are left alone."""
    top = buildroots_dir(config)
    if not top.is_dir():
        return
    for entry in sorted(top.iterdir()):
        if entry.name.startswith(fsutil.TMP_PREFIX):
            name = entry.name[len(fsutil.TMP_PREFIX):].rpartition(".")[0]
        elif entry.is_dir() and (entry / METADATA).is_file():
            name = entry.name
        else:
            continue
        if not _NAME.fullmatch(name):
            continue
        if not name_lock(config, name).exists():
            # Whoever works on a root creates its lock before anything else, so no lock
            # file means nobody is working on it (and we don't create stray locks).
            if entry.name.startswith(fsutil.TMP_PREFIX):
                fsutil.remove_tree(entry)
            continue
        with fsutil.locked(name_lock(config, name), blocking=False) as free:
            if not free:
                continue
            if entry.name.startswith(fsutil.TMP_PREFIX):
                log.info("removing %s, left by an interrupted create", entry)
                fsutil.remove_tree(entry)
            else:
                collect_generations(entry)


#: What makes apt's binary caches of a root's lists (apt-cache(8) gencaches).  A root
#: keeps them: every apt run of a build's dependency phase (a simulation, a download,
#: an installation) would otherwise parse the lists again, tens of MiB, and as root
#: write the caches into its throwaway upper.  mmdebstrap's cleanup and
#: ``apt-get clean`` remove them, so they are made after those.
GENCACHES = "apt-cache gencaches"

#: What ``update`` runs first inside the new generation: refresh the lists (kept for
#: builds).  ``--error-on=any`` (apt-get(8)): without it a mirror that can't be
#: reached is a warning, apt keeps the old lists and exits 0, and the update would
#: quietly make a new generation that is the old one.
UPDATE_LISTS = ("apt-get", "--error-on=any", "update")

#: What ``update`` runs then: upgrade; conffiles keep the root's version (dpkg(1)
#: --force-confold).
UPGRADE_SCRIPT = ("apt-get -y -o Dpkg::Options::=--force-confold dist-upgrade && "
                  f"apt-get clean && {GENCACHES}")


def update_base_root(config: Config, name: str | None = None, *,
                     log_path: Path | None = None) -> BaseRoot:
    """Make a new generation of *name*: a copy of the current one, upgraded inside the
    sandbox with network and apt's capabilities, then switched to atomically."""
    mapping = require_mapping(config, "updating a buildroot")
    name = validate_name(name or config.buildroot)
    open_base_root(config, name)
    reap_buildroots(config)
    with changing_root(config, name) as lock_fd:
        current = open_base_root(config, name)
        generation = new_generation_id()
        log_path = log_path or config.logdir / "buildroot" / f"update-{name}-{generation}.log"
        tmp = current.directory / f"{fsutil.TMP_PREFIX}{GENERATION_PREFIX}{generation}"
        try:
            # Reflinks make the copy nearly free on btrfs and XFS; elsewhere it is a
            # plain copy (cp(1) --reflink=auto).
            run(as_owner(["cp", "-a", "--reflink=auto", str(current.path), str(tmp)],
                         mapping), log_path=log_path, pass_fds=(lock_fd,))
            _upgrade(config, current, tmp, log_path)
            os.rename(tmp, current.directory / (GENERATION_PREFIX + generation))
        except BaseException:
            fsutil.remove_tree(tmp)
            raise
        write_metadata(current.directory, dataclasses.replace(
            read_metadata(current.directory), generation=generation, updated=time.time()))
        collect_generations(current.directory)
    return open_base_root(config, name)


def _upgrade(config: Config, current: BaseRoot, tree: Path, log_path: Path) -> None:
    """Refresh *tree*'s lists and upgrade it (*tree* is the new generation's copy of
    *current*).  Lists that could not be fetched are an error that says which."""
    from guestpkg.sandbox import APT_CAPABILITIES, SandboxSpec, run_sandboxed

    log.warning("upgrading %s (network, apt capabilities); log: %s", tree, log_path)
    for argv in (UPDATE_LISTS, ("/bin/sh", "-c", UPGRADE_SCRIPT)):
        spec = SandboxSpec(
            argv=argv, root=tree, network=True, capabilities=APT_CAPABILITIES,
            allow_setuid=True, env=apt_env(throwaway_root=True),
            id_mapping=config.id_mapping, **config.sandbox_limits)
        try:
            run_sandboxed(spec, log_path=log_path)
        except CommandFailed as e:
            if argv is not UPDATE_LISTS:
                raise
            # A NetworkError whose first URL is the mirror: a host's failure then
            # waits for it to be reachable again (guestpkg.host.recovery).
            raise NetworkError(
                f"buildroot {current.name!r} was not updated: apt-get update could not "
                f"fetch its package lists from {current.mirror}"
                f"{_apt_failure(e.output_tail)}; log: {log_path}",
                hint="check this machine's network and the buildroot's sources ("
                     + "; ".join(current.sources) + f"), then run guestpkg buildroot "
                     f"update {current.name}") from None


def _apt_failure(output: str) -> str:
    """apt's first error or warning line in *output*, as ``" (E: ...)"``, or ""."""
    for line in output.splitlines():
        if line.startswith(("E: ", "W: ")):
            return f" ({line.strip()})"
    return ""


def _make_apt_caches(config: Config, tree: Path, log_path: Path) -> None:
    """apt's binary caches in a new root (:data:`GENCACHES`): no network, no
    capabilities."""
    from guestpkg.sandbox import SandboxSpec, run_sandboxed

    spec = SandboxSpec(argv=("/bin/sh", "-c", GENCACHES), root=tree,
                       env=apt_env(throwaway_root=True), id_mapping=config.id_mapping,
                       **config.sandbox_limits)
    run_sandboxed(spec, log_path=log_path)


def remove_base_root(config: Config, name: str) -> None:
    """Remove base root *name*; refused while a fork uses any of its generations."""
    require_mapping(config, "removing a buildroot")
    directory = root_dir(config, name)
    if not (directory / METADATA).is_file():
        raise SystemStateError(f"there is no buildroot {name!r} (in {directory.parent})")
    with changing_root(config, name):
        with contextlib.ExitStack() as held:
            for tree in generations(directory):
                if not held.enter_context(fsutil.locked(generation_lock(tree),
                                                        blocking=False)):
                    raise SystemStateError(f"buildroot {name!r} is in use by a build",
                                           hint="wait for the build to finish")
            # One rename makes the root disappear for everyone; deleting takes longer.
            doomed = directory.with_name(f"{fsutil.TMP_PREFIX}{name}.removed")
            fsutil.remove_tree(doomed)
            os.rename(directory, doomed)
        fsutil.remove_tree(doomed)
