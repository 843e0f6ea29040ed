# SPDX-License-Identifier: GPL-2.0-or-later
"""``guestpkg recipe lint|list|graph``: check, list and draw a recipe tree."""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from guestpkg import config as settings
from guestpkg.config import Config
from guestpkg.errors import InputError, RecipeError, UsageError
from guestpkg.recipe import graph as rgraph
from guestpkg.recipe.bootstrap import BootstrapSet
from guestpkg.recipe.files import ARCHES
from guestpkg.recipe.tree import Recipe, RecipeTree, load_tree

DESCRIPTION = """\
Work with a recipe tree: directories NAME/VERSION/RELEASE/ holding the files type,
arch, meta, build and optionally builddeps, rundeps, filter and sha256sums (see
docs/recipes.md and guestpkg(1)).  The tree is --recipes DIR (setting: recipes).

  lint                     check every file and the dependency graph of each
                           architecture; print every problem as path:line: message
  list                     one line per recipe: name, version-release, type, arches
  graph [RECIPE...]        the recipes and everything they need, by build level
                           (--dot: as a Graphviz digraph, edges from input to user)
  build [RECIPE...]        build the recipes and what they need, inputs first, into
                           <cachedir>/dcfpkg/ (-j N in parallel; --keep-going);
                           a request whose cache key is cached builds nothing;
                           --buildhosts: also on the buildhosts (guestpkg buildhost)
  check RECIPE...          build, then build each RECIPE twice more with another build
                           path and job count, and compare the three packages
                           (diffoscope into the log when they differ and it is there)
  install RECIPE... --root DIR
                           put the built packages and their rundeps into DIR, each
                           accepted by the trust policy first (repository: the
                           recipe-repository setting); nothing is written if any is
                           refused
  bootstrap [--arch ARCH]  make the bootstrap set: Debian's Essential set and
                           toolchain (mmdebstrap), imported as one dcfpkg per Debian
                           package with its provenance; --update makes it again

RECIPE is NAME, NAME/VERSION or NAME/VERSION/RELEASE (the newest match); without
one, graph shows the newest version of every recipe that builds for --arch.
"""


def host_arch() -> str:
    """The recipe architecture this machine runs natively."""
    return "x86_64" if platform.machine() == "x86_64" else "i586"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lint = sub.add_parser("lint", help="check the whole tree")
    listing = sub.add_parser("list", help="list the recipes")
    listing.add_argument("--arch", choices=ARCHES, help="only recipes building for ARCH")
    graph = sub.add_parser("graph", help="print the dependency graph")
    graph.add_argument("recipes_requested", metavar="RECIPE", nargs="*")
    graph.add_argument("--arch", choices=ARCHES, default=None,
                       help="the architecture to resolve for (default: this machine's)")
    graph.add_argument("--dot", action="store_true", help="print Graphviz dot")
    build = sub.add_parser(
        "build", help="build recipes into dcfpkgs",
        description="Build recipes and what they need into dcfpkgs, inputs first.  "
        "First removes what builds killed mid-way left (work directories, results being "
        "written or received; see guestpkg cache list), never a running build's.")
    build.add_argument("recipes_requested", metavar="RECIPE", nargs="*")
    build.add_argument("--arch", choices=ARCHES, default=None,
                       help="the architecture to build for (default: this machine's)")
    build.add_argument("-j", "--parallel", type=int, default=1, metavar="N",
                       help="recipes built at the same time (default: 1)")
    build.add_argument("--keep-going", action="store_true",
                       help="after a failure, build everything that does not need it")
    build.add_argument("--sign", type=Path, metavar="KEY",
                       help="sign every result into the trust store with this .key file")
    build.add_argument("--buildhosts", dest="on_buildhosts", nargs="?", const="",
                       default=None, metavar="FILE",
                       help="also build on the buildhosts of FILE (default: the buildhosts "
                       "setting; see guestpkg buildhost); -j N is then the local slots "
                       "(0: none)")
    check = sub.add_parser("check", help="build recipes twice and compare")
    check.add_argument("recipes_requested", metavar="RECIPE", nargs="+")
    check.add_argument("--arch", choices=ARCHES, default=None,
                       help="the architecture to build for (default: this machine's)")
    install = sub.add_parser("install", help="install built packages into a root")
    install.add_argument("recipes_requested", metavar="RECIPE", nargs="+")
    install.add_argument("--root", type=Path, required=True, help="the root directory")
    install.add_argument("--arch", choices=ARCHES, default=None,
                         help="the architecture (default: this machine's)")
    bootstrap = sub.add_parser("bootstrap", help="make the seed packages")
    bootstrap.add_argument("--arch", choices=ARCHES, default=None,
                           help="the architecture (default: this machine's)")
    bootstrap.add_argument("--update", action="store_true",
                           help="make a new set even if one exists")
    for action in (lint, listing, graph, build, check, install, bootstrap):
        settings.add_options(action, "recipe", default=argparse.SUPPRESS)


