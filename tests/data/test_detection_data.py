"""Detection and instance-segmentation data on the real Sen1Floods11 chip's water bodies."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

gpd = pytest.importorskip("geopandas")
shapely = pytest.importorskip("shapely")

from geofm_core.data import (  # noqa: E402
    GeoTiffInstanceSegmentationDataModule,
    GeoTiffObjectDetectionDataModule,
)
from geofm_core.data.detection import (  # noqa: E402
    DetectionAugmentation,
    build_detection_augmentation,
    collate_detection,
)
from geofm_core.data.vector_labels import LabelWarning  # noqa: E402
from geofm_core.errors import ConfigurationError  # noqa: E402
from geofm_core.testing import WaterBodies, water_bodies  # noqa: E402

SIZE = 128
CHIP = 64


@pytest.fixture(scope="module")
def water(tmp_path_factory: pytest.TempPathFactory) -> WaterBodies:
    return water_bodies(tmp_path_factory.mktemp("water"), size=SIZE)


def make(water: WaterBodies, cls: type = GeoTiffObjectDetectionDataModule, *,
         labels: Path | str | None = None, **options):
    args = {
        "train_data_root": str(water.images), "img_pattern": "*_S2Hand.tif",
        "train_label_data_root": str(labels or water.labels), "class_attribute": "class",
        "classes": ["water"], "chip_size": CHIP, "batch_size": 2,
        "dataset_bands": water.band_names, "means": [1500.0] * 6, "stds": [1000.0] * 6,
        **options,
    }
    return cls(**args)


def train_set(dm):
    return dm.dataset("train")


def label_raster(water: WaterBodies) -> np.ndarray:
    with rasterio.open(water.label_raster) as src:
        return src.read(1)


def chip_of(label: np.ndarray, window) -> np.ndarray:
    row, col, h, w = (int(v) for v in window)
    return label[row:row + h, col:col + w]


def boxes_by_window(dataset) -> dict[tuple[int, ...], np.ndarray]:
    out = {}
    for i in range(len(dataset)):
        targets = dataset.targets(i)
        order = np.lexsort(targets.boxes.T[::-1])
        out[dataset.window(i)] = targets.boxes[order]
    return out


def edit_labels(water: WaterBodies, folder: Path, extra: list | None = None, *,
                keep=None, crs: str | bool | None = True, name: str = "edited.gpkg",
                **columns) -> Path:
    """The water polygons with some removed, some added (geometry, class) and columns set."""
    frame = gpd.read_file(water.labels)
    if keep is not None:
        frame = frame[keep(frame)]
    if extra:
        added = gpd.GeoDataFrame({"class": [c for _, c in extra]},
                                 geometry=[g for g, _ in extra], crs=frame.crs)
        frame = gpd.GeoDataFrame(
            np.concatenate([frame.to_numpy(), added[frame.columns].to_numpy()]),
            columns=frame.columns, geometry="geometry", crs=frame.crs)
    for key, value in columns.items():
        frame[key] = value
    if crs is None:
        frame = frame.set_crs(None, allow_override=True)
    path = folder / name
    frame.to_file(path, driver="GPKG", engine="pyogrio")
    return path


def pixel_polygon(water: WaterBodies, pixels: list[tuple[float, float]]):
    """A polygon given in the image's pixels (column, row), in the image's CRS."""
    with rasterio.open(water.image) as src:
        transform = src.transform
    return shapely.Polygon([transform * p for p in pixels])


# -- boxes and masks are where the water is ------------------------------------------


def test_boxes_are_tight_around_the_water_pixels(water: WaterBodies) -> None:
    dataset = train_set(make(water))
    label = label_raster(water)
    assert len(dataset) == (SIZE // CHIP) ** 2
    assert sum(len(dataset.targets(i)) for i in range(len(dataset))) >= water.count
    for i in range(len(dataset)):
        sample = dataset[i]
        water_pixels = chip_of(label, sample["window"]) == 1
        covered = np.zeros_like(water_pixels)
        assert sample["bbox_xyxy"].dtype == torch.float32
        assert sample["label"].dtype == torch.int64 and bool((sample["label"] == 1).all())
        for x0, y0, x1, y1 in sample["bbox_xyxy"].round().int().tolist():
            assert 0 <= x0 < x1 <= CHIP and 0 <= y0 < y1 <= CHIP
            inside = water_pixels[y0:y1, x0:x1]
            # tight: water on every edge row and column of the box
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
            covered[y0:y1, x0:x1] = True
        # every water pixel of the chip is inside some box, and boxes hold more water
        # than the chip
        assert not (water_pixels & ~covered).any()
        if covered.any() and not covered.all():
            assert water_pixels[covered].mean() > max(0.4, water_pixels.mean())


def test_masks_equal_the_rasterised_label_and_lie_in_their_boxes(water: WaterBodies) -> None:
    dataset = train_set(make(water, GeoTiffInstanceSegmentationDataModule))
    label = label_raster(water)
    for i in range(len(dataset)):
        sample = dataset[i]
        masks, boxes = sample["mask"], sample["bbox_xyxy"]
        assert masks.dtype == torch.uint8 and masks.shape == (len(boxes), CHIP, CHIP)
        union = masks.sum(0).numpy()
        assert union.max() <= 1  # connected regions do not overlap
        np.testing.assert_array_equal(union == 1, chip_of(label, sample["window"]) == 1)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist(), strict=True):
            rows, cols = np.nonzero(mask.numpy())
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == (x0, y0, x1, y1)


@pytest.mark.parametrize("fmt", ["geojson", "shp"])
def test_every_format_gives_the_same_boxes(water: WaterBodies, tmp_path: Path, fmt: str
                                           ) -> None:
    other = water_bodies(tmp_path, fmt=fmt, size=SIZE)
    assert other.labels.suffix == f".{fmt}"
    expected = boxes_by_window(train_set(make(water)))
    found = boxes_by_window(train_set(make(other)))
    assert found.keys() == expected.keys()
    for window, boxes in expected.items():
        np.testing.assert_allclose(found[window], boxes, atol=1e-6)


def test_reprojected_labels_give_the_same_boxes(water: WaterBodies, tmp_path: Path) -> None:
    mercator = water_bodies(tmp_path, crs="EPSG:3857", size=SIZE)
    assert gpd.read_file(mercator.labels).crs.to_epsg() == 3857
    # min_box_size below 1 px: reprojection rounding must not drop 1-pixel regions
    expected = boxes_by_window(train_set(make(water, min_box_size=0.5)))
    found = boxes_by_window(train_set(make(mercator, min_box_size=0.5)))
    for window, boxes in expected.items():
        assert found[window].shape == boxes.shape
        np.testing.assert_allclose(found[window], boxes, atol=1.0)


def test_per_image_label_files_pair_by_name(water: WaterBodies, tmp_path: Path) -> None:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("A_1", "B_2"):
        shutil.copy(water.image, images / f"{name}_S2Hand.tif")
        shutil.copy(water.labels, labels / f"{name}_water.gpkg")
    dm = make(water, labels=labels, train_data_root=str(images), label_pattern="*_water.gpkg")
    dataset = train_set(dm)
    assert len(dataset) == 2 * (SIZE // CHIP) ** 2
    single = boxes_by_window(train_set(make(water)))
    for i in range(len(dataset)):
        np.testing.assert_allclose(np.sort(dataset.targets(i).boxes, 0),
                                   np.sort(single[dataset.window(i)], 0))
    # an image without its label file is an error naming it
    (labels / "B_2_water.gpkg").unlink()
    with pytest.raises(ConfigurationError, match=r"images without a label: B_2_S2Hand\.tif"):
        train_set(make(water, labels=labels, train_data_root=str(images),
                       label_pattern="*_water.gpkg"))


def test_whole_images_and_strided_chips(water: WaterBodies) -> None:
    whole = train_set(make(water, chip_size=None))
    assert len(whole) == 1 and whole.window(0) == (0, 0, SIZE, SIZE)
    strided = train_set(make(water, chip_size=48, chip_stride=40))
    starts = sorted({w[0] for w in (strided.window(i) for i in range(len(strided)))})
    assert starts == [0, 40, 80]  # the last chip ends at the edge (80 + 48 = 128)


# -- awkward labels: counted, warned once per file, or an error naming it ------------------


@pytest.mark.parametrize("policy", ["fix", "skip", "error"])
def test_invalid_geometries(water: WaterBodies, tmp_path: Path, policy: str) -> None:
    bowtie = pixel_polygon(water, [(100, 100), (120, 120), (120, 100), (100, 120)])
    assert not bowtie.is_valid
    path = edit_labels(water, tmp_path, [(bowtie, "water")])
    if policy == "error":
        with pytest.raises(ConfigurationError, match=r"edited.gpkg: feature \d+ has an invalid"):
            train_set(make(water, labels=path, invalid_geometries="error"))
        return
    with pytest.warns(LabelWarning, match="1 invalid geometries") as record:
        dataset = train_set(make(water, labels=path, invalid_geometries=policy))
    assert sum("edited.gpkg" in str(r.message) for r in record) == 1  # once per file
    last = dataset.targets(len(dataset) - 1)  # the chip at row 64, column 64
    assert dataset.window(len(dataset) - 1) == (64, 64, CHIP, CHIP)
    has_bowtie = any(np.allclose(b, [36, 36, 56, 56]) for b in last.boxes)
    assert has_bowtie == (policy == "fix")


def test_null_and_empty_geometries_are_skipped(water: WaterBodies, tmp_path: Path) -> None:
    path = edit_labels(water, tmp_path, [(shapely.Polygon(), "water"), (None, "water")])
    with pytest.warns(LabelWarning, match="2 null or empty geometries skipped"):
        dataset = train_set(make(water, labels=path))
    assert sum(len(dataset.targets(i)) for i in range(len(dataset))) == sum(
        len(t) for t in boxes_by_window(train_set(make(water))).values())


def test_labels_outside_the_image_are_counted(water: WaterBodies, tmp_path: Path) -> None:
    far = pixel_polygon(water, [(500, 500), (510, 500), (510, 510), (500, 510)])
    path = edit_labels(water, tmp_path, [(far, "water"), (far, "water")])
    with pytest.warns(LabelWarning,
                      match=r"2 labels entirely outside every image of the stage \(1;"):
        train_set(make(water, labels=path))


@pytest.mark.parametrize("empty_chips", ["keep", "skip"])
def test_empty_chips(water: WaterBodies, tmp_path: Path, empty_chips: str) -> None:
    # keep one small region in the top-left chip only
    path = edit_labels(water, tmp_path, keep=lambda f: np.arange(len(f)) == 0)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dataset = train_set(make(water, labels=path, empty_chips=empty_chips, chip_size=32))
    skipped = [r for r in record if "hold no object and were skipped" in str(r.message)]
    with_objects = [i for i in range(len(dataset)) if len(dataset.targets(i))]
    if empty_chips == "keep":
        assert len(dataset) == 16 and 1 <= len(with_objects) < 16 and not skipped
        empty = dataset[next(i for i in range(16) if i not in with_objects)]
        assert empty["bbox_xyxy"].shape == (0, 4) and empty["label"].shape == (0,)
    else:
        assert len(dataset) == len(with_objects) and len(skipped) == 1
        assert f"{16 - len(dataset)} of 16 chips" in str(skipped[0].message)


def test_empty_masks_have_the_chip_size(water: WaterBodies, tmp_path: Path) -> None:
    path = edit_labels(water, tmp_path, keep=lambda f: np.arange(len(f)) == 0)
    dataset = train_set(make(water, GeoTiffInstanceSegmentationDataModule, labels=path,
                             chip_size=32))
    empty = next(dataset[i] for i in range(len(dataset)) if not len(dataset.targets(i)))
    assert empty["mask"].shape == (0, 32, 32) and empty["mask"].dtype == torch.uint8


def test_missing_class_column_names_file_column_and_columns(water: WaterBodies) -> None:
    with pytest.raises(ConfigurationError) as info:
        train_set(make(water, class_attribute="kind"))
    message = str(info.value)
    assert str(water.labels) in message and "'kind'" in message and "['class']" in message


def test_unknown_class_names_value_file_and_classes(water: WaterBodies, tmp_path: Path) -> None:
    cloud = pixel_polygon(water, [(10, 10), (20, 10), (20, 20)])
    path = edit_labels(water, tmp_path, [(cloud, "cloud")])
    with pytest.raises(ConfigurationError,
                       match=r"edited.gpkg: feature \d+ has class = 'cloud'.*\['water'\]"):
        train_set(make(water, labels=path))
    # listed, it is class 2
    dataset = train_set(make(water, labels=path, classes=["water", "cloud"]))
    assert 2 in np.concatenate([dataset.targets(i).labels for i in range(len(dataset))])


def test_label_file_without_crs_is_an_error_naming_it(water: WaterBodies, tmp_path: Path
                                                      ) -> None:
    path = edit_labels(water, tmp_path, crs=None)
    with pytest.raises(ConfigurationError, match=r"edited\.gpkg: the label file has no CRS"):
        train_set(make(water, labels=path))


def test_no_crs_on_either_side_uses_the_coordinates_as_they_are(water: WaterBodies,
                                                                tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with rasterio.open(water.image) as src:
        profile, data = src.profile, src.read()
    profile["crs"] = None
    with rasterio.open(images / water.image.name, "w", **profile) as dst:
        dst.write(data)
    path = edit_labels(water, tmp_path, crs=None)
    found = boxes_by_window(train_set(make(water, labels=path, train_data_root=str(images))))
    for window, boxes in boxes_by_window(train_set(make(water))).items():
        np.testing.assert_allclose(found[window], boxes, atol=1e-6)


def test_points_are_refused_since_boxes_need_an_area(water: WaterBodies, tmp_path: Path
                                                     ) -> None:
    point = shapely.Point(*pixel_polygon(water, [(5, 5), (6, 5), (6, 6)]).exterior.coords[0])
    path = edit_labels(water, tmp_path, [(point, "water")])
    with pytest.raises(ConfigurationError, match=r"1 features are Point.*buffer"):
        train_set(make(water, labels=path))


def test_classes_are_needed_with_a_class_attribute(water: WaterBodies) -> None:
    with pytest.raises(ConfigurationError, match="list its values in label order as classes"):
        make(water, classes=None)
    dm = make(water, class_attribute=None, classes=None)
    assert dm.class_names == ["object"] and dm.num_classes == 2


def test_missing_vector_packages_name_the_extra(water: WaterBodies,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "pyogrio", None)
    with pytest.raises(ConfigurationError, match=r"pip install geofm-core\[vector\]"):
        train_set(make(water))


# -- batches ---------------------------------------------------------------------------


def test_collate_follows_the_batch_contract(water: WaterBodies) -> None:
    dm = make(water, GeoTiffInstanceSegmentationDataModule, batch_size=3)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (3, 6, CHIP, CHIP) and batch["image"].dtype == torch.float32
    assert batch["window"].shape == (3, 4) and batch["window"].dtype == torch.int64
    assert isinstance(batch["filename"], list) and len(batch["filename"]) == 3
    for key in ("bbox_xyxy", "label", "mask"):
        assert isinstance(batch[key], list) and len(batch[key]) == 3
    for boxes, labels, masks in zip(batch["bbox_xyxy"], batch["label"], batch["mask"],
                                    strict=True):
        assert boxes.shape == (len(labels), 4) and masks.shape == (len(labels), CHIP, CHIP)
    # the image is the window of the file, normalised
    with rasterio.open(water.image) as src:
        row, col, h, w = batch["window"][0].tolist()
        raw = src.read(window=((row, row + h), (col, col + w))).astype(np.float32)
    np.testing.assert_allclose(batch["image"][0].numpy(), (raw - 1500) / 1000, rtol=1e-5)


def test_collate_refuses_images_of_different_sizes() -> None:
    samples = [{"image": torch.zeros(2, 8, 8), "filename": "a.tif"},
               {"image": torch.zeros(2, 8, 9), "filename": "b.tif"}]
    with pytest.raises(ConfigurationError, match="chips of different sizes"):
        collate_detection(samples)


def test_predict_batches_hold_images_and_windows_only(water: WaterBodies) -> None:
    dm = make(water, predict_data_root=str(water.images))
    dm.setup("predict")
    batch = next(iter(dm.predict_dataloader()))
    assert set(batch) == {"image", "filename", "window"}
    assert batch["window"][:, 2:].unique().tolist() == [CHIP]


@pytest.mark.parametrize("name", ["hflip", "vflip", "rot90"])
def test_augmentations_move_boxes_and_masks_with_the_pixels(water: WaterBodies,
                                                            name: str) -> None:
    dm = make(water, GeoTiffInstanceSegmentationDataModule, batch_size=4)
    dataset = train_set(dm)
    batch = collate_detection([dataset[i] for i in range(4)])
    torch.manual_seed(0)
    out = DetectionAugmentation([(name, 1.0)])(batch)
    if name != "rot90":
        flip = -1 if name == "hflip" else -2
        torch.testing.assert_close(out["image"], batch["image"].flip(flip))
    else:
        assert not torch.equal(out["image"], batch["image"])  # seed 0 turns some chips
    for image, boxes, masks in zip(out["image"], out["bbox_xyxy"], out["mask"], strict=True):
        assert image.shape == (6, CHIP, CHIP)
        for mask, box in zip(masks, boxes.int().tolist(), strict=True):
            rows, cols = np.nonzero(mask.numpy())
            assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == tuple(box)


def test_crops_are_refused_for_detection(water: WaterBodies) -> None:
    with pytest.raises(ConfigurationError, match="'random_crop' is not available"):
        make(water, train_augmentations=[{"random_crop": 32}])
    augmentation = build_detection_augmentation(["hflip", {"vflip": 0.2}, "rot90"], "x")
    assert augmentation is not None and augmentation.ops == [
        ("hflip", 0.5), ("vflip", 0.2), ("rot90", 1.0)]


# -- stages, splits and statistics -----------------------------------------------------


def test_split_stages_share_the_training_label_file(water: WaterBodies, tmp_path: Path
                                                    ) -> None:
    images = tmp_path / "images"
    images.mkdir()
    for name in ("A_1", "B_2", "C_3"):
        shutil.copy(water.image, images / f"{name}_S2Hand.tif")
    (tmp_path / "train.txt").write_text("A_1\nC_3\n")
    (tmp_path / "val.txt").write_text("B_2\n")
    dm = make(water, train_data_root=str(images), train_split=str(tmp_path / "train.txt"),
              val_split=str(tmp_path / "val.txt"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelWarning)  # every label meets an image
        dm.setup("fit")
    train, val = dm.dataset("train"), dm.dataset("val")
    assert {Path(f).name for f in train.filenames} == {"A_1_S2Hand.tif", "C_3_S2Hand.tif"}
    assert {Path(f).name for f in val.filenames} == {"B_2_S2Hand.tif"}
    assert len(train) == 2 * len(val) == 2 * (SIZE // CHIP) ** 2
    assert boxes_by_window(val).keys() == boxes_by_window(train_set(make(water))).keys()
    for window, boxes in boxes_by_window(train_set(make(water))).items():
        np.testing.assert_allclose(boxes_by_window(val)[window], boxes)


def test_one_file_is_shared_out_among_images_by_location(water: WaterBodies,
                                                         tmp_path: Path) -> None:
    # the image cut into its left and right halves: each gets its own water
    images = tmp_path / "images"
    images.mkdir()
    with rasterio.open(water.image) as src:
        for name, col in (("left", 0), ("right", SIZE // 2)):
            window = rasterio.windows.Window(col, 0, SIZE // 2, SIZE)
            profile = {**src.profile, "width": SIZE // 2,
                       "transform": src.window_transform(window)}
            with rasterio.open(images / f"{name}_S2Hand.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    halves = train_set(make(water, train_data_root=str(images)))
    whole = boxes_by_window(train_set(make(water)))
    for i in range(len(halves)):
        row, col = halves.window(i)[:2]
        shift = SIZE // 2 if Path(halves.filenames[i]).name.startswith("right") else 0
        found = halves.targets(i).boxes
        np.testing.assert_allclose(found[np.lexsort(found.T[::-1])],
                                   whole[(row, col + shift, CHIP, CHIP)])


def test_geofm_stats_reads_the_chips(water: WaterBodies) -> None:
    from geofm_core.data.stats import compute_stats

    stats = compute_stats(make(water, means=None, stds=None))
    with rasterio.open(water.image) as src:
        pixels = src.read().reshape(6, -1).astype(np.float64)
        nodata = src.nodata
    valid = pixels != nodata if nodata is not None else np.ones_like(pixels, bool)
    expected = [p[v].mean() for p, v in zip(pixels, valid, strict=True)]
    np.testing.assert_allclose(stats.mean, expected, rtol=1e-9)
    assert stats.files == (SIZE // CHIP) ** 2


def test_nodata_chips_of_a_scene_are_skipped(water: WaterBodies, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    with rasterio.open(water.image) as src:
        profile, data = src.profile, src.read()
    assert profile["nodata"] == 0
    data[:, :, CHIP:] = 0  # the right half is the scene's margin
    with rasterio.open(images / water.image.name, "w", **profile) as dst:
        dst.write(data)
    with pytest.warns(LabelWarning, match="2 chips of .* are nodata throughout"):
        dataset = train_set(make(water, train_data_root=str(images)))
    assert sorted(dataset.window(i)[:2] for i in range(len(dataset))) == [(0, 0), (64, 0)]
    assert all(torch.isfinite(dataset[i]["image"]).all() for i in range(len(dataset)))


def test_integer_class_values_match_their_text(water: WaterBodies, tmp_path: Path) -> None:
    path = edit_labels(water, tmp_path, code=7)
    dataset = train_set(make(water, labels=path, class_attribute="code", classes=["7"]))
    assert sum(len(dataset.targets(i)) for i in range(len(dataset))) > 0


def test_worker_processes_batch_the_chips(water: WaterBodies) -> None:
    dm = make(water, GeoTiffInstanceSegmentationDataModule, num_workers=1, batch_size=2)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    assert all(isinstance(b["mask"], list) and b["image"].shape == (2, 6, CHIP, CHIP)
               for b in batches)


def test_a_stage_without_labels_says_which_option_to_set(water: WaterBodies) -> None:
    dm = make(water, val_data_root=str(water.images))
    with pytest.raises(ConfigurationError, match="set the stage's label root"):
        dm.setup("fit")


def test_a_file_of_several_layers_is_refused_naming_them(water: WaterBodies, tmp_path: Path
                                                         ) -> None:
    path = tmp_path / "layers.gpkg"
    frame = gpd.read_file(water.labels)
    frame.to_file(path, layer="water", driver="GPKG", engine="pyogrio")
    frame.to_file(path, layer="roads", driver="GPKG", engine="pyogrio")
    with pytest.raises(ConfigurationError, match=r"holds 2 layers \(water, roads\)"):
        train_set(make(water, labels=path))


def test_plot_draws_the_boxes_and_predictions(water: WaterBodies) -> None:
    from matplotlib.patches import Rectangle

    dm = make(water, output_bands=["RED", "GREEN", "BLUE"], means=None, stds=None)
    sample = train_set(dm)[0]
    sample["prediction_bbox_xyxy"] = sample["bbox_xyxy"][:2] + 1
    sample["prediction_label"] = sample["label"][:2]
    sample["prediction_score"] = torch.tensor([0.9, 0.4])
    fig = dm.plot(sample, "chip 0")
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == len(sample["bbox_xyxy"]) + 2
    assert "water 0.90" in [t.get_text() for t in ax.texts]
