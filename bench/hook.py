#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""What guestpkg's APT hook costs when there is nothing to do, against ``true``.

apt runs each ``DPkg::Post-Invoke`` string with ``sh -c`` after every dpkg run, so
this runs exactly the string of apt-hooks/90guestpkg (pointed at this checkout's
apt-hooks/apt-post-invoke, and at an empty state directory, so nothing of this
machine is read) and ``sh -c true``, alternately, many times, and prints the medians
in milliseconds and their ratio.  The requirement (issue 6): under 20 ms median.

    /usr/bin/python3 bench/hook.py [--runs 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOK = REPO / "apt-hooks" / "apt-post-invoke"
LIMIT_MS = 20.0


def snippet(hook: Path) -> str:
    """The command of apt-hooks/90guestpkg, with the hook's path replaced."""
    text = (REPO / "apt-hooks" / "90guestpkg").read_text()
    command = json.loads(text[text.index('{ "') + 2:text.rindex('"; }') + 1])
    return command.replace("/usr/lib/guestpkg/apt-post-invoke", str(hook))


def once(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True)
    return (time.perf_counter() - start) * 1000.0


def measure(runs: int, vardir: Path) -> dict[str, float]:
    env = {"PATH": "/usr/bin:/bin", "GUESTPKG_VARDIR": str(vardir),
           # Would the hook ever start Python here, it would fail loudly.
           "GUESTPKG_COMMAND": "/nonexistent/guestpkg"}
    hook = ["sh", "-c", snippet(HOOK)]
    baseline = ["sh", "-c", "true"]
    hook_ms, true_ms = [], []
    for _ in range(runs):
        hook_ms.append(once(hook, env))
        true_ms.append(once(baseline, env))
    return {"hook_median_ms": statistics.median(hook_ms),
            "true_median_ms": statistics.median(true_ms),
            "ratio": statistics.median(hook_ms) / statistics.median(true_ms),
            "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guestpkg-bench-") as tmp:
        vardir = Path(tmp)
        (vardir / "pending").mkdir()
        os.chmod(vardir, 0o755)
        result = measure(args.runs, vardir)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"hook, nothing pending: {result['hook_median_ms']:.2f} ms median "
              f"({args.runs} runs)")
        print(f"sh -c true:            {result['true_median_ms']:.2f} ms median")
        verdict = "ok" if result["hook_median_ms"] < LIMIT_MS else "OVER"
        print(f"ratio:                 {result['ratio']:.2f}x "
              f"(limit {LIMIT_MS:.0f} ms: {verdict})")
    return 0 if result["hook_median_ms"] < LIMIT_MS else 1


if __name__ == "__main__":
    sys.exit(main())