def checked_tree(config: Config) -> RecipeTree:
    """The tree, refused as a whole if anything in it is wrong."""
    tree = load_tree(config.recipes)
    problems = rgraph.lint(tree)
    if problems:
        raise RecipeError(problems, config.recipes)
    return tree


def run(config: Config, args: argparse.Namespace) -> int:
    if args.action == "lint":
        return lint(config)
    if args.action == "list":
        tree = load_tree(config.recipes)
        for recipe in tree.recipes:
            if args.arch is None or args.arch in recipe.arches:
                print(f"{recipe.name:20} {recipe.full_version:14} {recipe.type:6} "
                      f"{','.join(recipe.arches):12} {recipe.description}")
        if tree.problems:
            raise RecipeError(list(tree.problems), config.recipes)
        return 0
    if args.action == "bootstrap":
        return bootstrap(config, args.arch or host_arch(), args.update)
    tree = checked_tree(config)
    arch = args.arch or host_arch()
    requested = ([tree.find(spec) for spec in args.recipes_requested]
                 or rgraph.default_request(tree, arch))
    resolved = rgraph.resolve(tree, arch, requested)
    if args.action == "build" and args.on_buildhosts is not None:
        from guestpkg.commands.buildhost import build_on_buildhosts

        if args.on_buildhosts:
            config = config.replace(buildhosts=Path(args.on_buildhosts))
        return build_on_buildhosts(config, resolved, current_set(config, arch), args.parallel,
                                   args.keep_going, args.sign, sign)
    if args.action == "build":
        return build(config, resolved, args.parallel, args.keep_going, args.sign)
    if args.action == "install":
        return install(config, tree, resolved, args.root)
    if args.action == "check":
        return check(config, resolved)
    print(rgraph.render_dot(resolved) if args.dot else rgraph.render_text(resolved), end="")
    return 0


def lint(config: Config) -> int:
    tree = load_tree(config.recipes)
    problems = rgraph.lint(tree)
    for problem in problems:
        print(problem)
    if problems:
        raise InputError(f"{len(problems)} problem(s) in the recipe tree {config.recipes}",
                         hint="fix each path:line above, then run guestpkg recipe lint again")
    print(f"{config.recipes}: {len(tree.recipes)} recipes, no problems")
    return 0


def bootstrap(config: Config, arch: str, update: bool) -> int:
    from guestpkg.errors import SystemStateError
    from guestpkg.recipe.bootstrap import make_set, open_set

    try:
        if not update:
            found = open_set(config, arch)
            print(f"bootstrap set {found.id} for {arch}: {len(found.members)} packages "
                  f"in {found.directory} (made earlier; --update makes a new one)")
            return 0
    except SystemStateError:
        pass
    made = make_set(config, arch)
    print(f"bootstrap set {made.id} for {arch}: {len(made.members)} packages "
          f"in {made.directory}")
    return 0


def current_set(config: Config, arch: str) -> BootstrapSet:
    """The bootstrap set, made first if there is none (a newcomer's first build)."""
    from guestpkg.errors import SystemStateError
    from guestpkg.recipe.bootstrap import make_set, open_set

    try:
        return open_set(config, arch)
    except SystemStateError:
        print(f"no bootstrap set for {arch} yet: making it first (guestpkg recipe "
              "bootstrap)", flush=True)
        return make_set(config, arch)


def build(config: Config, graph: rgraph.Graph, parallel: int, keep_going: bool,
          sign_key: Path | None = None) -> int:
    from guestpkg.build.schedule import FAILED, build_graph
    from guestpkg.errors import BuildFailed

    if parallel < 1:
        raise UsageError("-j needs a positive number")
    bootstrap = current_set(config, graph.arch)

    progress = Progress(sys.stdout.isatty())
    # every build gets every CPU as JOBS, as Nix's cores=0 does: a recipe's configure
    # runs on one CPU while another's make fills the rest, and the last builds of a
    # chain, which run alone, keep the whole machine (a split left it idle)
    with progress.ticking():
        outcomes = build_graph(config, graph, bootstrap, jobs=parallel,
                               keep_going=keep_going, progress=progress,
                               build_jobs=config.build_jobs)
    counts = {state: sum(o.state == state for o in outcomes)
              for state in ("built", "cached", "failed", "skipped")}
    print(", ".join(f"{state} {count}" for state, count in counts.items()))
    failed = [o for o in outcomes if o.state == FAILED]
    if failed:
        first = failed[0]
        raise BuildFailed(f"{len(failed)} recipe(s) failed; first: {first.detail}", None)
    if sign_key is not None:
        sign(config, sign_key, [o.result.path for o in outcomes if o.result is not None])
    return 0


