"""``geofm convert FRAMEWORK CONFIG.yaml [-o OUT.yaml]``: another framework's config as geofm YAML.

The conversion itself lives in :mod:`geofm_core.convert`; this module parses the command
line, writes the result and reports what was not converted on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from geofm_core.cli._common import command_parser
from geofm_core.convert.terratorch import convert_file, render
from geofm_core.io.atomic import atomic_output

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("convert", "Convert another framework's config to a geofm config.")
    sub = parser.add_subparsers(dest="framework", metavar="FRAMEWORK", required=True)
    p = sub.add_parser("terratorch", help="a TerraTorch LightningCLI YAML (terratorch fit -c)")
    p.add_argument("config", help="the TerraTorch YAML config")
    p.add_argument("-o", "--output", help="write the geofm YAML here (default: stdout)")
    return parser


def main(argv: Sequence[str]) -> int:
    """``geofm convert terratorch CONFIG.yaml [-o OUT.yaml]``; returns the exit code.

    Raises:
        ConfigurationError: The input is not a readable TerraTorch config.
    """
    # --debug may follow the framework's arguments, where the top parser does not see it.
    args = _parser().parse_args([a for a in argv if a != "--debug"])
    conversion = convert_file(args.config)
    text = render(conversion)
    if args.output:
        # Replacing an existing file is today's behaviour; writing it is atomic all the same.
        with atomic_output(Path(args.output), overwrite=True) as temp:
            temp.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    err = sys.stderr
    if conversion.unmapped:
        err.write(f"{len(conversion.unmapped)} setting(s) of {args.config} not converted "
                  "(also listed at the top of the output):\n")
        err.writelines(f"  - {item}\n" for item in conversion.unmapped)
    if conversion.notes:
        err.write(f"{len(conversion.notes)} note(s):\n")
        err.writelines(f"  - {item}\n" for item in conversion.notes)
    if args.output:
        err.write(f"wrote {args.output}\n")
    return 0
