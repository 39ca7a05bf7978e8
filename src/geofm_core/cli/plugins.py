"""``geofm plugins``: the installed plugin sources and their state (no torch import)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from geofm_core.cli._table import write_table

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geofm plugins",
                                     description="List installed plugins and their state.")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geofm plugins``; returns the exit code."""
    from geofm_core.registry import get_registry

    args = _parser().parse_args(list(argv))
    out = sys.stdout
    plugins = get_registry().plugins
    if args.json:
        json.dump([p.as_dict() for p in plugins], out, indent=2)
        out.write("\n")
        return 0
    rows = [("SOURCE", "DISTRIBUTION", "VERSION", "STATUS", "HOOKS")]
    for p in plugins:
        hooks = ", ".join(h.removeprefix("geofm_") for h in p.hooks)
        rows.append((p.source, p.distribution, p.version, p.status, hooks or "-"))
    write_table(rows, out)
    for p in plugins:
        if p.error:
            out.write(f"\n{p.source} ({p.distribution}): {p.error}\n")
    return 0
