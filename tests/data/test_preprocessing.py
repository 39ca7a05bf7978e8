"""One preprocessing: training, tiled inference and calibration give the same tensors.

The rasters are real GeoTIFFs written with rasterio (nodata, NaN, a band subset by name,
stacked frames); the inference side is what ``geofm infer`` builds: the preprocessing of
a checkpoint's saved data module settings, written by a real Lightning ``Trainer``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from lightning.pytorch import LightningModule, Trainer
from rasterio.windows import Window

from geofm_core.cli.export import _calibration_chips
from geofm_core.data.datamodules import GeoTiffSegmentationDataModule
from geofm_core.data.preprocessing import Preprocessing, nodata_mask
from geofm_core.data.scene import GeoTiffSceneDataModule
from geofm_core.errors import ConfigurationError
from geofm_core.inference.raster import predict_raster
from geofm_core.io.checkpoints import read_checkpoint

from .conftest import DEFAULT_TRANSFORM, write_tif

FRAME_BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW"]
CHIP = 16


class Probe(LightningModule):
    """One weight and a loss over the image: enough for Lightning to write a checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))

    def training_step(self, batch, batch_idx):
        return (batch["image"].nan_to_num() * self.w).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def saved_checkpoint(datamodule, root: Path) -> dict:
    """Fit one step, then read the checkpoint as ``geofm infer`` does."""
    trainer = Trainer(max_epochs=1, limit_train_batches=1, accelerator="cpu", logger=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=root)
    trainer.fit(Probe(), datamodule)
    (ckpt,) = (root / "checkpoints").glob("*.ckpt")
    return read_checkpoint(ckpt)


def stacked_scene(shape: tuple[int, int], frames: int, seed: int) -> np.ndarray:
    """float32 frames of FRAME_BANDS with nodata (-9999) and NaN pixels."""
    rng = np.random.default_rng(seed)
    data = rng.uniform(0, 3000, (frames * len(FRAME_BANDS), *shape)).astype(np.float32)
    data[:, 3:6, 4:9] = -9999  # every band: nodata
    data[2, 10:12, :] = -9999  # one band of one frame only
    data[5, :, 20:22] = np.nan
    data[0, 30, 30] = np.nan
    return data


def chip_windows(height: int, width: int) -> list[tuple[int, int]]:
    return [(r, c) for r in range(0, height, CHIP) for c in range(0, width, CHIP)]


