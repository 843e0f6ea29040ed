# SPDX-License-Identifier: GPL-2.0-or-later
"""The build-dependency step of the deb builder: the request as a dummy package, apt's
simulation of it, and a cached layer (:mod:`guestpkg.build.layers`) stacked or made.

A new layer is made in a fork of its own with a disk upper: on the closest cached
subset layer when apt, simulating over it, installs exactly the rest; apt downloads
what the shared download cache (:mod:`guestpkg.build.debcache`) lacks with network
(nothing runs when it lacks nothing), then installs from it without network, with
dpkg's force-unsafe-io and without manual pages; the upper becomes the layer.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from guestpkg import fsutil
from guestpkg.build import debcache, extras, layers
from guestpkg.build.context import BuildContext
from guestpkg.build.extras import EXTRA_MOUNT, LISTS_MOUNT, Extras
from guestpkg.build.layers import APT_OPTIONS, Layer
from guestpkg.buildroot import BaseRoot, Fork, fork
from guestpkg.debian.control import DUMMY_PACKAGE, DUMMY_VERSION, BuildRelations
from guestpkg.debian.debfile import write_deb
from guestpkg.errors import BuildFailed, SystemStateError
from guestpkg.run import apt_env, as_namespace_root, run
from guestpkg.sandbox import APT_CAPABILITIES, Bind, run_sandboxed

#: Where the dummy package is bound, read-only, during the dependency phase.
DEPS_MOUNT = "/build"

#: Where a build's private download directory is seen by the installation (builds
#: with an extra repository: a package of that repository never enters the shared
#: download cache, where apt, which checks a cached .deb by its size only, would
#: take it for the archive's package of the same name and version).
PRIVATE_CACHE_MOUNT = "/var/cache/guestpkg-debs-private"


def with_extras(ctx: BuildContext, argv: Sequence[str]) -> list[str]:
    """*argv* of an apt command of the dependency phase, run after the extra sources
    and lists are put into the root (:func:`extras.apt_prefix`), if there are any."""
    if ctx.extras is None:
        return list(argv)
    return ["sh", "-c", "set -e; " + extras.apt_prefix(ctx.extras) + 'exec "$@"', "sh",
            *argv]


def extra_binds(ctx: BuildContext) -> tuple[Bind, ...]:
    return (Bind(ctx.extras.directory, EXTRA_MOUNT),) if ctx.extras is not None else ()


def prepare_extras(ctx: BuildContext) -> None:
    """The extra tree (:mod:`guestpkg.build.extras`) and its identity; for
    ``--host-arch`` the foreign architecture's lists of the root's sources.

    A repository's lists are fetched now (``apt-get update``, with network): its
    identity is the state of those lists.  A local index is identified by its own
    content, so its ``apt-get update`` waits until apt is needed at all
    (:func:`update_extra_lists`): a rebuild from a cached layer runs none."""
    options = ctx.options
    if not options.extras and not ctx.cross:
        return
    made = extras.prepare(options.extras, ctx.host_arch, ctx.base.arch, ctx.work)
    for source in made.unused_sources:
        ctx.log.note(f"not used: deb-src {source.uri} {source.suite} (a build from a "
                     "source tree or .dsc reads no Sources index)")
    if made.foreign_arch:
        extras.copy_lists(cross_lists(ctx, made.foreign_arch), made.lists,
                          only=f"_binary-{made.foreign_arch}_")
    ctx.extras_pending = made.needs_update
    if made.repositories:
        ctx.extras = made
        update_extra_lists(ctx)
    ctx.extras = extras.with_identity(made, ctx.host_arch)
    ctx.log.note(f"extra sources and host architecture {ctx.host_arch}: "
                 f"identity {ctx.extras.identity[:16]}")


def update_extra_lists(ctx: BuildContext) -> None:
    """``apt-get update`` of the extra sources into the extra tree's lists, once per
    build, before the first apt command that reads them (with network only for a
    repository)."""
    made = ctx.extras
    if made is None or not ctx.extras_pending:
        return
    ctx.extras_pending = False
    ctx.log.note("apt-get update of the extra sources: " + ", ".join(
        [f"{len(made.debs)} local .deb(s)"] * bool(made.debs) +
        [f"{r.uri} {r.suite}" for r in made.repositories]))
    # --error-on=any: apt-get update otherwise exits 0 when an index failed to
    # download ("Some index files failed to download. They have been ignored").
    argv = ["apt-get", "update", "-q", "--error-on=any",
            "-o", f"Dir::Etc::SourceList={EXTRA_MOUNT}/sources.list",
            "-o", f"Dir::Etc::SourceParts={EXTRA_MOUNT}/parts",
            "-o", f"Dir::State::Lists={LISTS_MOUNT}/", "-o", "APT::Get::List-Cleanup=false",
            "-o", "Acquire::Languages=none", *extras.https_options(made)]
    if made.foreign_arch:
        argv = ["sh", "-c", f'dpkg --add-architecture {made.foreign_arch}; exec "$@"',
                "sh", *argv]
    try:
        ctx.run(ctx.spec(argv, in_fork=False, env=apt_env(throwaway_root=True), uid=0,
                         gid=0, capabilities=APT_CAPABILITIES,
                         network=bool(made.repositories),
                         binds=(Bind(made.directory, EXTRA_MOUNT),
                                Bind(made.lists, LISTS_MOUNT, readonly=False))),
                "apt-get update of the extra sources failed")
    except BuildFailed as e:
        reason = extras.certificate_failure(e.output_tail)
        if reason is None:
            raise
        refused = BuildFailed("the https server of an extra repository was not trusted: "
                              f"{reason}", e.log_path)
        refused.hint = ("if its certificate is from a private CA, give that CA's "
                        "certificate with --extra-repository-ca FILE.pem (this system's "
                        f"{extras.SYSTEM_CA_FILE} is trusted already); the certificate "
                        f"must name the URI's host; {refused.hint}")
        raise refused from e
    extras.drop_lists_of_root(made, ctx.base.path / "var/lib/apt/lists")


def cross_lists(ctx: BuildContext, arch: str) -> Path:
    """``<vardir>/layers/lists/<generation>-<arch>/``: the lists of *arch* from the
    root's own sources, fetched once per generation (with network, verified by apt
    against the root's keyring) and then reused, as the generation's own lists are."""
    top = layers.layers_dir(ctx.config) / "lists"
    directory = top / f"{ctx.base.generation}-{arch}"
    if (directory / "lists").is_dir():
        return directory / "lists"
    top.mkdir(mode=0o755, parents=True, exist_ok=True)
    with fsutil.locked(top / f"{ctx.base.generation}-{arch}.lock"):
        if (directory / "lists").is_dir():
            return directory / "lists"
        ctx.log.note(f"fetching the package lists of {arch} for this generation")
        with fsutil.atomic_directory(directory) as tmp:
            tmp.chmod(0o755)
            for sub in ("parts", "lists"):
                (tmp / sub).mkdir(mode=0o755)
            fsutil.atomic_write(tmp / "sources.list",
                                extras.cross_sources(ctx.base.sources, arch))
            argv = ["apt-get", "update", "-q", "--error-on=any",
                    "-o", "Dir::Etc::SourceList=/cross/sources.list",
                    "-o", "Dir::Etc::SourceParts=/cross/parts",
                    "-o", "Dir::State::Lists=/cross/lists/", "-o", "Acquire::Languages=none"]
            ctx.run(ctx.spec(argv, in_fork=False, env=apt_env(throwaway_root=True), uid=0,
                             gid=0, capabilities=APT_CAPABILITIES, network=True,
                             binds=(Bind(tmp, "/cross", readonly=False),)),
                    f"fetching the package lists of {arch} failed")
    return directory / "lists"


def write_dummy_package(relations: BuildRelations, arch: str, work: Path) -> Path:
    """``<work>/deps/guestpkg-build-deps_1_<arch>.deb``: the request as a package
    (see :meth:`BuildRelations.dummy_control`); readable by apt's ``_apt`` user."""
    directory = work / "deps"
    directory.mkdir(mode=0o755, exist_ok=True)
    path = directory / f"{DUMMY_PACKAGE}_{DUMMY_VERSION}_{arch}.deb"
    write_deb(path, relations.dummy_control(arch))
    path.chmod(0o644)
    return path


