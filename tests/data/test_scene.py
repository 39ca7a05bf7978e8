from __future__ import annotations

import numpy as np
import pytest
import torch

from geofm_core.data.scene import GeoTiffSceneDataModule
from geofm_core.errors import ConfigurationError

from .conftest import SHARED_DATA, write_tif


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 3000, size=(3, 96, 80)).astype(np.uint16)
    write_tif(tmp_path / "img" / "scene_a.tif", img, nodata=0)
    label = (img[1] % 4).astype(np.uint8)  # label derived from band 1
    write_tif(tmp_path / "lab" / "scene_a_label.tif", label)
    return tmp_path, img, label


def test_scene_samples_aligned_chips(scene):
    root, img, _ = scene
    dm = GeoTiffSceneDataModule(
        train_data_root=str(root / "img"), train_label_data_root=str(root / "lab"),
        val_data_root=str(root / "img"), output_bands=[1, 2], patch_size=32, train_length=6,
        batch_size=3, num_classes=4, ignore_index=-1, seed=0,
    )
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    batch = batches[0]
    assert batch["image"].shape == (3, 2, 32, 32)
    assert batch["image"].dtype == torch.float32
    assert batch["mask"].shape == (3, 32, 32) and batch["mask"].dtype == torch.long
    assert batch["bounds"].shape == (3, 4) and len(batch["filename"]) == 3
    # mask is band 1 mod 4 wherever the chip lies
    np.testing.assert_array_equal(batch["image"][:, 0].long().numpy() % 4, batch["mask"].numpy())
    val = list(dm.val_dataloader())
    chips = sum(b["image"].shape[0] for b in val)
    assert chips == 3 * 3  # 96x80 scene, 32 px grid: 3 rows x 3 columns
    for b in val:
        for chip, mask, (xmin, _, _, ymax) in zip(
            b["image"], b["mask"], b["bounds"].tolist(), strict=True
        ):
            col, row = round((xmin - 500000) / 10), round((4000000 - ymax) / 10)
            expected = img[[1, 2], row : row + 32, col : col + 32].astype(np.float32)
            width = expected.shape[-1]  # the last column runs past the 80 px edge
            np.testing.assert_array_equal(chip[:, :, :width].numpy(), expected)
            np.testing.assert_array_equal(mask[:, :width].numpy(), expected[0].astype(int) % 4)
            assert (chip[:, :, width:] == 0).all()  # nodata fill
            assert (mask[:, width:] == -1).all()  # ignored


def test_scene_label_out_of_range(scene):
    root, _, _ = scene
    dm = GeoTiffSceneDataModule(
        train_data_root=str(root / "img"), train_label_data_root=str(root / "lab"),
        patch_size=32, train_length=2, batch_size=2, num_classes=3,
    )
    with pytest.raises(ConfigurationError, match=r"outside 0\.\.2"):
        next(iter(dm.train_dataloader()))


def test_scene_glob_matching_nothing(scene):
    root, _, _ = scene
    dm = GeoTiffSceneDataModule(
        train_data_root=str(root / "img"), train_label_data_root=str(root / "lab"),
        img_glob="*.jp2", num_classes=4,
    )
    with pytest.raises(ConfigurationError, match=r"matches '\*\.jp2'"):
        dm.setup("fit")


def test_scene_regression_and_no_overlap(scene, tmp_path):
    root, img, _ = scene
    target = img[0].astype(np.float32) / 10
    target[:8] = -1
    write_tif(tmp_path / "reg" / "t.tif", target, nodata=-1.0)
    dm = GeoTiffSceneDataModule(
        train_data_root=str(root / "img"), train_label_data_root=str(tmp_path / "reg"),
        task="regression", patch_size=32, train_length=2, batch_size=2, seed=1,
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["mask"].dtype == torch.float32
    ok = ~torch.isnan(batch["mask"])
    np.testing.assert_allclose(batch["mask"][ok].numpy(), (batch["image"][:, 0][ok] / 10).numpy(),
                               rtol=1e-6)
    far = np.zeros((16, 16), np.uint8)
    from affine import Affine

    write_tif(tmp_path / "far" / "l.tif", far, transform=Affine(10.0, 0, 900000.0, 0, -10.0, 1e6))
    dm = GeoTiffSceneDataModule(
        train_data_root=str(root / "img"), train_label_data_root=str(tmp_path / "far"),
        num_classes=2,
    )
    with pytest.raises(ConfigurationError, match="do not overlap"):
        dm.setup("fit")


@pytest.mark.skipif(not (SHARED_DATA / "landsat_rgb" / "RGB.byte.tif").is_file(),
                    reason="../shared/data/landsat_rgb not present")
def test_real_landsat_scene(tmp_path):
    import rasterio

    scene = SHARED_DATA / "landsat_rgb" / "RGB.byte.tif"
    with rasterio.open(scene) as src:
        red, profile = src.read(1), src.profile
    label = np.where(red == 0, 255, (red > 100).astype(np.uint8)).astype(np.uint8)
    profile.update(count=1, nodata=255, dtype="uint8")
    with rasterio.open(tmp_path / "label.tif", "w", **profile) as dst:
        dst.write(label, 1)
    dm = GeoTiffSceneDataModule(
        train_data_root=str(scene), train_label_data_root=str(tmp_path / "label.tif"),
        patch_size=64, train_length=4, batch_size=4, num_classes=2, ignore_index=-1,
        no_data_replace=0.0, seed=0,
    )
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64)
    has_data = batch["image"][:, 0] > 0
    expected = (batch["image"][:, 0] > 100).long()
    assert torch.equal(batch["mask"][has_data], expected[has_data])
    assert (batch["mask"][~has_data] == -1).all()
