# SPDX-License-Identifier: GPL-2.0-or-later
"""The deb builder: ``guestpkg build`` and the engine host packages use.

:func:`build_package` is a short list of named steps, each ``step(ctx)`` over one
:class:`~guestpkg.build.context.BuildContext` (:func:`run_steps`)::

    stage_source          .dsc unpacked in the sandbox, or the tree copied
    prepare_source        the caller's hook edits the staged tree (host lifecycle)
    read_source_info      changelog and control read, the log named after them
    install_build_deps    a cached layer, or apt installing a dummy package that
                          carries the relations, in a fork of its own (build/depends.py)
    enter_fork            the build's fork, over that layer
    run_external_resolver only with --satisfydepends-cmd
    ensure_build_user     the unprivileged user, if the root lacks it
    run_build             dpkg-buildpackage as that user, no network, no capabilities
                          (if it fails, --shell-on-failure opens a shell in its fork)
    run_post_build        --run-lintian, --run-autopkgtest, each in a fork of its own
                          (guestpkg.build.postbuild)
    collect_artifacts     what the .debs would install checked (guestpkg.build.inspect),
                          the .changes' files and the log into OUTPUT_DIR, as one set

Every step makes its sandbox with :meth:`BuildContext.spec`.

The build runs in a fork of the base root (:mod:`guestpkg.buildroot`) with the
dependency layer stacked under the fork's upper directory, and the build directory
``<vardir>/builds/<id>/build`` bound at ``/build``.  Deterministic by default
(reprotest's list of variations): ``SOURCE_DATE_EPOCH`` from the changelog, a fixed
build path, hostname, user, ``HOME``, ``TZ=UTC``, ``C.UTF-8``, umask 022 and ``PATH``;
``DEB_BUILD_OPTIONS=parallel=N`` from ``--jobs`` (N changes some packages' output, so
keep it fixed between builds that are compared).

Everything is logged to ``<logdir>/build/<source>_<version>_<arch>-<time>.build`` while
it is shown, and that log is copied to OUTPUT_DIR as ``<source>_<version>_<arch>.build``
on success.  On failure OUTPUT_DIR receives nothing and the error names the log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import shlex
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from guestpkg import __version__, fsutil
from guestpkg.build import artifacts, buildlog, extras, layers, postbuild, summary, versioning
from guestpkg.build.context import (
    BuildContext,
    BuildLog,
    BuildOptions,
    BuildResult,
    Preserve,
    build_directory,
)
from guestpkg.build.depends import (
    install_build_deps,
    prepare_extras,
    simulate_build_deps,
    write_dummy_package,
)
from guestpkg.build.inspect import check_build_output
from guestpkg.build.source import (
    BUILD_MOUNT,
    STAGING_NAME,
    SourceInfo,
    check_input,
    chown_tree,
    copy_orig_tarballs,
    dpkg_source_extract_argv,
    is_dsc,
    read_source,
    refuse_symlinked_metadata,
    settle,
    stage_dsc_files,
    stage_tree,
)
from guestpkg.buildroot import Fork, fork, open_base_root
from guestpkg.buildroot.roots import require_mapping
from guestpkg.config import Config
from guestpkg.debian.control import (
    BuildMode,
    build_relations,
)
from guestpkg.errors import (
    BuildFailed,
    CommandFailed,
    InputError,
    SandboxSetupFailed,
    UsageError,
)
from guestpkg.run import DEFAULT_PATH, apt_env, base_env
from guestpkg.sandbox import APT_CAPABILITIES, Bind, SandboxSpec, run_sandboxed
from guestpkg.sandbox.idmap import get_mapping
from guestpkg.sandbox.userrange import OWN_ID

__all__ = ["BuildContext", "BuildLog", "BuildOptions", "BuildResult", "build_directory",
           "build_env", "build_package", "check_build_dependencies",
           "dpkg_buildpackage_argv", "extra_build_packages", "faketime_prefix",
           "install_build_deps", "lookup_user"]

log = logging.getLogger(__name__)

#: The capabilities useradd needs to write /etc/passwd, /etc/shadow and their locks.
USERADD_CAPABILITIES = frozenset({"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"})

#: HOME of the build: like sbuild's /sbuild-nonexistent, a path that does not exist,
#: so that nothing of a previous build or of the user leaks in (Debian Policy 4.9
#: requires packages to build without a writable HOME).
BUILD_HOME = "/nonexistent"

# --- the steps ---------------------------------------------------------------------

#: /etc/passwd of a root or layer: a few lines; a bound against a planted giant file.
MAX_PASSWD_BYTES = 4 << 20


def read_passwd(tree: Path) -> list[list[str]] | None:
    """The entries of *tree*'s etc/passwd (passwd(5)), or None if it has none.

    Layers and fork uppers are written by apt's maintainer scripts and by the
    external resolver: read as :func:`guestpkg.fsutil.read_untrusted` reads, so that
    a planted symlink or FIFO is refused rather than followed."""
    try:
        data = fsutil.read_untrusted(tree, "etc/passwd", MAX_PASSWD_BYTES)
    except FileNotFoundError:
        return None
    return [line.split(":") for line in data.decode("utf-8", "replace").splitlines()]


def lookup_user(trees: Sequence[Path], name: str) -> tuple[int, int] | None:
    """uid and gid of *name* in the topmost of *trees* that has an /etc/passwd
    (passwd(5)): what the merged overlay shows."""
    for tree in trees:
        entries = read_passwd(tree)
        if entries is None:
            continue
        for fields in entries:
            if len(fields) >= 4 and fields[0] == name:
                try:
                    return int(fields[2]), int(fields[3])
                except ValueError:
                    raise InputError(f"{tree}/etc/passwd: bad uid or gid for {name}") from None
        return None
    return None


def stage_source(ctx: BuildContext) -> None:
    """Put the source at ``build_dir/source``, owned by the build user."""
    uid, gid = ctx.ids
    if os.geteuid() == 0:
        os.chown(ctx.build_dir, uid, gid)
    if not is_dsc(ctx.source):
        ctx.log.note(f"copying the source tree {ctx.source}")
        ctx.staged = stage_tree(ctx.source, ctx.build_dir)
        if os.geteuid() == 0:  # a normal user's copy stays its own until read_source_info
            chown_tree(ctx.build_dir, uid, gid)
        return
    ctx.log.note(f"unpacking {ctx.source} with dpkg-source -x (sandboxed, as the build user)")
    stage_dsc_files(ctx.source, ctx.build_dir)
    chown_tree(ctx.build_dir, uid, gid)
    ctx.run(ctx.spec(dpkg_source_extract_argv(ctx.source.name), in_fork=False,
                     env=build_env(ctx.config, {}, user=ctx.config.user), cwd=BUILD_MOUNT,
                     uid=uid, gid=gid,
                     binds=(Bind(ctx.build_dir, BUILD_MOUNT, readonly=False),)),
            "dpkg-source -x failed")
    ctx.staged = ctx.build_dir / STAGING_NAME
    if os.geteuid() != 0:
        # A normal user edits the tree next (settle, a changelog entry, orig
        # tarballs) as itself: the user's own id inside; the build user's again at the
        # end of read_source_info.
        chown_tree(ctx.build_dir, OWN_ID, OWN_ID)


def prepare_source(ctx: BuildContext) -> None:
    """The caller's edit of the staged tree (:attr:`BuildOptions.prepare_source`), after
    the check that debian/ holds no symlinked metadata it could be tricked through."""
    assert ctx.staged is not None
    refuse_symlinked_metadata(ctx.staged)
    if ctx.options.version_change:
        add_changelog_entry(ctx)
    if ctx.options.prepare_source is not None:
        ctx.log.note("running the prepare_source hook on the staged tree")
        ctx.options.prepare_source(ctx.staged)


def add_changelog_entry(ctx: BuildContext) -> None:
    """sbuild's --append-to-version and --binNMU, and a host's ``~local``: a new entry
    on top of the staged debian/changelog (guestpkg.build.versioning)."""
    assert ctx.staged is not None
    first = versioning.add_changelog_entry(ctx.options.version_change, ctx.staged,
                                           ctx.host_arch)
    ctx.log.note("new changelog entry: " + first)


def read_source_info(ctx: BuildContext) -> None:
    """The source's changelog and control; the log takes its final name from them."""
    assert ctx.staged is not None
    # A copied tree's errors name the user's files; an unpacked .dsc has no such.
    named = None if is_dsc(ctx.source) or ctx.options.prepare_source else ctx.source
    info = ctx.found_info = read_source(ctx.staged, named)
    settle(ctx.staged, info)
    final_log = ctx.config.logdir / "build" / log_name(info, ctx.host_arch, ctx.work.name)
    buildlog.start_final_log(ctx, final_log)
    ctx.log.step(f"{info.source} {info.version} in {BUILD_MOUNT}/{info.directory_name}; "
                 f"log {final_log}")
    if ctx.options.mode in (BuildMode.SOURCE, BuildMode.FULL) and not is_dsc(ctx.source):
        copy_orig_tarballs(ctx.source, info, ctx.build_dir)
    chown_tree(ctx.build_dir, *ctx.ids)