def dummy_install_arguments(dummy: Path) -> list[str]:
    """apt-get's arguments that install *dummy* from :data:`DEPS_MOUNT` (a path with a
    ``/`` is a .deb to install, apt-get(8)); ``--`` ends the options regardless."""
    return [*APT_OPTIONS, "install", "--", f"{DEPS_MOUNT}/{dummy.name}"]


def simulate_build_deps(ctx: BuildContext, dummy: Path) -> list[str]:
    """``apt-get -s install`` of the dummy: the exact packages apt would install,
    without installing them (no network, no capabilities: the lists are in the root)."""
    update_extra_lists(ctx)
    out = ctx.work / "resolve.log"
    # run_sandboxed appends: a second resolution in the same work directory (a
    # post-build check's tool layer) must not read the first one's output.
    out.unlink(missing_ok=True)
    argv = ["apt-get", "-s", "-q", "-o", "Debug::NoLocking=1", *dummy_install_arguments(dummy)]
    spec = ctx.spec(with_extras(ctx, argv), in_fork=False, env=apt_env(throwaway_root=True),
                    binds=(Bind(dummy.parent, DEPS_MOUNT), *extra_binds(ctx)))
    status = run_sandboxed(spec, log_path=out, check=False)
    text = out.read_text(encoding="utf-8", errors="replace")
    with open(ctx.log.path, "a", encoding="utf-8") as f:
        f.write(text)
    if status != 0:
        raise layers.UnsatisfiableBuildDepends(layers.parse_unmet(text),
                                               layers.apt_errors(text), ctx.log.path)
    return layers.parse_simulation(text)


