# SPDX-License-Identifier: GPL-2.0-or-later
"""Writing small recipe trees for tests: one call per recipe, files as keywords."""

from __future__ import annotations

from pathlib import Path

BUILD = b"#!/bin/sh\nset -eu\nmkdir -p \"$DESTDIR/usr/share\"\n"


def write_recipe(root: Path, recipe_id: str, *, type: str = "binary",
                 arch: str = "x86_64\ni586\n", builddeps: str | None = None,
                 rundeps: str | None = None, meta: str | None = None,
                 build: bytes | None = BUILD, filter: str | None = None,
                 sha256sums: str | None = None, extra: dict[str, bytes] | None = None) -> Path:
    """Write the recipe ``name/version/release`` under *root*; ``None`` leaves a file
    out (sha256sums defaults to one pin for source recipes)."""
    directory = root / recipe_id
    directory.mkdir(parents=True)
    name = recipe_id.split("/")[0]
    if meta is None:
        meta = f"Description: the {name} recipe\nLicense: GPL-2.0-or-later\n"
    if sha256sums is None and type == "source":
        sha256sums = f"{'0' * 64}  {name}.tar.gz\n"
    texts = {"type": type + "\n", "arch": arch, "builddeps": builddeps, "rundeps": rundeps,
             "meta": meta, "filter": filter, "sha256sums": sha256sums}
    for file, text in texts.items():
        if text is not None:
            (directory / file).write_text(text)
    if build is not None:
        (directory / "build").write_bytes(build)
        (directory / "build").chmod(0o755)
    for file, data in (extra or {}).items():
        (directory / file).parent.mkdir(parents=True, exist_ok=True)
        (directory / file).write_bytes(data)
    return directory