def extra_build_packages(info: SourceInfo, config: Config) -> list[str]:
    """What the build needs besides the source's own Build-Depends: the buildd root
    has build-essential but not fakeroot, nor faketime."""
    extra = []
    if info.control.needs_root_command:
        extra.append("fakeroot")
    if config.faketime:
        extra.append("faketime")
    return extra


def ensure_build_user(ctx: BuildContext) -> None:
    """The build user's uid and gid; created in the fork if the root lacks it.

    The new user gets the base root's fixed build uid (pbuilder's convention, 1234)
    when that is free, else the first free one useradd(8) picks: the same in every
    fork of the same root, so builds stay reproducible."""
    config, f, blog = ctx.config, ctx.fork, ctx.log
    trees = [*f.layers, f.base.path]
    found = lookup_user(trees, config.user)
    if found is not None:
        _build_user(ctx, found)
        return
    taken = uid_taken(trees, f.base.build_uid)
    uid_option = "" if taken else f"--uid {f.base.build_uid} --gid {f.base.build_uid}"
    group_option = "" if taken else f"--gid {f.base.build_uid}"
    blog.note(f"creating build user {config.user} in the fork")
    script = (f'groupadd {group_option} "$0" && useradd {uid_option} --gid "$0" '
              f'--no-create-home --home-dir {BUILD_HOME} --shell /bin/sh "$0"')
    ctx.run(ctx.spec(["sh", "-c", script, config.user], env=base_env(),
                     capabilities=USERADD_CAPABILITIES), "creating the build user failed")
    # useradd rewrote /etc/passwd, so the fork's upper has the whole new file.
    created = lookup_user([f.upperdir], config.user)
    if created is None:
        raise BuildFailed(f"useradd did not create {config.user}", blog.path)
    blog.note(f"build user {config.user}: uid {created[0]}, gid {created[1]}")
    _build_user(ctx, created)


