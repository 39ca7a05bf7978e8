from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geofm_core.data.augment import build_augmentation
from geofm_core.data.datamodules import (
    GeoTiffClassificationDataModule,
    GeoTiffMultiLabelDataModule,
    GeoTiffRegressionDataModule,
    GeoTiffSegmentationDataModule,
)
from geofm_core.data.datasets import (
    GeoTiffImageDataset,
    GeoTiffRegressionDataset,
    GeoTiffSegmentationDataset,
)
from geofm_core.errors import ConfigurationError

from .conftest import write_tif

SEG = {"img_pattern": "*_img.tif", "label_pattern": "*_lab.tif"}


def seg(root, **kwargs):
    options = {"num_classes": 3, "ignore_index": -1, **SEG, **kwargs}
    return GeoTiffSegmentationDataset(root, **options)


# ---------------------------------------------------------------- pairing and splits
def test_label_without_image_is_reported(seg_folder):
    root, _ = seg_folder
    write_tif(root / "extra_lab.tif", np.zeros((16, 16), np.uint8))
    with pytest.raises(ConfigurationError, match=r"labels without an image: extra_lab\.tif"):
        seg(root)


def test_separate_label_folder_pairs_by_name(tmp_path):
    rng = np.random.default_rng(3)
    names = ["b", "a", "c"]
    for name in names:
        img = rng.integers(0, 100, (2, 8, 8)).astype(np.uint16)
        write_tif(tmp_path / "images" / f"{name}_S2Hand.tif", img)
        write_tif(tmp_path / "labels" / f"{name}_LabelHand.tif", (img[1] % 3).astype(np.int16))
    ds = GeoTiffSegmentationDataset(
        tmp_path / "images", tmp_path / "labels", img_pattern="*_S2Hand.tif",
        label_pattern="*_LabelHand.tif", num_classes=3,
    )
    for i in range(len(ds)):
        s = ds[i]
        np.testing.assert_array_equal(s["image"][1].long().numpy() % 3, s["mask"].numpy())


def test_split_files(seg_folder, tmp_path):
    root, _ = seg_folder
    split = tmp_path / "train.txt"
    split.write_text("# training ids\ntile05\n\ntile01_img.tif\ntile02\n")
    ds = seg(root, split=split)
    assert [p.rsplit("/", 1)[-1] for p in ds.filenames] == [
        "tile05_img.tif", "tile01_img.tif", "tile02_img.tif"]
    split.write_text("tile05\nnope\n")
    with pytest.raises(ConfigurationError, match=r"no matching image: nope"):
        seg(root, split=split)


def test_val_split_falls_back_to_train_root(seg_folder, tmp_path):
    root, _ = seg_folder
    (tmp_path / "val.txt").write_text("tile03\ntile04\n")
    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(root), val_split=str(tmp_path / "val.txt"), num_classes=3,
        ignore_index=-1, batch_size=2, **SEG,
    )
    dm.setup("fit")
    assert len(dm.dataset("train")) == 8 and len(dm.dataset("val")) == 2
    batch = next(iter(dm.val_dataloader()))
    assert batch["mask"].shape == (2, 16, 16)


# ---------------------------------------------------------------- bands, nodata, scaling
def test_band_selection_by_name_index_range(tmp_path):
    img = np.stack([np.full((8, 8), 10 * (b + 1), np.uint16) for b in range(6)])
    write_tif(tmp_path / "x.tif", img)
    names = ["BLUE", "GREEN", "RED", "NIR_NARROW", "SWIR_1", "SWIR_2"]
    for spec in (["RED", "BLUE", "SWIR_2"], [2, 0, 5], ["2-2", [0, 0], 5]):
        ds = GeoTiffImageDataset(tmp_path, dataset_bands=names, output_bands=spec)
        assert ds[0]["image"][:, 0, 0].tolist() == [30.0, 10.0, 60.0]
    assert ds.output_band_names == ["RED", "BLUE", "SWIR_2"]
    assert ds.rgb_indices == [0, 1, 2]  # no GREEN selected: the first three
    ds = GeoTiffImageDataset(tmp_path, dataset_bands=names, output_bands=["0-3"])
    assert ds.rgb_indices == [2, 1, 0]


