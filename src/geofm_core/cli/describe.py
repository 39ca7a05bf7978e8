"""``geofm describe KIND NAME``: signature and documentation of one component.

Imports only the module of that component.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from geofm_core.cli._common import command_parser
from geofm_core.names import KINDS, check_kind

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("describe", "Signature and documentation of one component.",
                            json_output=True)
    parser.add_argument("kind", help=f"one of {', '.join(KINDS)}")
    parser.add_argument("name", help="source:name (or a bare name)")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geofm describe``; returns the exit code."""
    from geofm_core.registry import get_registry

    args = _parser().parse_args(list(argv))
    out = sys.stdout
    info = get_registry().describe(check_kind(args.kind), args.name)
    if args.json:
        json.dump(info, out, indent=2)
        out.write("\n")
        return 0
    out.write(f"{info['kind']} {info['name']}{info['signature']}\n")
    out.write(f"  from {info['distribution']} {info['version']} ({info['target']})\n")
    if info["doc"]:
        out.write("\n" + info["doc"] + "\n")
    return 0
