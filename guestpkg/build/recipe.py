# SPDX-License-Identifier: GPL-2.0-or-later
"""Building one recipe into a dcfpkg: a context and named steps over the sandbox.

:func:`build_recipe` runs :data:`STEPS` on a :class:`RecipeBuild`, as mkosi's
``build_image`` runs its steps:

1. :func:`make_workdir`: the overlay's upper and work directories in the build's own
   directory under ``<vardir>/recipes/builds/``, held by a lock while the build runs
   (:mod:`guestpkg.recipe.workdirs`);
2. :func:`copy_recipe`: the recipe directory into the upper at the build path,
   re-read with ``O_NOFOLLOW`` and checked against the digests the cache key was made
   of, so what builds is what was keyed;
3. :func:`write_log_header`: the recipe, the key and what it is made of (every input
   with its digest, the bootstrap set), the environment and the command;
4. :func:`run_build`: ``build`` in the sandbox (guestpkg.sandbox: all namespaces, no
   network, the build user, no capabilities, no_new_privs, seccomp) over a read-only
   overlay of the unpacked inputs above the unpacked bootstrap set;
5. :func:`collect_output`: ``DESTDIR=/var/tmp/install`` checked (something written; no
   setuid or setgid file, device, FIFO, socket or relative link out of the tree) and
   filtered;
6. :func:`pack_result`: the dcfpkg written beside the cache, read back by the safe
   reader, and renamed into place; its summary appended to the log.

Everything a build writes is hostile: the output tree is walked without following
links, names are printed escaped, and nothing reaches the cache unless every check
passed.  The environment is fixed (docs/recipes.md): SOURCE_DATE_EPOCH, TZ, locale,
umask, user, hostname, build path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from guestpkg import fsutil
from guestpkg.config import Config
from guestpkg.dcfpkg.format import Metadata
from guestpkg.dcfpkg.reader import read_manifest, verify
from guestpkg.dcfpkg.writer import write_dcfpkg
from guestpkg.errors import BuildFailed, InputError, ParseError, UnsafeArchive
from guestpkg.recipe import cache, workdirs
from guestpkg.recipe.bootstrap import BUILD_UID, DEBIAN_ARCH, BootstrapSet
from guestpkg.recipe.files import filtered
from guestpkg.recipe.layers import held_layers, policy
from guestpkg.recipe.tree import Recipe
from guestpkg.sandbox import SandboxSpec, run_sandboxed, subids, usernet
from guestpkg.sandbox.idmap import get_mapping
from guestpkg.text import one_line

#: 1980-01-01: a fixed SOURCE_DATE_EPOCH (Nix uses 1), late enough for zip's format.
SOURCE_DATE_EPOCH = 315532800
BUILD_PATH = "/build/recipe"
DESTDIR = "/var/tmp/install"
#: Where a source recipe leaves what it fetched; each file is checked against its pin.
DOWNLOADS = "/var/tmp/downloads"


@dataclass(frozen=True)
class Input:
    """A built input: where its dcfpkg is, its digest, and whether the key counts it."""

    recipe_id: str
    path: Path
    sha256: str
    in_key: bool = True

    @property
    def metadata_line(self) -> str:
        return f"{self.recipe_id} {self.sha256}" + ("" if self.in_key else " latest")


@dataclass
class RecipeBuild:
    """Everything one build needs, passed to each step."""

    config: Config
    recipe: Recipe
    arch: str
    bootstrap: BootstrapSet
    inputs: tuple[Input, ...]        # in build order: a later input's layer is on top
    key: str
    key_text: str
    build_path: str = BUILD_PATH
    jobs: int = 1
    result: Path = field(init=False)
    log: Path = field(init=False)
    work: Path = field(init=False)
    outcome: cache.Result | None = None
    #: id_mapping userns: the host uid and gid of the sandbox's id 0 (a held slice)
    host_ids: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        self.result = cache.result_path(self.config, self.recipe, self.arch)
        self.log = cache.log_path(self.config, self.recipe, self.arch)

    @property
    def upper(self) -> Path:
        return self.work / "upper"

    @property
    def install(self) -> Path:
        return self.upper / DESTDIR.lstrip("/")

    @property
    def downloads(self) -> Path:
        return self.upper / DOWNLOADS.lstrip("/")

    def give_to_build_user(self, path: Path) -> None:
        """Owned by the build user as the sandbox sees it: in a user namespace the
        upper layer is written with the slice's host ids (guestpkg.sandbox.idmap)."""
        uid, gid = self.host_ids or (0, 0)
        os.chown(path, uid + BUILD_UID, gid + BUILD_UID)

    def fail(self, message: str) -> BuildFailed:
        with open(self.log, "a") as f:
            f.write(f"guestpkg: FAILED: {message}\n")
        return BuildFailed(f"{self.recipe.id} ({self.arch}): {message}", self.log)

    def environment(self) -> dict[str, str]:
        """The whole environment of ``build``; nothing of ours leaks in."""
        flags = f"-O2 -ffile-prefix-map={self.build_path}=."
        if self.arch == "i586":
            flags += " -march=i586"
        fetching = ({"DOWNLOADS": DOWNLOADS, "MIRROR": self.config.recipe_mirror}
                    if self.recipe.type == "source" else {})
        return {**fetching,
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/build", "USER": "build",
            "LOGNAME": "build", "SHELL": "/bin/sh", "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
            "TZ": "UTC", "TMPDIR": "/tmp", "SOURCE_DATE_EPOCH": str(SOURCE_DATE_EPOCH),
            "DESTDIR": DESTDIR, "ARCH": self.arch, "JOBS": str(self.jobs),
            "CFLAGS": flags, "CXXFLAGS": flags, "LDFLAGS": "",
            "RECIPE": self.recipe.id, "RECIPE_NAME": self.recipe.name,
            "RECIPE_VERSION": self.recipe.version, "RECIPE_RELEASE": self.recipe.release,
            "RECIPE_DIR": self.build_path,
        }


