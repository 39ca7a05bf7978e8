"""`geofm fit --trainer.fast_dev_run 1` with Galileo-tiny (random init) on the real chip."""

from __future__ import annotations

import pytest
import torch
from geofm_galileo.constants import VARIANTS

from geofm_core.data.bands import SENTINEL2_L1C_BANDS
from geofm_core.data.datamodules import GeoTiffSegmentationDataModule
from geofm_core.errors import ConfigurationError
from geofm_core.models.factory import EncoderDecoderFactory
from geofm_core.registry import get_registry
from geofm_core.tasks.guards import check_input_bands
from geofm_core.testing import fit_fast_dev_run, segmentation_fit_config


def test_tiny_galileo_fits_the_13_band_chip(chips, tmp_path):
    # All 13 L1C bands: B1, B9 and B10 have no Galileo channel and are dropped by name.
    model_args = {
        "backbone": "galileo:galileo_tiny",
        "backbone_kwargs": {"bands": list(SENTINEL2_L1C_BANDS), "drop_unknown_bands": True,
                            "patch_size": 8, "out_indices": [-1]},
        "decoder": "geofm:fcn",
    }
    fit_fast_dev_run(segmentation_fit_config(chips, tmp_path / "run", model_args), tmp_path)


def test_four_blocks_to_a_pyramid_for_upernet():
    if "upernet:upernet" not in {s.qualified_name for s in get_registry().list("decoder")}:
        pytest.skip("the upernet plugin is not installed")
    model = EncoderDecoderFactory().build_model(
        "segmentation", backbone="galileo:galileo_nano", decoder="upernet:upernet",
        num_classes=2, backbone_kwargs={"bands": ["B2", "B3", "B4", "B8"], "patch_size": 8},
        necks=[{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
               {"name": "geofm:learned_interpolate_to_pyramidal"}],
        decoder_kwargs={"channels": 32}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 4, 32, 48)).output
    assert out.shape == (1, 2, 32, 48)


def test_data_bands_in_another_order_are_refused_before_training(chips, tmp_path, official):
    spec = VARIANTS["galileo_nano"]
    folder = official.write(tmp_path / "nano", spec, official.state(spec))
    model = EncoderDecoderFactory().build_model(
        "segmentation", backbone="galileo:galileo_nano", decoder="geofm:fcn", num_classes=2,
        backbone_kwargs={"bands": ["B2", "B3", "B4"], "ckpt_path": str(folder),
                         "patch_size": 8, "out_indices": [-1]})

    def data(bands: list[str]) -> GeoTiffSegmentationDataModule:
        return GeoTiffSegmentationDataModule(
            train_data_root=str(chips), img_pattern="*_S2Hand.tif",
            label_pattern="*_LabelHand.tif", dataset_bands=list(SENTINEL2_L1C_BANDS),
            output_bands=bands, means=[1500.0] * 3, stds=[1000.0] * 3, num_classes=2)

    check_input_bands(model, data(["BLUE", "GREEN", "RED"]))
    with pytest.raises(ConfigurationError, match="band order differs"):
        check_input_bands(model, data(["RED", "GREEN", "BLUE"]))