#: dpkg options of the installation into a throwaway layer (dpkg(1)): no fsync
#: (a layer whose creation is interrupted is thrown away, never used), and no manual
#: pages or info documents, which no build reads and whose triggers (man-db's mandb,
#: install-info) cost seconds.  /usr/share/doc stays: builds read it (intersphinx
#: inventories in python3-doc, gtk-doc cross-references).
LAYER_DPKG_OPTIONS = ("--force-unsafe-io", "--path-exclude=/usr/share/man/*",
                      "--path-exclude=/usr/share/info/*")

#: man-db's postinst and trigger rebuild its database only when this is true
#: (man-db(8), /var/lib/man-db/auto-update); a layer never runs man.
_MAN_DB_OFF = "man-db man-db/auto-update boolean false"


def layer_install_script(dummy: Path, extra: Extras | None = None,
                         private_cache: bool = False) -> list[str]:
    """``sh -c`` and its fixed script of the installation into a new layer.

    The download cache is bound read-only at :data:`debcache.CACHE_MOUNT`; apt's own
    archives directory stays the fork's (apt writes its ``partial/`` and lock there),
    and gets a symlink to each cached .deb: apt takes a file already in its archives
    directory (of the size its lists name) instead of downloading it (apt-get(8),
    ``clean``), and dpkg opens it through the link.  Never a link to a dummy package:
    one of another build has the same name.  apt installs the dummy, dpkg purges it,
    and the links and the binary caches apt wrote (tens of MiB, remade from the lists
    on demand; newer than the dummy) are dropped from the layer, while the base
    root's own (guestpkg.buildroot.roots.GENCACHES) stay visible under it.  The
    request travels in the dummy's control file, never through a parser of options
    or of the shell.

    With *extra* sources, their lists and sources.list are put in first and taken
    out again at the end; with *private_cache*, the build's own downloads (bound at
    :data:`PRIVATE_CACHE_MOUNT`) are linked too."""
    dpkg_options = [item for option in LAYER_DPKG_OPTIONS
                    for item in ("-o", f"DPkg::Options::={option}")]
    archives = debcache.ARCHIVES_MOUNT
    caches = [debcache.CACHE_MOUNT] + ([PRIVATE_CACHE_MOUNT] if private_cache else [])
    links = "".join(f"find {cache} -maxdepth 1 -type f -name '*.deb' "
                    f"! -name '{DUMMY_PACKAGE}_*' -exec ln -sf -t {archives} {{}} +; "
                    for cache in caches)
    return ["sh", "-c",
            f'set -e; echo "{_MAN_DB_OFF}" | debconf-set-selections; ' +
            (extras.apt_prefix(extra) if extra else "") + links +
            f'apt-get -y -q "$@"; dpkg --purge {DUMMY_PACKAGE}; '
            f"find {archives} -maxdepth 1 -name '*.deb' -delete; " +
            (extras.apt_cleanup() if extra else "") +
            f"find /var/cache/apt -maxdepth 1 -name '*.bin' -newer {DEPS_MOUNT}/{dummy.name} "
            "-delete",
            "sh", *dpkg_options, *dummy_install_arguments(dummy)]