def make_workdir(ctx: RecipeBuild) -> None:
    """The overlay's directories in the build's work directory, which
    :func:`build_recipe` holds (guestpkg.recipe.workdirs: a killed build's is reaped
    by ``guestpkg cache clean``)."""
    for name in ("upper", "ovl"):
        (ctx.work / name).mkdir()


def copy_recipe(ctx: RecipeBuild) -> None:
    """The recipe directory at the build path, owned by the build user; each file
    re-read without following links and checked against its keyed digest."""
    target = ctx.upper / ctx.build_path.lstrip("/")
    target.mkdir(parents=True)
    ctx.give_to_build_user(target)
    source_fd = os.open(ctx.recipe.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for entry in ctx.recipe.files:
            destination = target / entry.path
            if entry.is_dir:
                destination.mkdir(mode=0o755)
            else:
                data = _read_beneath(source_fd, entry.path, entry.size)
                if hashlib.sha256(data).hexdigest() != entry.sha256:
                    raise ctx.fail(f"{entry.path} changed since the recipe was read")
                destination.write_bytes(data)
                destination.chmod(0o755 if entry.executable else 0o644)
            ctx.give_to_build_user(destination)
    finally:
        os.close(source_fd)
    for directory in (ctx.install, ctx.downloads):
        directory.mkdir(parents=True, exist_ok=True)
        ctx.give_to_build_user(directory)
    if ctx.recipe.type == "source":
        etc = ctx.upper / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "resolv.conf").write_text(f"nameserver {usernet.NAMESERVER}\n")


def _read_beneath(dir_fd: int, relative: str, size: int) -> bytes:
    """*relative* below *dir_fd*, each component opened with O_NOFOLLOW, at most
    *size* + 1 bytes (more means it changed)."""
    parts = relative.split("/")
    fds = []
    try:
        fd = dir_fd
        for part in parts[:-1]:
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            fds.append(fd)
        file_fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=fd)
        with os.fdopen(file_fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InputError(f"{relative}: not a regular file any more")
            return f.read(size + 1)
    except OSError as e:
        raise InputError(f"{relative}: cannot read: {e.strerror}") from None
    finally:
        for opened in fds:
            os.close(opened)


def write_log_header(ctx: RecipeBuild) -> None:
    ctx.log.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"guestpkg recipe build: {ctx.recipe.id} for {ctx.arch}",
             f"started: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
             f"recipe directory: {ctx.recipe.directory}", f"cache key: {ctx.key}",
             "key made of:", *("  " + line for line in ctx.key_text.splitlines()),
             "inputs:", *(f"  {i.metadata_line}  {i.path}" for i in ctx.inputs),
             f"bootstrap set: {ctx.bootstrap.id} ({len(ctx.bootstrap.members)} packages)",
             "environment:", *(f"  {k}={shlex.quote(v)}" for k, v in
                               sorted(ctx.environment().items())),
             "sandbox " + get_mapping(ctx.config.id_mapping, ctx.host_ids).describe(),
             f"command: {ctx.build_path}/build (cwd {ctx.build_path}, uid {BUILD_UID}, "
             f"{'no network' if ctx.recipe.type == 'binary' else 'user-mode network'})",
             "output:", ""]
    ctx.log.write_text("\n".join(lines))


