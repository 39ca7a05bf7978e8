from __future__ import annotations

import numpy as np
import pytest
import torch

from geofm_core.data.datamodules import GeoTiffSegmentationDataModule
from geofm_core.data.datasets import GeoTiffSegmentationDataset
from geofm_core.errors import ConfigurationError

from .conftest import SHARED_DATA


def test_pairs_by_name_and_reads_mask(seg_folder):
    root, images = seg_folder
    ds = GeoTiffSegmentationDataset(
        root, img_pattern="*_img.tif", label_pattern="*_lab.tif", num_classes=3, ignore_index=-1
    )
    assert len(ds) == 8
    for i in range(len(ds)):
        sample = ds[i]
        name = sample["filename"].rsplit("/", 1)[-1].removesuffix("_img.tif")
        img = images[name]
        assert sample["image"].dtype == torch.float32
        assert sample["image"].shape == (4, 16, 16)
        expected = (img[0] % 3).astype(np.int64)
        expected[0, 0] = -1  # label nodata -> ignore_index
        assert sample["mask"].dtype == torch.long
        np.testing.assert_array_equal(sample["mask"].numpy(), expected)
        # image nodata kept unless no_data_replace
        assert sample["image"][0, 0, 0] == -9999


def test_datamodule_batches(seg_folder):
    root, _ = seg_folder
    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(root), img_pattern="*_img.tif", label_pattern="*_lab.tif",
        num_classes=3, ignore_index=-1, batch_size=4, output_bands=[0, 2],
        no_data_replace=0.0,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 2, 16, 16)
    assert batch["mask"].shape == (4, 16, 16)
    assert batch["mask"].dtype == torch.long
    assert len(batch["filename"]) == 4
    assert (batch["image"][:, :, 0, 0] == 0).all()
    assert dm.num_classes == 3 and dm.class_names == ["0", "1", "2"]


def test_missing_label_is_reported_by_name(seg_folder):
    root, _ = seg_folder
    (root / "tile03_lab.tif").unlink()
    with pytest.raises(ConfigurationError, match=r"tile03_img\.tif"):
        GeoTiffSegmentationDataset(
            root, img_pattern="*_img.tif", label_pattern="*_lab.tif", num_classes=3,
            ignore_index=-1,
        )


@pytest.mark.skipif(not (SHARED_DATA / "sen1floods11").is_dir(),
                    reason="../shared/data/sen1floods11 not present")
def test_real_sen1floods11_chip(tmp_path):
    root = SHARED_DATA / "sen1floods11"
    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(root), img_pattern="*_S2Hand.tif", label_pattern="*_LabelHand.tif",
        output_bands=[1, 2, 3, 8, 11, 12], num_classes=2, ignore_index=-1, batch_size=1,
        constant_scale=0.0001,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (1, 6, 512, 512)
    assert batch["mask"].shape == (1, 512, 512)
    values = set(torch.unique(batch["mask"]).tolist())
    assert values == {-1, 0, 1}
    assert batch["filename"][0].endswith("Spain_7370579_S2Hand.tif")
    import rasterio

    with rasterio.open(root / "Spain_7370579_S2Hand.tif") as src:
        b8a = src.read(9).astype(np.float32) * np.float32(0.0001)
    np.testing.assert_allclose(batch["image"][0, 3].numpy(), b8a, rtol=1e-6)