def _build_user(ctx: BuildContext, ids: tuple[int, int]) -> None:
    """The build runs as *ids*: the staged source is theirs."""
    if ids != ctx.ids:
        chown_tree(ctx.build_dir, *ids)
        ctx.ids = ids


def uid_taken(trees: Sequence[Path], uid: int) -> bool:
    for tree in trees:
        entries = read_passwd(tree)
        if entries is not None:
            return any(len(fields) >= 3 and fields[2] == str(uid) for fields in entries)
    return False


def build_env(config: Config, extra: Mapping[str, str], *, user: str,
              epoch: int | None = None, profiles: Sequence[str] = ()) -> dict[str, str]:
    """The exact environment of the build: nothing is inherited."""
    env = {
        "PATH": DEFAULT_PATH, "HOME": BUILD_HOME, "USER": user, "LOGNAME": user,
        "TZ": "UTC", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "DEB_BUILD_OPTIONS": f"parallel={config.build_jobs}",
    }
    if epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(epoch)
    if profiles:
        env["DEB_BUILD_PROFILES"] = " ".join(profiles)
    env.update(extra)
    return env


def faketime_prefix(epoch: int) -> list[str]:
    """faketime(1) frozen at *epoch* (an absolute date without ``@`` stops the clock;
    TZ=UTC inside, so the date is read as UTC)."""
    frozen = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return ["faketime", "-f", frozen.strftime("%Y-%m-%d %H:%M:%S")]


