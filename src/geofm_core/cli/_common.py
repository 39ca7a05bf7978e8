"""What the command modules share: their argument parser's start and plain-text tables."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

__all__ = ["command_parser", "write_table"]


def command_parser(name: str, description: str, *,
                   json_output: bool = False) -> argparse.ArgumentParser:
    """The parser of ``geofm NAME``, with ``--json`` when asked and a hidden ``--debug``.

    ``--debug`` is read by ``geofm`` itself (anywhere on the command line); each command
    accepts it so that it never reads as an unknown option.
    """
    parser = argparse.ArgumentParser(prog=f"geofm {name}", description=description)
    if json_output:
        parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def write_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Write ``rows`` (the first is the header) in columns; the last column is not padded."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        out.write("  ".join(cells).rstrip() + "\n")
