"""``geofm infer --ckpt CKPT INPUT.tif OUTPUT.tif``: one raster, streamed tile by tile.

A change-detection checkpoint takes two dates: ``geofm infer --ckpt CKPT BEFORE.tif
OUTPUT.tif --after AFTER.tif`` tiles both co-registered rasters with the same windows.
A detection checkpoint (a task with ``vector_output``) writes a vector file instead:
``geofm infer --ckpt CKPT INPUT.tif OUT.gpkg`` (or ``.geojson``), see
:mod:`geofm_core.inference.detection`.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geofm_core.cli._common import command_parser, torch_device
from geofm_core.errors import ConfigurationError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "infer", "Predict a whole GeoTIFF of any size with a trained checkpoint; memory "
        "stays flat. Tiling given here wins over what the checkpoint saved.")
    # a string: Path would turn https://host/a.tif into https:/host/a.tif
    parser.add_argument("input", help="input GeoTIFF: a path, or a URL GDAL reads "
                        "(https://.../scene.tif, s3://bucket/key.tif, gs://, /vsis3/...)")
    parser.add_argument("output", type=Path, help="output GeoTIFF (class map or values); "
                        "for a detection checkpoint a .gpkg or .geojson vector file")
    parser.add_argument("--after", help="change detection: the raster of the second date "
                        "(INPUT is the first); both must share CRS, transform and size")
    parser.add_argument("--ckpt", "--ckpt_path", "--ckpt-path", dest="ckpt", type=Path,
                        required=True, help="checkpoint from geofm fit")
    parser.add_argument("--crop", type=int, help="tile size (default: the checkpoint's "
                        "tiled_inference crop, else 224)")
    parser.add_argument("--stride", type=int, help="step between tiles (default 7/8 of crop)")
    parser.add_argument("--batch-size", type=int, help="tiles per forward pass (default 8)")
    parser.add_argument("--blend", choices=["ramp", "average"], help="overlap weighting")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write per-class probabilities (<output>_probabilities.tif)")
    parser.add_argument("--cog", action="store_true", help="write Cloud-Optimized GeoTIFFs")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch",
                        help="run the model in PyTorch or export it and run onnxruntime")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cuda")
    parser.add_argument("--precision", default="32",
                        help="32 (fp32, default), bf16 or 16: the forward pass under "
                        "torch.autocast (weights stay fp32; outputs are written as fp32)")
    parser.add_argument("--allow-missing-crs", action="store_true",
                        help="accept an input without a CRS")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--description", help="what a regression output holds, written as "
                        "its band description (e.g. 'canopy height')")
    parser.add_argument("--units", help="units of a regression output (e.g. m)")
    parser.add_argument("--score-threshold", type=float,
                        help="detection: lowest score written (default 0.5)")
    parser.add_argument("--iou-threshold", type=float,
                        help="detection: class-wise NMS IoU across tile overlaps (default 0.5)")
    return parser


def tiling_settings(saved: dict[str, Any] | None, args: argparse.Namespace) -> dict[str, Any]:
    """Tiling for this run: command-line values win over the checkpoint's saved ones."""
    settings: dict[str, Any] = {"crop": 224, "batch_size": 8, "blend": "ramp"}
    settings.update({k: v for k, v in (saved or {}).items() if v is not None})
    given = {"crop": args.crop, "stride": args.stride, "batch_size": args.batch_size,
             "blend": args.blend}
    settings.update({k: v for k, v in given.items() if v is not None})
    if args.stride is None and (args.crop is not None or "stride" not in settings):
        settings["stride"] = max(1, settings["crop"] * 7 // 8)
    return settings


def main(argv: Sequence[str]) -> int:
    """Run ``geofm infer``; returns the exit code."""
    args = _parser().parse_args(list(argv))
    _check_precision(args)
    _check_paths(args)
    import torch

    from geofm_core.data.preprocessing import Preprocessing
    from geofm_core.inference.checkpoint import load_task, task_class
    from geofm_core.inference.precision import autocast_forward
    from geofm_core.inference.raster import Kind, predict_raster
    from geofm_core.io.checkpoints import read_checkpoint
    from geofm_core.io.gis import OutputLabels

    checkpoint = read_checkpoint(args.ckpt)
    saved = (checkpoint.get("hyper_parameters") or {}).get("tiled_inference")
    tiling = tiling_settings(saved, args)
    # A task without tiled_inference (detection) takes the tiling at inference only.
    cls = task_class(checkpoint, args.ckpt)
    overrides = ({"tiled_inference": tiling} if "tiled_inference" in
                 inspect.signature(cls.__init__).parameters else {})
    task = load_task(args.ckpt, overrides=overrides, checkpoint=checkpoint)
    if getattr(task, "vector_output", False):
        from geofm_core.cli.infer_detection import infer_detections

        return infer_detections(task, args, checkpoint, tiling)
    _raster_only(task, args)
    if not getattr(task, "pixelwise", False):
        raise ConfigurationError(
            f"{args.ckpt} holds a {type(task).__name__}, which predicts one label per image; "
            "`geofm infer` writes per-pixel maps (segmentation or regression)"
        )
    _check_dates(task, args)
    prep = Preprocessing.from_checkpoint(checkpoint)
    kind: Kind = "regression" if task.task_name == "regression" else "segmentation"
    device = torch_device(args.device)
    task.to(device)
    with tempfile.TemporaryDirectory() as scratch:
        if args.backend == "onnx":
            forward = _onnx_forward(task, args, prep, tiling, Path(scratch))
        else:
            def model_forward(tiles: torch.Tensor) -> torch.Tensor:
                return task(tiles.to(device)).output  # type: ignore[no-any-return]

            forward = autocast_forward(model_forward, device.type, args.precision)

        start = time.perf_counter()
        result = predict_raster(
            forward, args.input, args.output, kind=kind, num_classes=task.num_classes,
            preprocessing=prep, crop=tiling["crop"], stride=tiling["stride"],
            batch_size=tiling["batch_size"], blend=tiling["blend"],
            probabilities=args.probabilities, cog=args.cog, overwrite=args.overwrite,
            progress=not args.no_progress, allow_missing_crs=args.allow_missing_crs,
            labels=OutputLabels(tuple(getattr(task, "class_names", None) or ()),
                                args.description, args.units),
            after_path=args.after,
        )
    height, width = result.shape
    seconds = time.perf_counter() - start
    # GIS convention: width x height
    sys.stdout.write(
        f"wrote {result.output} ({width} x {height} px, {result.tiles} tiles, "
        f"{height * width / 1e6 / seconds:.3g} Mpx/s)\n"
    )
    if result.probabilities:
        sys.stdout.write(f"wrote {result.probabilities}\n")
    if result.extra.get("style"):
        sys.stdout.write(f"wrote {result.extra['style']} (QGIS style: class colours and "
                         "names)\n")
    return 0


def _raster_only(task: Any, args: argparse.Namespace) -> None:
    """Detection options and vector outputs are refused for a raster-map checkpoint."""
    from geofm_core.io.vectors import VECTOR_FORMATS

    name = type(task).__name__
    if args.output.suffix.lower() in VECTOR_FORMATS:
        raise ConfigurationError(
            f"{args.ckpt} holds a {name}, which predicts raster maps, but the output "
            f"{args.output} is a vector file; give a GeoTIFF (.tif) output"
        )
    for flag, value in (("--score-threshold", args.score_threshold),
                        ("--iou-threshold", args.iou_threshold)):
        if value is not None:
            raise ConfigurationError(
                f"{flag} is for detection checkpoints; {args.ckpt} holds a {name}: remove it"
            )


def _check_dates(task: Any, args: argparse.Namespace) -> None:
    """A change-detection checkpoint needs ``--after``; other checkpoints refuse it."""
    dates = int(getattr(task, "input_dates", 1))
    if dates == 2 and args.after is None:
        raise ConfigurationError(
            f"{args.ckpt} holds a {type(task).__name__}, which compares two dates; give the "
            "second date's raster with --after AFTER.tif (INPUT is the first date)"
        )
    if dates == 1 and args.after is not None:
        raise ConfigurationError(
            f"{args.ckpt} holds a {type(task).__name__}, which predicts from one raster; "
            "--after is for change-detection checkpoints: remove it"
        )
    if dates == 2 and args.backend == "onnx":
        raise ConfigurationError(
            "--backend onnx exports single-date models; run change detection with "
            "--backend torch"
        )


def _check_precision(args: argparse.Namespace) -> None:
    """A known precision, and one the chosen backend runs: before anything is loaded."""
    from geofm_core.inference.precision import parse_precision

    args.precision = parse_precision(args.precision)
    if args.precision != "32" and args.backend == "onnx":
        raise ConfigurationError(
            f"--precision {args.precision} runs the PyTorch model under torch.autocast; "
            "the onnx backend runs the exported fp32 graph. Use --backend torch for "
            "reduced precision, or drop --precision (int8: geofm export onnx --int8)"
        )


def _check_paths(args: argparse.Namespace) -> None:
    """Inputs that are files, outputs that are none of them: before anything is loaded."""
    from geofm_core.io.atomic import check_input_file, check_output
    from geofm_core.io.locations import is_remote

    if not is_remote(args.input):  # a URL is checked by opening it (predict_raster)
        check_input_file(args.input, "input raster", "give a GeoTIFF or a URL GDAL reads")
    if args.after is not None and not is_remote(args.after):
        check_input_file(args.after, "--after raster", "give the second date's GeoTIFF")
    check_input_file(args.ckpt, "--ckpt", "give the .ckpt file written by `geofm fit`")
    outputs = [args.output]
    if args.probabilities:
        outputs.append(args.output.with_name(f"{args.output.stem}_probabilities.tif"))
    for output in outputs:
        check_output(output, overwrite=args.overwrite,
                     inputs=[args.input, args.ckpt, *([args.after] if args.after else [])])


def _onnx_forward(task: Any, args: argparse.Namespace, prep: Any, tiling: dict[str, Any],
                  scratch: Path) -> Any:
    import rasterio

    from geofm_core.export.onnx import OnnxForward, export_onnx

    with rasterio.open(args.input) as src:
        plan = prep.plan(args.input, src.count)
    report = export_onnx(
        task.model.cpu(), scratch / "model.onnx", in_channels=plan.bands,
        image_size=(tiling["crop"], tiling["crop"]),
        num_frames=plan.frames if prep.expand_temporal_dimension else None,
    )
    return OnnxForward(report.path)
