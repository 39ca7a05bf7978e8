"""``geofm export onnx --ckpt CKPT --output model.onnx``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from geofm_core.errors import ConfigurationError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geofm export",
        description="Export a trained checkpoint; the file is verified in onnxruntime "
        "(max abs difference to PyTorch <= --atol) before it is kept.",
    )
    parser.add_argument("format", choices=["onnx"], help="export format")
    parser.add_argument("--ckpt", type=Path, required=True, help="checkpoint from geofm fit")
    parser.add_argument("--output", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument("--image-size", type=int, nargs="+", default=[224],
                        help="example input H [W] (default 224)")
    parser.add_argument("--in-channels", type=int,
                        help="input bands (default: from the training datamodule)")
    parser.add_argument("--num-frames", type=int, help="frames of a multi-temporal input")
    parser.add_argument("--static", action="store_true", help="fixed batch and size")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--atol", type=float, default=1e-4)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geofm export``; returns the exit code."""
    args = _parser().parse_args(list(argv))
    if args.output.exists() and not args.overwrite:
        raise ConfigurationError(f"{args.output} exists; pass --overwrite to replace it")
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "ONNX export needs onnx, onnxruntime and onnxscript: pip install 'geofm-core[export]'"
        ) from exc
    from geofm_core.export.onnx import export_onnx, input_channels_of
    from geofm_core.inference.checkpoint import (
        load_checkpoint,
        load_task,
        preprocessing_from_checkpoint,
    )

    checkpoint = load_checkpoint(args.ckpt)
    task = load_task(args.ckpt)
    prep = preprocessing_from_checkpoint(checkpoint)
    in_channels = (args.in_channels or (len(prep.bands) if prep.bands else None)
                   or input_channels_of(task.model))
    if in_channels is None:
        raise ConfigurationError(
            f"{args.ckpt} does not record the number of input bands; pass --in-channels"
        )
    frames = args.num_frames or (prep.num_frames if prep.num_frames > 1 else None)
    size = (args.image_size * 2)[:2]
    report = export_onnx(task.model, args.output, in_channels=in_channels,
                         image_size=(size[0], size[1]), num_frames=frames,
                         dynamic=not args.static, opset=args.opset, atol=args.atol)
    dynamic = ("batch and spatial size" if report.dynamic_spatial else
               "batch" if report.dynamic_batch else "nothing (fixed shape)")
    sys.stdout.write(
        f"wrote {report.path}: dynamic {dynamic}; onnxruntime vs PyTorch max abs difference "
        f"{report.max_abs_diff:.2e} on shapes {report.checked_shapes}\n"
    )
    for note in report.notes:
        sys.stdout.write(f"  note: {note}\n")
    return 0
