"""TerraTorch's tiled inference on the streaming benchmark's model and rasters (peer venv).

    .venv-terratorch/bin/python bench/streaming_terratorch.py --size 4096 --cache DIR

The TerraTorch side of ``bench/streaming.py``: the same architecture (Prithvi-EO v2 tiny
TL cut to 4 blocks, the same three necks, UperNet 64 channels, 2 classes, random
weights) built with TerraTorch's ``EncoderDecoderFactory``, run over the same cached
raster (written by ``bench/streaming.py --prepare``) as a TerraTorch user runs a scene:
the raster read whole with rasterio, normalised, passed to
``terratorch.tasks.tiled_inference.tiled_inference`` (crop 224, stride 192, batch 8,
TerraTorch's defaults otherwise: reflect padding, delta 8, blended overlaps), the class
map written with rasterio. Prints one JSON object: megapixels/s, wall seconds and the
process's peak RSS before and after the prediction.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BANDS, CLASSES, CROP, STRIDE, TILE_BATCH = 6, 2, 224, 192, 8
MEAN, STD = 5000.0, 2900.0  # as bench/streaming.py normalises


def rss_mb() -> float:
    """Peak RSS of this process so far, MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_model(device: str = "cpu") -> Any:
    """The streaming model through TerraTorch's public factory (seed 0)."""
    import torch
    from terratorch.models import EncoderDecoderFactory

    torch.manual_seed(0)
    model = EncoderDecoderFactory().build_model(
        task="segmentation", backbone="prithvi_eo_v2_tiny_tl", backbone_pretrained=False,
        backbone_depth=4, num_classes=CLASSES,
        necks=[{"name": "SelectIndices", "indices": [0, 1, 2, 3]},
               {"name": "ReshapeTokensToImage"}, {"name": "LearnedInterpolateToPyramidal"}],
        decoder="UperNetDecoder", decoder_channels=64,
    )
    return model.eval().to(device)


def measure(size: int, cache: Path, device: str = "cpu") -> dict[str, Any]:
    """Predict the cached ``size``² raster as a TerraTorch user does."""
    import numpy as np
    import rasterio
    import torch
    from terratorch.tasks.tiled_inference import tiled_inference

    path = cache / f"scene_{size}.tif"
    if not path.exists():
        raise SystemExit(f"{path} missing: run bench/streaming.py --size {size} --prepare")
    model = build_model(device)
    rss_before = rss_mb()

    def forward(tiles: torch.Tensor) -> torch.Tensor:
        return model(tiles.to(device)).output  # type: ignore[no-any-return]

    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        start = time.perf_counter()
        with rasterio.open(path) as src:
            image = src.read(out_dtype="float32")
            profile = src.profile
        x = torch.from_numpy((image - MEAN) / STD)[None]
        del image
        with torch.inference_mode():
            logits = tiled_inference(forward, x, out_channels=CLASSES, crop=CROP,
                                     stride=STRIDE, batch_size=TILE_BATCH,
                                     device=None if device == "cpu" else device)
        classes = logits.argmax(1)[0].numpy().astype(np.uint8)
        profile.update(count=1, dtype="uint8", nodata=255)
        with rasterio.open(Path(tmp) / "pred.tif", "w", **profile) as dst:
            dst.write(classes[None])
        seconds = time.perf_counter() - start
    return {"size": size, "framework": "terratorch", "device": device, "seconds": seconds,
            "megapixels_per_s": size * size / 1e6 / seconds,
            "peak_rss_before_mb": rss_before, "peak_rss_mb": rss_mb()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--cache", type=Path,
                        default=Path(tempfile.gettempdir()) / "geofm-bench-cache")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    json.dump(measure(args.size, args.cache, args.device), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
