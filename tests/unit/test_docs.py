# SPDX-License-Identifier: GPL-2.0-or-later
"""The documents the code cites are in the repository (a clone has nothing beside it)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("guestpkg", "apt-hooks", "dh", "debian", "man", "tools", "tests", "bench", "docs")


def cited_texts() -> list[tuple[Path, str]]:
    files = [REPO / "README.md"]
    for top in SOURCES:
        files += [p for p in (REPO / top).rglob("*") if p.is_file()
                  and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".c")]
    texts = []
    for path in files:
        try:
            texts.append((path, path.read_text(encoding="utf-8")))
        except UnicodeDecodeError:
            continue
    return texts


def test_cited_docs_exist() -> None:
    missing = []
    for path, text in cited_texts():
        for name in re.findall(r"docs/([a-z0-9-]+\.md)", text):
            if not (REPO / "docs" / name).is_file():
                missing.append(f"{path.relative_to(REPO)}: docs/{name}")
    assert missing == []


def test_no_citation_points_outside_the_repository() -> None:
    outside = [str(path.relative_to(REPO)) for path, text in cited_texts()
               if path != Path(__file__)
               and re.search(r"\.\./shared|(?<![a-z/])(REFERENCE|DESIGN|STYLE)\.md", text)]
    assert outside == []


def test_relative_links_between_docs_resolve() -> None:
    broken = []
    for page in (REPO / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([a-z0-9-]+\.md)\)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).is_file():
                broken.append(f"{page.name} -> {target}")
    assert broken == []