def test_training_item_equals_inference_and_calibration_input(tmp_path):
    frames, height, width = 3, 32, 48
    scene = stacked_scene((height, width), frames, seed=0)
    source = write_tif(tmp_path / "scene.tif", scene, nodata=-9999.0)
    chips = tmp_path / "chips"
    for r, c in chip_windows(height, width):
        name = f"r{r:02d}c{c:02d}"
        write_tif(chips / f"{name}_img.tif", scene[:, r:r + CHIP, c:c + CHIP], nodata=-9999.0)
        write_tif(chips / f"{name}_lab.tif", np.ones((CHIP, CHIP), np.uint8))
    dm = GeoTiffSegmentationDataModule(
        train_data_root=str(chips), img_pattern="*_img.tif", label_pattern="*_lab.tif",
        num_classes=2, batch_size=2, dataset_bands=FRAME_BANDS, output_bands=["RED", "BLUE"],
        expand_temporal_dimension=True,  # frames from the file: 12 bands / 4 per frame
        constant_scale=0.5, no_data_replace=-1.0, means=[700.0, 650.0], stds=[300.0, 250.0],
    )
    prep = Preprocessing.from_checkpoint(saved_checkpoint(dm, tmp_path / "run"))
    train = dm.dataset("train")
    assert prep == train.preprocessing == dm.preprocessing

    tiles: list[torch.Tensor] = []

    def forward(batch: torch.Tensor) -> torch.Tensor:
        tiles.extend(batch)
        return torch.zeros(batch.shape[0], 2, *batch.shape[-2:])

    predict_raster(forward, source, tmp_path / "pred.tif", num_classes=2, crop=CHIP,
                   stride=CHIP, batch_size=2, preprocessing=prep, progress=False)
    items = {Path(train.items[i][1]).name: train[i]["image"] for i in range(len(train))}
    calibration = _calibration_chips(sorted(chips.glob("*_img.tif")), prep, (CHIP, CHIP))
    assert len(tiles) == len(items) == len(calibration) == 6
    for k, (r, c) in enumerate(chip_windows(height, width)):
        item = items[f"r{r:02d}c{c:02d}_img.tif"]
        assert item.shape == (2, frames, CHIP, CHIP) and item.dtype == torch.float32
        assert torch.equal(item, tiles[k])
        assert torch.equal(item, torch.from_numpy(calibration[k][0]))
    # and they are what the stages say, in float32
    item = items["r00c00_img.tif"].numpy()
    raw = scene[[2 + 4 * t for t in range(frames)] + [4 * t for t in range(frames)], :CHIP, :CHIP]
    expected = raw.reshape(2, frames, CHIP, CHIP) * np.float32(0.5)
    expected[nodata_mask(raw, -9999.0).reshape(expected.shape)] = np.float32(-1.0)
    expected -= np.array([700, 650], np.float32).reshape(-1, 1, 1, 1)
    expected /= np.array([300, 250], np.float32).reshape(-1, 1, 1, 1)
    np.testing.assert_array_equal(item, expected)
    assert not np.isnan(item).any() and (item[:, :, 3:6, 4:9] == expected[:, :, 3:6, 4:9]).all()


def test_scene_batches_equal_inference_input(tmp_path):
    rng = np.random.default_rng(1)
    scene = rng.integers(1, 4000, (5, 48, 40)).astype(np.float32)
    scene[:, :4, :6] = 0  # nodata in every band
    scene[3, 20, :] = 0  # in one band
    scene[1, :, 33] = np.nan
    source = write_tif(tmp_path / "img" / "scene.tif", scene, nodata=0.0)
    write_tif(tmp_path / "lab" / "label.tif", (scene[0] > 2000).astype(np.uint8))
    dm = GeoTiffSceneDataModule(
        train_data_root=str(source), train_label_data_root=str(tmp_path / "lab"),
        val_data_root=str(source), output_bands=[3, 0, 1], patch_size=CHIP, train_length=2,
        batch_size=4, num_classes=2, ignore_index=-1, constant_scale=1e-3,
        no_data_replace=0.0, means=[2.0, 2.1, 1.9], stds=[1.1, 1.2, 1.3], seed=0,
    )
    prep = Preprocessing.from_checkpoint(saved_checkpoint(dm, tmp_path / "run"))
    assert prep == dm.preprocessing
    chips = 0
    with rasterio.open(source) as src:
        indexes = prep.plan(src.name, src.count).indexes
        for batch in dm.val_dataloader():
            for image, (xmin, _, _, ymax) in zip(batch["image"], batch["bounds"].tolist(),
                                                 strict=True):
                col = round((xmin - DEFAULT_TRANSFORM.c) / DEFAULT_TRANSFORM.a)
                row = round((DEFAULT_TRANSFORM.f - ymax) / -DEFAULT_TRANSFORM.e)
                h, w = min(CHIP, src.height - row), min(CHIP, src.width - col)
                raw = src.read(indexes, window=Window(col, row, w, h))
                assert torch.equal(image[:, :h, :w], prep(raw, src.nodata))
                chips += 1
    assert chips == 3 * 3  # 48 x 40 px on a 16 px grid