def run_build(ctx: RecipeBuild) -> None:
    with contextlib.ExitStack() as stack:
        layers = stack.enter_context(held_layers(  # held: cache clean keeps them
            ctx.config, [(i.path, i.sha256) for i in ctx.inputs], ctx.bootstrap))
        # binary recipes: a new network namespace with only lo; source recipes: their
        # own namespace served by slirp4netns, the host's loopback unreachable
        netns = stack.enter_context(usernet.user_network()) \
            if ctx.recipe.type == "source" else None
        spec = SandboxSpec(argv=(f"{ctx.build_path}/build",), lowerdirs=tuple(layers),
                           upperdir=ctx.upper, workdir=ctx.work / "ovl",
                           env=ctx.environment(), cwd=ctx.build_path, uid=BUILD_UID,
                           gid=BUILD_UID, timeout_s=ctx.config.timeout_s,
                           hostname="guestpkg", umask=0o022, join_netns=netns,
                           id_mapping=ctx.config.id_mapping, host_ids=ctx.host_ids,
                           **ctx.config.sandbox_limits)
        # a source recipe's network is by design, and the log header says so: not a
        # warning on the console (where it would break the progress lines)
        status = run_sandboxed(spec, log_path=ctx.log, check=False,
                               relaxations_level=logging.INFO)
    if status != 0:
        raise ctx.fail(f"build exited with status {status}")


def check_downloads(ctx: RecipeBuild) -> None:
    """A source recipe's output is exactly its pinned downloads, each matching its
    SHA256, placed at ``/usr/src/<name>/``; anything else is refused."""
    if ctx.recipe.type != "source":
        return
    if _has_files(ctx.install):
        raise ctx.fail(f"a source recipe installs nothing into {DESTDIR}: its package is "
                       f"the files it fetched into {DOWNLOADS}, each pinned in sha256sums")
    pins = {pin.name: pin for pin in ctx.recipe.pins}
    where = f"{ctx.recipe.directory}/sha256sums"
    target = ctx.install / "usr" / "src" / ctx.recipe.name
    target.mkdir(parents=True)
    for path, st in sorted(_walk(ctx.downloads)):
        shown = repr(path)[1:-1]
        pin = pins.pop(path, None)
        if pin is None or not stat.S_ISREG(st.st_mode):
            raise ctx.fail(f"{DOWNLOADS}/{shown}: not a file pinned in sha256sums")
        with open(ctx.downloads / path, "rb") as f:
            actual = hashlib.file_digest(f, "sha256").hexdigest()
        if actual != pin.sha256:
            raise ctx.fail(f"{where}:{pin.line}: {pin.name}: SHA256 mismatch: expected "
                           f"{pin.sha256}, got {actual}")
        os.rename(ctx.downloads / path, target / path)
    for pin in pins.values():
        raise ctx.fail(f"{where}:{pin.line}: {pin.name} was not fetched into {DOWNLOADS}")
    with open(ctx.log, "a") as f:
        f.write(f"guestpkg: every fetched file matched its pin ({len(ctx.recipe.pins)})\n")


