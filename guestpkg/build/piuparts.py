# SPDX-License-Identifier: GPL-2.0-or-later
"""``--run-piuparts`` (sbuild's option): piuparts installs, removes and purges the
built packages in a chroot of its own and reports what they leave behind.

sbuild (Sbuild/Build.pm ``run_piuparts``) runs ``sudo piuparts FOO.changes`` on the
host, as real root, whatever its chroot mode.  Here piuparts runs in a throwaway fork
of the base root over a cached layer of piuparts (made like a build-dependency layer,
:mod:`guestpkg.build.depends`), as uid 0 of the fork's user namespace with the
``allow_chroot_mount`` relaxation (:mod:`guestpkg.sandbox.spec`, docs/threat-model.md):
chroot(2) and mount(2) in a mount and pid namespace its user namespace owns, the
inherited mounts locked, no network.  Only ``id_mapping = userns`` allows that: with
real host ids, or as a normal user, the result is "error" and says why.

piuparts's chroot is a copy of the base root (``--existing-chroot``, bound read-only
into the fork), made by piuparts itself, whose apt sees one source only, the local
repository of :mod:`guestpkg.build.extras` (bound in with ``--bindmount``): the built
.debs, the build's ``--extra-package`` .debs, and the .debs of their dependencies
that the base root lacks.  Those dependencies are their Depends and Pre-Depends (read from the built
.debs as hostile input: :func:`guestpkg.build.extras.index_deb`, strict deb822 and
relation grammars), resolved and downloaded by apt over the base root's sources
like a build-dependency layer (with network, verified by apt, into the download
cache), and copied from the cache into the repository.  With an
``--extra-repository`` they are resolved over it too, as the build's own
dependencies were (its lists, its keys as ``signed-by``, its https CA set): its
packages are downloaded into the build's own directory, never the shared cache
(:func:`guestpkg.build.depends.private_cache`), also when the layer was cached and
this build downloaded nothing.  (A cross build's piuparts, for the build
architecture, uses the base root's sources only.)

Two things the kernel refuses in a user namespace piuparts does on the way, and
:data:`SHIM` does instead, as mmdebstrap's unshare mode does for its chroots: it
makes device nodes (mknod(2) of ``/dev/null`` and ``/dev/ptmx``), where the shim
binds the fork's own nodes (the sandbox's minimal /dev) onto empty files; and the
chroot's copy would keep the base root's network sources, where the shim binds the
local repository's sources.list over them in the fork's view of the base root.

The result: 0 is "pass"; else "fail" if piuparts logged a ``FAIL:`` error (a test
failed), "error" otherwise (piuparts could not run its tests).  piuparts's output
goes into the ``.build`` log's Post Build section, its log file next to the
``.build`` file (``<source>_<version>_<arch>.piuparts``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import shlex
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from guestpkg import fsutil
from guestpkg.build import artifacts, debcache, extras
from guestpkg.build.context import BuildContext
from guestpkg.build.depends import (
    download_build_deps,
    install_build_deps,
    private_cache,
    write_dummy_package,
)
from guestpkg.build.extras import EXTRA_MOUNT, ExtraSources, IndexedDeb
from guestpkg.build.source import BUILD_MOUNT
from guestpkg.buildroot import fork
from guestpkg.debian import deb822
from guestpkg.debian.control import BuildRelations, reduce_relations
from guestpkg.errors import BuildFailed, GuestpkgError, ParseError
from guestpkg.run import apt_env
from guestpkg.sandbox import Bind, idmap, run_sandboxed
from guestpkg.sandbox.spec import CHROOT_MOUNT_CAPABILITIES

#: Where the piuparts fork sees the base root (read-only; piuparts copies it).
BASE_MOUNT = "/guestpkg-piuparts-base"
#: Where piuparts writes its log file: in the fork, read back from the fork's upper
#: directory.  Not a writable bind: binds are idmapped, so uid 0 inside would write
#: real root's files (setuid ones too) on the host's disk; the relaxation's spec
#: takes read-only binds only, and the upper's files carry the fork's slice of ids.
LOG_PATH = "tmp/guestpkg-piuparts.log"

#: The most of piuparts's output read back for its verdict; of its log file kept.
MAX_OUTPUT_BYTES = 16 << 20
MAX_LOG_BYTES = 64 << 20

#: Run by python3 in the piuparts fork, as uid 0 with the relaxation: fixed text,
#: every path in it is ours; piuparts's options come as arguments.  The base root's
#: apt sources are covered by the local repository's (in this fork's mount namespace
#: only: the base root on disk is bound read-only and never changes); piuparts's
#: chroot gets the fork's device nodes bound instead of made (mknod(2) is refused in
#: a user namespace), before piuparts mounts proc, devpts and /dev/shm itself.
SHIM = f"""\
import importlib.machinery, importlib.util, os, subprocess, sys
base = {BASE_MOUNT!r}
subprocess.run(["mount", "--bind", "{EXTRA_MOUNT}/sources.list",
                base + "/etc/apt/sources.list"], check=True)
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=755", "tmpfs",
                base + "/etc/apt/sources.list.d"], check=True)