class Progress:
    """One line per event; on a terminal, the decided recipes scroll by and one line
    per running recipe stays at the bottom, redrawn at every event and every second
    while :meth:`ticking` (its elapsed time counts up)."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal
        self.running: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()

    def __call__(self, node: rgraph.Node, state: str, detail: str) -> None:
        label = f"{node.recipe.id} ({node.arch})"
        if not self.terminal:
            print(f"{state:8} {label}: {detail}", flush=True)
            return
        with self.lock:
            self._clear()
            if state == "building":
                self.running[node.key] = (label, time.monotonic())
            else:
                self.running.pop(node.key, None)
                sys.stdout.write(f"{state:8} {label}: {detail}\n")
            self._draw()

    def tick(self) -> None:
        with self.lock:
            if self.running:
                self._clear()
                self._draw()

    @contextlib.contextmanager
    def ticking(self, interval_s: float = 1.0) -> Iterator[None]:
        """Redraw the running lines every *interval_s* on a terminal (a thread)."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval_s):
                self.tick()

        thread = threading.Thread(target=loop, daemon=True) if self.terminal else None
        if thread is not None:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join()

    def _clear(self) -> None:
        if self.running:
            sys.stdout.write(f"\x1b[{len(self.running)}F\x1b[J")  # up, and clear below

    def _draw(self) -> None:
        now = time.monotonic()
        for running, started in self.running.values():
            sys.stdout.write(f"building {running} ({now - started:.0f} s)\n")
        sys.stdout.flush()


def sign(config: Config, key_path: Path, results: list[Path]) -> None:
    from guestpkg.commands.dcfpkg import policy, store
    from guestpkg.dcfpkg.keys import read_secret_key
    from guestpkg.recipe.publish import sign_results

    archive = sign_results(store(config), read_secret_key(key_path), results,
                           config.recipe_repository, int(time.time()),
                           int(config.recipe_signature_lifetime), policy(config))
    print(f"signed {len(results)} results into {config.recipe_repository}, archive version "
          f"{archive.archive_version} ({len(archive.signatures)} signatures)")


def install(config: Config, tree: RecipeTree, graph: rgraph.Graph, root: Path) -> int:
    from guestpkg.commands.dcfpkg import policy, store
    from guestpkg.recipe import cache
    from guestpkg.recipe.publish import install as install_packages

    wanted: list[Recipe] = []
    for key in graph.requested:
        recipe = graph.nodes[key].recipe
        for needed in [*rgraph.runtime_closure(tree, recipe, graph.arch), recipe]:
            if needed not in wanted:
                wanted.append(needed)
    packages = []
    for recipe in wanted:
        path = cache.result_path(config, recipe, graph.arch)
        if not path.is_file():
            raise UsageError(f"{recipe.id} ({graph.arch}) is not built",
                             hint=f"guestpkg recipe build {recipe.id} --arch {graph.arch}")
        packages.append(path)
    verdicts = install_packages(store(config), packages, root, config.recipe_repository,
                                int(time.time()), policy(config))
    for path, verdict in zip(packages, verdicts, strict=True):
        print(f"installed {path.name} into {root}: signed by "
              + ", ".join(f"{key} ({level})" for key, level in verdict.signers))
    return 0


def check(config: Config, graph: rgraph.Graph) -> int:
    """Build (or find cached) everything, then rebuild each requested recipe twice."""
    from guestpkg.build.schedule import check_reproducible, plan_build
    from guestpkg.recipe import cache

    build(config, graph, 1, False)
    bootstrap = current_set(config, graph.arch)
    results: dict[str, cache.Result] = {}
    for node in graph.order():  # all cached now: the results the checks build on
        ctx = plan_build(config, graph, node, bootstrap, results, 1)
        hit = cache.cached(ctx.result, ctx.key)
        assert hit is not None, node.key
        results[node.key] = hit
    for key in graph.requested:
        digest = check_reproducible(config, graph, graph.nodes[key], bootstrap, results,
                                    lambda line: print(line, flush=True))
        print(f"reproducible {graph.nodes[key].recipe.id} ({graph.arch}): sha256 {digest}")
    return 0
