"""``geofm plugins``: the installed plugin sources and their state (no torch import)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from geofm_core.cli._common import command_parser, write_table

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    return command_parser("plugins", "List installed plugins and their state.",
                          json_output=True)


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
