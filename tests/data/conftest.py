"""Helpers that write small real GeoTIFFs for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

DEFAULT_TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 4000000.0)
SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def write_tif(path: Path, array: np.ndarray, *, nodata=None, crs="EPSG:32633",
              transform=None) -> Path:
    """Write (C, H, W) or (H, W) as a GeoTIFF with a CRS."""
    arr = array if array.ndim == 3 else array[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path, "w", driver="GTiff", height=arr.shape[1], width=arr.shape[2], count=arr.shape[0],
        dtype=arr.dtype, crs=crs, transform=transform or DEFAULT_TRANSFORM,
        nodata=nodata,
    ) as dst:
        dst.write(arr)
    return path


@pytest.fixture
def seg_folder(tmp_path):
    """Eight 4-band int16 chips (16x16) and labels in {0,1,2}, names not in sorted pairing."""
    rng = np.random.default_rng(0)
    root = tmp_path / "chips"
    images = {}
    for i in range(8):
        name = f"tile{(i * 5) % 8:02d}"
        img = rng.integers(1, 1000, size=(4, 16, 16)).astype(np.int16)
        img[:, 0, 0] = -9999
        write_tif(root / f"{name}_img.tif", img, nodata=-9999)
        # label derived from the image: pairing errors would show
        label = (img[0] % 3).astype(np.uint8)
        label[0, 0] = 255
        write_tif(root / f"{name}_lab.tif", label, nodata=255)
        images[name] = img
    return root, images
