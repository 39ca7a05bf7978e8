"""Plain-text tables for command output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

__all__ = ["write_table"]


def write_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Write ``rows`` (the first is the header) in columns; the last column is not padded."""
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row, widths, strict=False)] + [row[-1]]
        out.write("  ".join(cells).rstrip() + "\n")
