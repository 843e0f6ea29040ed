# SPDX-License-Identifier: GPL-2.0-or-later
"""The dependency graph of recipe builds: resolution, cycles, build levels, output.

A node is a recipe built for one architecture.  A recipe *needs*, before it can
build, the recipes its ``builddeps`` name (``zlib``, ``cc from gcc`` and ``latest
curl`` all resolve to the newest recipe of that name in the tree) and, transitively,
the ``rundeps`` of each of those: its build chroot holds their packages too.  Its own
``rundeps`` are not needed to build it.  Every problem is reported with the
``path:line`` of the dependency line that caused it; a cycle is reported with its
whole path.  The levels are the longest-path layering: level 0 needs nothing, level
*n* needs something at level *n-1*; recipes on the same level can build in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from guestpkg.errors import RecipeError
from guestpkg.recipe.files import ARCHES, Dependency, DepKind
from guestpkg.recipe.tree import Recipe, RecipeTree

#: The longest chain of needs followed: deeper is surely a mistake, and the
#: recursion that follows it must stay bounded on hostile trees.
MAX_CHAIN = 200


@dataclass(frozen=True)
class Node:
    """A recipe built for one architecture."""

    recipe: Recipe
    arch: str

    @property
    def key(self) -> str:
        return f"{self.recipe.id}:{self.arch}"

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True)
class Need:
    """Why a node needs another one built first: *dep* is the line that says so, a
    ``builddeps`` line of the node itself or a ``rundeps`` line of something it needs."""

    target: str          # the node key
    dep: Dependency
    runtime: bool        # reached through rundeps

    @property
    def in_key(self) -> bool:
        """Whether the target's digest is part of the needing node's cache key."""
        return self.dep.kind is not DepKind.LATEST


@dataclass
class Graph:
    """The nodes that the requested recipes need, and their needs."""

    arch: str
    requested: tuple[str, ...]
    nodes: dict[str, Node] = field(default_factory=dict)
    needs: dict[str, tuple[Need, ...]] = field(default_factory=dict)

    def levels(self) -> list[list[Node]]:
        """Nodes by level (longest path to something that needs nothing), each level
        sorted by key."""
        level: dict[str, int] = {}

        def visit(key: str) -> int:
            if key not in level:
                level[key] = 1 + max((visit(n.target) for n in self.needs[key]), default=-1)
            return level[key]

        for key in self.nodes:
            visit(key)
        out: list[list[Node]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for key in sorted(self.nodes):
            out[level[key]].append(self.nodes[key])
        return out

    def order(self) -> list[Node]:
        """A topological order: inputs before what needs them."""
        return [node for level in self.levels() for node in level]

    def remaining_work(self, cost: Callable[[Node], float]) -> dict[str, float]:
        """Per node, the *cost* of the longest chain from it to the end of the build,
        itself included.  Starting the ready node with the most remaining work first
        is critical-path list scheduling (ninja's, from its log of build times): the
        chain that bounds a parallel build starts as early as it can, and short
        independent builds fill the gaps."""
        dependents: dict[str, list[str]] = {key: [] for key in self.nodes}
        for key, needs in self.needs.items():
            for need in needs:
                dependents[need.target].append(key)
        work: dict[str, float] = {}
        for node in reversed(self.order()):
            work[node.key] = cost(node) + max((work[d] for d in dependents[node.key]),
                                              default=0.0)
        return work

    def dependents(self, key: str) -> set[str]:
        """Every node that needs *key*, directly or not."""
        found: set[str] = set()
        changed = True
        while changed:
            changed = False
            for other, needs in self.needs.items():
                if other not in found and any(n.target == key or n.target in found
                                              for n in needs):
                    found.add(other)
                    changed = True
        return found

    def critical_path(self) -> list[Node]:
        """The longest chain of needs, from the first to build to the last."""
        levels = self.levels()
        if not levels:
            return []
        chain = [levels[-1][0]]
        depth = {node.key: i for i, lvl in enumerate(levels) for node in lvl}
        while self.needs[chain[-1].key]:
            deepest = max(self.needs[chain[-1].key], key=lambda n: (depth[n.target], n.target))
            chain.append(self.nodes[deepest.target])
        return list(reversed(chain))


class _Resolver:
    def __init__(self, tree: RecipeTree, arch: str) -> None:
        self.tree = tree
        self.arch = arch
        self.problems: list[str] = []
        self.graph = Graph(arch, ())

    def target(self, dep: Dependency) -> Recipe | None:
        recipe = self.tree.newest(dep.recipe)
        if recipe is None:
            if dep.recipe not in self.tree.broken:
                self.problems.append(f"{dep.where}: no recipe provides {dep} "
                                     f"(no {dep.recipe}/VERSION/RELEASE/ in {self.tree.root})")
            return None
        if self.arch not in recipe.arches:
            self.problems.append(f"{dep.where}: {recipe.id} does not build for {self.arch} "
                                 f"(its arch file lists {', '.join(recipe.arches)})")
            return None
        return recipe

    def runtime_closure(self, recipe: Recipe) -> list[tuple[Recipe, Dependency]]:
        """The rundeps of *recipe*, transitively (rundep cycles are fine at run time)."""
        out: list[tuple[Recipe, Dependency]] = []
        seen = {recipe.id}
        todo = [recipe]
        while todo:
            for dep in todo.pop(0).rundeps:
                target = self.target(dep)
                if target is not None and target.id not in seen:
                    seen.add(target.id)
                    out.append((target, dep))
                    todo.append(target)
        return out

    def add(self, recipe: Recipe, depth: int = 0) -> str:
        node = Node(recipe, self.arch)
        if node.key in self.graph.nodes:
            return node.key
        if depth > MAX_CHAIN:
            self.problems.append(f"{recipe.directory}: dependency chain longer than "
                                 f"{MAX_CHAIN} recipes")
            return node.key
        self.graph.nodes[node.key] = node
        self.graph.needs[node.key] = ()  # placeholder while its needs are resolved
        needs: dict[str, Need] = {}
        for dep in recipe.builddeps:
            target = self.target(dep)
            if target is None:
                continue
            needs.setdefault(self.add(target, depth + 1),
                             Need(f"{target.id}:{self.arch}", dep, False))
            for runtime, rdep in self.runtime_closure(target):
                key = self.add(runtime, depth + 1)
                needs.setdefault(key, Need(key, rdep, True))
        self.graph.needs[node.key] = tuple(needs[k] for k in sorted(needs))
        return node.key

    def check_cycles(self) -> None:
        state: dict[str, int] = {}  # 1: on the current path, 2: done
        path: list[tuple[str, Need | None]] = []

        def visit(key: str, via: Need | None) -> None:
            state[key] = 1
            path.append((key, via))
            for need in self.graph.needs.get(key, ()):  # a node past MAX_CHAIN has none
                if state.get(need.target) == 1:
                    start = next(i for i, (k, _) in enumerate(path) if k == need.target)
                    cycle = [k for k, _ in path[start:]] + [need.target]
                    first = path[start + 1][1] if start + 1 < len(path) else need
                    assert first is not None
                    self.problems.append(f"{first.dep.where}: dependency cycle: "
                                         + " -> ".join(cycle))
                elif need.target not in state:
                    visit(need.target, need)
            path.pop()
            state[key] = 2

        for key in sorted(self.graph.nodes):
            if key not in state:
                visit(key, None)


def resolve(tree: RecipeTree, arch: str, requested: Iterable[Recipe]) -> Graph:
    """The graph of *requested* (built for *arch*) and everything they need; raises
    :class:`RecipeError` with every problem found."""
    resolver = _Resolver(tree, arch)
    keys = []
    for recipe in requested:
        if arch not in recipe.arches:
            resolver.problems.append(f"{recipe.directory}/arch: {recipe.id} does not build "
                                     f"for {arch}")
            continue
        keys.append(resolver.add(recipe))
    resolver.graph.requested = tuple(keys)
    resolver.check_cycles()
    if resolver.problems:
        raise RecipeError(_unique(resolver.problems), tree.root)
    return resolver.graph


def lint(tree: RecipeTree) -> list[str]:
    """Every problem of the tree: its files', then each architecture's graph of every
    recipe that builds for it."""
    problems = list(tree.problems)
    for arch in ARCHES:
        try:
            resolve(tree, arch, [r for r in tree.recipes if arch in r.arches])
        except RecipeError as e:
            problems += e.problems
    return _unique(problems)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def runtime_closure(tree: RecipeTree, recipe: Recipe, arch: str) -> list[Recipe]:
    """*recipe*'s rundeps, transitively: what must be installed with it."""
    resolver = _Resolver(tree, arch)
    closure = [target for target, _ in resolver.runtime_closure(recipe)]
    if resolver.problems:
        raise RecipeError(_unique(resolver.problems), tree.root)
    return closure


def default_request(tree: RecipeTree, arch: str) -> list[Recipe]:
    """What a command without recipe names works on: the newest version of every
    recipe that builds for *arch*."""
    names = sorted({r.name for r in tree.recipes})
    newest = [tree.newest(name) for name in names]
    return [r for r in newest if r is not None and arch in r.arches]


def render_text(graph: Graph) -> str:
    """The graph by levels, one node a line with what it needs."""
    out = []
    for number, level in enumerate(graph.levels()):
        out.append(f"level {number}:")
        for node in level:
            recipe = node.recipe
            needs = [_need_label(graph, n) for n in graph.needs[node.key]]
            line = f"  {recipe.id} ({recipe.type})"
            out.append(line + (f" <- {', '.join(needs)}" if needs else ""))
    return "\n".join(out) + "\n"


def _need_label(graph: Graph, need: Need) -> str:
    target = graph.nodes[need.target].recipe.id
    if need.runtime:
        return f"{target} (rundep)"
    if need.dep.kind is DepKind.FROM:
        return f"{target} ({need.dep.name} from)"
    if need.dep.kind is DepKind.LATEST:
        return f"{target} (latest)"
    return target


def render_dot(graph: Graph) -> str:
    """Graphviz: an edge from each input to what needs it, in build order."""
    out = [f'digraph "recipes-{graph.arch}" {{', "  rankdir=LR;",
           '  node [shape=box, fontname="monospace"];']
    for node in graph.order():
        recipe = node.recipe
        style = ", style=dashed" if recipe.type == "source" else ""
        out.append(f"  {_quote(recipe.id)} [label={_quote(recipe.id + chr(10) + recipe.type)}"
                   f"{style}];")
    for key in sorted(graph.needs):
        for need in graph.needs[key]:
            attrs = []
            if need.runtime:
                attrs.append("style=dotted")
            if need.dep.kind is DepKind.FROM:
                attrs.append(f"label={_quote(need.dep.name + ' from')}")
            elif need.dep.kind is DepKind.LATEST:
                attrs.append('label="latest"')
            suffix = f" [{', '.join(attrs)}]" if attrs else ""
            out.append(f"  {_quote(graph.nodes[need.target].recipe.id)} -> "
                       f"{_quote(graph.nodes[key].recipe.id)}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"


def _quote(text: str) -> str:
    """A DOT string (names were checked, but quote as if they were not)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
