# SPDX-License-Identifier: GPL-2.0-or-later
"""Reading a recipe tree from disk: ``<name>/<version>/<release>/`` directories.

The tree is hostile input, read the way the dcfpkg reader reads a package: every file
is opened relative to its directory's descriptor with ``O_NOFOLLOW``, only directories
and regular files are accepted (a symlink, device, FIFO or socket anywhere is an error,
so nothing outside the tree is ever read or later copied into a build), names are
printable ASCII, and the number of files, their sizes and the depth are capped.  Each
recipe is parsed by :mod:`guestpkg.recipe.files` and :mod:`guestpkg.recipe.meta`;
every problem is collected with its ``path:line`` so ``guestpkg recipe lint`` can
report them all at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from guestpkg.debian import version as debversion
from guestpkg.errors import InputError, ParseError
from guestpkg.recipe import files as rf
from guestpkg.recipe.meta import parse_meta

#: The files a recipe's top directory may name with a meaning; anything else there or
#: below is a resource (a patch, a config) that the build finds in its copy.
REQUIRED = ("type", "arch", "meta", "build")
OPTIONAL = ("builddeps", "rundeps", "filter", "sha256sums")

MAX_FILES = 1000            # per recipe, directories included
MAX_DEPTH = 8               # below the recipe directory
MAX_FILE_BYTES = 64 << 20   # one resource
MAX_RECIPE_BYTES = 256 << 20
MAX_RECIPES = 10_000

_ENTRY_NAME = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._+~@%,=:-]{1,255}$")
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_DIRECTORY


@dataclass(frozen=True)
class RecipeFile:
    """One entry of a recipe directory, as the cache key and the build copy see it."""

    path: str            # relative to the recipe directory, '/'-separated
    is_dir: bool
    executable: bool
    size: int
    sha256: str          # "" for a directory


@dataclass(frozen=True)
class Recipe:
    """A parsed, checked recipe.  It may still name a recipe that does not exist: the
    graph (:mod:`guestpkg.recipe.graph`) checks the tree as a whole."""

    name: str
    version: str
    release: str
    directory: Path
    type: str
    arches: tuple[str, ...]
    builddeps: tuple[rf.Dependency, ...]
    rundeps: tuple[rf.Dependency, ...]
    meta: tuple[tuple[str, str], ...]
    filter: tuple[rf.Glob, ...]
    pins: tuple[rf.Pin, ...]
    files: tuple[RecipeFile, ...] = field(repr=False)

    @property
    def id(self) -> str:
        return f"{self.name}/{self.version}/{self.release}"

    @property
    def full_version(self) -> str:
        return f"{self.version}-{self.release}"

    @property
    def description(self) -> str:
        return dict(self.meta).get("Description", "").split("\n", 1)[0]

    def __str__(self) -> str:
        return self.id


@dataclass(frozen=True)
class RecipeTree:
    """Every recipe of a tree, and every problem found reading it."""

    root: Path
    recipes: tuple[Recipe, ...]
    problems: tuple[str, ...] = ()
    #: names with a recipe directory that failed to parse: a dependency on one of them
    #: is not reported again as "no recipe provides"
    broken: frozenset[str] = frozenset()

    def versions(self, name: str) -> list[Recipe]:
        """The recipes named *name*, newest first (dpkg's order of version-release)."""
        found = [r for r in self.recipes if r.name == name]
        return sorted(found, key=lambda r: debversion.parse(r.full_version), reverse=True)

    def newest(self, name: str) -> Recipe | None:
        found = self.versions(name)
        return found[0] if found else None

    def find(self, spec: str) -> Recipe:
        """``name``, ``name/version`` or ``name/version/release``: the newest match."""
        parts = spec.strip("/").split("/")
        if len(parts) > 3 or not rf.NAME.match(parts[0]):
            raise InputError(f"{rf.shown(spec)} is not a recipe",
                             hint="name recipes as NAME, NAME/VERSION or NAME/VERSION/RELEASE")
        found = [r for r in self.versions(parts[0])
                 if parts[1:] == [r.version, r.release][:len(parts) - 1]]
        if not found:
            raise InputError(f"no recipe {spec} in {self.root}",
                             hint=f"guestpkg recipe list --recipes {self.root}")
        return found[0]


def load_tree(root: Path) -> RecipeTree:
    """Read and parse every recipe under *root*; problems are collected, not raised."""
    problems: list[str] = []
    recipes: list[Recipe] = []
    broken: set[str] = set()
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise InputError(f"{root}: cannot read the recipe tree: {e.strerror}",
                         hint="point --recipes at a directory of NAME/VERSION/RELEASE/ "
                         "recipes") from None
    try:
        for name, version, release, fd in _recipe_dirs(top, root, problems):
            directory = root / name / version / release
            try:
                recipes.append(_load_recipe(fd, directory, name, version, release))
            except ParseError as e:
                problems.append(e.message)
                broken.add(name)
            finally:
                os.close(fd)
            if len(recipes) > MAX_RECIPES:
                raise InputError(f"{root}: more than {MAX_RECIPES} recipes")
    finally:
        os.close(top)
    recipes.sort(key=lambda r: (r.name, debversion.parse(r.full_version)))
    return RecipeTree(root, tuple(recipes), tuple(problems), frozenset(broken))


def _subdirs(fd: int, where: Path, pattern: re.Pattern[str], what: str,
             problems: list[str], *, skip_hidden: bool = False) -> Iterator[tuple[str, int]]:
    """The directories in *fd* whose names match *pattern*, opened; anything else is a
    problem."""
    for name in sorted(os.listdir(fd)):
        if skip_hidden and name.startswith("."):
            continue  # .git and the like, beside the recipes
        shown_path = where / rf.shown(name, 80)[1:-1]
        if not pattern.match(name):
            problems.append(f"{shown_path}: not a {what} (expected NAME/VERSION/RELEASE/)")
            continue
        try:
            yield name, os.open(name, _DIR_FLAGS, dir_fd=fd)
        except OSError:
            problems.append(f"{where / name}: not a directory (a {what} must be a "
                            "directory; symlinks are not followed)")


def _recipe_dirs(top: int, root: Path,
                 problems: list[str]) -> Iterator[tuple[str, str, str, int]]:
    for name, name_fd in _subdirs(top, root, rf.NAME, "recipe name", problems,
                                  skip_hidden=True):
        try:
            for version, version_fd in _subdirs(name_fd, root / name, rf.VERSION,
                                                "version", problems):
                try:
                    for release, fd in _subdirs(version_fd, root / name / version,
                                                rf.RELEASE, "release", problems):
                        yield name, version, release, fd
                finally:
                    os.close(version_fd)
        finally:
            os.close(name_fd)


def _load_recipe(fd: int, directory: Path, name: str, version: str,
                 release: str) -> Recipe:
    contents: dict[str, bytes] = {}
    entries = list(_walk(fd, directory, "", 0, contents, [0]))
    if sum(e.size for e in entries) > MAX_RECIPE_BYTES:
        raise ParseError(f"larger than {MAX_RECIPE_BYTES >> 20} MiB", directory)
    for required in REQUIRED:
        if required not in contents:
            raise ParseError(f"no '{required}' file (every recipe has "
                             + ", ".join(REQUIRED) + ")", directory)
    build = next(e for e in entries if e.path == "build")
    if not build.executable:
        raise ParseError("not executable (chmod +x)", directory / "build")

    kind = rf.parse_type(contents["type"], str(directory / "type"))
    builddeps = rf.parse_builddeps(contents.get("builddeps", b""),
                                   str(directory / "builddeps"))
    if kind == "binary":
        for dep in builddeps:
            if dep.kind is rf.DepKind.LATEST:
                raise ParseError(f"'latest {dep.name}' is only allowed in source recipes "
                                 "(a binary recipe's inputs are fixed by its cache key)",
                                 dep.path, dep.line)
    for dep in builddeps:
        if dep.recipe == name:
            raise ParseError(f"{name} depends on itself", dep.path, dep.line)
    pins: tuple[rf.Pin, ...] = ()
    if kind == "source":
        if "sha256sums" not in contents:
            raise ParseError("a source recipe needs a 'sha256sums' file pinning every file "
                             "it fetches", directory)
        pins = rf.parse_sha256sums(contents["sha256sums"], str(directory / "sha256sums"))
    return Recipe(
        name=name, version=version, release=release, directory=directory, type=kind,
        arches=rf.parse_arch(contents["arch"], str(directory / "arch")),
        builddeps=builddeps,
        rundeps=rf.parse_builddeps(contents.get("rundeps", b""),
                                   str(directory / "rundeps"), runtime=True),
        meta=parse_meta(contents["meta"], str(directory / "meta")),
        filter=rf.parse_filter(contents.get("filter", b""), str(directory / "filter")),
        pins=pins, files=tuple(entries),
    )


def _walk(fd: int, directory: Path, prefix: str, depth: int, contents: dict[str, bytes],
          count: list[int]) -> Iterator[RecipeFile]:
    """Every entry under *fd*, sorted, hashed; the named files' contents kept.
    *count* is the number of entries seen so far in the whole recipe."""
    for name in sorted(os.listdir(fd)):
        count[0] += 1
        relative = prefix + name
        if not _ENTRY_NAME.match(name):
            raise ParseError(f"file name {rf.shown(name)} has characters outside "
                             "letters, digits and ._+~@%,=:-", directory / prefix)
        if count[0] > MAX_FILES:
            raise ParseError(f"more than {MAX_FILES} files", directory)
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if depth >= MAX_DEPTH:
                raise ParseError(f"nested deeper than {MAX_DEPTH} directories",
                                 directory / relative)
            if relative in REQUIRED or relative in OPTIONAL:
                raise ParseError("must be a file, not a directory", directory / relative)
            yield RecipeFile(relative, True, False, 0, "")
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                yield from _walk(sub, directory, relative + "/", depth + 1, contents, count)
            finally:
                os.close(sub)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise ParseError("only regular files and directories are allowed (no symlinks, "
                             "devices, FIFOs or sockets)", directory / relative)
        yield _read_file(fd, name, directory / relative, relative, contents,
                         keep=relative in REQUIRED or relative in OPTIONAL)


def _read_file(fd: int, name: str, shown_path: Path, relative: str,
               contents: dict[str, bytes], keep: bool) -> RecipeFile:
    try:
        file_fd = os.open(name, _OPEN_FLAGS, dir_fd=fd)
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror}", shown_path) from None
    with contextlib.closing(os.fdopen(file_fd, "rb")) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ParseError("not a regular file", shown_path)
        limit = rf.MAX_LINE_FILE_BYTES if keep else MAX_FILE_BYTES
        data = f.read(limit + 1)
        digest = hashlib.sha256(data)
        size = len(data)
        if size > limit:
            raise ParseError(f"larger than {limit} bytes", shown_path)
    if keep:
        contents[relative] = data
    return RecipeFile(relative, False, bool(st.st_mode & stat.S_IXUSR), size,
                      digest.hexdigest())
