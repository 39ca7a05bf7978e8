"""Data-loading throughput of the GeoTIFF segmentation data module, in chips per second.

Writes 64 six-band 224x224 int16 GeoTIFF chips (plus labels) to a temporary folder and
times full epochs of ``GeoTiffSegmentationDataModule.train_dataloader()`` (batch 8,
normalisation on) with 0 and 2 workers; reports the median epoch.

    python bench/data_loading.py [--chips 64] [--epochs 5]

``run()`` returns the numbers as a dict for the bench harness.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

BANDS, SIZE, BATCH = 6, 224, 8


def write_chips(root: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "height": SIZE, "width": SIZE, "crs": "EPSG:32633",
               "transform": Affine(30.0, 0.0, 500000.0, 0.0, -30.0, 4000000.0)}
    for i in range(count):
        img = rng.integers(0, 10000, size=(BANDS, SIZE, SIZE), dtype=np.int16)
        with rasterio.open(root / f"chip{i:03d}_img.tif", "w", count=BANDS, dtype="int16",
                           nodata=-9999, **profile) as dst:
            dst.write(img)
        with rasterio.open(root / f"chip{i:03d}_lab.tif", "w", count=1, dtype="uint8",
                           **profile) as dst:
            dst.write(rng.integers(0, 2, size=(1, SIZE, SIZE), dtype=np.uint8))


def time_epochs(root: Path, num_workers: int, epochs: int) -> list[float]:
    from geofm_core.data.datamodules import GeoTiffSegmentationDataModule

    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(root), img_pattern="*_img.tif", label_pattern="*_lab.tif",
        num_classes=2, batch_size=BATCH, num_workers=num_workers, no_data_replace=0.0,
        means=[1000.0] * BANDS, stds=[500.0] * BANDS, drop_last=False,
    )
    dm.setup("fit")
    loader = dm.train_dataloader()
    rates = []
    for _ in range(epochs + 1):  # the first epoch warms up (worker start, file cache)
        start = time.perf_counter()
        chips = sum(batch["image"].shape[0] for batch in loader)
        rates.append(chips / (time.perf_counter() - start))
    return rates[1:]


def run(chips: int = 64, epochs: int = 5, workers: tuple[int, ...] = (0, 2)) -> dict[str, Any]:
    """Median chips/s per worker count: {"chips_per_s": {"0": ..., "2": ...}, ...}."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_chips(root, chips)
        results = {str(w): time_epochs(root, w, epochs) for w in workers}
    return {
        "benchmark": "data_loading",
        "chips": chips, "bands": BANDS, "size": SIZE, "batch_size": BATCH, "epochs": epochs,
        "chips_per_s": {w: statistics.median(r) for w, r in results.items()},
        "epochs_chips_per_s": results,
        "goal_chips_per_s": 200,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    result = run(args.chips, args.epochs)
    print(f"{'workers':>8}  {'chips/s (median)':>16}  {'min':>8}  {'max':>8}")
    for w, rate in result["chips_per_s"].items():
        r = result["epochs_chips_per_s"][w]
        print(f"{w:>8}  {rate:16.1f}  {min(r):8.1f}  {max(r):8.1f}")
    print(f"goal: >= {result['goal_chips_per_s']} chips/s "
          f"({BANDS}-band {SIZE}x{SIZE} int16 GeoTIFFs, batch {BATCH})")


if __name__ == "__main__":
    main()
