"""Bad data, second round: misaligned pairs, non-finite values, odd chips, diverging runs.

The cases run through the real ``geofm`` command line and assert what the catalogue of
``test_bad_inputs.py`` asserts: exit code 1, one ``error:`` paragraph with the expected
words, no traceback, the inputs unchanged and no artifact written.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from .conftest import BANDS, SIZE, TRANSFORM, run_bad_input, set_path, write_tif
from .test_bad_inputs import ARTIFACTS, Case, Ctx


def _write_label(path: Path, crs: str = "EPSG:32633", transform: Any = TRANSFORM) -> None:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    with rasterio.open(path, "w", driver="GTiff", height=SIZE, width=SIZE, count=1,
                       dtype="uint8", crs=crs, transform=transform) as dst:
        dst.write(mask, 1)


# -- image and label on different grids (paired by name only) ---------------------------


def label_other_crs(c: Ctx) -> Case:
    _write_label(c.seg_copy() / "chip1_mask.tif", crs="EPSG:32634")
    return Case(c.fit(), ["chip1_img.tif", "chip1_mask.tif", "same grid", "EPSG:32633",
                          "EPSG:32634"], strict=False)


def label_shifted(c: Ctx) -> Case:
    _write_label(c.seg_copy() / "chip1_mask.tif",
                 transform=from_origin(500_000 + 60, 4_000_000, 30, 30))
    return Case(c.fit(), ["chip1_img.tif", "chip1_mask.tif", "origin shifted by (2, 0) pixels"],
                strict=False)


def label_other_pixel_size(c: Ctx) -> Case:
    _write_label(c.seg_copy() / "chip1_mask.tif",
                 transform=from_origin(500_000, 4_000_000, 10, 10))
    return Case(c.fit(), ["chip1_img.tif", "chip1_mask.tif", "pixel size 30 x 30 vs 10 x 10"],
                strict=False)


# -- pixel values and chip shapes --------------------------------------------------------


def inf_image(c: Ctx) -> Case:
    image = np.ones((BANDS, SIZE, SIZE), np.float32)
    image[2, 5, 7] = np.inf
    write_tif(c.seg_copy() / "chip1_img.tif", image)
    return Case(c.fit(), ["chip1_img.tif", "infinite", "no_data_replace"], strict=False)


def complex_image(c: Ctx) -> Case:
    image = (np.ones((BANDS, SIZE, SIZE)) + 1j).astype(np.complex64)
    write_tif(c.seg_copy() / "chip1_img.tif", image)
    return Case(c.fit(), ["chip1_img.tif", "complex-valued", "complex64", "amplitude"],
                strict=False)


def chips_of_different_sizes(c: Ctx) -> Case:
    folder = c.seg_copy()
    half = SIZE // 2
    write_tif(folder / "chip1_img.tif", np.ones((BANDS, half, half), np.float32))
    write_tif(folder / "chip1_mask.tif", np.zeros((half, half), np.uint8))
    return Case(c.fit(), ["different sizes", "chip1_img.tif", f"{half}x{half}", "re-tile"],
                strict=False)


def random_crop_larger_than_chip(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.train_augmentations", [{"random_crop": 64}])
    return Case(c.fit(), ["random_crop", "64x64", f"{SIZE}x{SIZE}", "_img.tif"], strict=False)


def model_bands_differ_from_data(c: Ctx) -> Case:
    set_path(c.config, "model.init_args.model_args.backbone_kwargs.in_chans", 6)
    return Case(c.fit(), ["the model takes 6 input bands", f"the data give {BANDS}",
                          "output_bands"], strict=False)


def model_bands_differ_from_output_bands(c: Ctx) -> Case:
    set_path(c.config, "data.init_args.output_bands", [0, 1, 2])
    set_path(c.config, "data.init_args.means", [0.0] * 3)
    set_path(c.config, "data.init_args.stds", [1.0] * 3)
    return Case(c.fit(), [f"the model takes {BANDS} input bands", "the data give 3",
                          "data.init_args.output_bands"], strict=False)


# -- training that diverges, checkpoints that did ------------------------------------------


def loss_becomes_nan(c: Ctx) -> Case:
    folder = c.seg_copy()
    write_tif(folder / "chip1_img.tif", np.full((BANDS, SIZE, SIZE), 3e38, np.float32))
    set_path(c.config, "data.init_args.train_split", str(_split(c.tmp, ["chip1", "chip2"])))
    return Case(c.fit(), ["training loss became nan", "step 0", "chip1_img.tif",
                          "chip2_img.tif", "learning rate"], strict=False)


def weights_become_inf(c: Ctx) -> Case:
    # One step, with a finite loss: AdamW's decay (3.3e38 for a weight of 1) and step (3e37)
    # add up past float32's largest value. Nothing later would catch it.
    set_path(c.config, "model.init_args.lr", 3e37)
    set_path(c.config, "model.init_args.optimizer_hparams", {"weight_decay": 11.0})
    set_path(c.config, "trainer.max_steps", 1)
    return Case(c.fit(), ["the weight model.", "became NaN/inf at step 0", "_img.tif",
                          "learning rate"], strict=False)


def _nan_checkpoint(c: Ctx) -> Path:
    state = torch.load(c.trained["ckpt"], map_location="cpu", weights_only=True)
    name = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][name] = torch.full_like(state["state_dict"][name], float("nan"))
    path = c.tmp / "diverged.ckpt"
    torch.save(state, path)
    return path


def infer_nan_checkpoint(c: Ctx) -> Case:
    ckpt = _nan_checkpoint(c)
    return Case(c.infer(c.data["predict"] / "scene0.tif", c.tmp / "out.tif", ckpt=ckpt),
                ["diverged.ckpt", "non-finite weights", "model.", "earlier checkpoint"],
                strict=False)


def export_nan_checkpoint(c: Ctx) -> Case:
    ckpt = _nan_checkpoint(c)
    return Case(["export", "safetensors", "--ckpt", str(ckpt), "--output",
                 str(c.tmp / "model.safetensors")], ["diverged.ckpt", "non-finite"],
                strict=False)


def _split(folder: Path, ids: list[str]) -> Path:
    path = folder / "split.txt"
    path.write_text("\n".join(ids) + "\n")
    return path


CASES: list[Callable[[Ctx], Case]] = [
    label_other_crs, label_shifted, label_other_pixel_size, inf_image, complex_image,
    chips_of_different_sizes, random_crop_larger_than_chip, model_bands_differ_from_data,
    model_bands_differ_from_output_bands, loss_becomes_nan, weights_become_inf,
    infer_nan_checkpoint, export_nan_checkpoint,
]


def _no_readonly() -> Path:
    raise AssertionError("not used by these cases")


@pytest.mark.parametrize("build", CASES, ids=[f.__name__ for f in CASES])
def test_bad_data_gives_one_clear_error_and_writes_nothing(
    build: Callable[[Ctx], Case], tmp_path: Path, dataset: dict[str, Path],
    trained: dict[str, Path], fake_dist: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = Ctx(tmp_path / "case", dataset, trained, fake_dist, _no_readonly)
    ctx.tmp.mkdir()
    case = build(ctx)
    watched = [dataset["seg"].parent, trained["ckpt"].parent]
    new = run_bad_input(case.argv, [*watched, ctx.tmp], case.expect, capsys)
    assert not [p for p in new if p.endswith(ARTIFACTS)], f"written: {new}"


def test_an_ungeoreferenced_label_pairs_by_name_and_size(tmp_path: Path,
                                                         dataset: dict[str, Path]) -> None:
    """A mask written without CRS/transform beside a georeferenced image is accepted."""
    from geofm_core.data.datasets import GeoTiffSegmentationDataset

    folder = tmp_path / "chips"
    shutil.copytree(dataset["seg"], folder)
    write_tif(folder / "chip1_mask.tif", np.ones((SIZE, SIZE), np.uint8), crs=None)
    data = GeoTiffSegmentationDataset(folder, img_pattern="*_img.tif",
                                      label_pattern="*_mask.tif", num_classes=3)
    assert int(data[1]["mask"].max()) == 1


def test_grids_equal_up_to_rounding_pair(tmp_path: Path, dataset: dict[str, Path]) -> None:
    from geofm_core.data.datasets import GeoTiffSegmentationDataset

    folder = tmp_path / "chips"
    shutil.copytree(dataset["seg"], folder)
    _write_label(folder / "chip1_mask.tif",
                 transform=from_origin(500_000 + 0.001, 4_000_000, 30.0000001, 30))
    data = GeoTiffSegmentationDataset(folder, img_pattern="*_img.tif",
                                      label_pattern="*_mask.tif", num_classes=3)
    assert data[1]["mask"].shape == (SIZE, SIZE)


def test_crops_are_checked_at_their_place_in_the_list() -> None:
    from geofm_core.data.augment import build_augmentation
    from geofm_core.errors import ConfigurationError

    batch = {"image": torch.zeros(1, BANDS, SIZE, SIZE), "mask": torch.zeros(1, SIZE, SIZE),
             "filename": ["a.tif"]}
    grown = build_augmentation([{"resize": 64}, {"center_crop": 48}])
    assert grown is not None and grown(batch)["image"].shape[-2:] == (48, 48)
    shrunk = build_augmentation([{"random_crop": 16}, {"center_crop": 24}])
    assert shrunk is not None
    with pytest.raises(ConfigurationError, match=r"center_crop: the crop 24x24 .* chip 16x16"):
        shrunk(batch)


def test_infinities_are_nodata_like_nan() -> None:
    from geofm_core.data.preprocessing import Preprocessing, nodata_mask

    data = np.array([[1.0, np.inf], [-np.inf, np.nan]], np.float32)[None]
    mask = nodata_mask(data, None)
    assert mask is not None and mask.tolist() == [[[False, True], [True, True]]]
    filled = Preprocessing(no_data_replace=0.0)(data)
    assert torch.isfinite(filled).all() and filled.flatten().tolist() == [1.0, 0.0, 0.0, 0.0]