def dpkg_buildpackage_argv(info: SourceInfo, mode: BuildMode, *, faketime: bool,
                           profiles: Sequence[str] = (), host_arch: str = "") -> list[str]:
    """dpkg-buildpackage(1): unsigned (-us -uc); ``-rfakeroot`` unless
    Rules-Requires-Root is ``no``, when no gain-root command is used at all;
    ``--host-arch`` when cross-building."""
    argv = ["dpkg-buildpackage", "-us", "-uc"]
    if host_arch:
        argv.append(f"--host-arch={host_arch}")
    if mode.value:
        argv.append(mode.value)
    if info.control.needs_root_command:
        argv.append("-rfakeroot")
    if profiles:
        argv.append("-P" + ",".join(profiles))
    if faketime:
        argv = [*faketime_prefix(info.changelog.timestamp), *argv]
    return argv


#: Where ``--ccache``'s directory is bound in the build (ccache(1) CCACHE_DIR).
CCACHE_MOUNT = "/ccache"


def ccache_directory(ctx: BuildContext) -> Path:
    """``<vardir>/ccache/<buildroot>/<source>``: one cache per buildroot and source
    package, never shared between source packages (a build writes it: what one
    package's build puts there reaches only its own later builds).  Owned by the build
    user's canonical ids (the bind is idmapped like the layers)."""
    directory = ctx.config.vardir / "ccache" / ctx.base.name / ctx.info.source
    if not directory.is_dir():
        directory.mkdir(mode=0o755, parents=True)
        chown_tree(directory, *ctx.ids)
    ctx.log.note(f"ccache: {directory} at {CCACHE_MOUNT}")
    return directory


