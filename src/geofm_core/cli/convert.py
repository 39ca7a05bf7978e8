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
from geofm_core.io.atomic import atomic_output, check_input_file, check_output
from geofm_core.io.yaml_files import read_yaml

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser("convert", "Convert another framework's config to a geofm config.")
    sub = parser.add_subparsers(dest="framework", metavar="FRAMEWORK", required=True)
    p = sub.add_parser("terratorch", help="a TerraTorch LightningCLI YAML (terratorch fit -c)")
    p.add_argument("config", help="the TerraTorch YAML config")
    p.add_argument("-o", "--output", help="write the geofm YAML here (default: stdout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    return parser


def main(argv: Sequence[str]) -> int:
    """``geofm convert terratorch CONFIG.yaml [-o OUT.yaml]``; returns the exit code.

    Raises:
        ConfigurationError: The input is not a readable TerraTorch config (or has a key
            twice), or the output is the input, a folder, or exists without --overwrite.
        OutputExistsError: ``-o`` names an existing file and --overwrite is not given.
    """
    # --debug may follow the framework's arguments, where the top parser does not see it.
    args = _parser().parse_args([a for a in argv if a != "--debug"])
    check_input_file(args.config, "config", "give a TerraTorch YAML config")
    if args.output:  # before any work; the source is never replaced, even with --overwrite
        check_output(Path(args.output), overwrite=args.overwrite, inputs=[args.config])
    read_yaml(args.config)  # a key given twice is an error, not the last one winning
    conversion = convert_file(args.config)
    text = render(conversion)
    if args.output:
        with atomic_output(Path(args.output), overwrite=args.overwrite,
                           inputs=[args.config]) as temp:
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