loader = importlib.machinery.SourceFileLoader("piuparts", "/usr/sbin/piuparts")
spec = importlib.util.spec_from_loader("piuparts", loader)
piuparts = importlib.util.module_from_spec(spec)
sys.modules["piuparts"] = piuparts
loader.exec_module(piuparts)
mount_proc = piuparts.Chroot.mount_proc

def mount_proc_with_bound_devices(self):
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        path = self.relative("dev/" + name)
        if not os.path.lexists(path):
            open(path, "x").close()
        self.mount("/dev/" + name, "/dev/" + name, opts="bind", no_mkdir=True)
    if not os.path.lexists(self.relative("dev/ptmx")):
        os.symlink("pts/ptmx", self.relative("dev/ptmx"))
    mount_proc(self)

piuparts.Chroot.mount_proc = mount_proc_with_bound_devices
sys.argv[0] = "piuparts"
piuparts.main()
"""


def dependencies(debs: Sequence[IndexedDeb], arch: str) -> list[str]:
    """The Pre-Depends and Depends of the built packages *debs* (their control
    fields as :func:`guestpkg.build.extras.index_deb` checked them), each relation
    parsed strictly, without those that one of *debs* satisfies by name (the
    repository has it)."""
    built = {deb.package for deb in debs}
    found: list[str] = []
    for deb in debs:
        stanza = deb822.parse(deb.stanza, f"{deb.file_name} (control)")[0]
        for field in ("Pre-Depends", "Depends"):
            value = stanza.get(field.lower()) or ""
            for relation in reduce_relations(value, arch, field=field,
                                             first_alternative=False):
                names = {alternative.split()[0].split(":")[0]
                         for alternative in relation.split("|")}
                if not names & built and relation not in found:
                    found.append(relation)
    return found


def piuparts_result(status: int, output: str) -> str:
    """piuparts(1) exits 0 when every test passed, else 1, both after a failed
    test and after it could not run one: a failed test logs ``FAIL:`` as an error."""
    if status == 0:
        return "pass"
    if re.search(r"^\S+ ERROR: FAIL: ", output, re.M):
        return "fail"
    return "error"


def run_piuparts(ctx: BuildContext) -> str:
    mapping = idmap.resolve(ctx.config.id_mapping)
    if mapping != "userns":
        ctx.log.warn("piuparts: needs chroot and mount in a user namespace of its own, "
                     "which " + ("a normal user's builds do" if mapping == "user" else
                                 f"id_mapping = {mapping} does") + " not give (run "
                     "guestpkg as root with id_mapping = userns, the default)")
        return "error"
    changes = artifacts.find_changes(ctx.build_dir, ctx.info.source, ctx.info.version)
    debs = [ctx.build_dir / name for name in artifacts.changes_files(changes)
            if name.endswith(".deb")]
    if not debs:
        ctx.log.warn("piuparts: the build made no binary package")
        return "error"
    arch = ctx.base.arch
    work = ctx.work / "piuparts"
    (work / "built").mkdir(parents=True, exist_ok=True)
    try:
        built = extras.prepare(ExtraSources(packages=tuple(debs)), arch, arch,
                               work / "built")
    except (GuestpkgError, ParseError) as e:
        ctx.log.warn(f"piuparts: a built package: {e.message}")
        return "error"
    # The build's --extra-package .debs (checked when the build started) are in the
    # repository too, as sbuild's extra packages are in piuparts's apt sources.
    given = ctx.extras.debs if ctx.extras is not None else ()
    try:
        needed = dependencies([*built.debs, *given], arch)
    except ParseError as e:
        ctx.log.warn(f"piuparts: a built package: {e.message}")
        return "error"
    # piuparts's layer comes from the buildroot's own sources, for the build
    # architecture: not the build's extra sources or host architecture.  The
    # dependencies' layer too, unless the build had an extra repository: then they
    # are resolved and downloaded over it as well, as the build's own dependencies
    # were (its lists, keys and CA set, its own download directory).
    tool_ctx = dataclasses.replace(ctx, extras=None, options=dataclasses.replace(
        ctx.options, extras=ExtraSources(), host_arch=""))
    with_repositories = (ctx.extras is not None and bool(ctx.extras.repositories)
                         and not ctx.cross)
    with contextlib.ExitStack() as stack:
        dep_debs = stack.enter_context(_dependency_debs(
            ctx if with_repositories else tool_ctx, needed,
            frozenset(deb.package for deb in given)))
        repository = extras.prepare(ExtraSources(packages=(
            *(built.directory / "debs" / deb.file_name for deb in built.debs),
            *(ctx.extras.directory / "debs" / deb.file_name
              for deb in given if ctx.extras is not None),
            *dep_debs)), arch, arch, work)
        ctx.log.note(f"piuparts: a local repository of {len(repository.debs)} .debs "
                     f"({len(dep_debs)} of them dependencies)")
        relations = BuildRelations(tuple(reduce_relations("piuparts", arch)), ())
        layer, _cached = stack.enter_context(install_build_deps(tool_ctx, relations))
        f = stack.enter_context(fork(ctx.config, ctx.base, layer.trees if layer else []))
        argv = ["python3", "-c", SHIM, "--existing-chroot", BASE_MOUNT,
                "--keep-sources-list", "--bindmount", EXTRA_MOUNT,
                "--distribution", ctx.base.suite, "--no-upgrade-test", "--no-adequate",
                "--warn-on-others", "--log-file", f"/{LOG_PATH}",
                f"{BUILD_MOUNT}/{changes.name}"]
        spec = ctx.spec(argv, fork=f, env=apt_env(throwaway_root=True), uid=0, gid=0,
                        cwd="/", capabilities=CHROOT_MOUNT_CAPABILITIES,
                        allow_chroot_mount=True, allow_setuid=True,
                        binds=(Bind(ctx.build_dir, BUILD_MOUNT),
                               Bind(ctx.base.path, BASE_MOUNT),
                               Bind(repository.directory, EXTRA_MOUNT)))
        start = ctx.log.path.stat().st_size
        ctx.log.note("running piuparts " + shlex.join(argv[3:]))
        status = run_sandboxed(spec, log_path=ctx.log.path, tee=ctx.log.tee, check=False)
        ctx.log.note(f"piuparts exited with status {status}")
        _keep_log(ctx, f.upperdir)
    with open(ctx.log.path, "rb") as log_file:
        log_file.seek(max(start, ctx.log.path.stat().st_size - MAX_OUTPUT_BYTES))
        output = log_file.read(MAX_OUTPUT_BYTES).decode("utf-8", "replace")
    return piuparts_result(status, output)


@contextlib.contextmanager
def _dependency_debs(ctx: BuildContext, needed: Sequence[str],
                     given: frozenset[str]) -> Iterator[list[Path]]:
    """The .debs of *needed* that the base root lacks, held in use: from the
    download cache (fetched there first, as for a build-dependency layer), and with an
    extra repository from the build's own download directory
    (:func:`guestpkg.build.depends.private_cache`: that repository's packages never
    enter the shared cache).  A package named in *given* (the build's
    ``--extra-package`` .debs, in piuparts's repository already) that apt took from
    the build's local repository is left out."""
    relations = BuildRelations(tuple(needed), ())
    with install_build_deps(ctx, relations) as (layer, _cached), \
            debcache.using_cache(ctx.config) as cache:
        names = [name for action in (layer.packages if layer else ())
                 if (name := debcache.deb_file_name(action)) is not None]
        private = private_cache(ctx)

        def missing() -> list[str]:
            # A given package apt took from the local repository (a file: source,
            # read in place) is not downloaded anywhere.
            return [name for name in names if _downloaded(name, cache, private) is None
                    and name.split("_")[0] not in given]

        if private is not None and missing():
            # A cached layer: its repository's packages were downloaded by another
            # build, into that build's own directory.  Download them again, over the
            # base root (what the layer holds, resolved there).
            dummy = write_dummy_package(relations, ctx.host_arch, ctx.work)
            with fork(ctx.config, ctx.base, []) as f:
                download_build_deps(ctx, f, dummy, cache, private)
        if lacking := missing():
            raise BuildFailed(f"the download cache lacks {lacking[0]} (a guestpkg cache "
                              "clean meanwhile?)", ctx.log.path)
        yield [path for name in names
               if (path := _downloaded(name, cache, private)) is not None]


def _downloaded(name: str, cache: Path, private: Path | None) -> Path | None:
    """The .deb *name* as apt downloaded it: in the build's own directory (a file
    there, not one of the links to the shared cache apt was given), else in the
    shared cache."""
    for directory in (private, cache):
        if directory is not None:
            with contextlib.suppress(FileNotFoundError):
                if stat.S_ISREG((directory / name).lstat().st_mode):
                    return directory / name
    return None


def _keep_log(ctx: BuildContext, upper: Path) -> None:
    """piuparts's log file, as written in the fork (hostile: read from the fork's
    *upper* directory with no link followed, bounded), next to the ``.build`` log."""
    target = ctx.log.path.with_suffix(".piuparts")
    try:
        data = fsutil.read_untrusted(upper, LOG_PATH, MAX_LOG_BYTES)
    except (OSError, GuestpkgError) as e:
        ctx.log.warn(f"piuparts: its log file: {e}")
        return
    fsutil.atomic_write(target, data)
    ctx.log.note(f"piuparts's log: {target}")
