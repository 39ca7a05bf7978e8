"""``geofm infer`` of a detection checkpoint: a raster of any size to a vector file.

Called by :mod:`geofm_core.cli.infer` when the loaded task has ``vector_output``; the
detections are streamed tile by tile (:func:`~geofm_core.inference.detection.
predict_detections`), merged across overlaps and written as GeoPackage or GeoJSON.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from geofm_core.errors import ConfigurationError

__all__ = ["infer_detections"]

#: Raster-map options with no meaning for detections, and why.
_REFUSED = {
    "probabilities": ("--probabilities", "per-class probability rasters are for "
                      "segmentation; each detection's score is in the 'score' column"),
    "cog": ("--cog", "the output is a vector file, not a GeoTIFF"),
    "after": ("--after", "detection predicts from one raster"),
    "blend": ("--blend", "detections are merged across tile overlaps by NMS "
              "(--iou-threshold), not blended"),
    "description": ("--description", "it describes a regression band"),
    "units": ("--units", "they describe a regression band"),
}


def _refuse_raster_options(args: argparse.Namespace, name: str) -> None:
    for attr, (flag, why) in _REFUSED.items():
        if getattr(args, attr, None) not in (None, False):
            raise ConfigurationError(
                f"{flag} does not apply to {args.ckpt}, a {name} (detection): {why}; "
                "remove it"
            )


def _detection_forward(model: Any, device: Any, precision: str) -> Any:
    """The model's eval output per tile, on ``device``, under autocast below fp32."""
    import torch

    def forward(tiles: torch.Tensor) -> Any:
        if precision == "32":
            return model(tiles.to(device))
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast(device_type=device.type, dtype=dtype):
            outputs = model(tiles.to(device))
        return [{k: v.float() if v.is_floating_point() else v for k, v in o.items()}
                for o in outputs]

    return forward


def infer_detections(task: Any, args: argparse.Namespace, checkpoint: Mapping[str, Any],
                     tiling: Mapping[str, Any]) -> int:
    """Run ``geofm infer`` for a detection task; returns the exit code."""
    from geofm_core.cli._common import torch_device
    from geofm_core.data.preprocessing import Preprocessing
    from geofm_core.inference.detection import predict_detections
    from geofm_core.io.vectors import vector_format

    name = type(task).__name__
    _refuse_raster_options(args, name)
    vector_format(args.output)  # .gpkg / .geojson, before any work
    prep = Preprocessing.from_checkpoint(checkpoint)
    device = torch_device(args.device)
    model = getattr(task, "model", task).eval()
    crop, stride = int(tiling["crop"]), int(tiling["stride"])
    with tempfile.TemporaryDirectory() as scratch:
        if args.backend == "onnx":
            forward = _onnx_forward(model, args, prep, crop, Path(scratch))
        else:
            model.to(device)
            forward = _detection_forward(model, device, args.precision)
        start = time.perf_counter()
        result = predict_detections(
            forward, args.input, args.output, preprocessing=prep, crop=crop, stride=stride,
            batch_size=int(tiling["batch_size"]),
            class_names=list(getattr(task, "class_names", None) or []),
            score_threshold=0.5 if args.score_threshold is None else args.score_threshold,
            iou_threshold=0.5 if args.iou_threshold is None else args.iou_threshold,
            overwrite=args.overwrite, progress=not args.no_progress,
            allow_missing_crs=args.allow_missing_crs,
        )
    height, width = result.shape
    seconds = time.perf_counter() - start
    skipped = f", {result.skipped_tiles} of nodata skipped" if result.skipped_tiles else ""
    sys.stdout.write(
        f"wrote {result.output} ({result.detections} detections; {width} x {height} px, "
        f"{result.tiles} tiles{skipped}, {height * width / 1e6 / seconds:.3g} Mpx/s)\n"
    )
    return 0


def _onnx_forward(model: Any, args: argparse.Namespace, prep: Any, crop: int,
                  scratch: Path) -> Any:
    """Export the detector at the tile size and run it in onnxruntime."""
    import rasterio

    from geofm_core.export.onnx_detection import OnnxDetectionForward, export_detection_onnx

    with rasterio.open(args.input) as src:
        plan = prep.plan(args.input, src.count)
    report = export_detection_onnx(model.cpu(), scratch / "model.onnx",
                                   in_channels=plan.bands, image_size=(crop, crop))
    return OnnxDetectionForward(report.path)
