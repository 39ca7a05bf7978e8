"""What the command modules share: their argument parser's start, tables, the --device check."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from geofm_core.errors import ConfigurationError

__all__ = ["command_parser", "torch_device", "write_table"]


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


def torch_device(name: str) -> Any:
    """``torch.device(name)`` of a ``--device`` option, checked against this machine.

    A device it lacks (a CPU-only torch build, no driver, an index past the device count)
    is one ConfigurationError saying so and what to use instead.
    """
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigurationError(
            f"--device {name!r} is not a torch device ({exc}); use cpu, cuda or cuda:N"
        ) from None
    checks: dict[str, Callable[[], bool]] = {"cuda": torch.cuda.is_available,
                                              "mps": torch.backends.mps.is_available}
    available = checks.get(device.type)
    if available is not None and not available():
        raise ConfigurationError(
            f"--device {name}: this machine has no usable {device.type.upper()} device "
            "(torch sees none; a CPU-only torch build, no driver, or CUDA_VISIBLE_DEVICES "
            "hiding it). Use --device cpu, or install the torch build for your GPU"
        )
    if device.type == "cuda" and device.index is not None and \
            device.index >= torch.cuda.device_count():
        raise ConfigurationError(
            f"--device {name}: there are only {torch.cuda.device_count()} CUDA device(s) "
            "(cuda:0 ...); choose one of them"
        )
    return device
