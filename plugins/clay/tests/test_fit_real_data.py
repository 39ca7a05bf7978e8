"""`geofm fit --trainer.fast_dev_run 1` with a tiny random Clay on the real Sen1Floods11 chip."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from geofm_core.cli import main
from geofm_core.data.bands import SENTINEL2_L1C_BANDS

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "sen1floods11"
TINY = {"dim": 24, "depth": 4, "heads": 2, "dim_head": 8, "mlp_ratio": 2.0}
LAST = [{"name": "geofm:select_indices", "indices": [-1]},
        {"name": "geofm:reshape_tokens_to_image"}]
PYRAMID = [{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
           {"name": "geofm:reshape_tokens_to_image"},
           {"name": "geofm:learned_interpolate_to_pyramidal"}]


@pytest.fixture
def chips(tmp_path: Path) -> Path:
    """The real 13-band S2 chip and its label, twice (UperNet's pooling needs batches of 2)."""
    if not (DATA / "Spain_7370579_S2Hand.tif").exists():
        pytest.skip(f"real test rasters not found at {DATA} (see the project's data README)")
    root = tmp_path / "chips"
    root.mkdir()
    for copy in ("Spain_7370579", "Copy_7370579"):
        for kind in ("S2Hand", "LabelHand"):
            shutil.copy(DATA / f"Spain_7370579_{kind}.tif", root / f"{copy}_{kind}.tif")
    return root


def fit_config(root: Path, run: Path, model_args: dict) -> dict:
    """A segmentation fit on the chip with all 13 bands named (their wavelengths resolve)."""
    n = len(SENTINEL2_L1C_BANDS)
    return {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(run)},
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_factory": "geofm:encoder_decoder", "model_args": model_args,
            "num_classes": 2, "ignore_index": -1}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            "train_data_root": str(root), "val_data_root": str(root),
            "img_pattern": "*_S2Hand.tif", "label_pattern": "*_LabelHand.tif",
            "dataset_bands": list(SENTINEL2_L1C_BANDS), "output_bands": list(SENTINEL2_L1C_BANDS),
            "means": [1500.0] * n, "stds": [1000.0] * n, "num_classes": 2,
            "ignore_index": -1, "batch_size": 2, "num_workers": 0,
            "train_augmentations": [{"random_crop": 64}],
            "val_augmentations": [{"center_crop": 64}]}},
    }


@pytest.mark.parametrize(("backbone", "necks", "decoder"), [
    ("clay:clay_v1_5_tiny", LAST, "geofm:fcn"),
    ("clay:clay_v1_base", PYRAMID, "upernet:upernet"),
], ids=["v1_5_fcn", "v1_upernet"])
def test_fast_dev_run_on_a_real_chip(chips, tmp_path, backbone, necks, decoder):
    if decoder.startswith("upernet:"):
        pytest.importorskip("geofm_upernet", reason="UperNet comes from geofm-plugin-upernet")
    model_args = {"backbone": backbone,
                  "backbone_kwargs": {**TINY, "bands": list(SENTINEL2_L1C_BANDS), "gsd": 10.0},
                  "necks": necks, "decoder": decoder}
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(fit_config(chips, tmp_path / "run", model_args),
                                   sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0
