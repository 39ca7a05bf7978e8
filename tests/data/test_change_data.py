"""Change-pair datasets on real rasters: two dates stacked, augmented alike, checked for grids."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine

from geofm_core.data import GeoTiffChangeDetectionDataModule
from geofm_core.errors import ConfigurationError
from geofm_core.testing import change_pairs, write_change_pair

MEANS, STDS = [100.0] * 3, [50.0] * 3


def _module(root: Path, **kwargs: object) -> GeoTiffChangeDetectionDataModule:
    return GeoTiffChangeDetectionDataModule(
        train_data_root=str(root), predict_data_root=str(root), batch_size=2, means=MEANS,
        stds=STDS, **kwargs)


def test_items_stack_before_and_after_and_predict_needs_no_label(tmp_path: Path) -> None:
    root = change_pairs(tmp_path, count=2, size=40)
    module = _module(root)
    module.setup("fit")
    item = module.dataset("train")[0]
    assert item["image"].shape == (2, 3, 40, 40) and item["mask"].shape == (40, 40)
    with rasterio.open(root / "pair0_after.tif") as src:
        after = (src.read().astype(np.float32) - 100.0) / 50.0
    np.testing.assert_allclose(item["image"][1].numpy(), after, rtol=1e-6)
    changed = item["mask"].bool()
    assert changed.any() and not changed.all()
    # unchanged pixels are identical in both dates; the pasted blocks differ
    same = (item["image"][0] == item["image"][1]).all(0)
    assert bool(same[~changed].all()) and not bool(same[changed].all())
    assert module.class_names == ["no_change", "change"]
    for path in root.glob("*_label.tif"):
        path.unlink()
    module.setup("predict")
    batch = next(iter(module.predict_dataloader()))
    assert batch["image"].shape == (2, 2, 3, 40, 40) and "mask" not in batch


def test_augmentations_move_both_dates_and_the_mask_alike(tmp_path: Path) -> None:
    root = change_pairs(tmp_path, count=2, size=40)
    module = _module(root, train_augmentations=[{"hflip": 1.0}, "rot90", {"random_crop": 24}],
                     mask_channel=True)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))

    class Training:
        training = True

    module.trainer = Training()  # type: ignore[assignment]
    out = module.on_after_batch_transfer(batch, 0)
    image, mask = out["image"], out["mask"]
    assert image.shape == (2, 2, 3, 24, 24) and mask.shape == (2, 1, 24, 24)
    # the same geometry for both dates and the mask: unchanged pixels still match
    same = (image[:, 0] == image[:, 1]).all(1)
    assert bool(same[mask[:, 0] == 0].all())
    assert not torch.equal(image[:, 0], batch["image"][:, 0, :, :24, :24])


def _rewrite(path: Path, **changes: object) -> None:
    with rasterio.open(path) as src:
        data, profile = src.read(), src.profile
    if "size" in changes:
        data = data[:, :-2]
        profile["height"] = data.shape[1]
    profile.update({k: v for k, v in changes.items() if k != "size"})
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


@pytest.mark.parametrize("change", ["crs", "transform", "size"])
def test_dates_not_co_registered_are_an_error_naming_both(tmp_path: Path, change: str) -> None:
    paths = write_change_pair(tmp_path, "tile", 250, 300, 32)
    with rasterio.open(paths["after"]) as src:
        transform = src.transform
    changes = {"crs": {"crs": "EPSG:4326"},
               "transform": {"transform": transform @ Affine.translation(3, 0)},
               "size": {"size": True}}[change]
    _rewrite(paths["after"], **changes)
    module = _module(tmp_path)
    module.setup("fit")
    with pytest.raises(ConfigurationError, match="not co-registered") as info:
        module.dataset("train")[0]
    message = str(info.value)
    assert "tile_before.tif" in message and "tile_after.tif" in message
    assert {"crs": "CRS", "transform": "origin shifted", "size": "size"}[change] in message


def test_a_before_image_without_after_image_is_named(tmp_path: Path) -> None:
    change_pairs(tmp_path, count=2, size=32)
    (tmp_path / "pair1_after.tif").unlink()
    with pytest.raises(ConfigurationError, match=r"without an after image: pair1_before\.tif"):
        _module(tmp_path).setup("fit")
    with pytest.raises(ConfigurationError, match="before_pattern and after_pattern"):
        _module(tmp_path, img_pattern="*_img.tif")