def variant(ctx: BuildContext) -> str:
    """The layer key's variant: the extra sources' identity, or ""."""
    return ctx.extras.identity if ctx.extras is not None else ""


def create_layer(ctx: BuildContext, key: str, relations: BuildRelations, dummy: Path,
                 actions: Sequence[str]) -> None:
    """Install the build dependencies in a fork with a disk upper and keep that upper
    as layer *key*.  The only step with network and capabilities; it runs apt from the
    root's own sources, never code of the package being built.  apt first downloads
    into the shared cache (:mod:`guestpkg.build.debcache`, network, the cache
    writable), then installs the dummy package without network from the cache
    (read-only), and dpkg purges the dummy again, so the layer holds the resolved set
    only."""
    base, config = ctx.base, ctx.config
    with layers.creating_layer(config, key) as tmp, contextlib.ExitStack() as stack:
        if tmp is None:
            ctx.log.note(f"build-dependency layer {key} was made by a concurrent build")
            return
        update_extra_lists(ctx)
        parent = over_subset_layer(ctx, stack, dummy, actions)
        ctx.log.note(f"installing {len(actions)} build dependencies into new layer {key}" +
                     (f" on layer {parent.key} ({len(layers.packages_of(parent.packages))} of them)"
                      if parent else ""))
        with fork(config.replace(fork_upper="disk"), base, parent.trees if parent else []) \
                as f, debcache.using_cache(config) as cache:
            deps = Bind(dummy.parent, DEPS_MOUNT)
            missing = [name for name in map(debcache.deb_file_name,
                                            sorted(layers.packages_of(actions)))
                       if name is not None and not (cache / name).is_file()]
            ctx.log.note(f"download cache {cache}: {len(missing)} of the .debs to fetch")
            private = private_cache(ctx)
            if missing:
                download_build_deps(ctx, f, dummy, cache, private)
            install = ctx.spec(layer_install_script(dummy, ctx.extras, private is not None),
                               fork=f, env=apt_env(throwaway_root=True), uid=0, gid=0,
                               capabilities=APT_CAPABILITIES, allow_setuid=True,
                               binds=(deps, *extra_binds(ctx),
                                      Bind(cache, debcache.CACHE_MOUNT),
                                      *([Bind(private, PRIVATE_CACHE_MOUNT)]
                                        if private is not None else [])))
            ctx.run(install, "installing the build dependencies failed")
            f.keep_upper(tmp / "tree")
        _drop_mount_point(tmp / "tree", base)
        layers.write_layer_metadata(tmp, layers.LayerMetadata(
            key=key, base=base.name, generation=base.generation, packages=tuple(actions),
            request=request_text(ctx, relations), created=time.time(),
            parent=parent.key if parent else "", variant=variant(ctx)))


