# SPDX-License-Identifier: GPL-2.0-or-later
"""ruff and mypy (strict) run as part of the suite: a lint failure is a test failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    venv = Path(os.environ.get("GUESTPKG_LINT_VENV", "/var/tmp/guestpkg-venv")) / "bin" / name
    found = str(venv) if venv.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: run tools/run-tests, which installs it")
    return found


def test_ruff() -> None:
    result = subprocess.run([_tool("ruff"), "check", "guestpkg", "tests", "bench"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = subprocess.run(["/usr/bin/python3", "-m", "mypy", "--no-error-summary"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
