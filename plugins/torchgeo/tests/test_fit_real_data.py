"""`geofm fit --trainer.fast_dev_run 1` on a real Sen1Floods11 chip with offline weights."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from geofm_core.cli import main
from geofm_core.data.bands import SENTINEL2_L1C_BANDS

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen1floods11"
SATLAS_MS = ["RED", "GREEN", "BLUE", "RED_EDGE_1", "RED_EDGE_2", "RED_EDGE_3", "NIR_BROAD",
             "SWIR_1", "SWIR_2"]
TOKENS = [{"name": "geofm:select_indices", "indices": [-1]},
          {"name": "geofm:reshape_tokens_to_image"}]


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    root = tmp_path / "chips"
    root.mkdir()
    shutil.copy(DATA / "Spain_7370579_S2Hand.tif", root / "Spain_7370579_S2Hand.tif")
    shutil.copy(DATA / "Spain_7370579_LabelHand.tif", root / "Spain_7370579_LabelHand.tif")
    return root


@pytest.mark.parametrize(("model", "weights", "bands", "backbone_kwargs", "necks"), [
    ("resnet18", "SENTINEL2_ALL_MOCO", list(SENTINEL2_L1C_BANDS), {},
     [{"name": "geofm:select_indices", "indices": [1, 2, 3, 4]}]),
    ("vit_small_patch16_224", "SENTINEL2_ALL_MOCO", list(SENTINEL2_L1C_BANDS), {}, TOKENS),
    ("swin_v2_t", "SENTINEL2_SI_MS_SATLAS", SATLAS_MS, {"bands": SATLAS_MS}, None),
    ("dofa_base_patch16_224", "DOFA_MAE", ["BLUE", "GREEN", "RED", "NIR_NARROW"],
     {"bands": ["BLUE", "GREEN", "RED", "NIR_NARROW"]}, TOKENS),
], ids=["resnet18", "vit_small", "swin_v2_t", "dofa_base"])
def test_fast_dev_run_on_a_real_chip(chips, tmp_path, offline_weights, model, weights, bands,
                                     backbone_kwargs, necks):
    offline_weights(model, weights)
    root = str(chips)
    model_args = {
        "backbone": f"torchgeo:{model}",
        "backbone_kwargs": {"weights": weights, **backbone_kwargs},
        "decoder": "geofm:fcn",
    }
    if necks:
        model_args["necks"] = necks
    n = len(bands)
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_factory": "geofm:encoder_decoder", "model_args": model_args,
            "num_classes": 2, "ignore_index": -1}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            "train_data_root": root, "val_data_root": root,
            "img_pattern": "*_S2Hand.tif", "label_pattern": "*_LabelHand.tif",
            "dataset_bands": list(SENTINEL2_L1C_BANDS), "output_bands": bands,
            "means": [1500.0] * n, "stds": [1000.0] * n, "num_classes": 2,
            "ignore_index": -1, "batch_size": 1, "num_workers": 0,
            "train_augmentations": [{"random_crop": 64}],
            "val_augmentations": [{"center_crop": 64}]}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0