def run_build(ctx: BuildContext) -> None:
    config, info, options, blog = ctx.config, ctx.info, ctx.options, ctx.log
    uid, gid = ctx.ids
    buildlog.append(ctx, summary.section("Build"))
    ctx.log.step("dpkg-buildpackage")
    argv = dpkg_buildpackage_argv(info, options.mode, faketime=config.faketime,
                                  profiles=ctx.profiles,
                                  host_arch=ctx.host_arch if ctx.cross else "")
    env = build_env(config, cross_env(ctx), user=config.user,
                    epoch=info.changelog.timestamp, profiles=ctx.profiles)
    if config.network:
        blog.note("WARNING: the build phase has NETWORK ACCESS (--network): the build "
                  "is neither isolated nor reproducible")
        log.warning("the build phase of %s has network access (--network)", info.source)
    binds = [Bind(ctx.build_dir, BUILD_MOUNT, readonly=False)]
    if options.ccache:
        binds.append(Bind(ccache_directory(ctx), CCACHE_MOUNT, readonly=False))
        env.update({"CCACHE_DIR": CCACHE_MOUNT,
                    "PATH": f"/usr/lib/ccache:{env['PATH']}"})
    blog.note("environment: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(env.items())))
    spec = ctx.spec(argv, env=env, cwd=f"{BUILD_MOUNT}/{info.directory_name}", uid=uid,
                    gid=gid, network=config.network, binds=tuple(binds))
    if options.ccache:
        ccache_statistics(ctx, spec, "--zero-stats")
    start = time.monotonic()
    try:
        run_sandboxed(spec, log_path=blog.path, tee=blog.tee)
        ctx.seconds["build"] = time.monotonic() - start
    except CommandFailed as e:
        ctx.seconds["build"] = time.monotonic() - start
        what = ("timed out" if e.returncode == 124 and not isinstance(e, SandboxSetupFailed)
                else f"failed ({e.status_text})")
        raise BuildFailed(f"dpkg-buildpackage of {info.source} {info.version} {what}",
                          blog.path, e.output_tail) from e
    finally:
        if options.ccache:
            ccache_statistics(ctx, spec, "--show-stats")


def ccache_statistics(ctx: BuildContext, build: SandboxSpec, option: str) -> None:
    """``ccache --zero-stats`` before the build and ``--show-stats`` after it, in the
    build's sandbox (its cache, its user): the log shows this build's hits and
    misses (ccache(1)).  Never fails the build."""
    spec = dataclasses.replace(build, argv=("ccache", option), cwd="/")
    with contextlib.suppress(CommandFailed):
        run_sandboxed(spec, log_path=ctx.log.path, tee=ctx.log.tee and option != "--zero-stats")


def cross_env(ctx: BuildContext) -> dict[str, str]:
    """The options' environment, with a cross build's (:func:`extras.cross_environment`)."""
    return extras.cross_environment(ctx.options.environment,
                                    ctx.host_arch if ctx.cross else "", ctx.config.build_jobs)


def run_external_resolver(ctx: BuildContext) -> None:
    """``--satisfydepends-cmd``: the user's resolver instead of ours, given the path of
    debian/control; it gets network and apt's capabilities, and no layer is cached
    (what it installs is not known in advance)."""
    if not ctx.config.satisfydepends_cmd:
        return
    argv = [*shlex.split(ctx.config.satisfydepends_cmd),
            f"{BUILD_MOUNT}/{ctx.info.directory_name}/debian/control"]
    ctx.log.note(f"installing build dependencies with the external resolver: "
                 f"{shlex.join(argv)}")
    ctx.run(ctx.spec(argv, env=apt_env(throwaway_root=True), capabilities=APT_CAPABILITIES,
                     network=True, allow_setuid=True,
                     binds=(Bind(ctx.build_dir, BUILD_MOUNT, readonly=True),)),
            "the external build-dependency resolver failed")


def collect_artifacts(ctx: BuildContext) -> BuildResult:
    info, arch, build_dir, output_dir, blog = (ctx.info, ctx.host_arch, ctx.build_dir,
                                               ctx.output_dir, ctx.log)
    blog.step("artifacts")
    refuse = ctx.config.refuse_setuid if ctx.options.refuse_findings is None \
        else ctx.options.refuse_findings
    changes = artifacts.find_changes(build_dir, info.source, info.version)
    files = [build_dir / name for name in artifacts.changes_files(changes)]
    debs = [path for path in files if path.suffix in (".deb", ".udeb")]
    blog.note(f"inspecting what {len(debs)} .deb(s) would install")
    reports = check_build_output(debs, refuse=refuse, declared=ctx.options.declared,
                                 note=blog.warn, log_path=blog.path)
    # In the work directory, not the build directory: a normal user's build directory
    # belongs to the build user's id in the user's namespace.
    log_copy = ctx.work / artifacts.build_log_name(info.source, info.version, arch)
    blog.note(f"copying {len(files) + 2} files to {output_dir}")
    blog.step("build successful")
    buildlog.write_summary(ctx, "successful")
    artifacts.copy_regular_file(blog.path, log_copy)
    done = artifacts.collect([*files, log_copy, changes], output_dir)
    if ctx.options.tee:
        sys.stderr.writelines(f"guestpkg: {path}\n" for path in done)
    return BuildResult(done, done[-2], done[-1], info.source, info.version,
                       ctx.layer.key if ctx.layer else None, ctx.layer_cached,
                       tuple(reports), arch)


# --- the whole build ----------------------------------------------------------------

def log_name(info: SourceInfo, arch: str, build_id: str) -> str:
    """sbuild's ``<source>_<version>_<arch>-<time>.build``; the time is the build's
    id, which has a random part, so concurrent builds never share a log."""
    return artifacts.build_log_name(info.source, info.version, arch).removesuffix(".build") \
        + f"-{build_id}.build"


def build_package(config: Config, source: Path, output_dir: Path,
                  options: BuildOptions | None = None) -> BuildResult:
    """Build *source* (a tree or a .dsc) and put the results in *output_dir*."""
    options = options or BuildOptions()
    require_mapping(config, "guestpkg build")
    source = source.resolve()
    check_input(source)
    preserve = Preserve.parse(options.preserve or config.preserve_build)
    base = open_base_root(config, config.buildroot)
    with build_directory(config, preserve) as work:
        # The log's final name needs the version, which the hook may change: notes
        # go to a provisional log that is renamed once the source has been read.
        ctx = BuildContext(
            config, base, work,
            BuildLog(config.logdir / "build" / f".staging-{work.name}.build", options.tee),
            options, source, output_dir.resolve(), preserve,
            lookup_user([base.path], config.user) or (base.build_uid, base.build_uid))
        try:
            return run_steps(ctx)
        except BuildFailed as e:
            ctx.log.note(f"FAILED: {e.message}")
            if ctx.found_info is not None:
                with contextlib.suppress(OSError):   # never hide the build's failure
                    buildlog.write_summary(ctx, "failed")
            raise
        except BaseException as e:
            ctx.log.note(f"FAILED: {type(e).__name__}: {e}")
            raise


def check_build_dependencies(config: Config, tree: Path,
                             mode: BuildMode = BuildMode.BINARY) -> int:
    """Whether apt can install the build dependencies of the source whose ``debian/``
    is in *tree*, in the buildroot, from the root's own lists (no network): checked
    before anything is downloaded for a build (a host's guest: its upstream tarball).
    Raises UnsatisfiableBuildDepends naming what is missing; the resolution is cached
    (as :func:`install_build_deps` caches it), so the build does not resolve again.
    Returns how many packages the build will install."""
    base = open_base_root(config, config.buildroot)
    info = read_source(tree)
    relations = build_relations(info.control, mode, base.arch, (),
                                extra_build_packages(info, config))
    if not relations.depends and not relations.conflicts:
        return 0
    request = relations.canonical()
    actions = layers.cached_resolution(config, base.generation, request)
    if actions is None:
        with build_directory(config, Preserve.NEVER) as work:
            blog = BuildLog(config.logdir / "build" /
                            f"{info.source}-build-deps-{work.name}.log", tee=False)
            blog.note(f"build dependencies of {info.source}: " +
                      ", ".join(relations.depends))
            dummy = write_dummy_package(relations, base.arch, work)
            actions = simulate_build_deps(BuildContext(config, base, work, blog), dummy)
        layers.store_resolution(config, base.generation, request, actions)
    return len(actions)


def run_steps(ctx: BuildContext) -> BuildResult:
    """The build, as named steps over *ctx*."""
    ctx.seconds["start"] = time.monotonic()
    ctx.started = time.time()
    ctx.log.step(f"guestpkg {__version__} build of {ctx.source}")
    ctx.log.note(f"base root {ctx.base.name} ({ctx.base.suite}, {ctx.base.arch}), "
                 f"generation {ctx.base.generation}; "
                 f"mode {ctx.options.mode.name.lower().replace('_', '-')}")
    for step in (stage_source, prepare_source, read_source_info):
        step(ctx)
    with contextlib.ExitStack() as stack:
        stack_build_deps(ctx, stack)
        enter_fork(ctx, stack)
        for step in (run_external_resolver, ensure_build_user):
            step(ctx)
        try:
            run_build(ctx)
        except BuildFailed:
            if ctx.options.shell_on_failure:
                shell_on_failure(ctx)
            raise
        if ctx.preserve is Preserve.ALWAYS:
            keep_fork(ctx)
    postbuild.run_post_build(ctx)
    return collect_artifacts(ctx)


def stack_build_deps(ctx: BuildContext, stack: contextlib.ExitStack) -> None:
    """The build-dependency layer, held in use until *stack* closes (none with
    ``--satisfydepends-cmd``: the external resolver installs into the fork)."""
    buildlog.append(ctx, summary.section("Install package build dependencies"))
    ctx.log.step("build dependencies")
    if ctx.config.satisfydepends_cmd:
        if ctx.options.extras or ctx.cross:
            raise UsageError("--extra-package, --extra-repository and --host-arch work "
                             "with guestpkg's own resolver, not with --satisfydepends-cmd")
        return
    extra = extra_build_packages(ctx.info, ctx.config) + (["ccache"] if ctx.options.ccache
                                                          else [])
    build_arch = ctx.base.arch if ctx.cross else ""
    if ctx.cross:
        extra = extras.cross_build_packages(extra, ctx.host_arch)
    prepare_extras(ctx)
    relations = build_relations(ctx.info.control, ctx.options.mode, ctx.host_arch,
                                ctx.profiles, extra, build_arch)
    start = time.monotonic()
    ctx.layer, ctx.layer_cached = stack.enter_context(install_build_deps(ctx, relations))
    ctx.seconds["install"] = time.monotonic() - start
    buildlog.write_build_dependencies(ctx, relations)


def enter_fork(ctx: BuildContext, stack: contextlib.ExitStack) -> None:
    """The fork the build runs in, over the layer; its writes are kept for inspection
    when the build fails and ``--preserve-build`` is not ``never``."""
    ctx.found_fork = stack.enter_context(
        fork(ctx.config, ctx.base, ctx.layer.trees if ctx.layer else []))
    ctx.log.note("sandbox " + describe_ids(ctx.found_fork))

    @stack.push
    def keep_on_error(kind: type[BaseException] | None, *_: object) -> bool:
        if kind is not None and ctx.preserve is not Preserve.NEVER:
            keep_fork(ctx)
        return False


def describe_ids(f: Fork) -> str:
    """Which id mapping the build's commands run with, for the log."""
    ids = (f.slice.uid_base, f.slice.gid_base) if f.slice is not None else None
    return get_mapping(f.id_mapping, ids).describe()


def shell_on_failure(ctx: BuildContext) -> None:
    """``--shell-on-failure``: an interactive shell in the failed build's fork, as the
    build user, in the build's own sandbox (no network unless --network, no
    capabilities, no_new_privs, seccomp), in the source tree; the fork goes when the
    shell exits, as after any build.  Only on a terminal: a shell reading a pipe
    would take the caller's input as commands."""
    if not os.isatty(sys.stdin.fileno()):
        ctx.log.warn("--shell-on-failure: standard input is not a terminal; no shell")
        return
    uid, gid = ctx.ids
    env = build_env(ctx.config, cross_env(ctx), user=ctx.config.user,
                    epoch=ctx.info.changelog.timestamp, profiles=ctx.profiles)
    if "TERM" in os.environ and os.environ["TERM"].isprintable():
        env["TERM"] = os.environ["TERM"]
    cwd = f"{BUILD_MOUNT}/{ctx.info.directory_name}"
    ctx.log.warn(f"--shell-on-failure: a shell as {ctx.config.user} in fork {ctx.fork.id} "
                 f"at {cwd}; exit it to end the build (the fork is then removed)")
    spec = ctx.spec(["/bin/bash", "-i"], env=env, cwd=cwd, uid=uid, gid=gid,
                    network=ctx.config.network, interactive=True, timeout_s=None,
                    binds=(Bind(ctx.build_dir, BUILD_MOUNT, readonly=False),))
    status = run_sandboxed(spec, check=False)
    ctx.log.warn(f"--shell-on-failure: the shell exited with status {status}")


def keep_fork(ctx: BuildContext) -> None:
    with contextlib.suppress(Exception):
        ctx.fork.keep_upper(ctx.work / "fork-upper")
        ctx.log.note(f"kept the fork's writes in {ctx.work / 'fork-upper'} and the build "
                     f"directory in {ctx.build_dir}")