def test_stages_and_validity_mask():
    raw = np.array([[[1, -9999], [3, 4]], [[-9999, 6], [7, 8]]], np.int16)
    prep = Preprocessing(constant_scale=2.0, no_data_replace=0.0, means=[1.0, 2.0],
                         stds=[2.0, 4.0])
    values, invalid = prep.scale(raw, -9999)
    assert values.dtype == np.float32 and raw[0, 0, 1] == -9999  # raw left alone
    assert invalid.tolist() == [[[False, True], [False, False]], [[True, False], [False, False]]]
    out = prep(raw, -9999).numpy()
    np.testing.assert_array_equal(out, [[[0.5, -0.5], [2.5, 3.5]], [[-0.5, 2.5], [3.0, 3.5]]])
    assert nodata_mask(raw, None) is None and nodata_mask(raw, 5) is None
    floats = np.array([[1.0, np.nan]], np.float32)
    assert nodata_mask(floats, None).tolist() == [[False, True]]
    # a batch (B, C, H, W), as the scene data module preprocesses it
    batch = np.stack([raw, raw]).astype(np.float32)
    scaled, mask = prep.scale(batch, -9999, copy=False)
    np.testing.assert_array_equal(prep.fill_and_normalise(scaled, mask), np.stack([out, out]))


def test_settings_round_trip_and_defaults(tmp_path):
    means = tmp_path / "means.json"
    means.write_text("[1, 2]")
    settings = {"dataset_bands": FRAME_BANDS, "output_bands": ["GREEN", "0-0"],
                "constant_scale": 0.5, "no_data_replace": 0, "means": str(means),
                "stds": [1, 1], "expand_temporal_dimension": True, "num_frames": 2,
                "batch_size": 4}
    prep = Preprocessing.from_settings(settings)
    assert prep.bands == [1, 0] and prep.means == [1.0, 2.0] and prep.channels == 2
    assert Preprocessing.from_settings(prep.settings()) == prep
    assert "bands=[1, 0]" in repr(prep)
    none = Preprocessing.from_checkpoint({"state_dict": {}})
    assert none == Preprocessing() and not none.expand_temporal_dimension
    raw = np.arange(12, dtype=np.uint16).reshape(3, 2, 2)
    assert torch.equal(none(raw), torch.from_numpy(raw.astype(np.float32)))
    # num_frames > 1 alone expands, as tiled inference was always called
    assert Preprocessing(num_frames=3)(np.zeros((6, 2, 2), np.float32)).shape == (2, 3, 2, 2)


@pytest.mark.parametrize(("kwargs", "count", "message"), [
    ({"bands": [0, 5]}, 4, r"x\.tif: band index 5 is out of range for x\.tif, which has 4 bands "
                           r"\(valid 0\.\.3\); fix output_bands"),
    ({"dataset_bands": ["RED"]}, 2, r"x\.tif: has 2 bands but dataset_bands names 1"),
    ({"num_frames": 3}, 4, r"x\.tif: has 4 bands, which is not 3 frames"),
    ({"means": [0.0] * 3, "stds": [1.0] * 3}, 2,
     r"means/stds have 3 values but 2 bands are read from .*x\.tif; give one value per "
     r"selected band \(to predict, a raster with the 3 bands the model was trained on\)"),
])
def test_plan_errors_name_the_file(kwargs, count, message):
    with pytest.raises(ConfigurationError, match=message):
        Preprocessing(**kwargs).plan("/data/x.tif", count)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_frames": 0}, "num_frames must be >= 1"),
    ({"expand_temporal_dimension": True}, "needs num_frames"),
    ({"means": [1.0]}, "give both means and stds"),
    ({"means": [1.0], "stds": [0.0]}, "stds must be positive"),
    ({"bands": [0, 1], "means": [1.0], "stds": [1.0]}, "output_bands selects 2 bands"),
    ({"bands": ["RED"]}, "needs dataset_bands"),
])
def test_settings_are_checked_when_built(kwargs, message):
    with pytest.raises(ConfigurationError, match=message):
        Preprocessing(**kwargs)
