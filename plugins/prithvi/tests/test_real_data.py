"""Prithvi on a real Sentinel-2 chip (Sen1Floods11): HLS bands, normalisation, location."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from geofm_prithvi import PRITHVI_V2_MEAN, PRITHVI_V2_STD, configs

from geofm_core import get_registry

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen1floods11"
# Sentinel-2 bands B2, B3, B4, B8A, B11, B12 are Prithvi's six HLS bands (0-based in the chip).
HLS_IN_S2 = [1, 2, 3, 8, 11, 12]


@pytest.fixture(scope="module")
def chip():
    if not DATA.is_dir():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    rasterio = pytest.importorskip("rasterio")
    with rasterio.open(DATA / "Spain_7370579_S2Hand.tif") as src:
        window = rasterio.windows.Window(0, 0, 128, 96)
        image = torch.from_numpy(src.read([i + 1 for i in HLS_IN_S2], window=window)).float()
        bounds = src.bounds
    with rasterio.open(DATA / "Spain_7370579_LabelHand.tif") as src:
        mask = torch.from_numpy(src.read(1, window=window)).long()
    mean = torch.tensor(PRITHVI_V2_MEAN)[:, None, None]
    std = torch.tensor(PRITHVI_V2_STD)[:, None, None]
    lat = (bounds.top + bounds.bottom) / 2
    lon = (bounds.left + bounds.right) / 2
    return (image - mean) / std, mask, torch.tensor([[lat, lon]])


def test_location_of_a_real_chip_changes_the_tokens(chip):
    image, _, location = chip
    torch.manual_seed(0)
    model = configs.prithvi_eo_v2_tiny_tl(out_indices=[-1]).eval()
    with torch.no_grad():
        plain = model(image[None])[0]
        placed = model(image[None], location_coords=location)[0]
    assert plain.shape == (1, 1 + 8 * 6, 192)
    assert torch.isfinite(placed).all()
    assert not torch.allclose(plain, placed)


def test_tiny_prithvi_fits_a_real_flood_chip(chip):
    image, mask, location = chip
    torch.manual_seed(0)
    model = get_registry().build("model_factory", "geofm:encoder_decoder").build_model(
        task="segmentation", backbone="prithvi:prithvi_eo_v2_tiny_tl", decoder="geofm:fcn",
        num_classes=2,
        backbone_kwargs={"embed_dim": 32, "depth": 4, "num_heads": 2},
        necks=[{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
               {"name": "geofm:reshape_tokens_to_image"},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
    ).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = image[None], mask[None]
    losses = []
    for _ in range(6):
        out = model(x, location_coords=location).output
        loss = torch.nn.functional.cross_entropy(out, y, ignore_index=-1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