def download_build_deps(ctx: BuildContext, f: Fork, dummy: Path, cache: Path,
                        private: Path | None) -> None:
    """``apt-get --download-only`` of the dummy in the layer's fork, with network,
    into the download cache (bound read-write as apt's archives directory), or with
    an extra repository into the build's *private* directory.

    Not run when the shared cache has every .deb already: apt takes a file in its
    archives directory by name and size without fetching it (pkgAcqArchive), in this
    step as in the installation (which sees the same files), so the run would fetch
    nothing and check nothing more, and it costs a sandbox and a full apt start."""
    deps = Bind(dummy.parent, DEPS_MOUNT)
    https = extras.https_options(ctx.extras) if ctx.extras is not None else []
    download_argv = with_extras(ctx, ["apt-get", "-y", "-q", "--download-only", *https,
                                      *dummy_install_arguments(dummy)])
    if private is None:
        download_binds = (deps, *extra_binds(ctx),
                          Bind(cache, debcache.ARCHIVES_MOUNT, readonly=False))
    else:
        # The shared cache read-only, linked into the private directory first.
        ctx.log.note(f"an extra repository: downloads go to {private}, not the "
                     "shared cache")
        download_argv = ["sh", "-c", f"find {debcache.CACHE_MOUNT} -maxdepth 1 "
                         f"-type f -name '*.deb' ! -name '{DUMMY_PACKAGE}_*' -exec "
                         f"ln -sf -t {debcache.ARCHIVES_MOUNT} {{}} +; "
                         'exec "$@"', "sh", *download_argv]
        download_binds = (deps, *extra_binds(ctx), Bind(cache, debcache.CACHE_MOUNT),
                          Bind(private, debcache.ARCHIVES_MOUNT, readonly=False))
    download = ctx.spec(download_argv, fork=f, env=apt_env(throwaway_root=True),
                        uid=0, gid=0, capabilities=APT_CAPABILITIES, network=True,
                        binds=download_binds)
    try:
        with debcache.downloading(ctx.config) if private is None else contextlib.nullcontext():
            ctx.run(download, "installing the build dependencies failed while downloading them")
    except BuildFailed as e:
        # The root's package lists are frozen in its generation; once the mirror
        # drops a version they name, downloads fail with 404.
        e.hint = (f"{e.hint}; if apt could not download packages, the buildroot's "
                  f"package lists are older than the mirror: run guestpkg "
                  f"buildroot update {ctx.base.name}")
        raise


def private_cache(ctx: BuildContext) -> Path | None:
    """The build's own download directory when an extra repository is in use."""
    if ctx.extras is None or not ctx.extras.repositories:
        return None
    directory = ctx.extras.directory / "archives"
    (directory / "partial").mkdir(mode=0o755, parents=True, exist_ok=True)
    return directory


def request_text(ctx: BuildContext, relations: BuildRelations) -> str:
    """The request as the resolution cache keys it: the relations, and the extra
    sources' identity when there are any (another extra package, another
    resolution)."""
    text = relations.canonical()
    return text + f"Extras: {ctx.extras.identity}\n" if ctx.extras is not None else text


