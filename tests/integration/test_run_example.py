# SPDX-License-Identifier: GPL-2.0-or-later
"""The README's first command, ``tools/run-example``, from a cold state, as a newcomer
runs it on a fresh machine (issue 9): its own empty test area (no base system, no
guestpkg .debs, no throwaway systems of earlier runs), and inside its throwaway system
nothing of guestpkg: guestpkg makes its own buildroot, layer and downloads there.

Only the download caches are shared (``GUESTPKG_TEST_CACHE``: Debian's .debs through
tools/run-example's caching proxy, Debian source packages), so that CI does not fetch
the same Debian packages again on every run; none of them is guestpkg state."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.paths import TEST_CACHE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def test_run_example_from_a_cold_state() -> None:
    area = Path(tempfile.mkdtemp(prefix="run-example-cold-", dir="/var/tmp"))
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root",
           "GUESTPKG_TEST_AREA": str(area), "GUESTPKG_TEST_CACHE": str(TEST_CACHE)}
    started = time.monotonic()
    try:
        result = subprocess.run([str(REPO / "tools" / "run-example")], env=env,
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=3600)
    finally:
        subprocess.run(["rm", "-rf", "--one-file-system", str(area)], check=False)
    output = result.stdout + result.stderr
    print(f"tools/run-example from a cold state: {time.monotonic() - started:.0f} s")
    print(output[-6000:])
    assert result.returncode == 0, output[-6000:]
    assert "OK: the whole lifecycle worked" in output
    # The throwaway system had nothing of guestpkg, and guestpkg made its buildroot.
    assert "nothing of guestpkg: none of /var/lib/guestpkg" in output
    assert "making the build environment (buildroot 'default'), once" in output
    assert "made the build environment in" in output
    assert "installed hello 2.10-3~local for hello-installer" in output
