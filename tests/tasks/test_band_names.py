"""The data's band names against the backbone's pretrained bands, before the first batch.

A real Lightning Trainer (fast_dev_run) on tiny GeoTIFFs written with rasterio, and a
tiny backbone built here that declares ``pretrained_bands`` (and, for one that maps its
input onto the weights' channels itself, ``bands``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import torch
from lightning.pytorch import Trainer
from rasterio.transform import from_origin
from torch import nn

from geofm_core.data import GeoTiffSegmentationDataModule
from geofm_core.errors import ConfigurationError, ConfigurationWarning
from geofm_core.models.contracts import ModelOutput
from geofm_core.tasks import SemanticSegmentationTask

FILE_BANDS = ["BLUE", "GREEN", "RED", "NIR_NARROW", "VV"]
SIZE = 16


class TinyBackbone(nn.Module):
    """One convolution whose input channels stand for ``pretrained_bands``."""

    def __init__(self, pretrained: list[str] | None, bands: list[str] | None = None) -> None:
        super().__init__()
        self.pretrained_bands = tuple(pretrained) if pretrained is not None else None
        if bands is not None:
            self.bands = bands
        channels = len(bands if bands is not None else pretrained or ["x"] * 3)
        self.conv = nn.Conv2d(channels, 4, 3, padding=1)


class TinyModel(nn.Module):
    def __init__(self, backbone: TinyBackbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor, **metadata: Any) -> ModelOutput:
        return ModelOutput(self.head(self.backbone.conv(x)))


@pytest.fixture(scope="module")
def chips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("chips")
    rng = np.random.default_rng(0)
    for i in range(2):
        profile = {"driver": "GTiff", "height": SIZE, "width": SIZE, "crs": "EPSG:32633",
                   "transform": from_origin(500_000, 4_000_000, 30, 30)}
        with rasterio.open(root / f"c{i}_img.tif", "w", count=len(FILE_BANDS),
                           dtype="float32", **profile) as dst:
            dst.write(rng.random((len(FILE_BANDS), SIZE, SIZE), dtype=np.float32))
        with rasterio.open(root / f"c{i}_mask.tif", "w", count=1, dtype="uint8",
                           **profile) as dst:
            dst.write(rng.integers(0, 2, (1, SIZE, SIZE), dtype=np.uint8))
    return root


def fit(chips: Path, backbone: TinyBackbone, output_bands: list[str] | None,
        dataset_bands: list[str] | None = FILE_BANDS) -> None:
    data = GeoTiffSegmentationDataModule(
        train_data_root=str(chips), val_data_root=str(chips), img_pattern="*_img.tif",
        label_pattern="*_mask.tif", batch_size=2, num_classes=2,
        dataset_bands=dataset_bands, output_bands=output_bands,
        means=[0.5] * len(output_bands or FILE_BANDS), stds=[0.3] * len(output_bands or FILE_BANDS))
    task = SemanticSegmentationTask(model=TinyModel(backbone), num_classes=2)
    trainer = Trainer(accelerator="cpu", fast_dev_run=True, logger=False,
                      enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=str(chips))
    trainer.fit(task, datamodule=data)


def test_datamodule_names_its_input_bands(chips: Path) -> None:
    data = GeoTiffSegmentationDataModule(
        train_data_root=str(chips), num_classes=2, dataset_bands=FILE_BANDS,
        output_bands=["B04", 1, "blue"])
    assert data.input_band_names() == (["RED", "GREEN", "BLUE"], "data.init_args.output_bands")
    everything = GeoTiffSegmentationDataModule(train_data_root=str(chips), num_classes=2,
                                               dataset_bands=FILE_BANDS)
    assert everything.input_band_names() == (FILE_BANDS, "data.init_args.dataset_bands")
    unnamed = GeoTiffSegmentationDataModule(train_data_root=str(chips), num_classes=2,
                                            output_bands=[0, 1, 2])
    assert unnamed.input_band_names() is None


def test_the_weights_order_trains_without_a_word(chips: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "bands missing", ConfigurationWarning)
        fit(chips, TinyBackbone(["RED", "GREEN", "BLUE"]), ["RED", "GREEN", "BLUE"])


def test_same_bands_in_another_order_is_an_error_before_training(chips: Path) -> None:
    backbone = TinyBackbone(["RED", "GREEN", "BLUE"])
    before = backbone.conv.weight.detach().clone()
    with pytest.raises(ConfigurationError) as caught:
        fit(chips, backbone, ["BLUE", "GREEN", "RED"])
    message = str(caught.value)
    assert "[BLUE, GREEN, RED] (data.init_args.output_bands)" in message
    assert "[RED, GREEN, BLUE]" in message and "Reorder output_bands" in message
    assert torch.equal(backbone.conv.weight, before)  # no batch ran


def test_a_band_the_weights_lack_warns_and_names_it(chips: Path) -> None:
    with pytest.warns(ConfigurationWarning) as caught:
        fit(chips, TinyBackbone(["RED", "GREEN", "NIR_NARROW"]), ["RED", "GREEN", "VV"])
    message = next(str(w.message) for w in caught if w.category is ConfigurationWarning)
    assert "VV (in the channel of NIR_NARROW) start untrained" in message
    assert "[RED, GREEN, VV]" in message and "[RED, GREEN, NIR_NARROW]" in message


def test_a_known_band_at_another_position_is_an_error(chips: Path) -> None:
    with pytest.raises(ConfigurationError, match="GREEN sit at other positions"):
        fit(chips, TinyBackbone(["RED", "GREEN", "NIR_NARROW"]), ["GREEN", "VV", "BLUE"])


def test_a_backbone_that_maps_bands_must_be_built_for_the_datas(chips: Path) -> None:
    mapped = TinyBackbone(["BLUE", "GREEN", "RED", "NIR_NARROW"], bands=["RED", "VV"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "bands missing", ConfigurationWarning)
        fit(chips, mapped, ["RED", "VV"])  # the backbone's own bands: fine
    with pytest.raises(ConfigurationError, match="build the backbone with bands: "
                       r"\[VV, RED\]"):
        fit(chips, TinyBackbone(["RED"], bands=["RED", "VV"]), ["VV", "RED"])
    with pytest.raises(ConfigurationError, match="its bands argument: \\[RED, NIR_NARROW\\]"):
        fit(chips, TinyBackbone(["RED", "NIR_NARROW"], bands=["RED", "VV"]),
            ["RED", "NIR_NARROW"])


@pytest.mark.parametrize(("pretrained", "output_bands", "dataset_bands"), [
    (None, ["BLUE", "GREEN", "RED"], FILE_BANDS),          # no weights loaded
    (["my_band", "GREEN", "RED"], ["BLUE", "GREEN", "RED"], FILE_BANDS),  # unknown name
    (["RED", "GREEN", "BLUE"], [2, 1, 0], None),           # the data do not name bands
])
def test_unknown_names_on_either_side_skip_the_check(chips, pretrained, output_bands,
                                                     dataset_bands) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("error", "bands missing", ConfigurationWarning)
        fit(chips, TinyBackbone(pretrained or ["RED", "GREEN", "BLUE"])
            if pretrained else TinyBackbone(None), output_bands, dataset_bands)


def test_rgb_weights_of_timm_declare_their_bands(tmp_path: Path) -> None:
    from geofm_core.models.timm_backbone import TimmBackbone

    # a local checkpoint stands for timm's weights: no download
    model = TimmBackbone("test_resnet")
    path = tmp_path / "w.pth"
    torch.save(model.model.state_dict(), path)
    assert model.pretrained_bands is None
    assert TimmBackbone("test_resnet", checkpoint_path=str(path)).pretrained_bands == (
        "RED", "GREEN", "BLUE")
