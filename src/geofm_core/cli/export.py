"""``geofm export onnx --ckpt CKPT --output model.onnx``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geofm_core.cli._common import command_parser
from geofm_core.errors import ConfigurationError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "export", "Export a trained checkpoint; the file is verified in onnxruntime "
        "(max abs difference to PyTorch <= --atol) before it is kept.")
    parser.add_argument("format", choices=["onnx", "safetensors"],
                        help="onnx (verified in onnxruntime) or safetensors (the model's "
                        "weights and settings, loadable without pickle)")
    parser.add_argument("--ckpt", "--ckpt_path", "--ckpt-path", dest="ckpt", type=Path,
                        required=True, help="checkpoint from geofm fit")
    parser.add_argument("--output", type=Path, required=True,
                        help="the .onnx or .safetensors file to write")
    parser.add_argument("--image-size", type=int, nargs="+", default=[224],
                        help="example input H [W] (default 224)")
    parser.add_argument("--in-channels", type=int,
                        help="input bands (default: from the training datamodule)")
    parser.add_argument("--num-frames", type=int, help="frames of a multi-temporal input")
    parser.add_argument("--static", action="store_true", help="fixed batch and size")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--atol", type=float,
                        help="largest difference to PyTorch allowed (default 1e-4; for a "
                        "detector: of box coordinates, in pixels, default 0.01)")
    parser.add_argument("--check-images", type=Path, nargs="+", default=[],
                        help="detectors: GeoTIFFs whose centre crops (--image-size) the "
                        "export is verified on, read with the checkpoint's bands and "
                        "normalisation (a random image is always checked too)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")
    parser.add_argument("--int8", choices=["dynamic", "static"],
                        help="write an int8 model (onnxruntime quantization): dynamic "
                        "(linear layers, no data needed) or static (convolutions too, "
                        "calibrated on --calibration rasters)")
    parser.add_argument("--calibration", type=Path, nargs="+", default=[],
                        help="GeoTIFFs whose centre crops (--image-size) calibrate --int8 "
                        "static; read with the checkpoint's bands and normalisation")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geofm export``; returns the exit code."""
    from geofm_core.io.atomic import check_input_file, check_output, temporary_path

    args = _parser().parse_args(list(argv))
    if args.calibration and (args.format != "onnx" or not args.int8):
        raise ConfigurationError(
            "--calibration is only used by an int8 ONNX export and would be ignored here; "
            "add --int8 static (or --int8 dynamic, which checks its agreement on them), or "
            "leave --calibration out"
        )
    check_input_file(args.ckpt, "--ckpt", "give the .ckpt file written by `geofm fit`")
    # before any work; the checkpoint and the calibration rasters are never overwritten
    check_output(args.output, overwrite=args.overwrite, inputs=[args.ckpt, *args.calibration])
    if args.format == "safetensors":
        from geofm_core.export.safetensors import export_safetensors

        path = export_safetensors(args.ckpt, args.output, overwrite=args.overwrite)
        sys.stdout.write(f"wrote {path} (model weights and settings as safetensors)\n")
        return 0
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            "ONNX export needs onnx, onnxruntime and onnxscript: pip install 'geofm-core[export]'"
        ) from exc
    from geofm_core.data.preprocessing import Preprocessing
    from geofm_core.export.onnx import export_onnx, input_channels_of
    from geofm_core.inference.checkpoint import load_task
    from geofm_core.io.checkpoints import read_checkpoint

    checkpoint = read_checkpoint(args.ckpt)
    task = load_task(args.ckpt, checkpoint=checkpoint)
    prep = Preprocessing.from_checkpoint(checkpoint)
    if getattr(task, "vector_output", False):
        return _export_detector(args, task, prep)
    if args.check_images:
        raise ConfigurationError(
            "--check-images verifies detector exports; this checkpoint's model is checked "
            "on random inputs (--atol). Remove --check-images"
        )
    in_channels = args.in_channels or prep.channels or input_channels_of(task.model)
    if in_channels is None:
        raise ConfigurationError(
            f"{args.ckpt} does not record the number of input bands; pass --in-channels"
        )
    frames = args.num_frames or (prep.num_frames if prep.expand_temporal_dimension else None)
    size = (args.image_size * 2)[:2]
    if args.int8 == "static" and not args.calibration:
        raise ConfigurationError(
            "--int8 static needs --calibration GeoTIFFs (a few chips like the training "
            "data); or use --int8 dynamic"
        )
    # With --int8 the float model is an intermediate: a temporary of the output.
    float_path = temporary_path(args.output, "float") if args.int8 else args.output
    report = export_onnx(task.model, float_path, in_channels=in_channels,
                         image_size=(size[0], size[1]), num_frames=frames,
                         dynamic=not args.static, opset=args.opset,
                         atol=1e-4 if args.atol is None else args.atol,
                         overwrite=args.overwrite or bool(args.int8))
    if args.int8:
        try:
            return _quantize(args, float_path, report, prep, (size[0], size[1]))
        finally:
            float_path.unlink(missing_ok=True)
    dynamic = ("batch and spatial size" if report.dynamic_spatial else
               "batch" if report.dynamic_batch else "nothing (fixed shape)")
    sys.stdout.write(
        f"wrote {report.path}: dynamic {dynamic}; onnxruntime vs PyTorch max abs difference "
        f"{report.max_abs_diff:.2e} on shapes {report.checked_shapes}\n"
    )
    for note in report.notes:
        sys.stdout.write(f"  note: {note}\n")
    return 0


