"""Start-up time of the fast `geofm` commands: median wall time over several runs.

Run: ``.venv/bin/python bench/startup.py [--runs N] [--json FILE]``. Goal: `plugins`
and `list` each under 0.3 s on a 2-core machine (no torch import).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
COMMANDS: dict[str, list[str]] = {
    "geofm plugins": ["plugins"],
    "geofm list": ["list"],
    "geofm list backbone 'prithvi:*'": ["list", "backbone", "prithvi:*"],
    "geofm describe backbone timm:resnet18": ["describe", "backbone", "timm:resnet18"],
}
FLOOR = {"python -c pass": [sys.executable, "-c", "pass"]}


def time_command(argv: list[str], runs: int) -> float:
    """Median wall seconds of running ``argv`` ``runs`` times (after one warm-up)."""
    subprocess.run(argv, capture_output=True, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(runs: int = 7) -> dict[str, float]:
    """Median seconds of each start-up command."""
    geofm = shutil.which("geofm", path=str(BIN)) or "geofm"
    results = {name: time_command(argv, runs) for name, argv in FLOOR.items()}
    for name, args in COMMANDS.items():
        results[name] = time_command([geofm, *args], runs)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = run(args.runs)
    width = max(map(len, results))
    print(f"{'command'.ljust(width)}  median s  (cpus: {os.cpu_count()}, runs: {args.runs})")
    for name, seconds in results.items():
        print(f"{name.ljust(width)}  {seconds:8.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
