"""The real Sen1Floods11 Sentinel-2 chip and tiny backbones for the embedding tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

rasterio = pytest.importorskip("rasterio")

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
S2_CHIP = SHARED_DATA / "sen1floods11" / "Spain_7370579_S2Hand.tif"
LANDSAT = SHARED_DATA / "landsat_rgb" / "RGB.byte.tif"
#: Prithvi's six HLS bands in the 13-band chip (0-based), reflectance x 10000.
HLS_IN_S2 = [1, 2, 3, 8, 11, 12]
PRITHVI = "prithvi:prithvi_eo_v2_tiny_tl"
#: A tiny Prithvi ViT: 16-pixel patches, 32 channels, a CLS token.
PRITHVI_KWARGS: dict[str, Any] = {"embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 64}


@pytest.fixture(scope="session")
def s2_chip() -> Path:
    """The 13-band 512 x 512 Sentinel-2 chip (EPSG:4326)."""
    if not S2_CHIP.is_file():
        pytest.skip(f"real test rasters not found at {SHARED_DATA} (see the data README)")
    return S2_CHIP


@pytest.fixture(scope="session")
def landsat() -> Path:
    """The 3-band Landsat RGB scene (791 x 718, EPSG:32618, nodata 0)."""
    if not LANDSAT.is_file():
        pytest.skip(f"real test rasters not found at {SHARED_DATA} (see the data README)")
    return LANDSAT


@pytest.fixture(scope="session")
def prithvi() -> str:
    """The tiny Prithvi backbone's name, or a skip when the plugin is not installed."""
    from geofm_core.errors import GeofmError
    from geofm_core.registry import get_registry

    try:
        get_registry().get("backbone", PRITHVI)
    except GeofmError:
        pytest.skip(f"backbone {PRITHVI} is not installed")
    return PRITHVI


def prithvi_task(**kwargs: Any) -> Any:
    """A tiny Prithvi EmbeddingTask (seeded, eval mode)."""
    import torch

    from geofm_core.tasks import EmbeddingTask

    torch.manual_seed(0)
    return EmbeddingTask(backbone=PRITHVI, backbone_kwargs=dict(PRITHVI_KWARGS),
                         **kwargs).eval()


def read_hls(path: Path, window: Any = None) -> Any:
    """The chip's six HLS bands as a float tensor (C, H, W), reflectance (x 1e-4)."""
    import torch

    with rasterio.open(path) as src:
        raw = src.read([i + 1 for i in HLS_IN_S2], window=window)
    return torch.from_numpy(raw.astype("float32") * 1e-4)
