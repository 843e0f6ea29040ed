# SPDX-License-Identifier: GPL-2.0-or-later
"""The package's imports point one way (docs/architecture.md, "The layers"):
commands -> host -> fetch, build, recipe -> buildroot -> sandbox, with the pure layers
(debian, dcfpkg) and the base modules below them all, and no cycle."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "guestpkg"

BASE = {"guestpkg", "guestpkg.config", "guestpkg.errors", "guestpkg.run", "guestpkg.fsutil",
        "guestpkg.log", "guestpkg.text", "guestpkg.manpage"}
PURE_BASE = {"guestpkg.errors", "guestpkg.fsutil", "guestpkg.text"}
#: What each layer may import besides itself.
ALLOWED: dict[str, set[str]] = {
    "guestpkg.cli": BASE | {"guestpkg.commands"},
    "guestpkg.__main__": {"guestpkg.cli"},
    "guestpkg.commands": BASE | {"guestpkg.host", "guestpkg.fetch", "guestpkg.build",
                                 "guestpkg.buildroot", "guestpkg.sandbox", "guestpkg.debian",
                                 "guestpkg.recipe", "guestpkg.dcfpkg", "guestpkg.buildhost"},
    "guestpkg.host": BASE | {"guestpkg.fetch", "guestpkg.build", "guestpkg.buildroot",
                             "guestpkg.sandbox", "guestpkg.debian", "guestpkg.recipe",
                             "guestpkg.dcfpkg"},
    # recipe builds spread over machines: the recipe builder, its scheduler and the
    # trust store, over a Celery broker
    "guestpkg.buildhost": BASE | {"guestpkg.build", "guestpkg.recipe", "guestpkg.buildroot",
                                  "guestpkg.sandbox", "guestpkg.debian", "guestpkg.dcfpkg"},
    "guestpkg.fetch": BASE | {"guestpkg.debian"},
    "guestpkg.build": BASE | {"guestpkg.buildroot", "guestpkg.sandbox", "guestpkg.debian",
                              "guestpkg.recipe", "guestpkg.dcfpkg"},
    "guestpkg.buildroot": BASE | {"guestpkg.sandbox", "guestpkg.debian"},
    "guestpkg.sandbox": BASE,
    "guestpkg.dcfpkg": PURE_BASE | {"guestpkg.debian"},
    # recipe files, trees, graph and keys are pure; the bootstrap set is made in a
    # buildroot, as a build is
    "guestpkg.recipe": BASE | {"guestpkg.buildroot", "guestpkg.sandbox", "guestpkg.debian",
                               "guestpkg.dcfpkg"},
    "guestpkg.debian": PURE_BASE,
    **{name: BASE for name in BASE},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports(path: Path) -> list[tuple[str, ast.stmt]]:
    """The guestpkg modules *path* imports, each with its statement.  ``from pkg
    import submodule`` imports the submodule (and runs pkg/__init__, which is no
    dependency of ours to count)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(a.name, node) for a in node.names if a.name in MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            found += [(s, node) for s in subs if s in MODULES]
            if node.module in MODULES and any(s not in MODULES for s in subs):
                found.append((node.module, node))
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in MODULES.items():
        for target, _ in imports(path):
            if target != name:
                edges[name].add(target)
    return edges


def test_every_layer_is_known() -> None:
    unknown = sorted({layer(m) for m in MODULES} - set(ALLOWED))
    assert unknown == [], "add the new package to ALLOWED and docs/architecture.md"


def test_imports_point_down() -> None:
    wrong = sorted(f"{source} imports {target}"
                   for source, targets in graph().items() for target in targets
                   if layer(target) != layer(source)
                   and layer(target) not in ALLOWED.get(layer(source), set()))
    assert wrong == []


def test_no_import_cycle() -> None:
    edges = graph()
    cycles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(MODULES):
        if node not in index:
            visit(node)
    assert cycles == []


def test_host_imports_are_plain() -> None:
    # An import inside a function hides a dependency (and, here, used to hide a
    # cycle between host.build and host.lifecycle).
    hidden = sorted(f"{name}:{node.lineno} {target}"
                    for name, path in MODULES.items() if layer(name) == "guestpkg.host"
                    for target, node in imports(path) if node.col_offset > 0)
    assert hidden == []
