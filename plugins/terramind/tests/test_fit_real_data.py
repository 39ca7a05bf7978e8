"""`geofm fit --trainer.fast_dev_run 1` on the real Sen1Floods11 chip, Sentinel-2 and -1 stacked.

The chip's S2 L1C (13 bands, int16) and S1 GRD (VV, VH in dB, NaN nodata) rasters are
stacked into one 15-band float32 GeoTIFF, cut into two halves (UperNet's pyramid pooling
needs a batch of two in training), and a tiny random TerraMind with
``modalities: [S2L1C, S1GRD]`` trains through the real CLI with UperNet.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from geofm_terramind.constants import MODALITIES

from geofm_core.cli import main

TINY = {"embed_dim": 32, "depth": 4, "num_heads": 2, "img_size": 64}


def test_a_tiny_terramind_on_s2_and_s1_of_one_chip_trains(tmp_path: Path,
                                                         stacked_chip: Path) -> None:
    root = stacked_chip
    s2, s1 = MODALITIES["S2L1C"], MODALITIES["S1GRD"]
    bands = [*s2.bands, *s1.bands]
    config = {
        "seed_everything": 0,
        "trainer": {"accelerator": "cpu", "devices": 1, "logger": False,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(tmp_path / "run")},
        "model": {"class_path": "SemanticSegmentationTask", "init_args": {
            "model_factory": "geofm:encoder_decoder",
            "model_args": {
                "backbone": "terramind:terramind_v1_small",
                "backbone_kwargs": {"modalities": ["S2L1C", "S1GRD"], **TINY},
                "necks": [{"name": "geofm:select_indices", "indices": [0, 1, 2, 3]},
                          {"name": "geofm:reshape_tokens_to_image", "remove_cls_token": False},
                          {"name": "geofm:learned_interpolate_to_pyramidal"}],
                "decoder": "upernet:upernet", "decoder_kwargs": {"channels": 16}},
            "num_classes": 2, "ignore_index": -1}},
        "data": {"class_path": "GeoTiffSegmentationDataModule", "init_args": {
            "train_data_root": str(root), "val_data_root": str(root),
            "img_pattern": "*_S2S1.tif", "label_pattern": "*_LabelHand.tif",
            "dataset_bands": bands, "output_bands": bands,
            "means": [*s2.mean, *s1.mean], "stds": [*s2.std, *s1.std],
            "no_data_replace": 0.0, "num_classes": 2, "ignore_index": -1,
            "batch_size": 2, "num_workers": 0,
            "train_augmentations": [{"random_crop": 64}],
            "val_augmentations": [{"center_crop": 64}]}},
    }
    path = tmp_path / "fit.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    assert main(["fit", "-c", str(path), "--trainer.fast_dev_run", "1"]) == 0
