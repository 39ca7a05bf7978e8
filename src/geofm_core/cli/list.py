"""``geofm list [KIND] [PATTERN]``: registered components (no torch import)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from geofm_core.cli._common import command_parser, write_table
from geofm_core.names import KINDS, check_kind

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("list", "List components, e.g. geofm list decoder 'geofm:*'.",
                            json_output=True)
    parser.add_argument("kind", nargs="?", help=f"one of {', '.join(KINDS)} (default: all)")
    parser.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'timm:resnet*'")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geofm list``; returns the exit code."""
    from geofm_core.registry import get_registry

    args = _parser().parse_args(list(argv))
    out = sys.stdout
    kind, pattern = args.kind, args.pattern
    if kind is not None and kind not in KINDS:
        if pattern is not None:
            check_kind(kind)
        kind, pattern = None, kind  # `geofm list 'geofm:*'`
    registry = get_registry()
    specs = registry.list(kind, pattern)
    if args.json:
        json.dump([s.as_dict() for s in specs], out, indent=2)
        out.write("\n")
        return 0 if specs else 1
    found = True
    rows = [("KIND", "NAME", "DESCRIPTION")]
    rows += [(s.kind, s.qualified_name, s.description) for s in specs]
    if len(rows) > 1:
        write_table(rows, out)
    else:
        what = f"{kind or 'component'}s" + (f" matching {pattern!r}" if pattern else "")
        out.write(f"no {what}; `geofm plugins` shows the installed plugins\n")
        found = False
    dynamic = [s for s in registry.dynamic_sources() if not (pattern or "").startswith(f"{s}:")]
    if dynamic:
        out.write(
            f"\nDynamic sources resolve names on demand: {', '.join(dynamic)}. "
            f"List them with a pattern, e.g. geofm list backbone '{dynamic[0]}:resnet*'\n"
        )
    # Like grep: no match is exit code 1, so scripts can test for a component.
    return 0 if found else 1