def collect_output(ctx: RecipeBuild) -> None:
    """Check what the build installed, then drop what the filter names."""
    root = ctx.install
    if not root.is_dir() or root.is_symlink() or not _has_files(root):
        raise ctx.fail(f"the build installed nothing into {DESTDIR} (only directories, "
                       "if anything)")
    removed = 0
    for path, st in list(_walk(root)):
        shown = repr(path)[1:-1]
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            target = os.readlink(root / path)
            if fsutil.link_climbs_out(path, target):
                raise ctx.fail(f"/{shown}: a link out of the package ({target!r})")
        elif not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
            raise ctx.fail(f"/{shown}: a device node, FIFO or socket")
        elif mode & (stat.S_ISUID | stat.S_ISGID):
            raise ctx.fail(f"/{shown}: a setuid or setgid file")
    for path, _ in list(_walk(root)):
        if os.path.lexists(root / path) and filtered("/" + path, ctx.recipe.filter):
            fsutil.remove_tree(root / path)
            removed += 1
    if not _has_files(root):
        raise ctx.fail("the filter leaves nothing to package but directories (see the "
                       "recipe's filter file)")
    with open(ctx.log, "a") as f:
        f.write(f"guestpkg: filtered out {removed} paths\n")


def _has_files(root: Path) -> bool:
    return any(not stat.S_ISDIR(st.st_mode) for _, st in _walk(root))


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything under *root*, never following links."""
    for directory, dirs, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        for name in sorted(dirs + files):
            path = name if relative == "." else f"{relative}/{name}"
            yield path, os.lstat(root / path)


def pack_result(ctx: RecipeBuild) -> None:
    recipe, meta_fields = ctx.recipe, dict(ctx.recipe.meta)
    metadata = Metadata(
        package=recipe.name, version=recipe.version, release=recipe.release,
        architecture=DEBIAN_ARCH[ctx.arch], build_date=SOURCE_DATE_EPOCH,
        depends=", ".join(d.name for d in recipe.rundeps), source=f"recipes/{recipe.id}",
        description=meta_fields.get("Description", ""),
        homepage=meta_fields.get("Homepage", ""), license=meta_fields.get("License", ""),
        maintainer=meta_fields.get("Maintainer", ""), recipe_key=ctx.key,
        bootstrap_set=ctx.bootstrap.id, inputs=tuple(i.metadata_line for i in ctx.inputs))
    # named after the work directory: its lock tells cache clean whether a build still
    # writes it
    tmp = ctx.result.with_name(ctx.work.name + workdirs.RESULT_SUFFIX)
    try:
        written = write_dcfpkg(ctx.install, metadata, tmp, level=ctx.config.dcfpkg_level)
        verify(tmp, policy(ctx.config))
        os.replace(tmp, ctx.result)
    except (UnsafeArchive, ParseError) as e:
        raise ctx.fail(f"the output is not a safe package: {e.message}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fsutil.fsync_dir(ctx.result.parent)
    result = cache.cached(ctx.result, ctx.key)
    assert result is not None
    ctx.outcome = result
    _, entries = read_manifest(ctx.result, policy(ctx.config))
    with open(ctx.log, "a") as f:
        f.write("manifest:\n")  # what the package holds (names the build chose: escaped)
        for entry in entries:
            target = f" -> {_shown(entry.target)}" if entry.target is not None else ""
            f.write(f"  {entry.kind} {entry.mode:04o} {entry.size:>10} "
                    f"/{_shown(entry.path)}{target}\n")
        f.write(f"guestpkg: built {ctx.result.name}: {written.entries} entries, "
                f"{written.installed_size} bytes, {written.payload_size} compressed, "
                f"sha256 {result.sha256}\n")


def _shown(name: bytes) -> str:
    return one_line(name.decode("utf-8", errors="backslashreplace"))


STEPS: tuple[Callable[[RecipeBuild], None], ...] = (
    make_workdir, copy_recipe, write_log_header, run_build, check_downloads,
    collect_output, pack_result)


def build_recipe(ctx: RecipeBuild) -> cache.Result:
    """Run every step; the work directory goes away whatever happens, the log stays."""
    ctx.result.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if ctx.config.id_mapping == "userns":  # the slice is held for the whole build
            taken = stack.enter_context(subids.allocated_slice())
            ctx.host_ids = (taken.uid_base, taken.gid_base)
        # removed before the slice is given back: its files have the slice's ids
        ctx.work = stack.enter_context(workdirs.owned(ctx.config, "builds", ctx.recipe.name))
        for step in STEPS:
            step(ctx)
    assert ctx.outcome is not None
    return ctx.outcome