def over_subset_layer(ctx: BuildContext, stack: contextlib.ExitStack, dummy: Path,
                      actions: Sequence[str]) -> Layer | None:
    """The cached layer to make the new one on (held in use on *stack*), or None:
    the closest subset (:func:`layers.closest_subset`), if apt, simulating the same
    request over it, installs exactly the rest of *actions*; over a different
    starting point apt may choose other alternatives, and then the layer is made from
    the base root."""
    made = ctx.extras
    candidate = layers.closest_subset(
        ctx.config, ctx.base.generation, actions, variant(ctx),
        base_variant=made.base_identity if made is not None else None,
        excluded_names=frozenset(deb.package for deb in made.debs) if made else frozenset())
    if candidate is None:
        return None
    parent = stack.enter_context(layers.use_layer(ctx.config, candidate.key))
    if parent is None:
        return None
    out = ctx.work / "resolve-over-layer.log"
    out.unlink(missing_ok=True)
    argv = ["apt-get", "-s", "-q", "-o", "Debug::NoLocking=1", *dummy_install_arguments(dummy)]
    with fork(ctx.config, ctx.base, parent.trees) as f:
        spec = ctx.spec(with_extras(ctx, argv), fork=f, env=apt_env(throwaway_root=True),
                        binds=(Bind(dummy.parent, DEPS_MOUNT), *extra_binds(ctx)))
        status = run_sandboxed(spec, log_path=out, check=False)
    rest = layers.parse_simulation(out.read_text(encoding="utf-8", errors="replace"))
    had = layers.packages_of(parent.packages)
    if status == 0 and had | set(rest) == layers.packages_of(actions) and not had & set(rest):
        return parent
    ctx.log.note(f"apt resolves differently over layer {parent.key}: made from the base root")
    return None


def _drop_mount_point(tree: Path, base: BaseRoot) -> None:
    """The sandbox made :data:`DEPS_MOUNT` and the download cache's mount point in the
    fork to bind them there; if the base root has no such directory, the layer should
    not have one either."""
    for mount_point in (DEPS_MOUNT, debcache.CACHE_MOUNT, EXTRA_MOUNT, PRIVATE_CACHE_MOUNT):
        if not os.path.lexists(base.path / mount_point.lstrip("/")):
            path = tree / mount_point.lstrip("/")
            if os.geteuid() != 0:  # the tree is owned by the user's subordinate ids
                run(as_namespace_root(["rmdir", "--ignore-fail-on-non-empty", "--",
                                       str(path)]), check=False, capture=True)
                continue
            with contextlib.suppress(OSError):
                os.rmdir(path)


@contextlib.contextmanager
def install_build_deps(ctx: BuildContext, relations: BuildRelations
                       ) -> Iterator[tuple[Layer | None, bool]]:
    """Yield the build-dependency layer to stack (None if the base root has them all)
    and whether it came from the cache, holding it in use meanwhile."""
    config, base, blog = ctx.config, ctx.base, ctx.log
    request = request_text(ctx, relations)
    blog.note("build dependencies: " + (", ".join(relations.depends) or "none") +
              ("; conflicts: " + ", ".join(relations.conflicts) if relations.conflicts else ""))
    made: list[Path] = []

    def dummy() -> Path:
        if not made:
            made.append(write_dummy_package(relations, ctx.host_arch, ctx.work))
        return made[0]

    actions = layers.cached_resolution(config, base.generation, request)
    if not relations.depends and not relations.conflicts:
        actions = []
    elif actions is None:
        actions = simulate_build_deps(ctx, dummy())
        layers.store_resolution(config, base.generation, request, actions)
    else:
        blog.note(f"resolved before on this base root generation: {len(actions)} packages")
    if not actions:
        blog.note("the base root has every build dependency already")
        yield None, False
        return
    key = layers.layer_key(base.generation, actions, variant(ctx))
    created = False
    for _attempt in range(3):
        with layers.use_layer(config, key) as layer:
            if layer is not None:
                if not created:
                    blog.note(f"using cached build-dependency layer {key}")
                yield layer, not created
                return
        create_layer(ctx, key, relations, dummy(), actions)
        created = True
    raise SystemStateError(f"build-dependency layer {key} keeps disappearing",
                           hint="is a guestpkg cache clean running in a loop?")