def _export_detector(args: argparse.Namespace, task: Any, prep: Any) -> int:
    """``geofm export onnx`` of a detection checkpoint (fixed input size)."""
    from geofm_core.export.onnx_detection import export_detection_onnx

    for flag, value in (("--int8", args.int8), ("--num-frames", args.num_frames)):
        if value:
            raise ConfigurationError(
                f"{flag} is not supported for detectors: their graphs hold NMS and RoI "
                "operations int8 quantization and multi-temporal inputs do not cover; "
                "remove it"
            )
    in_channels = args.in_channels or prep.channels
    if in_channels is None:
        raise ConfigurationError(
            f"{args.ckpt} does not record the number of input bands; pass --in-channels"
        )
    size = (args.image_size * 2)[:2]
    examples = [chip[0] for chip in _calibration_chips(args.check_images, prep,
                                                       (size[0], size[1]))]
    import torch

    report = export_detection_onnx(
        task.model, args.output, in_channels=in_channels, image_size=(size[0], size[1]),
        opset=args.opset,
        box_atol=1e-2 if args.atol is None else args.atol,
        examples=[torch.from_numpy(e) for e in examples], overwrite=args.overwrite)
    framework = getattr(task.model, "framework", "detector")
    sys.stdout.write(
        f"wrote {report.path}: {framework} at a fixed input size; onnxruntime vs PyTorch "
        "max box difference "
        f"{report.max_abs_diff:.2e} px\n"
    )
    for note in report.notes:
        sys.stdout.write(f"  note: {note}\n")
    return 0


def _calibration_chips(paths: Sequence[Path], prep: Any, size: tuple[int, int]) -> list[Any]:
    """Centre crops of the calibration rasters, preprocessed as tiled inference does it."""
    import rasterio
    from rasterio.windows import Window

    chips = []
    for path in paths:
        if not path.is_file():
            raise ConfigurationError(f"calibration raster {path} does not exist")
        with rasterio.open(path) as src:
            h, w = min(size[0], src.height), min(size[1], src.width)
            window = Window((src.width - w) // 2, (src.height - h) // 2, w, h)
            raw = src.read(prep.plan(path, src.count, src.dtypes).indexes, window=window)
            x = prep(raw, src.nodata)
        chips.append(x.unsqueeze(0).numpy())
    return chips


def _quantize(args: argparse.Namespace, float_path: Path, exported: Any, prep: Any,
              size: tuple[int, int]) -> int:
    from geofm_core.export.quantize import quantize_onnx

    chips = _calibration_chips(args.calibration, prep, size) if args.calibration else None
    report = quantize_onnx(float_path, args.output, method=args.int8, calibration=chips,
                           check_inputs=chips[:4] if chips else None,
                           overwrite=args.overwrite)
    sys.stdout.write(
        f"wrote {report.path}: int8 ({report.method}), {report.size_mb:.1f} MB (float "
        f"{report.float_size_mb:.1f} MB); class agreement with the float model "
        f"{report.agreement:.2%} on {'the calibration chips' if chips else 'random inputs'}\n"
    )
    for note in [*exported.notes, *report.notes]:
        sys.stdout.write(f"  note: {note}\n")
    return 0