def test_band_index_beyond_file_is_an_error(tmp_path):
    write_tif(tmp_path / "x.tif", np.zeros((3, 8, 8), np.uint16))
    ds = GeoTiffImageDataset(tmp_path, output_bands=[0, 7])
    with pytest.raises(ConfigurationError, match=r"band index 7 is out of range for .*x\.tif"):
        ds[0]
    ds = GeoTiffImageDataset(tmp_path, dataset_bands=["BLUE", "GREEN"])
    with pytest.raises(ConfigurationError, match=r"x\.tif: has 3 bands but dataset_bands"):
        ds[0]


def test_nodata_and_nan_replacement_and_normalisation(tmp_path):
    a = np.arange(2 * 4 * 4, dtype=np.int16).reshape(2, 4, 4) + 10
    a[:, 1, 1] = -9999
    write_tif(tmp_path / "i" / "a.tif", a, nodata=-9999)
    f = a.astype(np.float32)
    f[0, 2, 2] = np.nan
    write_tif(tmp_path / "f" / "a.tif", f, nodata=-9999.0)
    means_file = tmp_path / "means.json"
    means_file.write_text(json.dumps([1.0, 2.0]))
    for folder in ("i", "f"):
        ds = GeoTiffImageDataset(tmp_path / folder, constant_scale=0.5, no_data_replace=0.0,
                                 means=str(means_file), stds=[2.0, 4.0])
        img = ds[0]["image"].numpy()
        expected = (a.astype(np.float32) * 0.5 - np.array([1, 2])[:, None, None]) / np.array(
            [2, 4])[:, None, None]
        expected[:, 1, 1] = (0 - np.array([1, 2])) / np.array([2, 4])
        if folder == "f":
            expected[0, 2, 2] = (0 - 1) / 2
        np.testing.assert_allclose(img, expected, rtol=1e-6)
    raw = GeoTiffImageDataset(tmp_path / "f")[0]["image"]
    assert torch.isnan(raw[0, 2, 2]) and raw[0, 1, 1] == -9999


def test_means_length_must_match_bands(tmp_path):
    with pytest.raises(ConfigurationError, match="means/stds have 2 values but output_bands"):
        GeoTiffImageDataset(tmp_path, output_bands=[0, 1, 2], means=[1, 2], stds=[1, 1])


def test_temporal_expansion_order(tmp_path):
    frames, per_frame = 3, 4
    bands = [np.full((4, 4), 100 * t + c, np.float32) for t in range(frames)
             for c in range(per_frame)]
    write_tif(tmp_path / "stack.tif", np.stack(bands))
    ds = GeoTiffImageDataset(tmp_path, output_bands=[2, 0], expand_temporal_dimension=True,
                             num_frames=frames)
    img = ds[0]["image"]
    assert img.shape == (2, 3, 4, 4)
    assert img[:, :, 0, 0].tolist() == [[2, 102, 202], [0, 100, 200]]
    named = GeoTiffImageDataset(
        tmp_path, dataset_bands=["BLUE", "GREEN", "RED", "NIR_NARROW"], output_bands=["RED"],
        expand_temporal_dimension=True, means=[1.0], stds=[1.0],
    )
    assert named[0]["image"][:, :, 0, 0].tolist() == [[1, 101, 201]]
    wrong = GeoTiffImageDataset(tmp_path, expand_temporal_dimension=True, num_frames=5)
    with pytest.raises(ConfigurationError, match="not 5 frames"):
        wrong[0]


# ---------------------------------------------------------------- label handling and errors
def test_label_values_outside_num_classes(seg_folder):
    root, _ = seg_folder
    ds = seg(root, num_classes=2)
    with pytest.raises(ConfigurationError, match=r"_lab\.tif: label values \[2\] are outside"):
        for i in range(len(ds)):
            ds[i]


def test_label_nodata_without_ignore_index(seg_folder):
    root, _ = seg_folder
    ds = seg(root, ignore_index=None)
    with pytest.raises(ConfigurationError, match="set ignore_index"):
        ds[0]
    ok = seg(root, ignore_index=None, no_label_replace=0)
    assert ok[0]["mask"][0, 0] == 0


def test_reduce_zero_label(tmp_path):
    write_tif(tmp_path / "a_img.tif", np.ones((1, 4, 4), np.uint8))
    write_tif(tmp_path / "a_lab.tif", np.array([[0, 1, 2, 3]] * 4, np.uint8))
    ds = seg(tmp_path, reduce_zero_label=True, ignore_index=255)
    assert ds[0]["mask"][0].tolist() == [255, 0, 1, 2]
    with pytest.raises(ConfigurationError, match="set ignore_index"):
        seg(tmp_path, reduce_zero_label=True, ignore_index=None)


