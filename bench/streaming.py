"""Streaming tiled inference driver: one raster size, one backend, in this process.

    python bench/streaming.py --size 4096 --backend torch [--cache DIR]

Writes (once, cached in ``--cache``) a six-band int16 GeoTIFF of ``size`` x ``size``
pixels window by window, so writing an 8192² raster (800 MB) never holds it in memory.
Runs :func:`geofm_core.inference.raster.predict_raster` over it with a tiny Prithvi +
UperNet (``prithvi_eo_v2_tiny_tl`` cut to 4 blocks, UperNet 64 channels, random weights,
crop 224, stride 192, batch 8) in PyTorch eager or in onnxruntime (the model exported
with :func:`geofm_core.export.onnx.export_onnx`, cached). Prints one JSON object:
megapixels/s, wall seconds, and the process's peak RSS before and after the prediction
(``ru_maxrss``; the run harness starts this script as a child process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BANDS, CLASSES, CROP, STRIDE, TILE_BATCH = 6, 2, 224, 192, 8
ROWS_PER_WRITE = 512


def rss_mb() -> float:
    """Peak RSS of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def raster_path(cache: Path, size: int) -> Path:
    """The cached ``size``² six-band int16 raster, written window by window if missing."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    path = cache / f"scene_{size}.tif"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".partial-{os.getpid()}.tif")
    rng = np.random.default_rng(size)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": BANDS,
               "dtype": "int16", "crs": "EPSG:32633", "nodata": -9999, "tiled": True,
               "blockxsize": 256, "blockysize": 256,
               "transform": from_origin(500_000, 4_000_000, 30, 30)}
    with rasterio.open(partial, "w", **profile) as dst:
        for row in range(0, size, ROWS_PER_WRITE):
            rows = min(ROWS_PER_WRITE, size - row)
            block = rng.integers(0, 10_000, (BANDS, rows, size), dtype=np.int16)
            dst.write(block, window=Window(0, row, size, rows))
    os.replace(partial, path)
    return path


def build_model() -> Any:
    """The tiny Prithvi + UperNet used for streaming (random weights, seed 0)."""
    import torch

    from geofm_core.models.factory import EncoderDecoderFactory

    torch.manual_seed(0)
    model = EncoderDecoderFactory().build_model(
        task="segmentation", backbone="prithvi:prithvi_eo_v2_tiny_tl",
        backbone_kwargs={"depth": 4}, num_classes=CLASSES,
        necks=[{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
               {"name": "geofm:reshape_tokens_to_image"},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
        decoder="upernet:upernet", decoder_kwargs={"channels": 64},
    )
    return model.eval()


def forward_for(backend: str, model: Any, cache: Path, device: str = "cpu",
                precision: str = "32") -> Any:
    """The tile ``forward`` of a backend (``torch`` eager or ``onnx`` runtime).

    ``torch`` runs on ``device`` at ``precision`` (``geofm infer --precision``'s values).
    """
    if backend == "torch":
        import torch

        from geofm_core.inference.precision import autocast_forward

        model.to(device)

        def forward(tiles: Any) -> Any:
            return model(tiles.to(device)).output

        return autocast_forward(forward, torch.device(device).type, precision)
    from geofm_core.export.onnx import OnnxForward, export_onnx

    onnx_path = cache / "tiny_prithvi_upernet.onnx"
    if not onnx_path.exists():
        export_onnx(model, onnx_path, in_channels=BANDS, image_size=(CROP, CROP))
    return OnnxForward(onnx_path)


def measure(size: int, backend: str, cache: Path, device: str = "cpu",
            precision: str = "32") -> dict[str, Any]:
    """Predict the ``size``² raster with ``backend``; see the module docstring."""
    from geofm_core.inference.raster import Preprocessing, predict_raster

    path = raster_path(cache, size)
    model = build_model()
    forward = forward_for(backend, model, cache, device, precision)
    rss_before = rss_mb()
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        start = time.perf_counter()
        predict_raster(forward, path, Path(tmp) / "pred.tif", num_classes=CLASSES,
                       preprocessing=Preprocessing(means=[5000.0] * BANDS,
                                                   stds=[2900.0] * BANDS),
                       crop=CROP, stride=STRIDE, batch_size=TILE_BATCH, progress=False)
        seconds = time.perf_counter() - start
    return {"size": size, "backend": backend, "device": device, "precision": precision,
            "seconds": seconds,
            "megapixels_per_s": size * size / 1e6 / seconds,
            "peak_rss_before_mb": rss_before, "peak_rss_mb": rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "geofm-bench-cache")
    parser.add_argument("--device", default="cpu", help="torch device (torch backend)")
    parser.add_argument("--precision", default="32", help="32, bf16 or 16 (torch backend)")
    parser.add_argument("--prepare", action="store_true",
                        help="only write the cached raster (and ONNX file), time nothing")
    args = parser.parse_args()
    if args.prepare:
        raster_path(args.cache, args.size)
        if args.backend == "onnx":
            forward_for("onnx", build_model(), args.cache)
        return
    json.dump(measure(args.size, args.backend, args.cache, args.device, args.precision),
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