def test_size_mismatch(tmp_path):
    write_tif(tmp_path / "a_img.tif", np.ones((1, 16, 16), np.uint8))
    write_tif(tmp_path / "a_lab.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ConfigurationError, match=r"a_lab\.tif: label is 8x8 but its image"):
        seg(tmp_path)[0]


def test_truncated_file(tmp_path):
    path = write_tif(tmp_path / "a_img.tif", np.ones((3, 64, 64), np.float32))
    write_tif(tmp_path / "a_lab.tif", np.zeros((64, 64), np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigurationError, match=r"cannot read .*a_img\.tif.*truncated"):
        seg(tmp_path)[0]
    path.write_bytes(b"not a tiff")
    with pytest.raises(ConfigurationError, match=r"a_img\.tif"):
        seg(tmp_path)[0]


def test_empty_folder_and_pattern_matching_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigurationError, match="it is empty"):
        GeoTiffImageDataset(tmp_path / "empty")
    write_tif(tmp_path / "x" / "a.tif", np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(ConfigurationError, match=r"no file .* matches pattern '\*_S2Hand\.tif'"):
        GeoTiffImageDataset(tmp_path / "x", img_pattern="*_S2Hand.tif")
    with pytest.raises(ConfigurationError, match="does not exist"):
        GeoTiffImageDataset(tmp_path / "missing")


def test_regression_nan_target(tmp_path):
    write_tif(tmp_path / "a_img.tif", np.ones((2, 4, 4), np.float32))
    target = np.arange(16, dtype=np.float32).reshape(4, 4)
    target[0, 0] = -1
    target[1, 1] = np.nan
    write_tif(tmp_path / "a_lab.tif", target, nodata=-1.0)
    ds = GeoTiffRegressionDataset(tmp_path, **SEG)
    mask = ds[0]["mask"]
    assert mask.dtype == torch.float32
    assert torch.isnan(mask[0, 0]) and torch.isnan(mask[1, 1]) and mask[3, 3] == 15
    dm = GeoTiffRegressionDataModule(train_data_root=str(tmp_path), batch_size=1, **SEG)
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["mask"].shape == (1, 4, 4)


# ---------------------------------------------------------------- classification
def test_classification_folders_and_csv(tmp_path):
    rng = np.random.default_rng(2)
    for cls in ("forest", "water"):
        for i in range(3):
            write_tif(tmp_path / "folders" / cls / f"{cls}{i}.tif",
                      rng.integers(0, 9, (3, 8, 8)).astype(np.uint16))
    dm = GeoTiffClassificationDataModule(train_data_root=str(tmp_path / "folders"),
                                         batch_size=6)
    dm.setup("fit")
    assert dm.class_names == ["forest", "water"] and dm.num_classes == 2
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (6, 3, 8, 8) and batch["label"].dtype == torch.long
    for name, label in zip(batch["filename"], batch["label"].tolist(), strict=True):
        assert f"/{dm.class_names[label]}/" in name

    flat = tmp_path / "flat"
    for i in range(4):
        write_tif(flat / f"chip{i}.tif", np.full((2, 8, 8), i, np.uint16))
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\nchip0.tif,water\nchip1,forest\nchip2.tif,1\nchip3.tif,0\n")
    dm = GeoTiffClassificationDataModule(
        train_data_root=str(flat), train_label_data_root=str(csv),
        class_names=["forest", "water"], batch_size=4,
    )
    dm.setup("fit")
    ds = dm.dataset("train")
    labels = {int(ds[i]["image"][0, 0, 0]): int(ds[i]["label"]) for i in range(len(ds))}
    assert labels == {0: 1, 1: 0, 2: 1, 3: 0}
    csv.write_text("file,label\nchip0.tif,1\nchip1.tif,0\nchip2.tif,0\n")
    with pytest.raises(ConfigurationError, match=r"images without a row .*chip3\.tif"):
        GeoTiffClassificationDataModule(
            train_data_root=str(flat), train_label_data_root=str(csv), num_classes=2
        ).setup("fit")
    csv.write_text("file,label\nchip0.tif,1\nchip1.tif,0\nchip2.tif,0\nchip3.tif,5\n")
    with pytest.raises(ConfigurationError, match=r"class index 5 is outside 0\.\.1"):
        GeoTiffClassificationDataModule(
            train_data_root=str(flat), train_label_data_root=str(csv), num_classes=2
        ).setup("fit")


def test_multilabel_csv_layouts(tmp_path):
    for i in range(3):
        write_tif(tmp_path / "img" / f"c{i}.tif", np.full((2, 4, 4), i, np.uint16))
    onehot = tmp_path / "onehot.csv"
    onehot.write_text("file,cloud,water,urban\nc0.tif,1,0,1\nc1.tif,0,0,0\nc2.tif,0,1,0\n")
    listed = tmp_path / "listed.csv"
    listed.write_text("file,labels\nc0.tif,cloud;urban\nc1.tif,\nc2.tif,1\n")
    expected = {0: [1, 0, 1], 1: [0, 0, 0], 2: [0, 1, 0]}
    for csv, extra in ((onehot, {}), (listed, {"class_names": ["cloud", "water", "urban"]})):
        dm = GeoTiffMultiLabelDataModule(train_data_root=str(tmp_path / "img"),
                                         train_label_data_root=str(csv), batch_size=3, **extra)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["label"].dtype == torch.float32 and batch["label"].shape == (3, 3)
        for img, label in zip(batch["image"], batch["label"], strict=True):
            assert label.tolist() == expected[int(img[0, 0, 0])]
        assert dm.class_names == ["cloud", "water", "urban"] and dm.num_classes == 3


# ---------------------------------------------------------------- predict, plot, augment
def test_predict_yields_images_and_filenames(seg_folder):
    root, _ = seg_folder
    dm = GeoTiffSegmentationDataModule(predict_data_root=str(root), predict_img_pattern="*_img.tif",
                                       num_classes=3, batch_size=3)
    dm.setup("predict")
    batches = list(dm.predict_dataloader())
    assert sum(len(b["filename"]) for b in batches) == 8
    assert set(batches[0]) == {"image", "filename"}
    with pytest.raises(ConfigurationError, match="test_data_root is not set"):
        dm.setup("test")


def test_plot_returns_figure(seg_folder):
    from matplotlib.figure import Figure

    root, _ = seg_folder
    ds = seg(root, output_bands=[2, 1, 0])
    sample = ds[0]
    sample["prediction"] = sample["mask"].clamp(min=0)
    fig = ds.plot(sample, suptitle="tile")
    assert isinstance(fig, Figure) and len(fig.axes) == 3


def test_augmentations_keep_image_and_mask_aligned(seg_folder):
    root, _ = seg_folder
    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(root), num_classes=3, ignore_index=-1, batch_size=8,
        no_data_replace=0.0, output_bands=[0, 3],
        train_augmentations=["hflip", "vflip", "rot90", {"random_crop": 12}],
        val_augmentations=[{"center_crop": 8}], **SEG,
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    torch.manual_seed(0)
    aug = dm.augmentation_for(SimpleNamespace(training=True))
    assert aug is dm.train_augmentation
    for _ in range(3):
        out = aug(batch)
        assert out["image"].shape == (8, 2, 12, 12) and out["mask"].shape == (8, 12, 12)
        assert out["mask"].dtype == torch.long
        expected = out["image"][:, 0].long() % 3
        nodata = out["image"][:, 0] == 0
        expected[nodata] = -1
        assert torch.equal(out["mask"], expected)
    out = dm.augmentation_for(SimpleNamespace(training=False, validating=True))(batch)
    assert out["image"].shape == (8, 2, 8, 8)
    assert dm.augmentation_for(SimpleNamespace(training=False, validating=False,
                                               sanity_checking=False, testing=False)) is None


def test_augmentation_temporal_and_errors():
    aug = build_augmentation(["hflip", "rot90"])
    image = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 3, 2, 4, 4)
    out = aug({"image": image, "mask": image[:, 0, 0].long()})
    assert out["image"].shape == image.shape
    assert torch.equal(out["image"][:, 0, 0].long(), out["mask"])
    # each frame gets the same geometry: frame 1 = frame 0 + 16 everywhere
    assert torch.equal(out["image"][:, :, 1] - out["image"][:, :, 0],
                       torch.full_like(out["image"][:, :, 0], 16))
    with pytest.raises(ConfigurationError, match="unknown augmentation 'blur'"):
        build_augmentation(["blur"])
    with pytest.raises(ConfigurationError, match="size must be"):
        build_augmentation([{"random_crop": "big"}])
    with pytest.raises(ConfigurationError, match="needs square chips"):
        aug({"image": torch.zeros(1, 2, 4, 6)})
